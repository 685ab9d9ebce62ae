"""Regenerate the demo's example clips: small FineVD-Synth scenes, each with known distortions, and
examples.json (what each clip shows and its synthetic labels). Deterministic: same bytes every run.

    python examples/make_examples.py            # writes examples/*.mp4 and examples/examples.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import numpy as np

from finevq.data.synth.codec import EncoderSettings, encode_to_file
from finevq.data.synth.content import SceneOptions, render, sample_scene
from finevq.data.synth.distortions import DISTORTIONS, ClipContext, apply_distortions
from finevq.data.synth.labels import clean_scores, label_video

EXAMPLES_DIR = Path(__file__).resolve().parent
SCENE = SceneOptions(min_side=240, max_side=240, min_fps=24, max_fps=24, min_duration=3, max_duration=3,
                     procedural_share=0.0)
ENCODER = EncoderSettings("libx264", {"crf": "27", "preset": "medium"}, gop_size=48)

# name -> (title, seed, [(subtype, severity)] of the first part, [(subtype, severity)] of a second
# part appended after it, or None for a single part). The two-part clip shows quality over time.
CLIPS = {
    "clean_pan": ("Clean camera pan", 11, [], None),
    "noisy_dark": ("Noisy and too dark", 12, [("gaussian noise", 0.7), ("over dark", 0.6)], None),
    "blocky_compressed": ("Heavy compression", 13, [("compression artifact", 0.9)], None),
    "shaky_motion_blur": ("Shaky, motion-blurred", 14, [("shaking", 0.8), ("motion blur", 0.6)], None),
    "sharp_then_blurred": ("Sharp, then blurred and stuttering", 15, [],
                           [("gaussian blur", 0.8), ("lagging", 0.8)]),
}


def _distorted_part(seed: int, distortions: list[tuple[str, float]], part: int) -> tuple[np.ndarray, Fraction, dict]:
    """Frames, fps and synthetic labels of one 3-second scene of `seed` with `distortions` applied."""
    rng = np.random.default_rng([seed, 0])  # the same scene for every part of a clip
    scene = sample_scene(rng, "train", SCENE, moving=True)  # lagging and motion blur need motion
    clip = render(scene)
    parameter_rng = np.random.default_rng([seed, part + 1])
    applied = [(subtype, DISTORTIONS[subtype].sample(severity, parameter_rng)) for subtype, severity in distortions]
    frames = apply_distortions(clip.frames, applied, ClipContext(clip.fps, clip.motion))
    speed = float(np.hypot(*clip.motion.T).mean())
    clean = clean_scores(min(scene.width, scene.height), speed, np.random.default_rng([seed, 99]))
    return frames, scene.fps, asdict(label_video(clean, distortions))


def make_clip(name: str, out_dir: Path) -> dict:
    """Write `name`.mp4 and return its entry of examples.json."""
    title, seed, first, second = CLIPS[name]
    parts = [first] if second is None else [first, second]
    rendered = [_distorted_part(seed, distortions, index) for index, distortions in enumerate(parts)]
    frames = np.concatenate([frames for frames, _, _ in rendered])
    fps = rendered[0][1]
    path = out_dir / f"{name}.mp4"
    encode_to_file(frames, fps, ENCODER, path)
    seconds_per_part = len(rendered[0][0]) / float(fps)
    return {
        "file": path.name,
        "title": title,
        "seconds": round(len(frames) / float(fps), 2),
        "parts": [
            {"start": round(index * seconds_per_part, 2), "distortions": [s for s, _ in distortions],
             "scores": {d: round(v, 1) for d, v in labels["scores"].items()}, "levels": labels["levels"]}
            for index, (distortions, (_, _, labels)) in enumerate(zip(parts, rendered))
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="folder to write (default: examples/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in CLIPS:
        entry = make_clip(name, args.out)
        size_kb = (args.out / entry["file"]).stat().st_size / 1024
        print(f"{entry['file']:28s} {entry['seconds']:5.1f} s {size_kb:6.0f} KB  {entry['title']}")
        entries.append(entry)
    (args.out / "examples.json").write_text(json.dumps(entries, indent=1) + "\n")


if __name__ == "__main__":
    main()
