"""Encoding frames to H.264/HEVC/VP9/MPEG-4/MPEG-2 with PyAV (to disk or in memory) and decoding them back.
Single-threaded and with fixed settings, so the same frames and settings always give the same bytes."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

# Encoder options that keep each encoder single-threaded and free of float-timing effects: x264's
# macroblock tree gave different bytes from run to run on noisy input, so it is turned off.
_DETERMINISTIC_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"x264-params": "threads=1:lookahead-threads=1:no-mbtree=1"},
    "libx265": {"x265-params": "pools=none:frame-threads=1:log-level=error"},
    "libvpx-vp9": {"threads": "1", "row-mt": "0"},
    "mpeg4": {},
    "mpeg2video": {},
}


def vp9_options(crf: int) -> dict[str, str]:
    """Constant-quality VP9 (libvpx reads crf only with a zero target bit rate), in its fast real-time mode."""
    return {"crf": str(min(63, crf)), "b": "0", "deadline": "realtime", "cpu-used": "8"}


@dataclass(frozen=True)
class EncoderSettings:
    """One encoder configuration: codec name, quantiser options (qp, qscale, crf, bitrate) and preset."""

    codec: str = "libx264"
    options: dict[str, str] = field(default_factory=dict)
    bit_rate: int | None = None
    gop_size: int | None = None

    def to_dict(self) -> dict:
        return {"codec": self.codec, "options": dict(self.options), "bit_rate": self.bit_rate, "gop_size": self.gop_size}

    @classmethod
    def from_dict(cls, data: dict) -> EncoderSettings:
        return cls(data["codec"], dict(data.get("options", {})), data.get("bit_rate"), data.get("gop_size"))


def _write(container: av.container.OutputContainer, frames: np.ndarray, fps: Fraction, settings: EncoderSettings) -> None:
    options = dict(settings.options)
    for key, value in _DETERMINISTIC_OPTIONS[settings.codec].items():
        options[key] = f"{options[key]}:{value}" if key in options else value
    stream = container.add_stream(settings.codec, rate=fps, options=options)
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.thread_count = 1
    if settings.bit_rate:
        stream.bit_rate = settings.bit_rate
    if settings.gop_size:
        stream.codec_context.gop_size = settings.gop_size
    for index, frame in enumerate(frames):
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv420p")
        video_frame.pts = index
        container.mux(stream.encode(video_frame))
    container.mux(stream.encode())


def encode_to_bytes(frames: np.ndarray, fps: Fraction, settings: EncoderSettings) -> bytes:
    """The MP4 bytes of `frames` (T, H, W, 3) uint8 RGB, H and W even, encoded with `settings`."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        _write(container, frames, fps, settings)
    return buffer.getvalue()


def encode_to_file(frames: np.ndarray, fps: Fraction, settings: EncoderSettings, path: str | os.PathLike) -> None:
    """Write `frames` as an MP4 file at `path` (callers write to a temporary name, then rename)."""
    with av.open(str(path), mode="w", format="mp4") as container:
        _write(container, frames, fps, settings)


def decode_bytes(data: bytes) -> np.ndarray:
    """All frames of an in-memory video as (T, H, W, 3) uint8 RGB."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])


def round_trip(frames: np.ndarray, fps: Fraction, settings: EncoderSettings) -> np.ndarray:
    """`frames` as they look after encoding with `settings` and decoding again (same frame count)."""
    return decode_bytes(encode_to_bytes(frames, fps, settings))
