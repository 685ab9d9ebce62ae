"""Benchmark of the FineVQ model on CPU: scoring all six dimensions in one call (video encoded once,
questions batched after the cached visual prefix) against six separate calls, plus parameter counts.

Run: python bench/model.py [--repeats N] [--preset tiny] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from finevq.modeling import FineVQConfig, FineVQForConditionalGeneration, apply_lora, build_model, load_preset
from finevq.modeling.scoring import score_dimensions, score_videos
from finevq.taxonomy import DIMENSIONS


def write_clip(path: Path, frames: int = 120, width: int = 640, height: int = 360) -> Path:
    """A 4 s, 30 fps H.264 clip of a drifting textured gradient."""
    rng = np.random.default_rng(0)
    texture = rng.integers(-25, 26, (height, width, 1))
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(frames):
            image = np.stack([(xs + 4 * index) % 256, ys * 255 // height, np.full_like(xs, 96)], -1) + texture
            frame = av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def interleaved_seconds(first, second, repeats: int) -> tuple[float, float, float]:
    """Median seconds of two workloads run alternately (so both see the same machine load; the
    cores may be shared), and the median of their per-round ratio second / first."""
    first(), second()  # warm-up
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        first()
        middle = time.perf_counter()
        second()
        rounds.append((middle - start, time.perf_counter() - middle))
    return (
        statistics.median(a for a, _ in rounds),
        statistics.median(b for _, b in rounds),
        statistics.median(b / a for a, b in rounds),
    )


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def print_parameter_counts(model: FineVQForConditionalGeneration, title: str) -> None:
    parts = {
        "vision tower": model.vision.tower,
        "vision projector": model.vision.projector,
        "motion encoder": model.motion.encoder,
        "motion projector": model.motion.projector,
        "LLM": model.language_model,
        "score head": model.score_head,
        "statistics projectors": model.statistics,
        "quality probe (training only)": model.quality_probe,
        "presence probe (training only)": model.presence_probe,
    }
    print(f"\n{title}: {count(model):,} parameters")
    for name, module in parts.items():
        if module is None:
            continue
        print(f"  {name:<29} {count(module):>15,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, processor = build_model(args.preset, seed=0)
    model.eval()
    s = processor.settings
    print(f"preset {args.preset!r}: {s.num_frames} frames x {s.tokens_per_frame} tokens + "
          f"{s.num_motion_tokens} motion token(s) = {len(processor.prefix_ids)} prefix tokens; "
          f"torch threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder) / "clip.mp4")
        sample = processor.sample(str(clip))
        with torch.inference_mode():
            rows = [
                ("model only (decoded sample)", sample),
                ("end to end (from the mp4 file)", str(clip)),
            ]
            print(f"\nscoring all 6 dimensions, median of {args.repeats} runs:")
            for label, video in rows:
                batched, separate, ratio = interleaved_seconds(
                    lambda: score_dimensions(model, processor, video),
                    lambda: [score_dimensions(model, processor, video, [d]) for d in DIMENSIONS],
                    args.repeats,
                )
                print(f"  {label}: one call {batched * 1000:.1f} ms, six separate calls {separate * 1000:.1f} ms, "
                      f"speed-up x{ratio:.2f} (median of per-round ratios)")
            samples = [sample] * 4
            together, alone, ratio = interleaved_seconds(
                lambda: score_videos(model, processor, samples),
                lambda: [score_dimensions(model, processor, s) for s in samples],
                args.repeats,
            )
            print(f"  4 decoded videos x 6 dimensions: one batch {together * 1000:.1f} ms, video by video "
                  f"{alone * 1000:.1f} ms, speed-up x{ratio:.2f}")

    print_parameter_counts(model, f"{args.preset} model")
    trainable = sum(p.numel() for p in apply_lora(model).parameters() if p.requires_grad)
    print(f"  trainable with LoRA (r{model.config.lora_rank}) + projectors + score head: {trainable:,}")

    # InternVL3-8B-hf's vocabulary, plus the two placeholder tokens.
    paper = FineVQConfig(**load_preset("internvl_8b", {"model.text_config.vocab_size": 151676})["model"])
    with torch.device("meta"):
        paper_model = FineVQForConditionalGeneration(paper)
    print_parameter_counts(paper_model, "internvl_8b preset (paper scale, counted on the meta device)")
    paper_trainable = sum(p.numel() for p in apply_lora(paper_model).parameters() if p.requires_grad)
    print(f"  trainable with LoRA (r{paper.lora_rank}) + projectors + score head: {paper_trainable:,}")


if __name__ == "__main__":
    main()
