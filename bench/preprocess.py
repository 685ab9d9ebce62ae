"""Cost of preparing one video for the model (`FineVQProcessor.video_tensors`): what a training run's
cold video cache pays once per video and `finevq score` pays for every video, split into decoding,
detector statistics, frame and clip statistics, and the resized pixel tensors, on one thread.

Run: python bench/preprocess.py [--videos 30] [--data DIR] [--model DIR]
Without --data it writes FineVD-Synth videos (16 frames, as the default model's recipe) first. Then the same
on one 4-s 1080p H.264 clip (a drifting random-noise texture), the size users score. --model (default the shipped
finevq-tiny) gives the processor settings."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from finevq import video as video_io
from finevq.data.synth import SceneOptions, SynthConfig, generate
from finevq.inference.assessor import default_model_folder
from finevq.modeling import processor as processor_module
from finevq.modeling.processor import FineVQProcessor

PARTS = {"decode": (video_io, "sample_video"), "detector statistics": (processor_module, "detector_statistics"),
         "frame and clip statistics": (processor_module, "video_statistics")}


def timing(seconds: dict[str, float], name: str, function):
    """`function`, adding the seconds of each call to seconds[name]."""

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - start

    return timed


def write_1080p_clip(path: Path, frames: int = 120) -> Path:
    """A 30-fps H.264 clip of random noise drifting one pixel a frame: every block costs the encoder and decoder."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (1080, 2048, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for index in range(frames):
            image = np.ascontiguousarray(texture[:, index:index + 1920])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def report(label: str, rows: list[dict[str, float]]) -> None:
    total = statistics.median(row["total"] for row in rows)
    print(f"{label}: per video (median of {len(rows)}) {total:.3f} s = {1 / total:.2f} videos/s on 1 thread")
    for name in (*PARTS, "pixel tensors and the rest"):
        part = [row["total"] - sum(row[p] for p in PARTS) if name not in PARTS else row[name] for row in rows]
        share = statistics.median(p / row["total"] for p, row in zip(part, rows))
        print(f"  {name:28s} {statistics.median(part):.3f} s ({share:.0%})")


def measure(processor: FineVQProcessor, videos: list[Path]) -> list[dict[str, float]]:
    """Per video: seconds of each part of `video_tensors` and of the whole call."""
    rows = []
    originals = {name: getattr(module, attribute) for name, (module, attribute) in PARTS.items()}
    try:
        for video in videos:
            seconds: dict[str, float] = defaultdict(float)
            for name, (module, attribute) in PARTS.items():
                setattr(module, attribute, timing(seconds, name, originals[name]))
            start = time.perf_counter()
            processor.video_tensors(video)
            seconds["total"] = time.perf_counter() - start
            rows.append(seconds)
    finally:
        for name, (module, attribute) in PARTS.items():
            setattr(module, attribute, originals[name])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=30)
    parser.add_argument("--data", type=Path, help="a FineVD-Synth (or any FineVD-layout) folder with videos/")
    parser.add_argument("--model", type=Path, default=default_model_folder())
    args = parser.parse_args()
    torch.set_num_threads(1)  # a cache worker's share: the data workers, not torch's threads, share the cores
    processor = FineVQProcessor.from_pretrained(args.model)
    print(f"processor of {args.model}")
    with tempfile.TemporaryDirectory() as scratch:
        if args.data is None:
            generate(scratch, SynthConfig(num_videos=args.videos, seed=0, scene=SceneOptions(max_frames=16)),
                     workers=2, progress=False)
        folder = args.data or Path(scratch)
        videos = sorted((folder / "videos").glob("*.mp4"))[:args.videos]
        processor.video_tensors(videos[0])  # warm-up: imports, FFT plans
        report(f"FineVD-Synth videos ({args.data or 'written here'})", measure(processor, videos))
        clip = write_1080p_clip(Path(scratch) / "clip_1080p.mp4")
        processor.video_tensors(clip)
        report("a 4-s 1080p H.264 clip", measure(processor, [clip] * 5))


if __name__ == "__main__":
    main()
