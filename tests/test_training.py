"""End-to-end training on CPU: the smoke recipe on a small FineVD-Synth folder (loss falls, validation picks
the best model, which loads), kill-and-resume equality, stage 1 / stage 2 with LoRA exports, two gloo
processes, and DeepSpeed ZeRO-2 / ZeRO-3 (each run is a real `recipes/train.py` or accelerate launch)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finevq.data.finevd import load_finevd
from finevq.errors import ConfigError
from finevq.modeling import FineVQForConditionalGeneration, FineVQProcessor, build_model
from finevq.modeling.modeling import ADAPTER_SUBFOLDER
from finevq.modeling.scoring import score_dimensions
from finevq.training.checkpoints import TrainerState, checkpoints
from finevq.training.config import load_experiment
from finevq.training.data import VideoTensorCache, load_splits, synthesize_source
from finevq.training.export import merge_model_folder
from finevq.training.loop import prepare_model

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "recipes" / "configs" / "smoke.yaml"
ACCELERATE = ROOT / "recipes" / "accelerate"
SMALL_MODEL = {"model.text_config.num_hidden_layers": 1, "model.vision_config.num_hidden_layers": 1}
LOSSES = ("loss", "lm_loss", "score_loss", "lr")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """The smoke recipe's own FineVD-Synth folder: 32 small videos, 21 train, 7 validation, 4 test."""
    folder = tmp_path_factory.mktemp("synth") / "finevd_synth"
    synthesize_source(load_experiment(SMOKE, [f"data.source={folder}"]).data, progress=False)
    return folder


@pytest.fixture(scope="module")
def labels_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("labels_cache")


def overrides(synth: Path, labels_cache: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.source={synth}", "data.synthesize=null", f"data.labels_cache={labels_cache}", f"output.dir={out}",
            *extra]


def environment() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT)}


def recipe_command(settings: list[str], config: Path = SMOKE) -> list[str]:
    return [sys.executable, str(ROOT / "recipes" / "train.py"), "--config", str(config),
            *[arg for setting in settings for arg in ("--set", setting)]]


def launch_command(accelerate_config: str, script: Path | str, arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / accelerate_config),
            str(script), *arguments]


def run(command: list[str], timeout: float = 400) -> str:
    result = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result.stdout + result.stderr


def log_entries(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def step_entries(out: Path) -> dict[int, dict]:
    return {entry["step"]: entry for entry in log_entries(out) if "loss" in entry}


# Steps 1-8, a checkpoint every 2 steps, validation every 4: the reference run of the resume test.
RESUMABLE = ("training.max_steps=8", "output.checkpoint_every_steps=2", "evaluation.every_steps=4",
             "output.keep_checkpoints=3")


@pytest.fixture(scope="module")
def smoke_run(synth, labels_cache, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("smoke") / "run"
    output = run(recipe_command(overrides(synth, labels_cache, out, *RESUMABLE)))
    return out, output


def test_smoke_run_learns_validates_and_exports_a_loadable_best_model(smoke_run, synth):
    out, output = smoke_run
    steps = step_entries(out)
    assert sorted(steps) == list(range(1, 9))
    first, last = [steps[s]["lm_loss"] for s in (1, 2, 3)], [steps[s]["lm_loss"] for s in (6, 7, 8)]
    assert sum(last) / 3 < sum(first) / 3 - 0.3, (first, last)
    assert all(steps[s]["samples_per_s"] > 0 and 0 <= steps[s]["data_wait_share"] <= 1 for s in steps)

    validations = [entry for entry in log_entries(out) if "validation" in entry]
    assert [entry["step"] for entry in validations] == [4, 8]
    state = TrainerState.load(checkpoints(out / "checkpoints")[-1][1])
    assert state.best_step in (4, 8)
    assert state.best_value == max(v["validation"]["score_head.overall.srcc"] for v in validations)
    report = state.best_report
    assert report["n_videos"] == 7
    assert set(report) >= {"score_head", "level_score", "level_accuracy", "yes_no_accuracy",
                           "which_subtype_accuracy", "which_dimension_accuracy"}
    assert report["score_head"]["overall"]["n"] == 7

    # The best folder holds exactly the weights of the checkpoint validation chose.
    best = out / "best"
    chosen = load_file(str(out / "checkpoints" / f"step-{state.best_step:08d}" / "model.safetensors"))
    exported = load_file(str(best / "model.safetensors"))
    assert set(chosen) == set(exported) and all(torch.equal(chosen[k], exported[k]) for k in chosen)

    model = FineVQForConditionalGeneration.from_pretrained(best)
    processor = FineVQProcessor.from_pretrained(best)
    video = next((synth / "videos").iterdir())
    scores = score_dimensions(model, processor, video)
    assert all(torch.isfinite(torch.tensor(s.score)) for s in scores.values())

    test_report = json.loads((out / "test_report.json").read_text())
    assert test_report["n_videos"] == 4
    assert "Score head (predicted MOS)" in output and "Which-subtype accuracy" in output
    card = (best / "README.md").read_text()
    assert "## Validation metrics" in card and "## Test metrics" in card and f"step {state.best_step}" in card


def test_smoke_recipe_runs_from_nothing_as_the_readme_says(synth, tmp_path):
    """`accelerate launch recipes/train.py --config recipes/configs/smoke.yaml` in a folder with no data:
    the recipe writes its videos, trains and exports, and its videos are the ones the fixture made."""
    command = [sys.executable, "-m", "accelerate.commands.launch", str(ROOT / "recipes" / "train.py"),
               "--config", str(SMOKE)]
    result = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    made = tmp_path / "data" / "finevd_synth_smoke"
    assert sorted(p.name for p in (made / "videos").iterdir()) == sorted(p.name for p in (synth / "videos").iterdir())
    assert (made / "scores.csv").read_bytes() == (synth / "scores.csv").read_bytes()
    assert (tmp_path / "runs" / "smoke" / "best" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "runs" / "smoke" / "test_report.json").read_text())["n_videos"] == 4


def test_missing_data_source_says_how_to_make_it(tmp_path):
    command = recipe_command([f"data.source={tmp_path / 'nowhere'}", "data.synthesize=null", f"output.dir={tmp_path / 'run'}"])
    result = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=200)
    assert result.returncode == 2
    assert f"data.source {tmp_path / 'nowhere'} does not exist: write it with `finevq synth" in result.stderr
    assert "Traceback" not in result.stderr


def test_killed_run_resumes_with_the_same_losses(smoke_run, synth, labels_cache, tmp_path):
    reference, _ = smoke_run
    out = tmp_path / "run"
    command = recipe_command(overrides(synth, labels_cache, out, *RESUMABLE))
    errors = tmp_path / "killed.stderr"
    with errors.open("w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 300
        while not any(step >= 4 for step, _ in checkpoints(out / "checkpoints")):
            assert process.poll() is None, errors.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()

    step, folder = checkpoints(out / "checkpoints")[-1]
    assert step < 8 and TrainerState.load(folder).step == step
    assert load_file(str(folder / "model.safetensors"))  # the newest checkpoint is complete

    output = run(command)
    assert f"resumed from {folder} at step {step}" in output
    resumed, uninterrupted = step_entries(out), step_entries(reference)
    assert sorted(resumed) == list(range(1, 9))
    for s in range(1, 9):
        assert {k: resumed[s][k] for k in LOSSES} == {k: uninterrupted[s][k] for k in LOSSES}, s
    reports = [json.loads((folder / "test_report.json").read_text()) for folder in (out, reference)]
    assert reports[0] == reports[1]


def test_a_broken_training_video_is_a_clear_error(synth, labels_cache, tmp_path):
    broken = tmp_path / "broken"
    (broken / "videos").mkdir(parents=True)
    for path in synth.iterdir():
        if path.is_file():
            (broken / path.name).write_bytes(path.read_bytes())
    for video in (synth / "videos").iterdir():
        (broken / "videos" / video.name).write_bytes(b"not a video" * 100)
    result = subprocess.run(recipe_command(overrides(broken, labels_cache, tmp_path / "run", "training.max_steps=1")),
                            cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    message = result.stderr.split("train: error: ")[1].splitlines()[0]
    assert "cannot open as a video" in message and str(broken / "videos") in message
    assert "Traceback" not in result.stderr


def test_published_qa_replaces_the_generated_questions(synth, labels_cache):
    settings = overrides(synth, labels_cache, Path("unused"), "data.max_train_videos=10")
    generated = load_splits(load_experiment(SMOKE, settings).data)
    published = load_splits(load_experiment(SMOKE, [*settings, "data.published_qa=true"]).data)
    assert len(set(published["train"]["name"])) == 10
    for split in ("train", "validation", "test"):
        videos = len(set(generated[split]["name"]))
        assert set(published[split]["name"]) == set(generated[split]["name"])
        assert published[split].filter(lambda r: r["question_type"] == "score").to_list() == \
            generated[split].filter(lambda r: r["question_type"] == "score").to_list()
        kinds = [r["question_type"] for r in generated[split]], [r["question_type"] for r in published[split]]
        assert kinds[0].count("which_subtype") == 5 * videos  # one generated question per coarse type
        assert kinds[1].count("which_subtype") == videos  # the folder publishes one per video


def test_resuming_from_a_folder_that_is_no_checkpoint_is_refused(tmp_path):
    result = subprocess.run([*recipe_command([f"output.dir={tmp_path / 'run'}"]), "--resume", str(tmp_path)],
                            cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"train: error: '{tmp_path}' is not a complete training checkpoint (no trainer_state.json)" in result.stderr
    assert not (tmp_path / "run").exists()


def test_stage1_trains_only_the_projectors():
    config = load_experiment(SMOKE, ["training.stage=stage1", "training.score_loss_weight=0"])
    model, _ = prepare_model(config)
    trainable = {".".join(name.split(".")[:2]) for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"vision.projector", "motion.projector"}


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    """A small tiny-preset FineVQ folder: the pretrained base of the stage-1 / stage-2 runs."""
    folder = tmp_path_factory.mktemp("base") / "model"
    model, processor = build_model("tiny", SMALL_MODEL, seed=0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_full_stage_trains_every_weight_of_a_finevq_folder(base_model, tmp_path):
    config = load_experiment(SMOKE, ["training.stage=full", f"model.base_path={base_model}"])
    model, _ = prepare_model(config)
    base = dict(FineVQForConditionalGeneration.from_pretrained(base_model).named_parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(p, base[name]) for name, p in model.named_parameters())
    with pytest.raises(ConfigError, match="set model.base_path"):
        load_experiment(SMOKE, ["training.stage=full"])
    with pytest.raises(ConfigError, match="needs a FineVQ model folder"):
        prepare_model(load_experiment(SMOKE, ["training.stage=full", f"model.base_path={tmp_path}"]))


def test_stage2_exports_base_plus_adapter_that_loads_merged_or_not(base_model, synth, labels_cache, tmp_path):
    out = tmp_path / "stage2"
    run(recipe_command(overrides(synth, labels_cache, out, "training.stage=stage2", f"model.base_path={base_model}",
                                 "training.max_steps=2", "evaluation.every_steps=2", "evaluation.test=false",
                                 "training.lr=1e-2", "data.video_cache=''", "training.gradient_checkpointing=true",
                                 "output.tensorboard=true")))
    best = out / "best"
    assert (best / ADAPTER_SUBFOLDER / "adapter_config.json").is_file()
    adapter = load_file(str(best / ADAPTER_SUBFOLDER / "adapter_model.safetensors"))
    assert any(".lora_B." in k and bool(v.abs().sum() > 0) for k, v in adapter.items())  # trained, not initial zeros
    assert not (out / "video_cache").exists()
    assert list((out / "finevq").glob("events.out.tfevents.*"))  # TensorBoard logs, when asked

    merged = FineVQForConditionalGeneration.from_pretrained(best).eval()
    unmerged = FineVQForConditionalGeneration.from_pretrained(best, merge_adapter=False).eval()
    processor = FineVQProcessor.from_pretrained(best)
    video = next((synth / "videos").iterdir())
    ids = torch.tensor([processor.prefix_ids])
    with torch.no_grad():
        a = merged(input_ids=ids, **processor.video_inputs(video)).logits
        b = unmerged(input_ids=ids, **processor.video_inputs(video)).logits
    assert torch.allclose(a, b, atol=1e-4)
    base = FineVQForConditionalGeneration.from_pretrained(base_model).eval()
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids, **processor.video_inputs(video)).logits, a, atol=1e-4)

    merge_model_folder(best)
    assert not (best / ADAPTER_SUBFOLDER).exists() and (best / "README.md").is_file()
    with torch.no_grad():
        merged_again = FineVQForConditionalGeneration.from_pretrained(best).eval()
        again = merged_again(input_ids=ids, **processor.video_inputs(video))
    assert torch.allclose(again.logits, a, atol=1e-4)


def test_video_cache_reuses_and_refreshes_decoded_tensors(base_model, synth, tmp_path):
    processor = FineVQProcessor.from_pretrained(base_model)
    cache = VideoTensorCache(tmp_path / "cache", processor)
    video = tmp_path / "clip.mp4"
    video.write_bytes(next((synth / "videos").iterdir()).read_bytes())
    decoded = processor.video_tensors(str(video))
    first = cache.get(str(video))
    stored = cache.path_of(str(video))
    assert stored.is_file() and all(torch.equal(first[k], decoded[k]) for k in decoded)
    stored.write_bytes(b"half-written")  # an unreadable entry is decoded again and replaced
    assert all(torch.equal(cache.get(str(video))[k], decoded[k]) for k in decoded)
    assert load_file(str(stored)).keys() == decoded.keys()
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed file gets a new entry
    assert cache.path_of(str(video)) != stored
    other = VideoTensorCache(tmp_path / "cache", FineVQProcessor(processor.tokenizer, dataclasses.replace(
        processor.settings, num_frames=2)))  # so do other processor settings
    assert other.path_of(str(video)) != cache.path_of(str(video))
    assert other.get(str(video))["pixel_values"].shape[0] == 2


# A launcher that records, on every process, the rows it trained on and a digest of its weights; under
# ZeRO-3 it also saves the gathered LoRA weights of the last step.
PROBE = textwrap.dedent("""
    import hashlib, json, sys
    from pathlib import Path
    from safetensors.torch import save_file
    from finevq.training import load_experiment, train

    config = load_experiment(sys.argv[1], sys.argv[2:])
    probe = Path(config.output.dir) / "probe"

    def on_step(info, model, accelerator):
        probe.mkdir(parents=True, exist_ok=True)
        state = accelerator.get_state_dict(model)
        if state is None:
            return
        digest = hashlib.sha256()
        # Batch-norm running statistics follow each process's own rows (DDP hands rank 0's to all
        # before every forward, and rank 0 saves): only the trained weights must agree.
        for name in sorted(k for k in state if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))):
            digest.update(name.encode() + state[name].detach().float().cpu().numpy().tobytes())
        record = {"rows": info.rows, "digest": digest.hexdigest(), "processes": accelerator.num_processes}
        (probe / f"rank{accelerator.process_index}-step{info.step}.json").write_text(json.dumps(record))
        lora = {k: v.detach().cpu().contiguous() for k, v in state.items() if ".lora_" in k}
        if lora and accelerator.is_main_process:
            save_file(lora, str(probe / f"lora-step{info.step}.safetensors"))

    train(config, on_step=on_step)
""")


@pytest.fixture(scope="module")
def probe_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("probe") / "probe_train.py"
    path.write_text(PROBE)
    return path


def test_two_gloo_processes_get_disjoint_rows_and_identical_weights_with_shared_videos(probe_script, synth, labels_cache, tmp_path):
    out = tmp_path / "gloo"
    settings = overrides(synth, labels_cache, out, "training.max_steps=2", "evaluation.every_steps=2",
                         "evaluation.test=false", "training.batch_size=4", "training.rows_per_video=2")
    run(launch_command("cpu_2proc_gloo.yaml", probe_script, [str(SMOKE), *settings]))
    for step in (1, 2):
        ranks = [json.loads((out / "probe" / f"rank{r}-step{step}.json").read_text()) for r in (0, 1)]
        assert all(rank["processes"] == 2 for rank in ranks)
        assert len(ranks[0]["rows"]) == len(ranks[1]["rows"]) == 4
        assert not set(ranks[0]["rows"]) & set(ranks[1]["rows"])
        assert ranks[0]["digest"] == ranks[1]["digest"]
    assert step_entries(out)[2]["processes"] == 2
    assert (out / "checkpoints" / "step-00000002" / "random_states_1.pkl").is_file()


def test_deepspeed_zero2_trains_one_step(synth, labels_cache, tmp_path):
    out = tmp_path / "zero2"
    settings = overrides(synth, labels_cache, out, "training.max_steps=1", "evaluation.validation=false",
                         "evaluation.test=false")
    output = run(launch_command("zero2.yaml", ROOT / "recipes" / "train.py",
                                ["--config", str(SMOKE), *[a for s in settings for a in ("--set", s)]]), timeout=600)
    assert "accelerate: DEEPSPEED ZeRO-2" in output
    assert 1 in step_entries(out) and (out / "checkpoints" / "step-00000001" / "pytorch_model").is_dir()
    FineVQForConditionalGeneration.from_pretrained(out / "best")


def test_deepspeed_zero3_saves_the_trained_lora_weights(probe_script, base_model, synth, labels_cache, tmp_path):
    out = tmp_path / "zero3"
    settings = overrides(synth, labels_cache, out, "training.stage=stage2", f"model.base_path={base_model}",
                         "training.max_steps=2", "evaluation.validation=false", "evaluation.test=false",
                         "training.lr=1e-2")
    output = run(launch_command("zero3.yaml", probe_script, [str(SMOKE), *settings]), timeout=600)
    assert "accelerate: DEEPSPEED ZeRO-3" in output
    trained = load_file(str(out / "probe" / "lora-step2.safetensors"))
    saved = load_file(str(out / "best" / ADAPTER_SUBFOLDER / "adapter_model.safetensors"))
    assert trained and all(v.numel() > 0 for v in trained.values())
    assert {k.replace(".default", "") for k in trained} == {k for k in saved if ".lora_" in k}
    for name, tensor in trained.items():
        assert saved[name.replace(".default", "")].numel() > 0
        assert torch.equal(saved[name.replace(".default", "")], tensor), name
    assert any(".lora_B." in k and bool(v.abs().sum() > 0) for k, v in trained.items())


def test_a_scratch_run_fits_the_statistics_quantiles_before_its_first_step(synth, labels_cache, tmp_path):
    out = tmp_path / "run"
    layers = '"model.text_config.num_hidden_layers": 1, "model.vision_config.num_hidden_layers": 1'
    output = run(recipe_command(overrides(synth, labels_cache, out, "training.max_steps=2", "evaluation.every_steps=2",
                                          f'model.preset_overrides={{{layers}, "model.statistics_quantiles": 8}}')))
    assert "statistics quantiles" in output
    model = FineVQForConditionalGeneration.from_pretrained(out / "best")
    assert model.config.statistics_quantiles == 8 and model.statistics_quantiles_fitted
    knots = model.statistics.detector_projector.quantile_knots
    assert knots.shape[1] == 8 and (knots.diff(dim=1) >= 0).all() and (knots[:, -1] > knots[:, 0]).any()
    # Fitted on the training videos' measurements, which the run's video cache now holds.
    processor = FineVQProcessor.from_pretrained(out / "best")
    cache = VideoTensorCache(out / "video_cache", processor)
    train_videos = [video["path"] for video in load_finevd(synth, "scores")["train"]["video"]]
    assert len(train_videos) == 21 and all(cache.path_of(video).is_file() for video in train_videos)
