"""Real test videos written with PyAV: patterned clips in any codec, plus the broken files
(truncated, bit-flipped, audio-only, renamed, VFR) that the video module must survive."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FRAME_NUMBER_BITS = 8

# Fast settings per encoder so that tests stay quick; quality does not matter here.
_ENCODER_OPTIONS = {
    "libx264": {"preset": "ultrafast"},
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=error"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
    "libsvtav1": {"preset": "12"},
}


def pattern_frame(index: int, width: int, height: int, pattern: str = "moving", seed: int = 0) -> np.ndarray:
    """One RGB frame of a synthetic pattern; its top strip encodes `index` in binary blocks.

    "moving": a textured gradient that drifts and a bright square that crosses the frame;
    "static": the same picture for every index (except the index strip); "noise": fresh noise.
    The top-left corner is a fixed red marker, so a test can see where rotation put it.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    shift = 0 if pattern == "static" else index * 3
    if pattern == "noise":
        frame = np.random.default_rng((seed, index)).integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif pattern in ("moving", "static"):
        texture = rng.integers(-20, 21, (height, width, 1))
        red = (xs + shift) * 255 // max(width, 1)
        green = ys * 255 // max(height, 1)
        blue = np.full_like(xs, 128)
        frame = np.clip(np.stack([red, green, blue], axis=-1) + texture, 0, 255).astype(np.uint8)
        side = max(4, min(width, height) // 5)
        x0 = (shift * 2) % max(width - side, 1)
        y0 = height // 2 - side // 2
        frame[y0:y0 + side, x0:x0 + side] = 250
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    draw_frame_number(frame, index)
    marker = max(2, min(width, height) // 8)
    frame[:marker, :marker] = (255, 0, 0)
    return frame


def _strip_geometry(height: int, width: int) -> tuple[int, int, int]:
    """Rows [top, bottom) and block width of the strip that carries the frame number."""
    marker = max(2, min(width, height) // 8)
    return marker, marker + max(4, height // 6), width // FRAME_NUMBER_BITS


def draw_frame_number(frame: np.ndarray, index: int) -> None:
    """Write `index` (modulo 256) into the frame's strip of binary blocks, in place."""
    top, bottom, block = _strip_geometry(*frame.shape[:2])
    for bit in range(FRAME_NUMBER_BITS):
        value = 255 if (index >> bit) & 1 else 0
        frame[top:bottom, bit * block:(bit + 1) * block] = value


def read_frame_number(frame: np.ndarray) -> int:
    """The index `pattern_frame` drew into an (upright, possibly resized) frame, modulo 256."""
    top, bottom, block = _strip_geometry(*frame.shape[:2])
    middle = (top + bottom) // 2
    number = 0
    for bit in range(FRAME_NUMBER_BITS):
        centre = frame[middle, bit * block + block // 2].astype(int).mean()
        if centre > 127:
            number |= 1 << bit
    return number


def write_video(
    path,
    num_frames: int = 16,
    width: int = 128,
    height: int = 96,
    fps: float = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pattern: str = "moving",
    rotation: int = 0,
    faststart: bool = False,
    seed: int = 0,
    frames: np.ndarray | None = None,
    *,
    gop: int | None = None,
    bit_rate: int | None = None,
    timestamps: list[float] | None = None,
    container_format: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode a real video file and return its path; the container follows the suffix.

    frames: optional uint8 (T, H, W, 3) array, or any iterable of (H, W, 3) frames (streamed, for
    long videos), encoded instead of the pattern; num_frames, width and height then come from it.
    rotation: clockwise display rotation in degrees written as container metadata (the classic
    "rotate" tag convention). timestamps: presentation times in
    seconds, one per frame, for variable or broken frame rates (time base 1 us).
    gop: keyframe interval; bit_rate: target bits per second; options: extra encoder options.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if frames is None:
        images = (pattern_frame(index, width, height, pattern, seed) for index in range(num_frames))
    else:
        images = iter(frames)
        first = next(images)
        height, width = first.shape[:2]
        images = itertools.chain([first], images)
    rate = Fraction(fps).limit_denominator(1001)
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container_format, options=container_options) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {**_ENCODER_OPTIONS.get(codec, {}), **(options or {})}
        if gop is not None:
            stream.codec_context.gop_size = gop
        if bit_rate is not None:
            stream.codec_context.bit_rate = bit_rate
        if timestamps is not None:
            stream.codec_context.time_base = Fraction(1, 1_000_000)
        if rotation % 360:
            stream.set_display_rotation(-rotation % 360)
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, dtype=np.uint8), format="rgb24")
            if timestamps is not None:
                frame.pts = round(timestamps[index] * 1_000_000)
                frame.time_base = Fraction(1, 1_000_000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio_only(path, seconds: float = 1.0, sample_rate: int = 16000) -> Path:
    """An AAC tone in a video container with no video stream at all."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        samples = np.sin(np.arange(int(seconds * sample_rate)) * 2 * np.pi * 440 / sample_rate)
        chunk = 1024
        for offset in range(0, len(samples), chunk):
            block = samples[offset:offset + chunk].astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sample_rate, offset
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def truncated_copy(source, destination, keep_fraction: float) -> Path:
    """The first `keep_fraction` of a file's bytes, as a download cut short would leave it."""
    data = Path(source).read_bytes()
    destination = Path(destination)
    destination.write_bytes(data[: int(len(data) * keep_fraction)])
    return destination


def bit_flipped_copy(source, destination, flips: int = 200, seed: int = 0, skip_fraction: float = 0.2) -> Path:
    """A copy with `flips` random bits inverted after the first `skip_fraction` of the file."""
    data = bytearray(Path(source).read_bytes())
    rng = np.random.default_rng(seed)
    start = int(len(data) * skip_fraction)
    for position in rng.integers(start, len(data), flips):
        data[position] ^= 1 << int(rng.integers(0, 8))
    destination = Path(destination)
    destination.write_bytes(bytes(data))
    return destination


def write_random_bytes(path, size: int = 4096, seed: int = 0) -> Path:
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def write_image_as(path, width: int = 64, height: int = 48) -> Path:
    """A PNG image saved under whatever name (e.g. clip.mp4) the test gives it."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(pattern_frame(0, width, height)).save(path, format="PNG")
    return path
