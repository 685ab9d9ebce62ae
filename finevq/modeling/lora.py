"""LoRA through peft on the vision tower and the LLM (targets, rank, alpha, dropout from the config),
with the projectors and the score head fully trained; PEFT-format adapters, saving and merging."""

from __future__ import annotations

import re
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model

from finevq.errors import ConfigError
from finevq.modeling.modeling import ADAPTER_SUBFOLDER, FineVQForConditionalGeneration

LORA_PARTS = ("vision", "text")


def lora_config(
    model: FineVQForConditionalGeneration,
    parts: tuple[str, ...] = LORA_PARTS,
    rank: int | None = None,
    alpha: int | None = None,
    dropout: float | None = None,
) -> LoraConfig:
    """The peft `LoraConfig` of a model: its config's LoRA settings unless overridden; `parts`
    chooses the vision tower and/or the LLM (the paper's QA models adapt the LLM only)."""
    unknown = sorted(set(parts) - set(LORA_PARTS))
    if unknown or not parts:
        raise ConfigError(f"LoRA parts must be among {LORA_PARTS}, got {list(parts)}")
    config = model.config
    patterns = []
    if "vision" in parts:
        patterns.append(rf"vision\.tower\..*\.({'|'.join(map(re.escape, config.lora_vision_targets))})")
    if "text" in parts:
        patterns.append(rf"language_model\..*\.({'|'.join(map(re.escape, config.lora_text_targets))})")
    return LoraConfig(
        r=config.lora_rank if rank is None else rank,
        lora_alpha=config.lora_alpha if alpha is None else alpha,
        lora_dropout=config.lora_dropout if dropout is None else dropout,
        target_modules="|".join(f"(?:{p})" for p in patterns),
        modules_to_save=[*config.lora_trained_modules, *(["score_readout"] * config.score_statistics_readout),
                         *(["presence_probe"] * (config.presence_probe_weight > 0))],
        bias="none",
    )


def apply_lora(model: FineVQForConditionalGeneration, **settings) -> PeftModel:
    """Wrap `model` for LoRA training: only LoRA matrices and the `lora_trained_modules`
    (projectors, score head), the statistics readout and the presence probe require gradients;
    everything else is frozen."""
    return get_peft_model(model, lora_config(model, **settings))


def load_adapter(model: FineVQForConditionalGeneration, folder: str | Path, trainable: bool = False) -> PeftModel:
    """Attach the PEFT adapter saved in `folder` to a base model."""
    return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)


def merge_lora(peft_model: PeftModel) -> FineVQForConditionalGeneration:
    """Fold the LoRA matrices and trained modules into a plain model (save it with save_pretrained)."""
    return peft_model.merge_and_unload()


def save_lora_checkpoint(peft_model: PeftModel, folder: str | Path, processor=None, state_dict: dict | None = None) -> None:
    """One folder holding the base model (config.json + model.safetensors, LoRA stripped), the
    adapter in its `adapter/` subfolder (adapter_config.json + adapter_model.safetensors) and,
    when given, the processor; `FineVQForConditionalGeneration.from_pretrained` loads it.

    state_dict: the full PEFT state when it must be gathered first (DeepSpeed ZeRO-3)."""
    folder = Path(folder)
    state = state_dict if state_dict is not None else peft_model.state_dict()
    peft_model.save_pretrained(str(folder / ADAPTER_SUBFOLDER), state_dict=state)
    base_state = {}
    for key, value in state.items():
        if ".lora_" in key or ".modules_to_save." in key:
            continue
        key = key.removeprefix("base_model.model.").replace(".base_layer.", ".").replace(".original_module.", ".")
        base_state[key] = value
    peft_model.get_base_model().save_pretrained(str(folder), state_dict=base_state)
    if processor is not None:
        processor.save_pretrained(folder)
