"""The shipped default model's footprint: folder size, load time, and the time to assess a 10-s 720p
video on all six dimensions with distortion diagnosis (targets: 40 MB, 3 s, 3 s on 2 cores).

Run: python bench/default_model.py [--repeats 3]
Each load runs in a fresh process, so no import or file cache of an earlier load is counted twice."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from score import _frames

LOAD = """
import time
start = time.perf_counter()
from finevq.inference import FineVQ
imported = time.perf_counter()
FineVQ.from_pretrained()
print(imported - start, time.perf_counter() - imported)
"""


def write_clip(path: Path, seconds: int = 10, fps: int = 30, width: int = 1280, height: int = 720) -> None:
    """A moving-pattern H.264 clip (720p by default)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for frame in _frames(width, height, seconds * fps, np.random.default_rng(0)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from finevq.inference import FineVQ
    from finevq.inference.assessor import default_model_folder

    folder = default_model_folder()
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    print(f"default model folder {folder}: {size / 2**20:.1f} MB")

    loads = [subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, check=True).stdout.split()
             for _ in range(args.repeats)]
    imports, weights = ([float(load[i]) for load in loads] for i in (0, 1))
    print(f"load (fresh process, median of {args.repeats}): import finevq.inference {statistics.median(imports):.2f} s, "
          f"FineVQ.from_pretrained() {statistics.median(weights):.2f} s")

    fv = FineVQ.from_pretrained()
    with tempfile.TemporaryDirectory() as temporary:
        video = Path(temporary) / "ten_seconds_720p.mp4"
        write_clip(video)
        times = []
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            result = fv.assess(video, dimensions=None, diagnose=True)
            times.append(time.perf_counter() - start)
    print(f"assess 10-s 720p H.264, 6 dimensions + diagnosis: first call {times[0]:.2f} s, "
          f"then median {statistics.median(times[1:]):.2f} s (decode + model; {len(result.frames)} keyframes)")


if __name__ == "__main__":
    main()
