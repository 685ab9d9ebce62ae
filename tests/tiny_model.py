"""A tiny random FineVQ model saved as a real model folder (config.json, safetensors, tokenizer,
processor settings), built once per test session for the API, CLI and evaluation tests."""

from __future__ import annotations

from pathlib import Path

import torch

from finevq.modeling import build_model

TINY = {
    "model.vision_config.hidden_size": 32,
    "model.vision_config.intermediate_size": 64,
    "model.vision_config.num_hidden_layers": 1,
    "model.vision_config.num_attention_heads": 2,
    "model.vision_config.image_size": 32,
    "model.vision_config.patch_size": 8,
    "model.text_config.hidden_size": 64,
    "model.text_config.intermediate_size": 128,
    "model.text_config.num_hidden_layers": 2,
    "model.text_config.num_attention_heads": 4,
    "model.text_config.num_key_value_heads": 2,
    "model.tiny3d_channels": [8, 16],
    "model.score_head_dims": [32, 8],
    "model.detector_tokens": 0,  # tests/test_modeling_detectors.py covers them; the rest stay fast
    "processor.num_frames": 4,
    "processor.fragment_patch": 8,
    "processor.num_motion_frames": 8,
    "processor.motion_size": 32,
}


def tiny_model_folder(folder: Path) -> Path:
    """Save a tiny random model to `folder` (once: an existing model folder is reused)."""
    if (folder / "config.json").is_file():
        return folder
    model, processor = build_model("tiny", TINY, seed=0)
    # A fresh score head is nearly constant; larger weights make scores differ between videos.
    torch.manual_seed(1)
    for parameter in model.score_head.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
