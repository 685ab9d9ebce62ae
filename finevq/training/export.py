"""The run's result folder: a model `FineVQForConditionalGeneration.from_pretrained` loads (base + PEFT
adapter, or merged), its processor, and a short model card with the data, config and metrics."""

from __future__ import annotations

from pathlib import Path

import yaml

from finevq.config import config_to_dict
from finevq.metrics import format_report
from finevq.modeling.lora import save_lora_checkpoint
from finevq.modeling.modeling import FineVQForConditionalGeneration
from finevq.training.checkpoints import commit_folder, staging_folder, write_text_atomic
from finevq.training.config import ExperimentConfig

CARD_FILE = "README.md"


def save_model_folder(model, processor, folder: Path, state_dict: dict, is_lora: bool) -> None:
    """Write `model` (a FineVQ model, or its PEFT wrapper when `is_lora`) with `state_dict` (gathered
    first under ZeRO-3) and the processor into `folder`, atomically."""
    staging = staging_folder(folder)
    if is_lora:
        save_lora_checkpoint(model, staging, processor, state_dict=state_dict)
    else:
        model.save_pretrained(str(staging), state_dict=state_dict)
        processor.save_pretrained(staging)
    commit_folder(staging, folder)


def merge_model_folder(folder: Path) -> None:
    """Replace a base + adapter folder by one with LoRA merged into the weights (same processor and card)."""
    merged = FineVQForConditionalGeneration.from_pretrained(folder, merge_adapter=True)
    staging = staging_folder(folder)
    merged.save_pretrained(str(staging))
    for path in folder.iterdir():  # the processor, tokenizer and card; not the adapter/ folder
        if path.is_file() and not (path.name.startswith("model") or path.name == "config.json"):
            (staging / path.name).write_bytes(path.read_bytes())
    commit_folder(staging, folder)


def model_card(config: ExperimentConfig, best_step: int | None, validation: dict | None, test: dict | None) -> str:
    """A short README.md: what was trained on what, how, and the validation and test reports."""
    stage = config.training.stage
    base = config.model.base_path or f"the `{config.model.preset}` preset, randomly initialised"
    if best_step is not None:
        chosen = f"step {best_step}, the best `{config.evaluation.metric}` ({config.evaluation.mode}) on validation"
    elif config.evaluation.validation:
        chosen = f"the last step (`{config.evaluation.metric}` was never defined on validation)"
    else:
        chosen = "the last step (validation was off)"
    lines = [
        "---",
        "library_name: finevq",
        "tags: [video-quality-assessment, finevq]",
        "---",
        "# FineVQ model",
        "",
        f"Trained with `finevq.training` ({stage}) from {base}.",
        f"Data: FineVD-format labels at `{config.data.source}`, "
        f"question types {', '.join(config.data.question_types)}.",
        f"Checkpoint: {chosen}; the test split never chose it.",
        "",
        "Load it with `FineVQForConditionalGeneration.from_pretrained(folder)` and",
        "`FineVQProcessor.from_pretrained(folder)` (an adapter folder is merged on load).",
        "",
    ]
    for title, report in (("Validation", validation), ("Test", test)):
        if report:
            lines += [f"## {title} metrics", "", "```", format_report(report).rstrip(), "```", ""]
    lines += ["## Config", "", "```yaml", yaml.safe_dump(config_to_dict(config), sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)


def write_model_card(folder: Path, text: str) -> None:
    write_text_atomic(folder / CARD_FILE, text)
