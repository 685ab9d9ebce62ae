"""Speed of `finevq synth`: videos per second and seconds per 1000 videos at the issue's target
setting (16 frames, short side up to 480 px), with the given number of worker processes."""

from __future__ import annotations

import argparse
import tempfile
import time

from finevq.data.synth import SceneOptions, SynthConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-videos", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--max-side", type=int, default=480, help="largest short side in pixels")
    args = parser.parse_args()
    config = SynthConfig(num_videos=args.num_videos, seed=0,
                         scene=SceneOptions(min_side=240, max_side=args.max_side, max_frames=args.frames))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        records = generate(out, config, workers=args.workers, progress=False)
        seconds = time.perf_counter() - start
    pixels = sum(r["width"] * r["height"] for r in records) / len(records)
    print(f"synth: {len(records)} videos x {args.frames} frames (mean {pixels / 1000:.0f} kpixels/frame), "
          f"{args.workers} workers: {seconds:.1f} s")
    print(f"synth: {len(records) / seconds:.2f} videos/s, {1000 * seconds / len(records):.0f} s per 1000 videos "
          f"(target: under 900 s)")


if __name__ == "__main__":
    main()
