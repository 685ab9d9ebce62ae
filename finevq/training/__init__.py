"""Training of FineVQ models: the experiment config, the accelerate loop (stages 1 and 2, from scratch, full),
validation with `finevq.metrics`, atomic checkpoints and resume. Importing it loads torch."""

from finevq.training.checkpoints import TrainerState
from finevq.training.config import ExperimentConfig, load_experiment
from finevq.training.loop import StepInfo, prepare_model, train

__all__ = ["ExperimentConfig", "StepInfo", "TrainerState", "load_experiment", "prepare_model", "train"]
