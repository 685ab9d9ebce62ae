"""Clean source clips: photos of the catalog and procedural scenes filmed by a moving virtual camera,
with objects (patches of other photos, sprites, shapes) moving on their own paths."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from finevq.data.synth.photos import BUNDLED, catalog, load_photo, require_photo_packages
from finevq.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "validation", "test")
SPLIT_WEIGHTS: tuple[float, ...] = (4.0, 1.0, 1.0)
"""The paper's 4:1:1 train/validation/test proportions."""


PROCEDURAL_KINDS: tuple[str, ...] = ("fractal", "shapes", "texture")
PROCEDURAL_SHARE = 0.3
"""Share of videos whose background is a procedural scene (fresh random scene per video)."""

FPS_CHOICES: tuple[Fraction, ...] = (
    Fraction(24000, 1001),
    Fraction(24),
    Fraction(25),
    Fraction(30000, 1001),
    Fraction(30),
    Fraction(50),
    Fraction(60000, 1001),
    Fraction(60),
)
ASPECTS: tuple[float, ...] = (16 / 9, 4 / 3, 1.0, 3 / 4, 9 / 16, 21 / 9, 3 / 2, 2 / 3)
CAMERA_KINDS: tuple[str, ...] = ("static", "pan", "zoom", "rotate", "handheld", "pan+zoom")
MOVING_CAMERA_KINDS: tuple[str, ...] = ("pan", "zoom", "pan+zoom")
_MIN_SIDE = 64


@dataclass(frozen=True)
class SceneOptions:
    """Ranges the scene sampler draws from (short side in pixels, fps, seconds) and a frame cap."""

    min_side: int = 240
    max_side: int = 480
    min_fps: float = 24.0
    max_fps: float = 60.0
    min_duration: float = 2.0
    max_duration: float = 10.0
    max_frames: int | None = None
    procedural_share: float = PROCEDURAL_SHARE
    # Where the filmed photos come from (finevq.data.synth.photos.catalog): "bundled", Debian packages, folders.
    photo_sources: tuple[str, ...] = (BUNDLED,)

    def __post_init__(self) -> None:
        ranges = {"resolution": (self.min_side, self.max_side, _MIN_SIDE), "fps": (self.min_fps, self.max_fps, 1),
                  "duration": (self.min_duration, self.max_duration, 0.01)}
        for name, (low, high, floor) in ranges.items():
            if not floor <= low <= high:
                raise ConfigError(f"--{name} needs {floor} <= MIN <= MAX, got {low} {high}")
        if self.max_frames is not None and self.max_frames < 2:
            raise ConfigError(f"--max-frames must be at least 2, got {self.max_frames}")
        if not 0 <= self.procedural_share <= 1:
            raise ConfigError(f"procedural_share must be in [0, 1], got {self.procedural_share}")
        object.__setattr__(self, "photo_sources", tuple(self.photo_sources))
        catalog(self.photo_sources)  # a missing, empty or reserved source fails here, before any video

    @classmethod
    def from_ranges(cls, resolution: tuple[int, int] | None = None, fps: tuple[float, float] | None = None,
                    duration: tuple[float, float] | None = None, max_frames: int | None = None,
                    photo_sources: tuple[str, ...] | None = None) -> SceneOptions:
        """The options of `finevq synth`'s (MIN, MAX) ranges: short side, frame rate, seconds; a range
        (or the photo sources) not given keeps the default."""
        ranges = {"side": resolution, "fps": fps, "duration": duration}
        given = {f"{end}_{name}": value for name, pair in ranges.items() if pair for end, value in zip(("min", "max"), pair)}
        if photo_sources:
            given["photo_sources"] = tuple(photo_sources)
        return cls(**given, max_frames=max_frames)

    def fps_choices(self) -> tuple[Fraction, ...]:
        chosen = tuple(f for f in FPS_CHOICES if self.min_fps - 0.01 <= float(f) <= self.max_fps + 0.01)
        return chosen or (Fraction(round(self.min_fps)),)


@dataclass
class Scene:
    """Everything needed to render one clean clip; JSON-serialisable through `to_dict`."""

    content: str
    seed: int
    width: int
    height: int
    fps: Fraction
    num_frames: int
    camera_kind: str
    camera: dict
    objects: list[dict] = field(default_factory=list)
    flip: bool = False

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fps"] = [self.fps.numerator, self.fps.denominator]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        return cls(**{**data, "fps": Fraction(*data["fps"])})


@dataclass
class Clip:
    """Rendered clean frames (T, H, W, 3) uint8 with the per-frame content motion (T, 2) in pixels."""

    frames: np.ndarray
    fps: Fraction
    motion: np.ndarray


@functools.lru_cache(maxsize=None)
def load_sprites() -> tuple[tuple[str, np.ndarray], ...]:
    """Bundled RGBA images with transparency, used as moving objects: (name, (H, W, 4) uint8)."""
    require_photo_packages()
    import matplotlib
    import skimage.data

    sample_dir = f"{matplotlib.get_data_path()}/sample_data"
    sprites = [("skimage_logo", skimage.data.logo())]
    for name in ("Minduka_Present_Blue_Pack.png", "logo2.png"):
        sprites.append((name.split(".")[0], np.asarray(Image.open(f"{sample_dir}/{name}").convert("RGBA"))))
    return tuple(sprites)


def photos_of_split(split: str, sources: tuple[str, ...] = (BUNDLED,)) -> tuple[str, ...]:
    return tuple(name for name, photo_split in catalog(tuple(sources)).items() if photo_split == split)


def sample_split(rng: np.random.Generator) -> str:
    weights = np.asarray(SPLIT_WEIGHTS) / sum(SPLIT_WEIGHTS)
    return SPLITS[int(rng.choice(len(SPLITS), p=weights))]


def _even(value: float) -> int:
    return max(_MIN_SIDE, int(value) // 2 * 2)


def _random_palette(rng: np.random.Generator, count: int) -> np.ndarray:
    hues = (rng.uniform() + np.sort(rng.uniform(0, 0.6, count))) % 1.0
    saturation = rng.uniform(0.25, 0.85, count)
    value = rng.uniform(0.2, 0.95, count)
    hsv = np.stack([hues, saturation, value], axis=1)[None].astype(np.float32)
    rgb = Image.fromarray((hsv * 255).astype(np.uint8), mode="HSV").convert("RGB")
    return np.asarray(rgb, dtype=np.float32)[0]


def _fractal_field(rng: np.random.Generator, height: int, width: int, beta: float) -> np.ndarray:
    """A 1/f^beta noise field in [0, 1]: cloud, terrain and foliage-like detail at every scale."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius ** (beta / 2)
    spectrum[0, 0] = 0
    field_ = np.fft.irfft2(spectrum, s=(height, width)).astype(np.float32)
    low, high = np.percentile(field_, [1, 99])
    return np.clip((field_ - low) / max(high - low, 1e-6), 0, 1)


def _palette_map(values: np.ndarray, palette: np.ndarray) -> np.ndarray:
    positions = np.linspace(0, 1, len(palette))
    return np.stack([np.interp(values, positions, palette[:, c]) for c in range(3)], axis=-1)


def _fractal_canvas(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    hue_field = _fractal_field(rng, height, width, rng.uniform(2.0, 3.2))
    shade_field = _fractal_field(rng, height, width, rng.uniform(1.4, 2.2))
    colour = _palette_map(hue_field, _random_palette(rng, int(rng.integers(3, 6))))
    shade = 0.55 + 0.6 * shade_field[..., None]
    return np.clip(colour * shade, 0, 255).astype(np.uint8)


def _shapes_canvas(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gradient background with antialiased shapes, lines and text (drawn at 2x, then reduced)."""
    palette = _random_palette(rng, 6)
    ramp = np.linspace(0, 1, 2 * width)[None, :] * math.cos(rng.uniform(0, math.pi))
    ramp = ramp + np.linspace(0, 1, 2 * height)[:, None] * math.sin(rng.uniform(0, math.pi))
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    image = Image.fromarray(_palette_map(ramp, palette[:3]).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(12, 50))):
        colour = tuple(int(c) for c in _random_palette(rng, 1)[0])
        x0, y0 = rng.uniform(0, 2 * width), rng.uniform(0, 2 * height)
        size = rng.uniform(0.02, 0.25) * 2 * min(width, height)
        kind = rng.integers(0, 5)
        if kind == 0:
            draw.ellipse([x0, y0, x0 + size, y0 + size * rng.uniform(0.4, 1.6)], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + size * rng.uniform(0.5, 2), y0 + size], fill=colour)
        elif kind == 2:
            points = [(x0 + rng.uniform(-size, size), y0 + rng.uniform(-size, size)) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(points, fill=colour)
        elif kind == 3:
            draw.line([x0, y0, x0 + rng.uniform(-3, 3) * size, y0 + rng.uniform(-3, 3) * size], fill=colour,
                      width=int(rng.integers(2, 12)))
        else:
            draw.text((x0, y0), "".join(chr(int(c)) for c in rng.integers(65, 91, 8)), fill=colour,
                      font_size=int(rng.integers(16, 90)))
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))


def _texture_canvas(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A grey natural texture (brick, grass, gravel) tiled and tinted by a smooth colour field."""
    import skimage.data

    texture = getattr(skimage.data, str(rng.choice(["brick", "grass", "gravel"])))()
    scale = rng.uniform(0.6, 1.4)
    tile = Image.fromarray(texture).resize((int(texture.shape[1] * scale), int(texture.shape[0] * scale)),
                                           Image.Resampling.LANCZOS)
    reps_y, reps_x = -(-height // tile.height), -(-width // tile.width)
    grey = np.tile(np.asarray(tile, dtype=np.float32), (reps_y, reps_x))[:height, :width] / 255.0
    tint = _palette_map(_fractal_field(rng, height, width, 3.0), _random_palette(rng, 3))
    return np.clip(tint * (0.35 + 0.9 * grey[..., None]), 0, 255).astype(np.uint8)


_PROCEDURAL = {"fractal": _fractal_canvas, "shapes": _shapes_canvas, "texture": _texture_canvas}


def _canvas(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    kind, name = scene.content.split(":", 1)
    if kind == "photo":
        image = load_photo(name)
    else:
        size = scene.camera["canvas_size"]
        image = _PROCEDURAL[name](rng, size[1], size[0])
    return image[:, ::-1] if scene.flip and kind == "photo" else image


def _view_extent(width: float, height: float, camera: dict) -> tuple[float, float]:
    """Canvas pixels the camera's view of a width x height output covers at its widest zoom and turn."""
    theta, scale = camera["rotation_amplitude"], math.exp(camera["zoom_amplitude"])
    return (scale * (math.cos(theta) * width + math.sin(theta) * height),
            scale * (math.sin(theta) * width + math.cos(theta) * height))


def _fit_output(canvas_w: int, canvas_h: int, width: float, height: float, camera: dict) -> tuple[int, int]:
    """The largest (even) output size of the requested aspect whose camera path stays on the canvas."""
    extent_x, extent_y = _view_extent(width, height, camera)
    slack = camera["slack"]
    shrink = min(1.0, canvas_w * (1 - slack) / extent_x, canvas_h * (1 - slack) / extent_y)
    return _even(width * shrink), _even(height * shrink)


def _sample_camera(rng: np.random.Generator, kind: str, fps: float) -> dict:
    moving = kind != "static"
    return {
        "kind": kind,
        # Source pixels per output pixel at the start; >= 1 so the clean clip is never upscaled.
        "prescale": float(rng.uniform(1.0, 1.3)),
        "zoom_amplitude": float(rng.uniform(0.05, 0.15)) if "zoom" in kind else 0.0,
        "zoom_omega": float(2 * math.pi * rng.uniform(0.1, 0.4) / fps),
        "rotation_amplitude": float(rng.uniform(0.02, 0.08)) if kind == "rotate" else 0.0,
        "rotation_omega": float(2 * math.pi * rng.uniform(0.1, 0.5) / fps),
        "speed": float(rng.uniform(1.5, 7.0) if kind in MOVING_CAMERA_KINDS else rng.uniform(0.0, 0.6)),
        "direction": float(rng.uniform(0, 2 * math.pi)),
        "jitter": float(rng.uniform(0.5, 2.0) if kind == "handheld" else rng.uniform(0.0, 0.4)),
        "jitter_hz": [float(x) for x in rng.uniform(0.3, 1.5, 4)],
        "phase": [float(x) for x in rng.uniform(0, 2 * math.pi, 8)],
        "slack": float(rng.uniform(0.12, 0.3)) if moving else 0.04,
    }


def _sample_object(rng: np.random.Generator, others: tuple[str, ...], width: int, height: int, num_frames: int) -> dict:
    size = float(rng.uniform(0.12, 0.35) * min(width, height))
    source_kind = str(rng.choice(["photo", "sprite", "shape"], p=[0.6, 0.15, 0.25]))
    source_kind = "shape" if source_kind == "photo" and not others else source_kind
    speed = rng.uniform(0.5, 6.0)
    angle = rng.uniform(0, 2 * math.pi)
    return {
        "source": source_kind,
        "photo": str(rng.choice(others)) if source_kind == "photo" and others else None,
        "sprite": int(rng.integers(0, 3)),
        "crop": [float(x) for x in rng.uniform(0, 1, 2)],
        "size": size,
        "aspect": float(rng.uniform(0.6, 1.6)),
        "mask": str(rng.choice(["ellipse", "rounded", "rectangle"])),
        "start": [float(rng.uniform(-0.1, 1.0) * width), float(rng.uniform(-0.1, 1.0) * height)],
        "velocity": [float(speed * math.cos(angle)), float(speed * math.sin(angle))],
        "wobble": [float(rng.uniform(0, 8)), float(2 * math.pi * rng.uniform(0.2, 2.0) / max(num_frames, 1))],
        "seed": int(rng.integers(0, 2**31)),
    }


def sample_scene(rng: np.random.Generator, split: str, options: SceneOptions, moving: bool = False) -> Scene:
    """A random scene of `split`'s content (held-out photos stay in their split); `moving` forces
    a moving camera (distortions like lagging and exposure blur only show on moving content)."""
    fps = options.fps_choices()[int(rng.integers(0, len(options.fps_choices())))]
    duration = rng.uniform(options.min_duration, options.max_duration)
    num_frames = max(2, round(duration * float(fps)))
    if options.max_frames:
        num_frames = min(num_frames, options.max_frames)
    kind = str(rng.choice(MOVING_CAMERA_KINDS if moving else CAMERA_KINDS))
    camera = _sample_camera(rng, kind, float(fps))
    short = rng.uniform(options.min_side, options.max_side)
    aspect = float(rng.choice(ASPECTS)) if rng.uniform() < 0.85 else float(rng.uniform(0.5, 2.2))
    width, height = (short * aspect, short) if aspect >= 1 else (short, short / aspect)
    photos = photos_of_split(split, options.photo_sources)
    if rng.uniform() < options.procedural_share or not photos:
        content = f"procedural:{rng.choice(PROCEDURAL_KINDS)}"
        width, height = _even(width), _even(height)
        grow = 1 + camera["slack"] + rng.uniform(0.05, 0.5)
        camera["canvas_size"] = [int(extent * grow) + 8 for extent in _view_extent(width, height, camera)]
    else:
        content = f"photo:{rng.choice(photos)}"
        photo = load_photo(content.split(":", 1)[1])
        canvas_h, canvas_w = (int(x / camera["prescale"]) for x in photo.shape[:2])
        width, height = _fit_output(canvas_w, canvas_h, width, height, camera)
        camera["canvas_size"] = [canvas_w, canvas_h]
    count = int(rng.choice(4, p=[0.3, 0.35, 0.23, 0.12]))
    objects = [_sample_object(rng, photos, width, height, num_frames) for _ in range(count)]
    return Scene(content, int(rng.integers(0, 2**31)), int(width), int(height), fps, int(num_frames), kind, camera,
                 objects, bool(rng.uniform() < 0.5))


def _camera_path(scene: Scene, canvas_w: int, canvas_h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame canvas centre (T, 2), scale (T,) and rotation (T,) of the virtual camera."""
    camera, t = scene.camera, np.arange(scene.num_frames, dtype=np.float64)
    phase = camera["phase"]
    scale = np.exp(camera["zoom_amplitude"] * (1 + np.sin(camera["zoom_omega"] * t + phase[0])) / 2)
    theta = camera["rotation_amplitude"] * np.sin(camera["rotation_omega"] * t + phase[1])
    extent_x = scale.max() * (math.cos(abs(theta).max()) * scene.width + math.sin(abs(theta).max()) * scene.height) / 2
    extent_y = scale.max() * (math.sin(abs(theta).max()) * scene.width + math.cos(abs(theta).max()) * scene.height) / 2
    room = np.array([max(canvas_w / 2 - extent_x - 2, 0.0), max(canvas_h / 2 - extent_y - 2, 0.0)])
    # A pan runs along `direction` at `speed` output pixels per frame, bouncing back inside the room
    # the canvas leaves (a triangle wave), so long clips keep moving without leaving the photo.
    direction = np.array([math.cos(camera["direction"]), math.sin(camera["direction"])])
    travel = camera["speed"] * t[:, None] * direction[None, :]
    start = (np.array(phase[2:4]) / (2 * math.pi) * 2 - 1) * room
    span = np.maximum(2 * room, 1e-6)
    offset = np.abs((travel + start + room) % (2 * span) - span) - room
    offset = np.where(room > 0, offset, 0.0)
    seconds = t / float(scene.fps)
    jitter = camera["jitter"] * np.stack([
        np.sin(2 * math.pi * camera["jitter_hz"][0] * seconds + phase[4]) + np.sin(2 * math.pi * camera["jitter_hz"][1] * seconds + phase[5]),
        np.sin(2 * math.pi * camera["jitter_hz"][2] * seconds + phase[6]) + np.sin(2 * math.pi * camera["jitter_hz"][3] * seconds + phase[7]),
    ], axis=1) / 2
    jitter = np.clip(jitter, -np.minimum(room, 2.0), np.minimum(room, 2.0))
    centre = np.array([canvas_w / 2, canvas_h / 2]) + np.clip(offset + jitter, -room, room)
    return centre, scale, theta


def _object_sprite(spec: dict, scene_canvas_source: str) -> Image.Image:
    rng = np.random.default_rng(spec["seed"])
    width = max(8, int(spec["size"] * math.sqrt(spec["aspect"])))
    height = max(8, int(spec["size"] / math.sqrt(spec["aspect"])))
    if spec["source"] == "sprite":
        _, rgba = load_sprites()[spec["sprite"]]
        return Image.fromarray(rgba).resize((width, height), Image.Resampling.LANCZOS)
    if spec["source"] == "photo" and spec["photo"] != scene_canvas_source:
        photo = load_photo(spec["photo"])
        crop_h, crop_w = min(photo.shape[0], height * 2), min(photo.shape[1], width * 2)
        y0 = int(spec["crop"][1] * (photo.shape[0] - crop_h))
        x0 = int(spec["crop"][0] * (photo.shape[1] - crop_w))
        patch = Image.fromarray(photo[y0:y0 + crop_h, x0:x0 + crop_w]).resize((width, height), Image.Resampling.LANCZOS)
    else:
        patch = Image.fromarray(_fractal_canvas(rng, height, width))
    mask = Image.new("L", (width * 2, height * 2), 0)
    draw = ImageDraw.Draw(mask)
    box = [2, 2, width * 2 - 3, height * 2 - 3]
    if spec["mask"] == "ellipse":
        draw.ellipse(box, fill=255)
    elif spec["mask"] == "rounded":
        draw.rounded_rectangle(box, radius=min(width, height) // 2, fill=255)
    else:
        draw.rectangle(box, fill=255)
    mask = mask.resize((width, height), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(0.7))
    patch.putalpha(mask)
    return patch


def render(scene: Scene) -> Clip:
    """The clean frames of `scene`: the camera's view of the canvas with the objects composited."""
    rng = np.random.default_rng(scene.seed)
    canvas = _canvas(scene, rng)
    canvas_w, canvas_h = scene.camera["canvas_size"]
    source = Image.fromarray(np.ascontiguousarray(canvas))
    if source.size != (canvas_w, canvas_h):
        source = source.resize((canvas_w, canvas_h), Image.Resampling.LANCZOS)
    centre, scale, theta = _camera_path(scene, canvas_w, canvas_h)
    sprites = [_object_sprite(spec, scene.content.split(":", 1)[1]) for spec in scene.objects]
    frames = np.empty((scene.num_frames, scene.height, scene.width, 3), dtype=np.uint8)
    half_w, half_h = scene.width / 2, scene.height / 2
    for index in range(scene.num_frames):
        cos, sin, s = math.cos(theta[index]), math.sin(theta[index]), scale[index]
        a, b, d, e = s * cos, -s * sin, s * sin, s * cos
        coefficients = (a, b, centre[index, 0] - a * half_w - b * half_h, d, e, centre[index, 1] - d * half_w - e * half_h)
        frame = source.transform((scene.width, scene.height), Image.Transform.AFFINE, coefficients,
                                 resample=Image.Resampling.BICUBIC)
        for spec, sprite in zip(scene.objects, sprites):
            x = spec["start"][0] + spec["velocity"][0] * index + spec["wobble"][0] * math.sin(spec["wobble"][1] * index)
            y = spec["start"][1] + spec["velocity"][1] * index + spec["wobble"][0] * math.cos(spec["wobble"][1] * index)
            frame.paste(sprite, (int(round(x - sprite.width / 2)), int(round(y - sprite.height / 2))), sprite)
        frames[index] = np.asarray(frame)
    motion = np.zeros((scene.num_frames, 2))
    if scene.num_frames > 1:
        step = np.diff(centre, axis=0) / scale[1:, None]
        motion[1:] = -step
        motion[0] = motion[1]
    return Clip(frames, scene.fps, motion)
