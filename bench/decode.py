"""Benchmark of finevq.video: sampling (8 keyframes + 32 motion frames) against decoding every
frame per backend, flatness in duration, and peak memory for a 1-hour and an 8K video.

Run: python bench/decode.py [--workdir DIR]. Videos are generated with PyAV into a temp dir;
each memory figure is measured in a fresh subprocess: the growth of its peak resident size
(VmHWM, reset just before the call) over the resident size before it."""

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
GOP = 2 * FPS  # a keyframe every 2 s, as phone and streaming encoders do
ENCODER = {"preset": "veryfast"}
SAMPLING = {"num_keyframes": 8, "num_motion_frames": 32, "max_side": 448, "motion_max_side": 224}


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


def timed_pair(first, second, rounds: int = 5) -> tuple[float, float, float]:
    """Median seconds of two calls run alternately (the cores are shared, so the load drifts),
    and the median over rounds of second / first measured within the same round."""
    firsts, seconds, ratios = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        first()
        middle = time.perf_counter()
        second()
        end = time.perf_counter()
        firsts.append(middle - start)
        seconds.append(end - middle)
        ratios.append((end - middle) / (middle - start))
    return statistics.median(firsts), statistics.median(seconds), statistics.median(ratios)


def decode_every_frame(path: Path, backend: str) -> None:
    with open_video(path, backend=backend) as reader:
        for _ in reader.iter_frames(range(reader.info.num_frames)):
            pass


def sampler(path: Path, backend: str, burst: int):
    return lambda: sample_video(path, backend=backend, motion_burst=burst, **SAMPLING)


def speed(folder: Path) -> None:
    print(f"## Speed: sampling {SAMPLING} vs decoding every frame (RGB, native size)")
    print(f"## H.264 (x264 veryfast), {FPS} fps; the motion clip spread frame by frame (burst 1) or in runs of 8")
    print("## medians of 5 alternating rounds; ratio = sampling / every frame, within a round")
    videos = {
        label: make_video(folder, f"{label}_10s.mp4", width, height, 10, gop=GOP, options=ENCODER)
        for label, width, height in (("720p", 1280, 720), ("1080p", 1920, 1080))
    }
    for label, path in videos.items():
        for backend in ("decord", "pyav"):
            for burst in (1, 8):
                full, sampled, ratio = timed_pair(lambda: decode_every_frame(path, backend), sampler(path, backend, burst))
                print(
                    f"{label} 10 s, keyframe every {GOP} frames, {backend:6s} burst {burst}: "
                    f"every frame {full:5.2f} s, sampling {sampled:5.2f} s, ratio {ratio:.2f}"
                )
    print("## Keyframe interval (GOP) vs cost, 720p 10 s, pyav: an exact frame costs decoding from its keyframe")
    for gop in (12, 25, 250):
        path = make_video(folder, f"720p_10s_gop{gop}.mp4", 1280, 720, 10, gop=gop, options=ENCODER)
        ratios = [timed_pair(lambda: decode_every_frame(path, "pyav"), sampler(path, "pyav", burst))[2] for burst in (1, 8)]
        print(f"GOP {gop:3d}: ratio burst 1 {ratios[0]:.2f}, burst 8 {ratios[1]:.2f}")
    print("## Flatness: sampling the 60-s vs the 10-s 1080p video (ratio = 60 s / 10 s)")
    long = make_video(folder, "1080p_60s.mp4", 1920, 1080, 60, gop=GOP, options=ENCODER)
    for backend in ("decord", "pyav"):
        for burst in (1, 8):
            short_time, long_time, ratio = timed_pair(
                sampler(videos["1080p"], backend, burst), sampler(long, backend, burst)
            )
            print(f"1080p {backend:6s} burst {burst}: 10 s {short_time:.2f} s, 60 s {long_time:.2f} s, ratio {ratio:.2f}")


def _memory_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def measure_child(path: str, backend: str, max_side: str, frames: str) -> None:
    """In a fresh process: seconds and peak-RSS growth of one sampling call, as JSON."""
    probe(path, backend=backend)  # imports and decoder libraries loaded before the baseline
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset the peak (VmHWM) to the current resident size
    before = _memory_mb("VmRSS")
    start = time.perf_counter()
    side = None if max_side == "native" else int(max_side)
    if frames == "sample":
        result = sample_video(path, backend=backend, num_keyframes=8, num_motion_frames=32, max_side=side,
                              motion_max_side=side)
        used, shape = result.info.backend, list(result.keyframes.shape)
    else:
        with open_video(path, backend=backend) as reader:
            array = reader.read([0], max_side=side)
            used, shape = reader.info.backend, list(array.shape)
    seconds = time.perf_counter() - start
    peak = _memory_mb("VmHWM")
    print(json.dumps({"seconds": seconds, "growth_mb": peak - before, "backend": used, "shape": shape}))


def child(path: Path, backend: str, max_side: int | str, frames: str = "sample") -> dict:
    command = [sys.executable, __file__, "--child", str(path), backend, str(max_side), frames]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def memory(folder: Path) -> None:
    print("## Memory: peak RSS growth of sample_video (8 keyframes + 32 motion frames), fresh process each")
    hour = make_video(folder, "tiny_1h.mp4", 160, 96, 3600, gop=10 * FPS, bit_rate=20_000)
    ten = make_video(folder, "tiny_10s.mp4", 160, 96, 10, gop=10 * FPS, bit_rate=20_000)
    print(f"160x96 at 20 kbit/s, keyframe every 10 s: the 1-hour file is {hour.stat().st_size / 2**20:.1f} MiB")
    for backend in ("auto", "pyav"):
        runs = [child(path, backend, 448) for path in (ten, hour)]
        print(
            f"160x96 {backend:4s}: 10 s {runs[0]['growth_mb']:.1f} MB / {runs[0]['seconds']:.2f} s, "
            f"1 h {runs[1]['growth_mb']:.1f} MB / {runs[1]['seconds']:.2f} s (read by {runs[1]['backend']})"
        )
    start = time.perf_counter()
    info = probe(hour, backend="pyav")
    print(f"probe of the 1-hour video: {info.num_frames} frames, {time.perf_counter() - start:.2f} s")
    big = make_video(folder, "8k.mp4", 7680, 4320, 8 / FPS, gop=4)
    rgb_mb = 7680 * 4320 * 3 / 2**20
    print(f"8K (7680x4320, 8 frames): one RGB frame is {rgb_mb:.0f} MB")
    for backend in ("auto", "pyav"):
        one_native = child(big, backend, "native", frames="one")
        one_small = child(big, backend, 448, frames="one")
        sampled = child(big, backend, 448)
        print(
            f"8K {backend:4s}: 1 frame native +{one_native['growth_mb']:.0f} MB; 1 frame at 448 px "
            f"+{one_small['growth_mb']:.0f} MB; full sample at 448 px +{sampled['growth_mb']:.0f} MB "
            f"{sampled['shape']} in {sampled['seconds']:.2f} s (read by {sampled['backend']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep generated videos here (default: a temp dir)")
    parser.add_argument("--child", nargs=4, metavar=("VIDEO", "BACKEND", "MAX_SIDE", "FRAMES"), help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("speed", "memory"), help="run one part")
    args = parser.parse_args()
    if args.child:
        measure_child(*args.child)
        return
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.workdir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        if args.only != "memory":
            speed(folder)
        if args.only != "speed":
            memory(folder)


if __name__ == "__main__":
    main()
