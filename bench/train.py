"""Benchmark of training the tiny model on CPU: samples/s with one process and with two gloo processes
(the scaling), the share of step time spent waiting for data once the video cache is warm, and the gain
of putting R questions about each video in a batch (training.rows_per_video: each video encoded once).

Run: python bench/train.py [--data DIR] [--steps N] [--batch-size B] [--workers K] [--rows-per-video R]
Without --data it writes a small FineVD-Synth folder first. Each configuration is a real
`recipes/train.py` run (the two-process one under `accelerate launch`); figures come from its log.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "recipes" / "configs" / "smoke.yaml"
TWO_PROCESSES = ROOT / "recipes" / "accelerate" / "cpu_2proc_gloo.yaml"


def synth_folder(folder: Path, videos: int) -> Path:
    from finevq.data.synth import SceneOptions, SynthConfig, generate

    scene = SceneOptions(min_side=144, max_side=240, min_duration=2.0, max_duration=4.0, max_frames=120)
    generate(folder, SynthConfig(num_videos=videos, seed=0, scene=scene), progress=True)
    return folder


def train_run(processes: int, data: Path, out: Path, cache: Path, args: argparse.Namespace,
              rows_per_video: int = 1) -> list[dict]:
    """Log entries of one run of the full tiny preset, without validation or test; with rows_per_video
    R > 1 the batch is R times larger (as many videos per batch, R questions each)."""
    settings = [
        f"data.source={data}", "data.synthesize=null", f"output.dir={out}", f"data.video_cache={cache}",
        f"data.labels_cache={cache.parent / 'labels'}",
        "model.preset_overrides={}", "data.num_frames=8", f"data.num_workers={args.workers}",
        f"training.max_steps={args.steps}", f"training.batch_size={args.batch_size * rows_per_video}",
        f"training.rows_per_video={rows_per_video}", "training.log_every=1",
        "evaluation.validation=false", "evaluation.test=false", "output.auto_resume=false",
    ]
    script = [str(ROOT / "recipes" / "train.py"), "--config", str(SMOKE), *[a for s in settings for a in ("--set", s)]]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(TWO_PROCESSES), *script]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def summary(entries: list[dict], skip: int) -> dict:
    """Median samples/s and mean data-wait share over the steps after the first `skip` (start-up)."""
    steady = [e for e in entries if "loss" in e][skip:]
    return {
        "steps": len(steady),
        "samples_per_s": statistics.median(e["samples_per_s"] for e in steady),
        "data_wait_share": statistics.fmean(e["data_wait_share"] for e in steady),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a FineVD-format folder (default: a fresh FineVD-Synth folder)")
    parser.add_argument("--videos", type=int, default=24, help="videos of the generated folder")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=4, help="rows per process per step")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader worker processes per training process")
    parser.add_argument("--skip", type=int, default=3, help="start-up steps left out of the figures")
    parser.add_argument("--rows-per-video", type=int, default=4, help="questions per video in the grouped run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="finevq-bench-train-") as tmp:
        tmp = Path(tmp)
        data = args.data or synth_folder(tmp / "synth", args.videos)
        cache = tmp / "video_cache"
        cold = summary(train_run(1, data, tmp / "cold", cache, args), args.skip)
        one = summary(train_run(1, data, tmp / "one", cache, args), args.skip)
        two = summary(train_run(2, data, tmp / "two", cache, args), args.skip)
        grouped = summary(train_run(1, data, tmp / "grouped", cache, args, args.rows_per_video), args.skip)

    print(f"tiny preset, 8 frames, batch {args.batch_size} per process, {args.workers} loader worker(s) per process, "
          f"{os.cpu_count()} CPU cores, median over {one['steps']} steps after {args.skip} start-up steps")
    print(f"{'run':<34}{'samples/s':>10}{'waiting for data':>18}")
    for name, figures in (("1 process, cold video cache", cold), ("1 process, warm cache", one),
                          ("2 processes (gloo), warm cache", two),
                          (f"1 process, {args.rows_per_video} questions/video", grouped)):
        print(f"{name:<34}{figures['samples_per_s']:>10.2f}{figures['data_wait_share']:>17.1%}")
    print(f"scaling 1 -> 2 processes: x{two['samples_per_s'] / one['samples_per_s']:.2f}")
    print(f"{args.rows_per_video} questions per video encoded once: x{grouped['samples_per_s'] / one['samples_per_s']:.2f}"
          " samples/s")


if __name__ == "__main__":
    main()
