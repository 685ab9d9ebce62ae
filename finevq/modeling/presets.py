"""Building a model and its processor: from a shipped preset (random init, sizes overridable), or from
local base checkpoints (an InternVL `-hf` folder and optionally a VideoMAE folder) whose weights it loads."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, VideoMAEModel

from finevq.errors import CheckpointError, ConfigError
from finevq.modeling.checkpoint import check_weights_folder
from finevq.modeling.configuration import FineVQConfig
from finevq.modeling.modeling import FineVQForConditionalGeneration
from finevq.modeling.processor import FineVQProcessor, settings_for_model
from finevq.modeling.tokenizer import FRAME_TOKEN, MOTION_TOKEN, train_tokenizer

PRESETS_DIR = Path(__file__).parent / "presets"
PRESETS = tuple(sorted(p.stem for p in PRESETS_DIR.glob("*.json")))
"""Shipped presets: `tiny` (the CPU model), `internvl_8b` (the paper's scale) and `official` (what
`finevq convert-official` gives a released checkpoint; its sizes come from that checkpoint)."""

# InternVL `-hf` checkpoint names (current and legacy layouts) -> this model's module names.
INTERNVL_KEY_MAPPING = {
    r"^model\.vision_tower\.": "vision.tower.",
    r"^vision_tower\.": "vision.tower.",
    r"^model\.multi_modal_projector\.": "vision.projector.",
    r"^multi_modal_projector\.": "vision.projector.",
    r"^model\.language_model\.": "language_model.model.",
    r"^lm_head\.": "language_model.lm_head.",
}


def load_preset(name_or_path: str, overrides: dict | None = None) -> dict:
    """A preset ({"model": config kwargs, "processor": settings}) by name or JSON path, with dotted
    overrides applied, e.g. {"model.text_config.hidden_size": 64, "processor.num_frames": 4}."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.json"
    try:
        preset = json.loads(path.read_text())
    except OSError:
        raise ConfigError(f"unknown model preset {name_or_path!r}; shipped presets: {', '.join(PRESETS)}") from None
    except ValueError as error:
        raise ConfigError(f"model preset {str(path)!r} is not valid JSON: {error}") from None
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = preset
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise ConfigError(f"override {dotted!r}: preset {path.stem!r} has no section {key!r}")
            node = node[key]
        node[leaf] = value
    return preset


def build_model(
    preset: str = "tiny", overrides: dict | None = None, tokenizer=None, seed: int | None = None
) -> tuple[FineVQForConditionalGeneration, FineVQProcessor]:
    """A randomly initialised model of a preset and its processor.

    tokenizer: defaults to a byte-level BPE trained here (`train_tokenizer`); the LLM's vocabulary
    is sized to it and the placeholder token ids are read from it."""
    values = load_preset(preset, overrides)
    tokenizer = tokenizer if tokenizer is not None else train_tokenizer()
    model_values = copy.deepcopy(values["model"])
    model_values["text_config"] = {
        **model_values.get("text_config", {}),
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = FineVQConfig(**model_values, **_placeholder_ids(tokenizer))
    if seed is not None:
        torch.manual_seed(seed)
    model = FineVQForConditionalGeneration(config)
    processor = FineVQProcessor(tokenizer, settings_for_model(config, **values.get("processor", {})))
    return model, processor


def build_from_bases(
    internvl_path: str | Path,
    videomae_path: str | Path | None = None,
    preset: str = "internvl_8b",
    overrides: dict | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[FineVQForConditionalGeneration, FineVQProcessor]:
    """The paper's model on local base checkpoints: the InternVL vision tower, projector, LLM and
    tokenizer (with its chat template) from `internvl_path`, VideoMAE from `videomae_path` (random
    when None); the preset supplies frames, motion tokens, score head and LoRA settings."""
    internvl_path = Path(internvl_path)
    check_weights_folder(internvl_path)
    base = AutoConfig.from_pretrained(str(internvl_path))
    if base.model_type != "internvl":
        raise CheckpointError(f"{str(internvl_path)!r} is a {base.model_type!r} checkpoint, not an InternVL one")
    values = load_preset(preset, overrides)
    model_values = copy.deepcopy(values["model"])
    model_values.update(
        backbone="internvl",
        use_fragments=False,
        vision_config=base.vision_config.to_dict(),
        text_config={**base.text_config.to_dict(), "tie_word_embeddings": bool(base.tie_word_embeddings)},
        downsample_ratio=base.downsample_ratio,
        vision_feature_layer=base.vision_feature_layer,
        vision_feature_select_strategy=base.vision_feature_select_strategy,
        projector_hidden_act=base.projector_hidden_act,
    )
    if videomae_path is not None:
        check_weights_folder(videomae_path)
        model_values.update(motion_encoder="videomae", motion_config=AutoConfig.from_pretrained(str(videomae_path)).to_dict())
    tokenizer = AutoTokenizer.from_pretrained(str(internvl_path))
    tokenizer.add_special_tokens({"additional_special_tokens": [FRAME_TOKEN, MOTION_TOKEN]})
    config = FineVQConfig(**model_values, **_placeholder_ids(tokenizer))
    model, info = FineVQForConditionalGeneration.from_base_checkpoint(
        internvl_path, config, INTERNVL_KEY_MAPPING, dtype=dtype
    )
    base_modules = ("vision.tower.", "vision.projector.", "language_model.")
    missing = [k for k in info["missing_keys"] if k.startswith(base_modules)]
    if missing or info["unexpected_keys"]:
        raise CheckpointError(
            f"InternVL checkpoint {str(internvl_path)!r} does not fit its config: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(info['unexpected_keys'])[:5]}"
        )
    if len(tokenizer) > config.text_config.vocab_size:
        model.language_model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if videomae_path is not None:
        model.motion.encoder.load_state_dict(VideoMAEModel.from_pretrained(str(videomae_path), dtype=dtype).state_dict())
    processor = FineVQProcessor(tokenizer, settings_for_model(config, **values.get("processor", {})))
    return model, processor


def _placeholder_ids(tokenizer) -> dict[str, int]:
    vocab = tokenizer.get_vocab()
    return {"frame_token_id": vocab[FRAME_TOKEN], "motion_token_id": vocab[MOTION_TOKEN]}
