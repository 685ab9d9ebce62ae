"""Benchmark of finevq.video: sampling (8 keyframes + 32 motion frames) against decoding every
frame, per backend and sampling setting, on H.264 with typical keyframe intervals; flatness in
duration; peak memory for a 1-hour and an 8K video.

Settings: the exact rule (segment centres, motion spread frame by frame or in runs of 8) and the
model sampler (keyframe-aligned rule, runs of 8, decoded at a short side of 448 / 224 px). The
breakdown splits one model-sampler call into opening, decoding and converting.
Run: python bench/decode.py [--workdir DIR] [--only speed|breakdown|flatness|memory]. Videos are generated
with PyAV; each memory figure is measured in a fresh subprocess: the growth of its peak resident
size (VmHWM, reset just before the call) over the resident size before it."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from videos import draw_frame_number, pattern_frame, write_video  # noqa: E402  (the test suite's video writer)

from finevq.video import open_video, probe, sample_video  # noqa: E402

FPS = 25
# Keyframe intervals of typical encodes: x264's default (keyint 250, scene-cut on, min-keyint 25)
# and the 2-s GOP of phone and streaming encoders.
GOPS = {"keyint 250": 250, "2-s GOP": 2 * FPS}
ENCODER = {"preset": "veryfast"}
COUNTS = {"num_keyframes": 8, "num_motion_frames": 32}
SETTINGS = {
    "exact, spread": {**COUNTS, "seek": "exact", "motion_burst": 1, "max_side": 448, "motion_max_side": 224},
    "exact, runs of 8": {**COUNTS, "seek": "exact", "motion_burst": 8, "max_side": 448, "motion_max_side": 224},
    "model sampler": {
        **COUNTS, "seek": "keyframe", "motion_burst": 8, "min_short_side": 448, "motion_min_short_side": 224,
    },
}
# The model sampler with fragments (grid 4 x 32 px), as fragment-reading backbones use it.
WITH_FRAGMENTS = {**SETTINGS["model sampler"], "fragment_grid": 4, "fragment_patch": 32}


def moving_frames(width: int, height: int, count: int):
    """A textured picture panning sideways, with the frame number drawn in: cheap to make."""
    base = pattern_frame(0, width, height)
    for index in range(count):
        frame = np.roll(base, 4 * index, axis=1)
        draw_frame_number(frame, index)
        yield frame


def make_video(folder: Path, name: str, width: int, height: int, seconds: float, **options) -> Path:
    path = folder / name
    if not path.exists():
        write_video(path, frames=moving_frames(width, height, round(seconds * FPS)), fps=FPS, **options)
    return path


def timed_rounds(calls: dict, rounds: int = 3) -> dict[str, list[float]]:
    """Seconds of each call, the calls run one after another in each round (the cores are
    shared, so the load drifts: ratios are taken within a round)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(top / bottom for top, bottom in zip(numerators, denominators))


def decode_every_frame(path: Path, backend: str) -> None:
    with open_video(path, backend=backend) as reader:
        for _ in reader.iter_frames(range(reader.info.num_frames)):
            pass


def sampler(path: Path, backend: str, setting: str):
    return lambda: sample_video(path, backend=backend, **SETTINGS[setting])


def ten_second_videos(folder: Path) -> dict[tuple[str, str], Path]:
    return {
        (label, gop_name): make_video(folder, f"{label}_10s_gop{gop}.mp4", width, height, 10, gop=gop, options=ENCODER)
        for label, width, height in (("720p", 1280, 720), ("1080p", 1920, 1080))
        for gop_name, gop in GOPS.items()
    }


def speed(folder: Path) -> None:
    print(f"## Speed: sampling {COUNTS} vs decoding every frame (RGB, native size), H.264 x264 {ENCODER['preset']}")
    print("## median over 3 rounds of (sampling / every frame) within a round; times are medians")
    for (label, gop_name), path in ten_second_videos(folder).items():
        for backend in ("decord", "pyav"):
            calls = {"every frame": lambda: decode_every_frame(path, backend)}
            calls.update({setting: sampler(path, backend, setting) for setting in SETTINGS})
            times = timed_rounds(calls)
            full = times.pop("every frame")
            figures = ", ".join(
                f"{setting} {statistics.median(taken):.2f} s = {median_ratio(taken, full):.2f}"
                for setting, taken in times.items()
            )
            print(f"{label} 10 s, {gop_name:10s} {backend:6s}: every frame {statistics.median(full):.2f} s; {figures}")


def breakdown_call(path: Path, setting: str) -> dict[str, float]:
    """Seconds of each part of one PyAV sample: opening and indexing the file, decoding the sampled
    frames (and the frames they depend on), converting them to RGB at the model's sizes."""
    plan = sample_video(path, backend="pyav", **SETTINGS[setting])
    long_side = round(max(plan.keyframes.shape[1:3]))
    motion_side = round(max(plan.motion.shape[1:3]))
    sides = dict.fromkeys(plan.motion_indices, motion_side)
    sides.update(dict.fromkeys(plan.keyframe_indices, long_side))
    start = time.perf_counter()
    with open_video(path, backend="pyav") as reader:
        opened = time.perf_counter()
        decoded = list(reader._iter_decoded(sides))  # the reader's own pass, without the RGB views
        done = time.perf_counter()
        for position, frame in decoded:
            frame.rgb(sides[position])
        converted = time.perf_counter()
    return {"open + index": opened - start, "decode": done - opened, "convert": converted - done}


def breakdown(folder: Path) -> None:
    print("## Where sampling time goes (PyAV, model sampler), as fractions of decoding every frame; medians of 3 rounds")
    for (label, gop_name), path in ten_second_videos(folder).items():
        if label != "1080p":
            continue
        full, parts = [], []
        for _ in range(3):
            start = time.perf_counter()
            decode_every_frame(path, "pyav")
            full.append(time.perf_counter() - start)
            parts.append(breakdown_call(path, "model sampler"))
        figures = ", ".join(
            f"{name} {statistics.median(p[name] for p in parts):.3f} s = "
            f"{median_ratio([p[name] for p in parts], full):.2f}"
            for name in parts[0]
        )
        print(f"{label} 10 s, {gop_name:10s}: every frame {statistics.median(full):.2f} s; {figures}")


def flatness(folder: Path) -> None:
    print("## Flatness: sampling the 60-s vs the 10-s 1080p video (ratio = 60 s / 10 s, median of 3 rounds)")
    for gop_name, gop in GOPS.items():
        short = make_video(folder, f"1080p_10s_gop{gop}.mp4", 1920, 1080, 10, gop=gop, options=ENCODER)
        long = make_video(folder, f"1080p_60s_gop{gop}.mp4", 1920, 1080, 60, gop=gop, options=ENCODER)
        for backend in ("decord", "pyav"):
            figures = []
            for setting in SETTINGS:
                calls = {"10 s": sampler(short, backend, setting), "60 s": sampler(long, backend, setting)}
                times = timed_rounds(calls)
                figures.append(
                    f"{setting} {statistics.median(times['10 s']):.2f} / {statistics.median(times['60 s']):.2f} s "
                    f"= {median_ratio(times['60 s'], times['10 s']):.2f}"
                )
            print(f"1080p {gop_name:10s} {backend:6s}: " + "; ".join(figures))


def _memory_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


REQUESTS = {**SETTINGS, "model sampler + fragments": WITH_FRAGMENTS}


def run_request(path: str, backend: str, request: str) -> tuple[str, list[int]]:
    """One frame ("frame native" / "frame 448") or one sample (a REQUESTS name): backend, shape."""
    if request.startswith("frame"):
        with open_video(path, backend=backend) as reader:
            array = reader.read([0], max_side=None if request == "frame native" else 448)
            return reader.info.backend, list(array.shape)
    result = sample_video(path, backend=backend, **REQUESTS[request])
    return result.info.backend, list(result.keyframes.shape)


def measure_child(path: str, backend: str, request: str) -> None:
    """In a fresh process: seconds and peak-RSS growth of one request, as JSON."""
    probe(path, backend=backend)  # imports and decoder libraries loaded before the baseline
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset the peak (VmHWM) to the current resident size
    before = _memory_mb("VmRSS")
    start = time.perf_counter()
    used, shape = run_request(path, backend, request)
    seconds = time.perf_counter() - start
    peak = _memory_mb("VmHWM")
    print(json.dumps({"seconds": seconds, "growth_mb": peak - before, "backend": used, "shape": shape}))


def child(path: Path, backend: str, request: str) -> dict:
    command = [sys.executable, __file__, "--child", str(path), backend, request]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def memory(folder: Path) -> None:
    print("## Memory: peak RSS growth of one call (8 keyframes + 32 motion frames), fresh process each")
    hour = make_video(folder, "tiny_1h.mp4", 160, 96, 3600, gop=10 * FPS, bit_rate=20_000)
    ten = make_video(folder, "tiny_10s.mp4", 160, 96, 10, gop=10 * FPS, bit_rate=20_000)
    print(f"160x96 at 20 kbit/s, keyframe every 10 s: the 1-hour file is {hour.stat().st_size / 2**20:.1f} MiB")
    for backend in ("auto", "pyav"):
        for setting in ("exact, spread", "model sampler"):
            runs = [child(path, backend, setting) for path in (ten, hour)]
            print(
                f"160x96 {backend:4s} {setting:14s}: 10 s {runs[0]['growth_mb']:.1f} MB / {runs[0]['seconds']:.2f} s, "
                f"1 h {runs[1]['growth_mb']:.1f} MB / {runs[1]['seconds']:.2f} s (read by {runs[1]['backend']})"
            )
    start = time.perf_counter()
    info = probe(hour, backend="pyav")
    print(f"probe of the 1-hour video: {info.num_frames} frames, {time.perf_counter() - start:.2f} s")
    big = make_video(folder, "8k.mp4", 7680, 4320, 8 / FPS, gop=4)
    print(f"8K (7680x4320, 8 frames, keyframe every 4): one RGB frame is {7680 * 4320 * 3 / 2**20:.0f} MB")
    for backend in ("auto", "pyav", "decord"):
        requests = ["model sampler + fragments"] if backend == "decord" else ["frame native", "frame 448", *REQUESTS]
        for request in requests:
            run = child(big, backend, request)
            print(
                f"8K {backend:6s} {request:26s}: +{run['growth_mb']:4.0f} MB, {run['seconds']:.2f} s, "
                f"keyframes {run['shape']} (read by {run['backend']})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep generated videos here (default: a temp dir)")
    parser.add_argument("--child", nargs=3, metavar=("VIDEO", "BACKEND", "REQUEST"), help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("speed", "breakdown", "flatness", "memory"), help="run one part")
    args = parser.parse_args()
    if args.child:
        measure_child(*args.child)
        return
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.workdir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        for name, part in (("speed", speed), ("breakdown", breakdown), ("flatness", flatness), ("memory", memory)):
            if args.only in (None, name):
                part(folder)


if __name__ == "__main__":
    main()
