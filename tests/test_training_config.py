"""The experiment config, the row order and the crash-safe folder helpers of finevq.training: fast, no model."""

from pathlib import Path

import pytest

from finevq.errors import ConfigError
from finevq.training.checkpoints import (
    TrainerState,
    checkpoint_folder,
    checkpoints,
    commit_folder,
    prune_checkpoints,
    recover_folder,
    staging_folder,
)
from finevq.training.config import load_experiment
from finevq.training.data import ShardedOrder, weighted_indices
from finevq.training.evaluation import metric_value

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@pytest.mark.parametrize("name", ["smoke", "tiny_synth", "finevd_internvl"])
def test_shipped_configs_load(name):
    config = load_experiment(RECIPES / "configs" / f"{name}.yaml")
    assert config.output.dir and config.data.source


def test_paper_setting_is_what_the_paper_says():
    config = load_experiment(RECIPES / "configs" / "finevd_internvl.yaml")
    assert (config.model.lora.rank, config.model.lora.alpha, config.model.lora.dropout) == (8, 16, 0.05)
    assert set(config.model.lora.parts) == {"vision", "text"}
    assert (config.training.stage, config.training.lr, config.training.scheduler) == ("stage2", 4e-5, "cosine")
    assert (config.training.warmup_ratio, config.training.precision) == (0.03, "bf16")
    assert config.training.gradient_checkpointing and config.data.num_frames == 8
    assert config.training.batch_size * config.training.gradient_accumulation == 4


def test_overrides_and_stage_defaults():
    config = load_experiment(RECIPES / "configs" / "smoke.yaml",
                             ["training.stage=stage1", "training.score_loss_weight=null", "model.lora.rank=4",
                              "data.question_weights={score: 2, yes_no: 0.5}"])
    assert config.training.score_loss_weight == 0.0
    assert config.model.lora.rank == 4
    assert config.data.question_weights == {"score": 2.0, "yes_no": 0.5}


@pytest.mark.parametrize("override, message", [
    ("training.lrr=1", "did you mean 'training.lr'"),
    ("training.stage=stage3", "training.stage"),
    ("training.stage=stage1", "score_loss_weight must be 0 in stage1"),
    ("model.lora.parts=[vision, audio]", "lora.parts"),
    ("data.question_types=[score, chat]", "data.question_types"),
    ("data.question_weights={describe: 1}", "not in data.question_types"),
    ("training.warmup_ratio=1.5", "warmup_ratio"),
    ("evaluation.metric=srcc", "dotted path"),
    ("output.export=merged", "stage2"),
    ("data.synthesize.num_videos=0", "data.synthesize.num_videos must be >= 1"),
    ("data.synthesize.resolution=[80, 64]", "resolution needs"),
    ("data.synthesize.frames=3", "data.synthesize"),
    ("data.synthesize.photos=[bundled, no-such-photos]", "photo source 'no-such-photos'"),
])
def test_bad_values_are_config_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(RECIPES / "configs" / "smoke.yaml", [override])


def test_the_default_model_recipe_writes_its_own_data_with_the_package_photos():
    config = load_experiment(RECIPES / "configs" / "tiny_synth.yaml", ["data.synthesize.photos=[bundled]"])
    assert config.data.synthesize.scene_options().photo_sources == ("bundled",)
    written = load_experiment(RECIPES / "configs" / "tiny_synth.yaml", ["data.synthesize.photos=null"]).data.synthesize
    assert (written.num_videos, written.seed, written.max_frames) == (6400, 0, 16)
    assert written.scene_options().photo_sources == ("bundled",)


def test_missing_required_sections(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("training: {stage: scratch}\n")
    with pytest.raises(ConfigError, match="missing required key 'data'"):
        load_experiment(path)


def test_question_weights_repeat_and_subsample_deterministically():
    types = ["score"] * 10 + ["yes_no"] * 10 + ["describe"] * 4
    chosen = weighted_indices(types, {"score": 2, "yes_no": 0.5, "describe": 0}, seed=3)
    assert [types[i] for i in chosen].count("score") == 20
    assert [types[i] for i in chosen].count("yes_no") == 5
    assert "describe" not in [types[i] for i in chosen]
    assert chosen == weighted_indices(types, {"score": 2, "yes_no": 0.5, "describe": 0}, seed=3)
    assert chosen != weighted_indices(types, {"score": 2, "yes_no": 0.5, "describe": 0}, seed=4)


def test_sharded_order_is_disjoint_padded_and_resumable():
    rows = list(range(100, 123))  # 23 rows: not a whole number of steps
    shards = [ShardedOrder(rows, batch_size=2, accumulation=3, num_processes=2, process_index=p, seed=7)
              for p in (0, 1)]
    assert shards[0].steps_per_epoch == 2  # ceil(23 / 12)
    first, second = shards[0].epoch_rows(0), shards[1].epoch_rows(0)
    assert len(first) == len(second) == 12
    assert sorted(set(first + second)) == rows  # every row seen; only the padding repeats
    assert not set(first[:11]) & set(second[:11])
    assert shards[0].epoch_rows(1) != first  # a new permutation each epoch
    assert shards[0].epoch_rows(0) == first  # the same one again for a resume
    loader = shards[0].loader(list(range(200)), lambda batch: batch, epoch=0, start_step=1, num_workers=0)
    assert [x for batch in loader for x in batch] == first[6:]


def test_commit_replaces_a_folder_and_recovers_after_a_kill(tmp_path):
    final = tmp_path / "best"
    staging = staging_folder(final)
    (staging / "weights").write_text("one")
    commit_folder(staging, final)
    assert (final / "weights").read_text() == "one"
    # A kill between the two renames of the next commit: the old folder is aside, the new one staged.
    staging = staging_folder(final)
    (staging / "weights").write_text("two")
    final.rename(tmp_path / ".best.old")
    recover_folder(final)
    assert (final / "weights").read_text() == "one" and not staging.exists()


def test_only_complete_checkpoints_count_and_pruning_keeps_the_newest(tmp_path):
    for step in (2, 4, 6):
        folder = checkpoint_folder(tmp_path, step)
        folder.mkdir()
        TrainerState(step=step).save(folder)
    checkpoint_folder(tmp_path, 8).mkdir()  # a checkpoint whose state was never written
    (tmp_path / ".step-00000010.staging").mkdir()
    assert [step for step, _ in checkpoints(tmp_path)] == [2, 4, 6]
    prune_checkpoints(tmp_path, keep=2)
    assert [step for step, _ in checkpoints(tmp_path)] == [4, 6]
    assert TrainerState.load(checkpoint_folder(tmp_path, 6)).step == 6


def test_metric_value_reads_a_dotted_path_and_rejects_unknown_ones():
    report = {"score_head": {"overall": {"srcc": 0.5, "plcc_logistic": None}}}
    assert metric_value(report, "score_head.overall.srcc") == 0.5
    assert metric_value(report, "score_head.overall.plcc_logistic") is None
    with pytest.raises(ConfigError, match="no 'overal' under score_head; available: overall"):
        metric_value(report, "score_head.overal.srcc")
    with pytest.raises(ConfigError, match="names a section"):
        metric_value(report, "score_head.overall")


def test_rows_per_video_keeps_runs_of_one_videos_rows_together_and_shards_whole_batches():
    videos = [f"v{i // 6}.mp4" for i in range(60)]  # 10 videos, 6 questions each
    rows = list(range(60))
    shards = [ShardedOrder(rows, batch_size=8, accumulation=1, num_processes=2, process_index=p, seed=1,
                           videos=videos, rows_per_video=3) for p in (0, 1)]
    first, second = shards[0].epoch_rows(0), shards[1].epoch_rows(0)
    assert sorted(set(first + second)) == rows and len(first) == len(second) == 32
    everything = [row for k in range(0, 32, 8) for row in first[k:k + 8] + second[k:k + 8]]  # batches in turn
    runs = [everything[i:i + 3] for i in range(0, 60, 3)]
    assert all(len({videos[r] for r in run}) == 1 for run in runs)  # each run of 3 is one video's
    assert len({videos[run[0]] for run in runs[:4]}) > 1  # runs of different videos are shuffled
    assert shards[0].epoch_rows(1) != first and shards[0].epoch_rows(0) == first
    with pytest.raises(ConfigError, match="video of every row"):
        ShardedOrder(rows, batch_size=8, accumulation=1, rows_per_video=2)
