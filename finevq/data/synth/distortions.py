"""The 22 specific distortion subtypes as frame operations with randomised implementations, and the
sampler that picks which ones a video gets (alone or two to three at once) and how strongly."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw
from scipy import fft as sfft
from scipy import ndimage, signal

from finevq.data.synth.codec import EncoderSettings, round_trip, vp9_options
from finevq.taxonomy import COARSE_OF_SUBTYPE, COARSE_TYPES, SUBTYPES

Frames = np.ndarray
"""(T, H, W, 3) uint8 RGB."""


@dataclass(frozen=True)
class ClipContext:
    """What a distortion may know about the clip: frame rate and per-frame content motion (T, 2)."""

    fps: Fraction
    motion: np.ndarray


@dataclass(frozen=True)
class Distortion:
    """One subtype: `sample(severity, rng)` draws JSON-able parameters (implementation included),
    `apply(frames, params, context)` distorts. Lower `stage` runs first (capture before transmission)."""

    subtype: str
    stage: int
    sample: Callable[[float, np.random.Generator], dict]
    apply: Callable[[Frames, dict, ClipContext], Frames]
    needs_motion: bool = False


def _map_frames(frames: Frames, function: Callable[[np.ndarray, int], np.ndarray]) -> Frames:
    """Apply `function(frame in [0, 1] float32, index)` frame by frame (memory stays one frame of floats)."""
    out = np.empty_like(frames)
    for index, frame in enumerate(frames):
        result = function(frame.astype(np.float32) / 255.0, index)
        out[index] = np.clip(np.rint(result * 255.0), 0, 255).astype(np.uint8)
    return out


_LUMA_WEIGHTS = {"bt601": (0.299, 0.587, 0.114), "bt709": (0.2126, 0.7152, 0.0722), "mean": (1 / 3, 1 / 3, 1 / 3)}


def _luma(frame: np.ndarray, weights: str = "bt601") -> np.ndarray:
    return frame @ np.asarray(_LUMA_WEIGHTS[weights], dtype=np.float32)


def _choice(rng: np.random.Generator, options: tuple | list) -> str:
    return str(options[int(rng.integers(0, len(options)))])


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31))


# --- colour -------------------------------------------------------------------------------------

def _sample_saturation(severity: float, rng: np.random.Generator, raise_it: bool) -> dict:
    gain = 1 + severity * rng.uniform(1.0, 2.2) if raise_it else 1 - severity * rng.uniform(0.7, 0.97)
    return {"gain": float(gain), "weights": _choice(rng, tuple(_LUMA_WEIGHTS)), "vibrance": bool(rng.uniform() < 0.4)}


def _apply_saturation(frames: Frames, params: dict, context: ClipContext) -> Frames:
    def scale_chroma(frame: np.ndarray, _: int) -> np.ndarray:
        luma = _luma(frame, params["weights"])[..., None]
        gain = params["gain"]
        if params["vibrance"]:
            # Vibrance-style: muted pixels change more than already saturated ones.
            chroma = np.abs(frame - luma).max(axis=-1, keepdims=True)
            gain = 1 + (gain - 1) * (1.2 - np.clip(chroma * 2, 0, 1))
        return luma + gain * (frame - luma)

    return _map_frames(frames, scale_chroma)


def _sample_exposure(severity: float, rng: np.random.Generator, darken: bool) -> dict:
    method = _choice(rng, ("gamma", "exposure", "curve"))
    strength = severity * rng.uniform(0.8, 1.2)
    return {"method": method, "strength": float(strength), "darken": darken}


def _apply_exposure(frames: Frames, params: dict, context: ClipContext) -> Frames:
    strength, sign = params["strength"], (-1 if params["darken"] else 1)

    def expose(frame: np.ndarray, _: int) -> np.ndarray:
        if params["method"] == "gamma":
            return np.power(frame, 2.0 ** (-sign * 1.8 * strength))
        if params["method"] == "exposure":
            return frame * 2.0 ** (sign * 2.2 * strength)
        # "curve": lift or crush toward white or black, keeping the far end fixed
        amount = min(0.85, 0.9 * strength)
        return frame + amount * (1 - frame) if sign > 0 else frame * (1 - amount) * (0.4 + 0.6 * frame)

    return _map_frames(frames, expose)


def _sample_contrast(severity: float, rng: np.random.Generator, raise_it: bool) -> dict:
    if raise_it:
        return {"method": _choice(rng, ("linear", "sigmoid")), "gain": float(1 + severity * rng.uniform(1.0, 2.5)),
                "pivot": float(rng.uniform(-0.1, 0.1)), "haze": [0.5, 0.5, 0.5]}
    haze = rng.uniform(0.35, 0.8) + rng.uniform(-0.05, 0.05, 3)
    return {"method": _choice(rng, ("linear", "haze")), "gain": float(1 - severity * rng.uniform(0.55, 0.85)),
            "pivot": float(rng.uniform(-0.15, 0.15)), "haze": [float(x) for x in haze]}


def _apply_contrast(frames: Frames, params: dict, context: ClipContext) -> Frames:
    gain, haze = params["gain"], np.asarray(params["haze"], dtype=np.float32)

    def contrast(frame: np.ndarray, _: int) -> np.ndarray:
        # The curve pivots near the frame's mean brightness, so dark and bright scenes both change.
        pivot = float(np.clip(_luma(frame).mean() + params["pivot"], 0.1, 0.9))
        if params["method"] == "sigmoid":
            curve = 1 / (1 + np.exp(-4 * gain * (frame - pivot)))
            low, high = 1 / (1 + math.exp(4 * gain * pivot)), 1 / (1 + math.exp(-4 * gain * (1 - pivot)))
            return (curve - low) / (high - low)
        if params["method"] == "haze":
            return haze + gain * (frame - haze)
        return pivot + gain * (frame - pivot)

    return _map_frames(frames, contrast)


# --- noise --------------------------------------------------------------------------------------

def _sample_gaussian_noise(severity: float, rng: np.random.Generator) -> dict:
    return {
        "sigma": float((2 + severity * rng.uniform(14, 26)) / 255),
        "mode": _choice(rng, ("rgb", "luma", "luma+chroma", "shot")),
        "static": bool(rng.uniform() < 0.2),
        "grain": float(rng.choice([0.0, 0.0, rng.uniform(0.4, 1.2)])),
        "uniform": bool(rng.uniform() < 0.15),
        "seed": _seed(rng),
    }


def _noise_field(rng: np.random.Generator, shape: tuple[int, ...], grain: float, uniform: bool = False) -> np.ndarray:
    """Unit-variance noise (normal, or uniform as some tools add); `grain` > 0 low-passes it
    spatially (film grain / denoised sensor noise)."""
    if uniform:
        noise = rng.uniform(-math.sqrt(3), math.sqrt(3), shape).astype(np.float32)
    else:
        noise = rng.standard_normal(shape, dtype=np.float32)
    if grain > 0:
        noise = ndimage.gaussian_filter(noise, sigma=(grain, grain, 0)[: noise.ndim])
        noise /= max(float(noise.std()), 1e-6)
    return noise


def _apply_gaussian_noise(frames: Frames, params: dict, context: ClipContext) -> Frames:
    rng = np.random.default_rng(params["seed"])
    height, width = frames.shape[1:3]
    sigma, mode = params["sigma"], params["mode"]
    shape, grain, uniform = (height, width, 3), params["grain"], params["uniform"]
    fixed = _noise_field(rng, shape, grain, uniform) if params["static"] else None

    def add_noise(frame: np.ndarray, _: int) -> np.ndarray:
        noise = fixed if fixed is not None else _noise_field(rng, shape, grain, uniform)
        if mode == "luma":
            noise = noise[..., :1]
        elif mode == "luma+chroma":
            noise = noise[..., :1] + 0.5 * noise
        elif mode == "shot":
            noise = noise * np.sqrt(np.clip(frame, 0.02, 1)) * 1.6
        return frame + sigma * noise

    return _map_frames(frames, add_noise)


def _sample_pulse_noise(severity: float, rng: np.random.Generator) -> dict:
    return {
        "density": float(0.002 + severity * rng.uniform(0.02, 0.07)),
        "mode": _choice(rng, ("salt_pepper", "per_channel", "random_value")),
        "salt_share": float(rng.uniform(0.3, 0.7)),
        "static": bool(rng.uniform() < 0.2),
        "seed": _seed(rng),
    }


def _apply_pulse_noise(frames: Frames, params: dict, context: ClipContext) -> Frames:
    rng = np.random.default_rng(params["seed"])
    out = frames.copy()
    height, width = frames.shape[1:3]
    shape = (height, width, 3) if params["mode"] == "per_channel" else (height, width, 1)
    static_hits = rng.uniform(size=shape) < params["density"]
    for frame in out:
        hits = static_hits if params["static"] else rng.uniform(size=shape) < params["density"]
        if params["mode"] == "random_value":
            values = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        else:
            values = np.where(rng.uniform(size=shape) < params["salt_share"], 255, 0).astype(np.uint8)
        np.copyto(frame, np.broadcast_to(values, frame.shape), where=np.broadcast_to(hits, frame.shape))
    return out


def _sample_stripe_noise(severity: float, rng: np.random.Generator) -> dict:
    return {
        "sigma": float((3 + severity * rng.uniform(10, 26)) / 255),
        "axis": _choice(rng, ("rows", "columns")),
        "periodic": float(rng.choice([0.0, rng.uniform(0.3, 1.0)])),
        "period": float(rng.uniform(3, 40)),
        "drift": float(rng.choice([0.0, rng.uniform(0.05, 0.5)])),
        "chroma": bool(rng.uniform() < 0.3),
        "seed": _seed(rng),
    }


def _apply_stripe_noise(frames: Frames, params: dict, context: ClipContext) -> Frames:
    rng = np.random.default_rng(params["seed"])
    height, width = frames.shape[1:3]
    length = height if params["axis"] == "rows" else width
    channels = 3 if params["chroma"] else 1
    base = rng.standard_normal((length, channels)).astype(np.float32)
    positions = np.arange(length, dtype=np.float32)[:, None]

    def add_stripes(frame: np.ndarray, index: int) -> np.ndarray:
        offsets = base + params["drift"] * index * rng.standard_normal(base.shape).astype(np.float32)
        offsets = offsets + params["periodic"] * 2 * np.sin(2 * math.pi * positions / params["period"] + index * params["drift"])
        offsets = params["sigma"] * offsets
        return frame + (offsets[:, None, :] if params["axis"] == "rows" else offsets[None, :, :])

    return _map_frames(frames, add_stripes)


# --- artifact -----------------------------------------------------------------------------------

def _sample_compression_artifact(severity: float, rng: np.random.Generator) -> dict:
    codec = _choice(rng, ("libx264", "libx264", "mpeg4", "mpeg2video", "libx265", "libvpx-vp9"))
    gop = int(rng.integers(8, 61))
    if codec in ("mpeg4", "mpeg2video"):
        # Forcing qmin = qmax fixes the MPEG-4 part 2 / MPEG-2 quantiser (8x8 DCT blocks) for every frame.
        quantiser = str(int(min(31, round(6 + severity * rng.uniform(19, 25)))))
        return {"codec": codec, "options": {"qmin": quantiser, "qmax": quantiser}, "bit_rate": None, "gop_size": gop}
    if codec == "libvpx-vp9":
        crf = int(round(38 + severity * rng.uniform(20, 25)))
        return {"codec": codec, "options": vp9_options(crf), "bit_rate": None, "gop_size": gop}
    if codec == "libx265":
        qp = int(min(51, round(34 + severity * rng.uniform(12, 17))))
        return {"codec": codec, "options": {"qp": str(qp), "preset": _choice(rng, ("ultrafast", "superfast")),
                                            "x265-params": "no-sao=1:deblock=-3,-3"}, "bit_rate": None, "gop_size": gop}
    qp = int(min(51, round(30 + severity * rng.uniform(15, 21))))
    deblock = _choice(rng, ("no-deblock=1", "deblock=-3,-3", "deblock=-1,-1"))
    # Constant QP, or constant quality (CRF: the quantiser then varies with the content).
    rate = {"qp": str(qp)} if rng.uniform() < 0.6 else {"crf": str(min(51, qp + 2))}
    return {"codec": codec, "options": {**rate, "preset": _choice(rng, ("ultrafast", "superfast", "veryfast")),
                                        "x264-params": deblock}, "bit_rate": None, "gop_size": gop}


def _apply_codec(frames: Frames, params: dict, context: ClipContext) -> Frames:
    smoothing = params.get("pre_smooth", 0.0)
    if smoothing:
        frames = _map_frames(frames, lambda frame, _: ndimage.gaussian_filter(frame, (smoothing, smoothing, 0)))
    return round_trip(frames, context.fps, EncoderSettings.from_dict(params))


def _sample_square_artifact(severity: float, rng: np.random.Generator) -> dict:
    method = _choice(rng, ("mosaic", "dct"))
    block = int(rng.choice([8, 16])) if method == "dct" else int(round(4 + severity * rng.uniform(6, 20)))
    return {
        "method": method,
        "block": block,
        "quant": float(20 + severity * rng.uniform(60, 160)),
        "coverage": float(min(1.0, 0.25 + severity * rng.uniform(0.5, 1.0))),
        "offset": [int(x) for x in rng.integers(0, block, 2)],
        "seed": _seed(rng),
    }


def _coverage_mask(rng: np.random.Generator, blocks_y: int, blocks_x: int, coverage: float) -> np.ndarray:
    """Block mask covering about `coverage` of the frame in a few rectangles (whole frame when ~1)."""
    if coverage >= 0.95:
        return np.ones((blocks_y, blocks_x), dtype=bool)
    mask = np.zeros((blocks_y, blocks_x), dtype=bool)
    while mask.mean() < coverage:
        h = int(rng.integers(1, max(2, blocks_y // 2 + 1)))
        w = int(rng.integers(1, max(2, blocks_x // 2 + 1)))
        y, x = int(rng.integers(0, max(1, blocks_y - h + 1))), int(rng.integers(0, max(1, blocks_x - w + 1)))
        mask[y:y + h, x:x + w] = True
    return mask


_JPEG_LUMA_TABLE = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
                             56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
                             104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
                            dtype=np.float32).reshape(8, 8) / 16.0


def _blockify(region: np.ndarray, block: int, method: str, quant: float) -> np.ndarray:
    """`region` (h, w, 3) float in [0, 255], h and w multiples of `block`, made blocky."""
    h, w = region.shape[:2]
    blocks = region.reshape(h // block, block, w // block, block, 3).transpose(0, 2, 4, 1, 3)
    if method == "mosaic":
        blocks = np.broadcast_to(blocks.mean(axis=(3, 4), keepdims=True), blocks.shape)
    else:
        table = np.kron(_JPEG_LUMA_TABLE, np.ones((block // 8, block // 8), dtype=np.float32)) * quant / 4
        coefficients = sfft.dctn(blocks - 128, axes=(3, 4), norm="ortho")
        blocks = sfft.idctn(np.round(coefficients / table) * table, axes=(3, 4), norm="ortho") + 128
    return blocks.transpose(0, 3, 1, 4, 2).reshape(h, w, 3)


def _apply_square_artifact(frames: Frames, params: dict, context: ClipContext) -> Frames:
    rng = np.random.default_rng(params["seed"])
    block, (oy, ox) = params["block"], params["offset"]
    height, width = frames.shape[1:3]
    blocks_y, blocks_x = (height - oy) // block, (width - ox) // block
    mask = np.kron(_coverage_mask(rng, blocks_y, blocks_x, params["coverage"]), np.ones((block, block), dtype=bool))
    out = frames.copy()
    for frame in out:
        area = frame[oy:oy + blocks_y * block, ox:ox + blocks_x * block]
        blocky = np.clip(np.rint(_blockify(area.astype(np.float32), block, params["method"], params["quant"])), 0, 255)
        np.copyto(area, blocky.astype(np.uint8), where=mask[..., None])
    return out


def _sample_ring_artifact(severity: float, rng: np.random.Generator) -> dict:
    return {
        "method": _choice(rng, ("unsharp", "unsharp", "lowpass")),
        "radius": float(rng.uniform(0.8, 2.5)),
        "amount": float(1.0 + severity * rng.uniform(2.0, 5.0)),
        "cutoff": float(0.5 - severity * rng.uniform(0.2, 0.35)),
    }


def _apply_ring_artifact(frames: Frames, params: dict, context: ClipContext) -> Frames:
    radius, amount = params["radius"], params["amount"]
    if params["method"] == "unsharp":
        # Over-sharpening: bright and dark halos overshoot on both sides of every edge.
        return _map_frames(frames, lambda f, _: f + amount * (f - ndimage.gaussian_filter(f, (radius, radius, 0))))
    height, width = frames.shape[1:3]
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    # An ideal (brick-wall) low-pass: the Gibbs phenomenon rings at every edge.
    keep = ((np.abs(fy) <= params["cutoff"] / 2) & (np.abs(fx) <= params["cutoff"] / 2)).astype(np.float32)

    def brick_wall(frame: np.ndarray, _: int) -> np.ndarray:
        spectrum = sfft.rfft2(frame, axes=(0, 1), workers=1) * keep[..., None]
        return sfft.irfft2(spectrum, s=(height, width), axes=(0, 1), workers=1)

    return _map_frames(frames, brick_wall)


def _sample_moire(severity: float, rng: np.random.Generator) -> dict:
    count = int(rng.integers(1, 3))
    return {
        "amplitude": float(0.06 + severity * rng.uniform(0.12, 0.3)),
        "aliases": [float(x) for x in rng.uniform(0.02, 0.14, count)],
        "angles": [float(x) for x in rng.uniform(0, math.pi, count)],
        "warp": float(rng.uniform(0.3, 3.0)),
        "warp_smoothness": float(rng.uniform(0.08, 0.3)),
        "fringe": float(rng.uniform(0.0, 1.2)),
        "coverage": float(min(1.0, 0.4 + severity * rng.uniform(0.3, 0.8))),
        "speed": float(rng.uniform(-3, 3)),
        "seed": _seed(rng),
    }


def _apply_moire(frames: Frames, params: dict, context: ClipContext) -> Frames:
    """A fine grating (a screen, fabric, a fence) sampled without antialiasing folds into the beat
    frequency `alias` (cycles per pixel): wavy bands, warped by the surface's smooth relief, moving
    faster than the content, with per-channel phase offsets like Bayer colour moire. Two gratings
    multiply into interference patterns."""
    height, width = frames.shape[1:3]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(params["seed"])
    smooth = params["warp_smoothness"] * min(height, width)
    relief = ndimage.gaussian_filter(rng.standard_normal((height, width)).astype(np.float32), smooth, mode="wrap")
    relief *= 2 * math.pi * params["warp"] / max(float(np.abs(relief).max()), 1e-6)
    mask = np.ones((height, width), dtype=np.float32)
    if params["coverage"] < 0.95:
        mask = ndimage.gaussian_filter(_coverage_mask(rng, 8, 8, params["coverage"]).astype(np.float32), 0.6)
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.BILINEAR))
    drift = np.cumsum(context.motion, axis=0) * params["speed"]
    offsets = rng.uniform(0, 2 * math.pi, len(params["aliases"]))

    def grating(frame: np.ndarray, index: int) -> np.ndarray:
        pattern = np.ones((height, width, 3), dtype=np.float32)
        for alias, angle, offset in zip(params["aliases"], params["angles"], offsets):
            along = (xx + drift[index, 0]) * math.cos(angle) + (yy + drift[index, 1]) * math.sin(angle)
            phase = 2 * math.pi * alias * along + relief + offset
            pattern *= np.stack([np.cos(phase + c * params["fringe"]) for c in range(3)], axis=-1)
        return frame * (1 + params["amplitude"] * mask[..., None] * pattern)

    return _map_frames(frames, grating)


# --- blur ---------------------------------------------------------------------------------------

_RESAMPLERS = {"box": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR,
               "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
               "hamming": Image.Resampling.HAMMING}


def _sample_resolution_blur(severity: float, rng: np.random.Generator) -> dict:
    return {"factor": float(1.4 + severity * rng.uniform(1.6, 4.0)), "down": _choice(rng, tuple(_RESAMPLERS)),
            "up": _choice(rng, ("bilinear", "bicubic", "lanczos"))}


def _apply_resolution_blur(frames: Frames, params: dict, context: ClipContext) -> Frames:
    height, width = frames.shape[1:3]
    small = (max(2, round(width / params["factor"])), max(2, round(height / params["factor"])))
    down, up = _RESAMPLERS[params["down"]], _RESAMPLERS[params["up"]]
    return np.stack([np.asarray(Image.fromarray(f).resize(small, down).resize((width, height), up)) for f in frames])


def _convolve(frames: Frames, kernel_of: Callable[[int], np.ndarray]) -> Frames:
    """Per-frame 2-D convolution (FFT) with edge-replicated borders; `kernel_of(index)` may vary."""
    def convolve(frame: np.ndarray, index: int) -> np.ndarray:
        kernel = kernel_of(index)
        pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
        padded = np.pad(frame, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="edge")
        return signal.fftconvolve(padded, kernel[..., None], mode="valid", axes=(0, 1))

    return _map_frames(frames, convolve)


def _disk_kernel(radius: float, ring: float) -> np.ndarray:
    size = int(math.ceil(radius)) * 2 + 1
    fine = 4  # supersampled so small disks are round and their area grows smoothly with the radius
    yy, xx = np.mgrid[0:size * fine, 0:size * fine]
    centre = (size * fine - 1) / 2
    distance = np.hypot(yy - centre, xx - centre) / fine
    weight = (distance <= radius) * (1 + ring * (distance / max(radius, 1e-6)) ** 2)
    kernel = weight.reshape(size, fine, size, fine).mean(axis=(1, 3)).astype(np.float32)
    return kernel / kernel.sum()


def _sample_defocus(severity: float, rng: np.random.Generator) -> dict:
    return {"radius": float(1.0 + severity * rng.uniform(3.0, 7.0)), "ring": float(rng.choice([0.0, rng.uniform(0.3, 1.5)]))}


def _apply_defocus(frames: Frames, params: dict, context: ClipContext) -> Frames:
    kernel = _disk_kernel(params["radius"], params["ring"])
    return _convolve(frames, lambda _: kernel)


def _sample_compression_blur(severity: float, rng: np.random.Generator) -> dict:
    codec = _choice(rng, ("libx265", "libx264", "libvpx-vp9"))
    if codec == "libvpx-vp9":
        # VP9's strong loop filter at a high crf smooths detail away rather than leaving blocks.
        options = vp9_options(int(round(45 + severity * rng.uniform(12, 18))))
    elif codec == "libx265":
        qp = int(min(51, round(36 + severity * rng.uniform(10, 15))))
        options = {"qp": str(qp), "preset": _choice(rng, ("ultrafast", "superfast", "veryfast")),
                   "x265-params": "deblock=2,2"}
    else:
        qp = int(min(51, round(32 + severity * rng.uniform(12, 18))))
        options = {"qp": str(qp), "preset": _choice(rng, ("superfast", "veryfast")), "x264-params": "deblock=4,4"}
    return {"codec": codec, "options": options, "bit_rate": None, "gop_size": int(rng.integers(8, 61)),
            "pre_smooth": float(0.4 + severity * rng.uniform(0.3, 1.2))}


def _line_kernel(length: float, angle: float, ramp: float) -> np.ndarray:
    size = int(math.ceil(length)) | 1
    fine = 4
    image = Image.new("F", (size * fine, size * fine), 0.0)
    centre, half = size * fine / 2, length * fine / 2
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    ImageDraw.Draw(image).line([centre - dx, centre - dy, centre + dx, centre + dy], fill=1.0, width=fine)
    weight = np.asarray(image, dtype=np.float32)
    if ramp:
        # A non-uniform exposure along the path (shutter opening): weight grows along the line.
        yy, xx = np.mgrid[0:size * fine, 0:size * fine]
        weight = weight * (1 + ramp * ((xx - centre) * math.cos(angle) + (yy - centre) * math.sin(angle)) / max(half, 1))
        weight = np.clip(weight, 0, None)
    kernel = weight.reshape(size, fine, size, fine).mean(axis=(1, 3))
    return kernel / max(float(kernel.sum()), 1e-6)


def _sample_motion_blur(severity: float, rng: np.random.Generator) -> dict:
    return {"length": float(3 + severity * rng.uniform(8, 22)), "fallback_angle": float(rng.uniform(0, math.pi)),
            "ramp": float(rng.choice([0.0, rng.uniform(0.2, 0.9)]))}


def _apply_motion_blur(frames: Frames, params: dict, context: ClipContext) -> Frames:
    """A line kernel along each frame's motion direction (a fixed random direction when nearly still)."""
    kernels: dict[int, np.ndarray] = {}

    def kernel_of(index: int) -> np.ndarray:
        dx, dy = context.motion[index]
        angle = math.atan2(dy, dx) if math.hypot(dx, dy) > 0.5 else params["fallback_angle"]
        key = round(math.degrees(angle) / 5) % 36  # directions quantised to 5 degrees share a kernel
        if key not in kernels:
            kernels[key] = _line_kernel(params["length"], math.radians(key * 5), params["ramp"])
        return kernels[key]

    return _convolve(frames, kernel_of)


def _sample_exposure_blur(severity: float, rng: np.random.Generator) -> dict:
    return {"frames": int(2 + round(severity * rng.uniform(3, 8))), "decay": float(rng.uniform(0.0, 0.6)),
            "bloom": float(rng.uniform(0.0, 0.8) * severity), "threshold": float(rng.uniform(0.6, 0.85)),
            "bloom_sigma": float(rng.uniform(3, 10))}


def _apply_exposure_blur(frames: Frames, params: dict, context: ClipContext) -> Frames:
    """A long exposure: each frame integrates the light of the last few frames (moving content
    smears and ghosts), and highlights bloom."""
    weights = np.exp(-params["decay"] * np.arange(params["frames"], dtype=np.float32))
    weights /= weights.sum()

    def integrate(frame: np.ndarray, index: int) -> np.ndarray:
        total = np.zeros_like(frame)
        for lag, weight in enumerate(weights):
            total += weight * (frames[max(index - lag, 0)].astype(np.float32) / 255.0)
        if params["bloom"]:
            highlights = np.clip(total - params["threshold"], 0, None)
            sigma = params["bloom_sigma"]
            total = total + params["bloom"] * ndimage.gaussian_filter(highlights, (sigma, sigma, 0))
        return total

    return _map_frames(frames, integrate)


def _sample_gaussian_blur(severity: float, rng: np.random.Generator) -> dict:
    sigma = 0.6 + severity * rng.uniform(1.8, 4.5)
    return {"sigma_x": float(sigma * rng.uniform(0.75, 1.25)), "sigma_y": float(sigma * rng.uniform(0.75, 1.25)),
            "method": _choice(rng, ("scipy", "pil", "box"))}


def _apply_gaussian_blur(frames: Frames, params: dict, context: ClipContext) -> Frames:
    if params["method"] == "pil":
        from PIL import ImageFilter

        radius = (params["sigma_x"], params["sigma_y"])
        return np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(radius))) for f in frames])
    sigma = (params["sigma_y"], params["sigma_x"], 0)
    if params["method"] == "box":
        # Three box passes of this width approximate the Gaussian (cheap blur filters do exactly this).
        size = tuple(max(1, int(round(math.sqrt(4 * s * s + 1)))) for s in sigma[:2]) + (1,)
        return _map_frames(frames, lambda frame, _: ndimage.uniform_filter(
            ndimage.uniform_filter(ndimage.uniform_filter(frame, size), size), size))
    return _map_frames(frames, lambda frame, _: ndimage.gaussian_filter(frame, sigma))


# --- temporal -----------------------------------------------------------------------------------

def _sample_shaking(severity: float, rng: np.random.Generator) -> dict:
    return {"amplitude": float(1.5 + severity * rng.uniform(5, 14)), "rotation": float(severity * rng.uniform(0, 0.02)),
            "pattern": _choice(rng, ("random", "oscillation", "jerks")), "hz": float(rng.uniform(4, 12)),
            "seed": _seed(rng)}


def _shake_offsets(params: dict, num_frames: int, fps: float) -> np.ndarray:
    """Per-frame (dx, dy, angle) of the shaking camera."""
    rng = np.random.default_rng(params["seed"])
    amplitude = params["amplitude"]
    if params["pattern"] == "oscillation":
        t = np.arange(num_frames) / fps
        phase = rng.uniform(0, 2 * math.pi, 2)
        shifts = np.stack([np.sin(2 * math.pi * params["hz"] * t + phase[0]),
                           np.sin(2 * math.pi * params["hz"] * 1.3 * t + phase[1])], axis=1) * amplitude
        shifts += rng.normal(0, amplitude * 0.3, (num_frames, 2))
    elif params["pattern"] == "jerks":
        jumps = (rng.uniform(size=num_frames) < 0.5)[:, None] * rng.normal(0, amplitude * 1.4, (num_frames, 2))
        shifts = jumps
    else:
        shifts = rng.normal(0, amplitude, (num_frames, 2))
    shifts = np.clip(shifts, -2.5 * amplitude, 2.5 * amplitude)
    angles = rng.normal(0, params["rotation"], num_frames)
    return np.concatenate([shifts, angles[:, None]], axis=1)


def _apply_shaking(frames: Frames, params: dict, context: ClipContext) -> Frames:
    height, width = frames.shape[1:3]
    offsets = _shake_offsets(params, len(frames), float(context.fps))
    reach = np.abs(offsets[:, :2]).max() + abs(offsets[:, 2]).max() * max(width, height) / 2 + 1
    # Zoom in just enough that the displaced view never shows a border.
    zoom = 1 / (1 + 2 * reach / min(width, height))
    out = np.empty_like(frames)
    for index, frame in enumerate(frames):
        dx, dy, angle = offsets[index]
        cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
        cx, cy = width / 2 + dx, height / 2 + dy
        coefficients = (cos, -sin, cx - cos * width / 2 + sin * height / 2, sin, cos, cy - sin * width / 2 - cos * height / 2)
        out[index] = np.asarray(Image.fromarray(frame).transform((width, height), Image.Transform.AFFINE, coefficients,
                                                                 resample=Image.Resampling.BILINEAR))
    return out


def _sample_lagging(severity: float, rng: np.random.Generator) -> dict:
    return {"method": _choice(rng, ("freeze", "low_fps", "irregular")), "severity": float(severity),
            "hold": int(2 + round(severity * rng.uniform(2, 8))), "step": int(2 + round(severity * rng.uniform(0.5, 2.5))),
            "seed": _seed(rng)}


def lag_indices(num_frames: int, params: dict) -> np.ndarray:
    """Which source frame each output frame shows: non-decreasing, with repeats (frozen frames) and
    jumps (dropped frames); always at least one repeat when the clip has two frames or more."""
    rng = np.random.default_rng(params["seed"])
    if params["method"] == "low_fps":
        indices = (np.arange(num_frames) // params["step"]) * params["step"]
    elif params["method"] == "freeze":
        indices, source = [], 0
        while len(indices) < num_frames:
            if rng.uniform() < 0.15 + 0.35 * params["severity"]:
                indices.extend([source] * params["hold"])
                source += params["hold"]  # the stall is caught up by jumping: those frames are dropped
            else:
                indices.append(source)
                source += 1
        indices = np.asarray(indices[:num_frames])
    else:
        repeat = rng.uniform(size=num_frames) < 0.2 + 0.5 * params["severity"]
        drop = rng.integers(1, 3, size=num_frames)
        indices = np.cumsum(np.where(repeat, 0, drop)) - np.where(repeat, 0, drop)[0]
    indices = np.clip(np.asarray(indices), 0, num_frames - 1)
    if num_frames > 1 and not (np.diff(indices) == 0).any():
        indices[-1] = indices[-2]
    return indices


def _apply_lagging(frames: Frames, params: dict, context: ClipContext) -> Frames:
    return frames[lag_indices(len(frames), params)]


def _sample_flickering(severity: float, rng: np.random.Generator) -> dict:
    return {"amplitude": float(0.04 + severity * rng.uniform(0.12, 0.3)),
            "pattern": _choice(rng, ("sine", "random", "square", "rolling")), "hz": float(rng.uniform(3, 14)),
            "band": float(rng.uniform(0.2, 1.0)), "tint": float(rng.uniform(0, 0.3)), "seed": _seed(rng)}


def _apply_flickering(frames: Frames, params: dict, context: ClipContext) -> Frames:
    rng = np.random.default_rng(params["seed"])
    num_frames, height = len(frames), frames.shape[1]
    t = np.arange(num_frames) / float(context.fps)
    phase = rng.uniform(0, 2 * math.pi)
    if params["pattern"] == "random":
        wave = rng.uniform(-1, 1, num_frames)
    elif params["pattern"] == "square":
        wave = np.sign(np.sin(2 * math.pi * params["hz"] * t + phase) + 1e-9)
    else:
        wave = np.sin(2 * math.pi * params["hz"] * t + phase)
    # Alternate the sign on consecutive frames when the drawn wave is too slow to flicker visibly.
    wave = np.where(np.abs(np.diff(wave, prepend=wave[0] - 1)) < 0.2, -wave, wave)
    tint = 1 + params["tint"] * rng.uniform(-1, 1, 3).astype(np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None, None] / height

    def flicker(frame: np.ndarray, index: int) -> np.ndarray:
        if params["pattern"] == "rolling":
            # Rolling-shutter banding under mains lighting: bright and dark bands move down the frame.
            gain = 1 + params["amplitude"] * np.sin(2 * math.pi * (rows / params["band"] - params["hz"] * t[index]) + phase)
        else:
            gain = 1 + params["amplitude"] * wave[index]
        return frame * (1 + (gain - 1) * tint)

    return _map_frames(frames, flicker)


def _with(sampler: Callable, **fixed) -> Callable[[float, np.random.Generator], dict]:
    return lambda severity, rng: sampler(severity, rng, **fixed)


DISTORTIONS: dict[str, Distortion] = {d.subtype: d for d in (
    Distortion("shaking", 0, _sample_shaking, _apply_shaking),
    Distortion("exposure blur", 1, _sample_exposure_blur, _apply_exposure_blur, needs_motion=True),
    Distortion("motion blur", 1, _sample_motion_blur, _apply_motion_blur),
    Distortion("shooting-system blur", 1, _sample_defocus, _apply_defocus),
    Distortion("gaussian blur", 1, _sample_gaussian_blur, _apply_gaussian_blur),
    Distortion("moire pattern", 2, _sample_moire, _apply_moire),
    Distortion("flickering", 2, _sample_flickering, _apply_flickering),
    Distortion("gaussian noise", 3, _sample_gaussian_noise, _apply_gaussian_noise),
    Distortion("pulse noise", 3, _sample_pulse_noise, _apply_pulse_noise),
    Distortion("stripe noise", 3, _sample_stripe_noise, _apply_stripe_noise),
    Distortion("low saturation", 4, _with(_sample_saturation, raise_it=False), _apply_saturation),
    Distortion("high saturation", 4, _with(_sample_saturation, raise_it=True), _apply_saturation),
    Distortion("over dark", 4, _with(_sample_exposure, darken=True), _apply_exposure),
    Distortion("over bright", 4, _with(_sample_exposure, darken=False), _apply_exposure),
    Distortion("low contrast", 4, _with(_sample_contrast, raise_it=False), _apply_contrast),
    Distortion("high contrast", 4, _with(_sample_contrast, raise_it=True), _apply_contrast),
    Distortion("ring artifact", 5, _sample_ring_artifact, _apply_ring_artifact),
    Distortion("resolution blur", 6, _sample_resolution_blur, _apply_resolution_blur),
    Distortion("lagging", 7, _sample_lagging, _apply_lagging, needs_motion=True),
    Distortion("compression blur", 8, _sample_compression_blur, _apply_codec),
    Distortion("compression artifact", 9, _sample_compression_artifact, _apply_codec),
    Distortion("square artifact", 10, _sample_square_artifact, _apply_square_artifact),
)}
"""Every specific subtype, keyed by its canonical name."""

# Pairs that cannot both be present (they undo each other).
_CONFLICTS = ({"low saturation", "high saturation"}, {"over dark", "over bright"}, {"low contrast", "high contrast"})

CLEAN_SHARE = 0.15
"""Share of videos without any distortion."""
COUNT_WEIGHTS = (0.5, 0.35, 0.15)
"""Probabilities of one, two and three distortions in a distorted video."""
SAME_TYPE_SHARE = 0.15
"""Chance that an added distortion shares a coarse type already present (dominant subtype then matters)."""


def sample_severity(rng: np.random.Generator) -> float:
    """One of five graded severities (0.2 ... 1.0) with a little jitter."""
    grade = int(rng.integers(1, 6))
    return float(np.clip(grade / 5 + rng.uniform(-0.07, 0.07), 0.1, 1.0))


def sample_distortions(rng: np.random.Generator, clean_share: float = CLEAN_SHARE) -> list[tuple[str, float]]:
    """(subtype, severity) pairs for one video: none (clean) or one to three distinct subtypes, mostly
    of different coarse types, each coarse type equally likely and each subtype within it too."""
    if rng.uniform() < clean_share:
        return []
    count = int(rng.choice(len(COUNT_WEIGHTS), p=COUNT_WEIGHTS)) + 1
    chosen: list[str] = []
    while len(chosen) < count:
        present = {COARSE_OF_SUBTYPE[s] for s in chosen}
        if present and rng.uniform() < SAME_TYPE_SHARE:
            coarse = _choice(rng, sorted(present))
        else:
            coarse = _choice(rng, [c for c in COARSE_TYPES if c not in present] or list(COARSE_TYPES))
        subtype = _choice(rng, SUBTYPES[coarse][:-1])
        if subtype in chosen or any({subtype, other} in _CONFLICTS for other in chosen):
            continue
        chosen.append(subtype)
    return [(subtype, sample_severity(rng)) for subtype in chosen]


SHUFFLED_ORDER_SHARE = 0.25
"""Share of distorted videos whose distortions are applied in a random order instead of the pipeline's:
real footage is edited, re-uploaded and filtered in any order, and a model should not rely on one."""


def apply_distortions(
    frames: Frames, applied: list[tuple[str, dict]], context: ClipContext, in_listed_order: bool = False
) -> Frames:
    """`frames` with each (subtype, params) applied, in pipeline order (capture, sensor, processing,
    scaling, transmission) whatever order `applied` lists them in, or with `in_listed_order` in the
    order listed."""
    ordered = applied if in_listed_order else sorted(applied, key=lambda item: DISTORTIONS[item[0]].stage)
    for subtype, params in ordered:
        frames = DISTORTIONS[subtype].apply(frames, params, context)
    return frames
