"""The training loop under accelerate: model and stage set-up, the optimizer and schedule, LM + score
loss steps with accumulation, periodic validation, the best model export, checkpoints, resume and the test report."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from finevq.config import save_config
from finevq.errors import CheckpointError, ConfigError, FineVQError
from finevq.metrics import build_report, format_report
from finevq.training.checkpoints import (
    STATE_FILE,
    TrainerState,
    checkpoint_folder,
    checkpoints,
    commit_folder,
    prune_checkpoints,
    recover_folder,
    staging_folder,
    write_text_atomic,
)
from finevq.training.config import ExperimentConfig
from finevq.training.data import (
    ConversationDataset,
    ShardedOrder,
    VideoStatisticsDataset,
    VideoTensorCache,
    load_splits,
    synthesize_source,
    weighted_indices,
)
from finevq.modeling.evaluation import evaluate_videos, group_by_video
from finevq.training.evaluation import metric_value
from finevq.training.export import merge_model_folder, model_card, save_model_folder, write_model_card

PROJECTOR_MODULES = ("vision.projector", "motion.projector")
QUANTILE_FIT_VIDEOS = 512
"""How many training videos a model's statistics quantiles (`statistics_quantiles`) are fitted on."""

_SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
LOSS_NAMES = ("loss", "lm_loss", "score_loss")


def prepare_model(config: ExperimentConfig):
    """The model and processor a run starts from (see `ModelSection`), with the stage's trainable
    weights: stage1 the projectors, stage2 LoRA + projectors + score head (a PEFT model), scratch and full all."""
    from finevq.modeling import FineVQForConditionalGeneration, FineVQProcessor, apply_lora
    from finevq.modeling import build_from_bases, build_model as build_preset

    section, training = config.model, config.training
    base = Path(section.base_path) if section.base_path else None
    if base is None:
        model, processor = build_preset(section.preset, section.preset_overrides, seed=training.seed)
    elif _is_finevq_folder(base):
        model = FineVQForConditionalGeneration.from_pretrained(base)
        processor = FineVQProcessor.from_pretrained(base)
    elif training.stage == "full":
        raise ConfigError(f"model.base_path {str(base)!r}: training.stage 'full' needs a FineVQ model folder "
                          "(a config.json of model_type 'finevq'), not a base checkpoint")
    else:
        model, processor = build_from_bases(base, section.motion_path, section.preset, section.preset_overrides)
    if config.data.num_frames is not None:
        processor = FineVQProcessor(processor.tokenizer,
                                    dataclasses.replace(processor.settings, num_frames=config.data.num_frames))
    if training.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if training.stage == "stage2":
        lora = section.lora
        model = apply_lora(model, parts=tuple(lora.parts), rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout)
    elif training.stage == "stage1":
        for name, parameter in model.named_parameters():
            parameter.requires_grad = name.startswith(PROJECTOR_MODULES)
    return model, processor


def _is_finevq_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == "finevq"
    except (OSError, ValueError):
        return False


def _optimizer(model, training) -> torch.optim.Optimizer:
    """AdamW over the trainable weights; biases and norm weights (1-D) get no weight decay."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": training.weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=training.lr, betas=training.adam_betas)


def _accelerator(config: ExperimentConfig):
    """An Accelerator for this machine: on CPU, multi-process runs use the gloo backend (the only way
    both plain and DeepSpeed launches see each other there)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    on_cpu = not torch.cuda.is_available()
    # cpu=True would switch DeepSpeed off; under its launcher the gloo backend alone keeps the CPU.
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    if on_cpu and (deepspeed or int(os.environ.get("WORLD_SIZE", "1")) > 1):
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    return Accelerator(
        cpu=on_cpu and not deepspeed,
        mixed_precision=config.training.precision,
        gradient_accumulation_steps=config.training.gradient_accumulation,
        kwargs_handlers=handlers,
        log_with="tensorboard" if config.output.tensorboard else None,
        project_dir=config.output.dir,
    )


def _fill_deepspeed_config(accelerator, config: ExperimentConfig) -> int:
    """Fill the "auto" batch entries of a DeepSpeed config (this loop prepares no DataLoader for
    accelerate to read them from); return the ZeRO stage, 0 without DeepSpeed."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return 0
    training = config.training
    values = {
        "train_micro_batch_size_per_gpu": training.batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation,
        "train_batch_size": training.batch_size * training.gradient_accumulation * accelerator.num_processes,
        "gradient_clipping": training.max_grad_norm or 0.0,
    }
    for key, value in values.items():
        if plugin.deepspeed_config.get(key, "auto") == "auto":
            plugin.deepspeed_config[key] = value
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0))


@dataclass(frozen=True)
class StepInfo:
    """What `train`'s `on_step` callback gets after each optimizer step, on every process: the step,
    its log entry (losses averaged over processes, lr, samples/s, data-wait share) and the training
    rows (dataset indices) this process used in it."""

    step: int
    entry: dict
    rows: list[int]


def train(config: ExperimentConfig, resume_from: str | os.PathLike | None = None,
          on_step: Callable[[StepInfo, object, object], None] | None = None) -> Path:
    """Run the experiment; return the folder of the model chosen on validation (`<output.dir>/best`).

    Resumes from `resume_from` (a `checkpoints/step-N` folder) or, with `output.auto_resume`, from the
    newest checkpoint of the output folder: same weights, optimizer, schedule, RNG and data position.
    `on_step(info, model, accelerator)` runs on every process after each optimizer step (the prepared
    model, so ZeRO-3 weights can be gathered with `accelerator.get_state_dict`)."""
    if resume_from is not None and not (Path(resume_from) / STATE_FILE).is_file():
        raise CheckpointError(f"{str(resume_from)!r} is not a complete training checkpoint (no {STATE_FILE})")
    trainer = Trainer(config, on_step)
    trainer.resume(Path(resume_from) if resume_from is not None else None)
    return trainer.run()


class Trainer:
    """One training run: its accelerator, data, model, optimizer, schedule, progress and folders
    (`<output.dir>/checkpoints`, `best`, `log.jsonl`, `test_report.json`)."""

    def __init__(self, config: ExperimentConfig, on_step: Callable | None = None):
        from transformers import get_scheduler

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.config, self.on_step = config, on_step
        self.accelerator = accelerator = _accelerator(config)
        self.output = Path(config.output.dir)
        self.checkpoint_dir, self.best_dir = self.output / "checkpoints", self.output / "best"
        self.log_path = self.output / "log.jsonl"
        training, evaluation = config.training, config.evaluation
        if accelerator.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            # Leave a core to each loader worker: compute threads that compete with the workers spin-wait,
            # which made steps up to 7x slower on a 2-core machine (bench/train.py).
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // accelerator.num_processes - config.data.num_workers))
        zero_stage = _fill_deepspeed_config(accelerator, config)
        accelerator.print(f"accelerate: {accelerator.distributed_type.value}"
                          + (f" ZeRO-{zero_stage}" if zero_stage else "")
                          + f", {accelerator.num_processes} process(es) on {accelerator.device}")
        if zero_stage == 3 and accelerator.num_processes > 1 and evaluation.validation:
            raise ConfigError("validation under ZeRO-3 with several processes is not supported: "
                              "set evaluation.validation=false (the test report still runs on the best model)")
        if self.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            recover_folder(self.best_dir)
            save_config(config, self.output / "config.yaml")
        with accelerator.main_process_first():  # one process writes the data and its labels cache, the others read them
            if self.is_main and config.data.synthesize is not None:
                synthesize_source(config.data)
            self.splits = load_splits(config.data)
        model, self.processor = prepare_model(config)

        train_rows = self.splits["train"]
        rows = weighted_indices(train_rows["question_type"], config.data.question_weights, training.seed)
        cache_dir = config.data.video_cache if config.data.video_cache is not None else str(self.output / "video_cache")
        self.video_cache = VideoTensorCache(cache_dir, self.processor) if cache_dir else None
        self.dataset = ConversationDataset(train_rows, self.processor, self.video_cache)
        self.order = ShardedOrder(rows, training.batch_size, training.gradient_accumulation,
                                  accelerator.num_processes, accelerator.process_index, training.seed,
                                  self.dataset.videos, training.rows_per_video)
        self.total_steps = training.max_steps or training.epochs * self.order.steps_per_epoch
        self.eval_every = evaluation.every_steps or self.order.steps_per_epoch
        self.checkpoint_every = config.output.checkpoint_every_steps or self.eval_every
        self.validation_videos = []
        if evaluation.validation:
            if "validation" not in self.splits:
                raise ConfigError(f"{config.data.source}: no validation videos; set evaluation.validation=false "
                                  "or give data.split_ratios a validation part")
            self.validation_videos = group_by_video(self.splits["validation"], evaluation.dimensions,
                                                    evaluation.max_videos)

        self._fit_statistics_quantiles(model)
        optimizer = _optimizer(model, training)
        self.scheduler = get_scheduler(_SCHEDULERS[training.scheduler], optimizer,
                                       num_warmup_steps=round(training.warmup_ratio * self.total_steps),
                                       num_training_steps=self.total_steps)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(self.scheduler)
        self.state = TrainerState()
        self.step_lr = training.lr

    def _fit_statistics_quantiles(self, model) -> None:
        """A model whose statistics quantiles were never fitted (one built from its config) gets them
        from its first `QUANTILE_FIT_VIDEOS` training videos, measured by the loader's workers into the
        video cache, where training finds them."""
        if model.statistics_quantiles_fitted:
            return
        videos = list(dict.fromkeys(self.dataset.videos))[:QUANTILE_FIT_VIDEOS]
        names = [name for name, _ in model.statistics.projectors()]
        loader = DataLoader(VideoStatisticsDataset(videos, names, self.processor, self.video_cache),
                            batch_size=None, num_workers=self.config.data.num_workers)
        with self.accelerator.main_process_first():  # the main process fills the cache, the others read it
            measured = list(tqdm(loader, total=len(videos), desc="statistics quantiles", unit="video",
                                 disable=not self.is_main, file=sys.stderr))
        model.fit_statistics_quantiles(measured)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def resume(self, path: Path | None) -> None:
        """Load the checkpoint `path`, else (with `output.auto_resume`) the newest one; else start afresh."""
        if path is None and self.config.output.auto_resume:
            found = checkpoints(self.checkpoint_dir)
            path = found[-1][1] if found else None
        if path is None:
            if self.is_main:
                self.log_path.unlink(missing_ok=True)
            return
        self.accelerator.load_state(str(path))
        self.state = TrainerState.load(path)
        if self.is_main and self.log_path.is_file():  # drop what a killed run logged after this checkpoint
            kept = [line for line in self.log_path.read_text().splitlines()
                    if json.loads(line)["step"] <= self.state.step]
            write_text_atomic(self.log_path, "".join(line + "\n" for line in kept))
        self.accelerator.print(f"resumed from {path} at step {self.state.step}")

    def run(self) -> Path:
        """Train up to the last step, then `finish`."""
        if self.config.output.tensorboard:
            self.accelerator.init_trackers("finevq")
        self.model.train()
        progress = tqdm(total=self.total_steps, initial=self.state.step, disable=not self.is_main,
                        desc=f"train {self.config.training.stage}", dynamic_ncols=True, file=sys.stderr)
        while self.state.step < self.total_steps:
            self._train_epoch(progress)
        progress.close()
        return self.finish()

    def _train_epoch(self, progress) -> None:
        """The rest of the current epoch (from the data position of the current step)."""
        epoch, step_in_epoch = divmod(self.state.step, self.order.steps_per_epoch)
        loader = self.order.loader(self.dataset, self.processor.collate, epoch, step_in_epoch,
                                   self.config.data.num_workers)
        batches = iter(loader)
        sums, waited, started = [], 0.0, time.perf_counter()
        while self.state.step < self.total_steps:
            fetch_start = time.perf_counter()
            try:
                batch = next(batches, None)
            except FineVQError as error:
                raise type(error)(_worker_message(error)) from None
            if batch is None:
                return
            waited += time.perf_counter() - fetch_start
            sums.append(self._micro_step(batch))
            if self.accelerator.sync_gradients:
                self._end_step(epoch, sums, waited, time.perf_counter() - started, progress)
                sums, waited, started = [], 0.0, time.perf_counter()

    def _micro_step(self, batch: dict) -> list[float]:
        """Forward and backward of one micro-batch (an optimizer step at the end of the accumulation);
        returns the weighted loss, the LM loss and the score loss."""
        training, accelerator = self.config.training, self.accelerator
        if not training.score_loss_weight:
            batch.pop("score_positions")
            batch.pop("mos")
            batch.pop("score_dimensions")
        batch = {name: tensor.to(accelerator.device) for name, tensor in batch.items()}
        with accelerator.accumulate(self.model):
            outputs = self.model(**batch)
            score_loss = outputs.score_loss if outputs.score_loss is not None else outputs.lm_loss.new_zeros(())
            loss = training.lm_loss_weight * outputs.lm_loss + training.score_loss_weight * score_loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and training.max_grad_norm:
                accelerator.clip_grad_norm_(self.model.parameters(), training.max_grad_norm)
            self.optimizer.step()
            if accelerator.sync_gradients:
                self.step_lr = self.scheduler.get_last_lr()[0]  # the rate this step used, before it moves on
                self.scheduler.step()
            self.optimizer.zero_grad()
        return [float(loss.detach()), float(outputs.lm_loss.detach()), float(score_loss.detach())]

    def _end_step(self, epoch: int, sums: list[list[float]], waited: float, elapsed: float, progress) -> None:
        """Log the finished optimizer step, call `on_step`, validate and checkpoint when due."""
        accelerator, training, state = self.accelerator, self.config.training, self.state
        state.step += 1
        means = accelerator.reduce(torch.tensor(sums, device=accelerator.device).mean(0), "mean").tolist()
        rows = len(sums) * training.batch_size
        entry = {"step": state.step, "epoch": epoch, **{k: round(v, 6) for k, v in zip(LOSS_NAMES, means)},
                 "lr": self.step_lr, "processes": accelerator.num_processes,
                 "samples_per_s": rows * accelerator.num_processes / elapsed, "data_wait_share": waited / elapsed}
        last = state.step == self.total_steps
        if state.step % training.log_every == 0 or last:
            self.log(entry)
            if self.config.output.tensorboard:
                accelerator.log({k: v for k, v in entry.items() if k != "step"}, step=state.step)
        progress.set_postfix(loss=f"{entry['loss']:.4f}", lr=f"{entry['lr']:.2e}",
                             samples_s=f"{entry['samples_per_s']:.1f}")
        progress.update(1)
        if self.on_step is not None:
            start = (state.step - 1 - epoch * self.order.steps_per_epoch) * rows
            self.on_step(StepInfo(state.step, entry, self.order.epoch_rows(epoch)[start:start + rows]),
                         self.model, accelerator)
        if self.validation_videos and (state.step % self.eval_every == 0 or last):
            self.validate()
        if state.step % self.checkpoint_every == 0 or last:
            self.save_checkpoint()

    def log(self, entry: dict) -> None:
        if self.is_main:
            with self.log_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    def evaluate(self, model, processor, videos, split: str) -> dict:
        """The report on `videos`, each process scoring its share and all of them getting the result."""
        from accelerate.utils import gather_object

        accelerator = self.accelerator
        mine = videos[accelerator.process_index::accelerator.num_processes]
        was_training = model.training
        model.eval()
        plain = model.get_base_model() if hasattr(model, "get_base_model") else model  # LoRA layers stay in place
        with accelerator.autocast():
            # The cache keys on the processor settings, so another processor's videos are decoded anew.
            cached = self.video_cache is not None and self.video_cache.processor.settings == processor.settings
            scores, answers = evaluate_videos(plain, processor, mine, progress=split if self.is_main else None,
                                              tensors_of=self.video_cache.get if cached else None)
        model.train(was_training)
        scores, answers = gather_object([scores]), gather_object([answers])
        return build_report([r for part in scores for r in part], [r for part in answers for r in part])

    def validate(self) -> None:
        """Validation report at this step; a better metric value makes this model the `best` folder."""
        evaluation, state = self.config.evaluation, self.state
        report = self.evaluate(self.accelerator.unwrap_model(self.model), self.processor, self.validation_videos,
                               "validation")
        value = metric_value(report, evaluation.metric)
        state.evaluations.append({"step": state.step, evaluation.metric: value})
        self.log({"step": state.step, "validation": {evaluation.metric: value}})
        improved = value is not None and (state.best_value is None or (
            value > state.best_value if evaluation.mode == "max" else value < state.best_value))
        if improved:
            state.best_step, state.best_value, state.best_report = state.step, value, report
            self.export_best()
        self.accelerator.print(f"step {state.step}: validation {evaluation.metric} = {value}"
                               + (" (best)" if improved else f" (best {state.best_value} at step {state.best_step})"))

    def export_best(self) -> None:
        """Write the model as the run's `best` folder (all processes call it: ZeRO-3 gathers weights)."""
        accelerator = self.accelerator
        weights = accelerator.get_state_dict(self.model)
        if self.is_main:
            save_model_folder(accelerator.unwrap_model(self.model), self.processor, self.best_dir, weights,
                              is_lora=self.config.training.stage == "stage2")
        accelerator.wait_for_everyone()

    def save_checkpoint(self) -> None:
        """accelerate's full state (model, optimizer, schedule, RNG of every process) plus the trainer
        state, staged and renamed into `checkpoints/step-N`; older ones pruned."""
        accelerator = self.accelerator
        final = checkpoint_folder(self.checkpoint_dir, self.state.step)
        staging = final.parent / f".{final.name}.staging"
        if self.is_main:
            staging_folder(final)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
        if self.is_main:
            self.state.save(staging)
            commit_folder(staging, final)
            prune_checkpoints(self.checkpoint_dir, self.config.output.keep_checkpoints)
        accelerator.wait_for_everyone()

    def finish(self) -> Path:
        """Export the last model when validation never chose one, merge LoRA when asked, report on the
        test split with the chosen model (loaded back from its folder), and write the model card."""
        from finevq.modeling import FineVQForConditionalGeneration, FineVQProcessor
        from finevq.modeling.modeling import ADAPTER_SUBFOLDER

        config, accelerator, state = self.config, self.accelerator, self.state
        if state.best_step is None:
            self.export_best()
        if self.is_main and config.output.export == "merged" and (self.best_dir / ADAPTER_SUBFOLDER).is_dir():
            merge_model_folder(self.best_dir)
        accelerator.wait_for_everyone()
        test_report = None
        if config.evaluation.test and "test" in self.splits:
            best = FineVQForConditionalGeneration.from_pretrained(self.best_dir).to(accelerator.device)
            videos = group_by_video(self.splits["test"], config.evaluation.dimensions, config.evaluation.max_videos)
            test_report = self.evaluate(best, FineVQProcessor.from_pretrained(self.best_dir), videos, "test")
            if self.is_main:
                write_text_atomic(self.output / "test_report.json", json.dumps(test_report, indent=2) + "\n")
                print(f"Test report of {self.best_dir} (step {state.best_step or state.step}):\n"
                      + format_report(test_report))
        if self.is_main:
            write_model_card(self.best_dir, model_card(config, state.best_step, state.best_report, test_report))
        accelerator.wait_for_everyone()
        accelerator.print(f"best model: {self.best_dir}")
        accelerator.end_training()
        return self.best_dir


def _worker_message(error: Exception) -> str:
    """The message of an error raised in a DataLoader worker, without the worker's traceback torch adds."""
    text = str(error)
    if not text.startswith("Caught "):
        return text
    return text.rstrip().splitlines()[-1].partition(": ")[2] or text
