"""The paper's model at full size in our code: the `official` preset (InternViT-300M, an 8B InternLM2-as-Llama,
SlowFast-R50 on every frame) with random weights in bfloat16, timed on a 10-s 1080p video; prints latency and peak memory.

Run on a GPU: python bench/official_gpu.py            (full size)
Check on a CPU: python bench/official_gpu.py --tiny --device cpu --seconds 2 --height 240
Random weights give meaningless scores; the figures are the cost of the official inference path."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from default_model import write_clip
from finevq.inference import FineVQ
from finevq.modeling import FineVQConfig, FineVQForConditionalGeneration, FineVQProcessor, load_preset, train_tokenizer
from finevq.modeling.processor import settings_for_model

FULL = {
    "vision_config": {"model_type": "internvl_vision", "hidden_size": 1024, "intermediate_size": 4096,
                      "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": [448, 448],
                      "patch_size": [14, 14], "attention_bias": True, "use_mean_pooling": True},
    "text_config": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-5,
                    "vocab_size": 92553, "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}},
    "slowfast_width": 64, "slowfast_depths": [3, 4, 6, 3],
}
TINY = {
    "vision_config": {**FULL["vision_config"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                      "num_attention_heads": 4},
    "text_config": {**FULL["text_config"], "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32},
    "slowfast_width": 16, "slowfast_depths": [1, 1, 1, 1],
}


def build(sizes: dict, device: torch.device, dtype: torch.dtype) -> FineVQ:
    preset = load_preset("official")
    tokenizer = train_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<img>", "</img>", "<IMG_CONTEXT>"]})
    context = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    text = {**sizes["text_config"], "vocab_size": max(sizes["text_config"]["vocab_size"], len(tokenizer))}
    config = FineVQConfig(**{**preset["model"], **sizes, "text_config": text,
                             "frame_token_id": context, "motion_token_id": context})
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = FineVQForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default_dtype)
    settings = settings_for_model(config, **{**preset["processor"], "motion_size": config.image_size})
    return FineVQ(model.eval(), FineVQProcessor(tokenizer, settings), "official-random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU check of the script)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    started = time.perf_counter()
    model = build(TINY if args.tiny else FULL, device, torch.bfloat16)
    print(f"built {sum(p.numel() for p in model.model.parameters()) / 1e9:.2f} B parameters "
          f"in {time.perf_counter() - started:.1f} s on {device}")
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "clip.mp4"
        write_clip(video, args.seconds, 30, args.height * 16 // 9 // 2 * 2, args.height)
        times = []
        for _ in range(args.repeats + 1):  # the first run warms up kernels and allocators
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            assessment = model.assess(str(video), diagnose=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    print(f"{args.seconds}-s {args.height}p video, {len(assessment.motion_frames)} motion frames, six dimensions "
          f"and diagnosis: {min(times[1:]):.2f} s (best of {args.repeats}; first {times[0]:.2f} s)")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
