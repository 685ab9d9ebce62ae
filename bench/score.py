"""Throughput of `finevq score`: videos per second over a folder of mixed videos with 0, 1 and 2 decode
workers, the share of time the model waits on decoding, and one encode for all six dimensions vs six calls.

Run: python bench/score.py [--videos 50] [--folder DIR] [--model DIR]
Without --model it uses the shipped default model."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from finevq.inference import FineVQ
from finevq.inference.batch import ScoreJob, run_scoring
from finevq.taxonomy import DIMENSIONS

# (width, height) of the mixed set: 360p to 1080p, landscape and portrait.
SIZES = ((640, 360), (854, 480), (1280, 720), (1920, 1080), (360, 640), (720, 1280))
FRAME_RATES = (24, 25, 30)


def _frames(width: int, height: int, count: int, rng: np.random.Generator):
    """A textured picture panning across the frame, with per-frame noise of a random strength."""
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    picture = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    noise = int(rng.integers(0, 30))
    for index in range(count):
        frame = np.roll(picture, shift=index * 4, axis=1)
        if noise:
            frame = np.clip(frame.astype(np.int16) + rng.integers(-noise, noise + 1, frame.shape), 0, 255).astype(np.uint8)
        yield frame


def make_videos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` H.264 videos of 5-10 s at mixed sizes and frame rates (written once, reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        width, height = SIZES[index % len(SIZES)]
        fps = FRAME_RATES[index % len(FRAME_RATES)]
        seconds = float(rng.uniform(5, 10))
        path = folder / f"clip_{index:03d}_{height}p.mp4"
        paths.append(path)
        if path.exists():
            continue
        partial = path.with_suffix(".part.mp4")
        with av.open(str(partial), "w") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "ultrafast", "crf": str(int(rng.integers(18, 40)))}
            for frame in _frames(width, height, round(seconds * fps), rng):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        partial.rename(path)
    return paths


def load_model(folder: str | None) -> tuple[FineVQ, str]:
    if folder:
        return FineVQ.from_pretrained(folder), f"model folder {folder}"
    return FineVQ.from_pretrained(), "the default model"


def throughput(fv: FineVQ, folder: Path, workers: int, count: int) -> tuple[float, float, float]:
    """(videos/s, share of model time spent waiting on decoding, seconds) of one scoring run."""
    with tempfile.TemporaryDirectory() as scratch:
        job = ScoreJob(inputs=[str(folder)], output=str(Path(scratch) / "rows.jsonl"), workers=workers, progress=False)
        start = time.perf_counter()
        summary = run_scoring(job, assessor=fv)
        seconds = time.perf_counter() - start
    if summary.failed:
        raise SystemExit(f"{summary.failed} videos failed: {summary.failures[:3]}")
    return count / seconds, summary.wait_share, seconds


def one_encode_vs_six(fv: FineVQ, paths: list[Path]) -> tuple[float, float]:
    """Median model seconds per video: all six dimensions in one call (one video encode) vs one call
    per dimension (six encodes); decoding and preprocessing are done beforehand and not counted."""
    together, separately = [], []
    for path in paths:
        prepared = fv.sample(path)
        start = time.perf_counter()
        fv.assess_samples([prepared], [str(path)], DIMENSIONS, diagnose=False)
        together.append(time.perf_counter() - start)
        start = time.perf_counter()
        for dimension in DIMENSIONS:
            fv.assess_samples([prepared], [str(path)], [dimension], diagnose=False)
        separately.append(time.perf_counter() - start)
    return statistics.median(together), statistics.median(separately)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "finevq-bench-score"),
                        help="where the generated videos are kept between runs")
    parser.add_argument("--model", help="model folder (default: the shipped default model)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    folder = Path(args.folder) / f"{args.videos}-videos"
    start = time.perf_counter()
    paths = make_videos(folder, args.videos)
    print(f"videos: {len(paths)} H.264 clips of 5-10 s, 360p-1080p, in {folder} "
          f"(ready in {time.perf_counter() - start:.1f} s)")
    fv, note = load_model(args.model)
    print(f"model: {note}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (other work slows every figure)")
    fv.assess(paths[0])  # warm-up: first-call allocations are not part of the figures
    for workers in args.workers:
        rate, wait, seconds = throughput(fv, folder, workers, len(paths))
        print(f"workers={workers}: {rate:.2f} videos/s ({seconds:.1f} s for {len(paths)} videos), "
              f"model waiting on decoding {100 * wait:.0f}% of the time")
    together, separately = one_encode_vs_six(fv, paths[:6])
    print(f"six dimensions, model time per video (median of {min(6, len(paths))}): one call {together * 1000:.0f} ms, "
          f"six calls {separately * 1000:.0f} ms, ratio {separately / together:.2f}x")


if __name__ == "__main__":
    main()
