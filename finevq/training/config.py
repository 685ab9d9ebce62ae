"""The experiment config of a training run: model, data, training, evaluation and output sections as
typed dataclasses, read from YAML with `--set` overrides by `finevq.config`, each value validated."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from finevq.config import load_config
from finevq import taxonomy
from finevq.taxonomy import DIMENSIONS

STAGES = ("stage1", "stage2", "scratch", "full")
"""stage1: the projectors only, LM loss (the paper's first stage). stage2: LoRA on the vision tower and
the LLM plus the projectors and the score head, LM + score loss. scratch: every weight, LM + score loss
(for the tiny model, which has no pretrained base). full: every weight of the trained FineVQ model in
`model.base_path`, LM + score loss (fine-tuning a finished model, e.g. finevq-tiny on more or other data).
The score loss is the model config's `score_loss`:
L1, as in the paper, or MSE for the tiny preset."""

QUESTION_TYPES = (*taxonomy.QUESTION_TYPES, "describe")
"""Conversation types made from the labels (see `finevq.data.instructions`)."""

LORA_PARTS = ("vision", "text")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(kw_only=True)
class LoraSection:
    """LoRA of stage 2: rank, alpha, dropout and which towers get adapters (the paper: both)."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    parts: tuple[str, ...] = LORA_PARTS

    def __post_init__(self) -> None:
        _require(self.rank >= 1, f"lora.rank must be >= 1, got {self.rank}")
        _require(self.alpha >= 1, f"lora.alpha must be >= 1, got {self.alpha}")
        _require(0 <= self.dropout < 1, f"lora.dropout must be in [0, 1), got {self.dropout}")
        unknown = sorted(set(self.parts) - set(LORA_PARTS))
        _require(bool(self.parts) and not unknown, f"lora.parts must be among {LORA_PARTS}, got {list(self.parts)}")


@dataclass(kw_only=True)
class ModelSection:
    """Where the model comes from.

    base_path None: a fresh model of `preset` (random init; `preset_overrides` are dotted preset keys
    such as `model.text_config.hidden_size`). A FineVQ folder (config.json of model_type "finevq",
    e.g. a stage-1 result): loaded with its processor. Any other folder: an InternVL `-hf` checkpoint
    built into the `preset` architecture, with VideoMAE weights from `motion_path` when given."""

    preset: str = "tiny"
    preset_overrides: dict[str, Any] = field(default_factory=dict)
    base_path: str | None = None
    motion_path: str | None = None
    lora: LoraSection = field(default_factory=LoraSection)


@dataclass(kw_only=True)
class SynthSection:
    """A FineVD-Synth folder the run writes into `data.source` before reading its labels, with the
    settings of `finevq synth`: a partly written folder is resumed and a complete one is used as it is,
    so a recipe can start from nothing (the smoke recipe does)."""

    num_videos: int
    seed: int = 0
    resolution: tuple[int, int] = (240, 480)
    duration: tuple[float, float] = (2.0, 10.0)
    max_frames: int | None = None
    # Photo sources, as `finevq synth --photos` takes them (None: the bundled photos only).
    photos: tuple[str, ...] | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        _require(self.num_videos >= 1, f"data.synthesize.num_videos must be >= 1, got {self.num_videos}")
        _require(self.workers >= 1, f"data.synthesize.workers must be >= 1, got {self.workers}")
        self.scene_options()

    def scene_options(self):
        from finevq.data.synth import SceneOptions

        return SceneOptions.from_ranges(resolution=self.resolution, duration=self.duration, max_frames=self.max_frames,
                                        photo_sources=self.photos)


@dataclass(kw_only=True)
class DataSection:
    """The FineVD-format label folder, the conversations made from it, and the loaders.

    question_weights: per question type, how many times each of its rows is used per epoch (0.5 keeps
    a seeded half, 2 doubles them); types not named weigh 1. published_qa: take the yes/no and
    multiple-choice questions from the folder's published QA files as written, instead of generating
    them from the score table (score questions are always generated). num_frames overrides the processor's
    keyframe count. video_cache: folder of decoded, preprocessed video tensors reused across epochs
    and runs (default `<output.dir>/video_cache`; "" disables it). synthesize: generate FineVD-Synth
    into `source` first (see `SynthSection`)."""

    source: str
    video_root: str | None = None
    split_ratios: tuple[float, float, float] = (4.0, 1.0, 1.0)
    split_seed: int = 42
    question_types: tuple[str, ...] = QUESTION_TYPES
    question_weights: dict[str, float] = field(default_factory=dict)
    published_qa: bool = False
    conversation_seed: int = 0
    num_frames: int | None = None
    max_train_videos: int | None = None
    num_workers: int = 2
    video_cache: str | None = None
    labels_cache: str | None = None
    synthesize: SynthSection | None = None

    def __post_init__(self) -> None:
        _require(bool(self.source), "data.source must name a FineVD-format folder")
        _require(all(r >= 0 for r in self.split_ratios) and sum(self.split_ratios) > 0,
                 f"data.split_ratios must be non-negative and not all zero, got {list(self.split_ratios)}")
        unknown = sorted(set(self.question_types) - set(QUESTION_TYPES))
        _require(bool(self.question_types) and not unknown,
                 f"data.question_types must be among {QUESTION_TYPES}, got {list(self.question_types)}")
        unknown = sorted(set(self.question_weights) - set(self.question_types))
        _require(not unknown, f"data.question_weights names types {unknown} not in data.question_types")
        bad = {k: v for k, v in self.question_weights.items() if not (v >= 0 and math.isfinite(v))}
        _require(not bad, f"data.question_weights must be finite and >= 0, got {bad}")
        _require(self.num_frames is None or self.num_frames >= 1,
                 f"data.num_frames must be >= 1, got {self.num_frames}")
        _require(self.max_train_videos is None or self.max_train_videos >= 1,
                 f"data.max_train_videos must be >= 1, got {self.max_train_videos}")
        _require(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")


@dataclass(kw_only=True)
class TrainingSection:
    """The optimisation: stage, AdamW, warm-up + schedule, batch per process and accumulation,
    precision, gradient checkpointing, the seed and the two loss weights.

    max_steps (optimizer steps) replaces `epochs` when set. score_loss_weight defaults to 1 except in
    stage1, which trains with the LM loss only. rows_per_video > 1 puts that many questions about one
    video next to each other in a micro-batch, whose video is then encoded once for all of them
    (`ShardedOrder`): the vision side costs that many times less per question."""

    stage: Literal["stage1", "stage2", "scratch", "full"] = "stage2"
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 1
    gradient_accumulation: int = 1
    rows_per_video: int = 1
    optimizer: Literal["adamw"] = "adamw"
    lr: float = 4e-5
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = 0.03
    max_grad_norm: float | None = 1.0
    precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    seed: int = 0
    lm_loss_weight: float = 1.0
    score_loss_weight: float | None = None
    log_every: int = 1

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, f"training.epochs must be >= 1, got {self.epochs}")
        _require(self.max_steps is None or self.max_steps >= 1,
                 f"training.max_steps must be >= 1, got {self.max_steps}")
        _require(self.batch_size >= 1, f"training.batch_size must be >= 1, got {self.batch_size}")
        _require(self.rows_per_video >= 1, f"training.rows_per_video must be >= 1, got {self.rows_per_video}")
        _require(self.gradient_accumulation >= 1,
                 f"training.gradient_accumulation must be >= 1, got {self.gradient_accumulation}")
        _require(self.lr > 0, f"training.lr must be > 0, got {self.lr}")
        _require(self.weight_decay >= 0, f"training.weight_decay must be >= 0, got {self.weight_decay}")
        _require(0 <= self.warmup_ratio < 1, f"training.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _require(self.max_grad_norm is None or self.max_grad_norm > 0,
                 f"training.max_grad_norm must be > 0 or null, got {self.max_grad_norm}")
        _require(self.lm_loss_weight >= 0, f"training.lm_loss_weight must be >= 0, got {self.lm_loss_weight}")
        if self.score_loss_weight is None:
            self.score_loss_weight = 0.0 if self.stage == "stage1" else 1.0
        _require(self.score_loss_weight >= 0, f"training.score_loss_weight must be >= 0, got {self.score_loss_weight}")
        _require(not (self.stage == "stage1" and self.score_loss_weight > 0),
                 "training.score_loss_weight must be 0 in stage1 (it trains the projectors with the LM loss only)")
        _require(self.lm_loss_weight + self.score_loss_weight > 0, "training: both loss weights are 0")
        _require(self.log_every >= 1, f"training.log_every must be >= 1, got {self.log_every}")


@dataclass(kw_only=True)
class EvaluationSection:
    """Validation during training and the final test report.

    every_steps: validate (and checkpoint) every N optimizer steps; null: at the end of each epoch.
    metric: the report entry that picks the best checkpoint, a dotted path into
    `finevq.metrics.build_report` (e.g. `score_head.overall.srcc`, `level_accuracy.all.accuracy`);
    an undefined (null) value never counts as better. max_videos caps the videos evaluated per split."""

    validation: bool = True
    every_steps: int | None = None
    metric: str = "score_head.overall.srcc"
    mode: Literal["max", "min"] = "max"
    max_videos: int | None = None
    dimensions: tuple[str, ...] = DIMENSIONS
    test: bool = True

    def __post_init__(self) -> None:
        _require(self.every_steps is None or self.every_steps >= 1,
                 f"evaluation.every_steps must be >= 1 or null, got {self.every_steps}")
        _require(self.max_videos is None or self.max_videos >= 1,
                 f"evaluation.max_videos must be >= 1, got {self.max_videos}")
        unknown = sorted(set(self.dimensions) - set(DIMENSIONS))
        _require(bool(self.dimensions) and not unknown,
                 f"evaluation.dimensions must be among {DIMENSIONS}, got {list(self.dimensions)}")
        _require(len(self.metric.split(".")) >= 2 and all(self.metric.split(".")),
                 f"evaluation.metric must be a dotted path like 'score_head.overall.srcc', got {self.metric!r}")


@dataclass(kw_only=True)
class OutputSection:
    """Where the run writes: `dir`/checkpoints (resumable state), `dir`/best (the from_pretrained
    folder chosen on validation), `dir`/test_report.json, `dir`/log.jsonl.

    export: a stage-2 model is saved as base + PEFT adapter ("adapter") or with LoRA merged in
    ("merged"). auto_resume: continue from the newest checkpoint in `dir` when there is one."""

    dir: str
    keep_checkpoints: int = 2
    checkpoint_every_steps: int | None = None
    export: Literal["adapter", "merged"] = "adapter"
    auto_resume: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        _require(bool(self.dir), "output.dir must name the run's folder")
        _require(self.keep_checkpoints >= 1, f"output.keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        _require(self.checkpoint_every_steps is None or self.checkpoint_every_steps >= 1,
                 f"output.checkpoint_every_steps must be >= 1 or null, got {self.checkpoint_every_steps}")


@dataclass(kw_only=True)
class ExperimentConfig:
    """One training run: `finevq.training.train(config)` or `recipes/train.py --config FILE`."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    output: OutputSection

    def __post_init__(self) -> None:
        _require(not (self.training.stage == "scratch" and self.model.base_path),
                 "training.stage 'scratch' trains a fresh preset model: model.base_path must be null")
        _require(not (self.training.stage == "full" and not self.model.base_path),
                 "training.stage 'full' fine-tunes a trained FineVQ model: set model.base_path to its folder")
        _require(self.output.export == "adapter" or self.training.stage == "stage2",
                 "output.export 'merged' applies to stage2 (LoRA) runs only")


def load_experiment(path: str | os.PathLike | None, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """The experiment config of a YAML file with `key=value` overrides; ConfigError names any mistake."""
    return load_config(ExperimentConfig, path, overrides)
