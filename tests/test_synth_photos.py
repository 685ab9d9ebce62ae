"""FineVD-Synth's photo sources: the bundled photos, Debian's wallpaper packages and folders of one's own,
each split 4:1:1 by name, reserved evaluation content refused, and videos filmed from them end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import finevq.data.synth.photos as photos
from finevq.cli import main
from finevq.data.synth import SceneOptions, SynthConfig, generate
from finevq.data.synth.photos import MAX_PHOTO_SIDE, PHOTO_SPLITS, catalog, load_photo
from finevq.errors import ConfigError


def write_photos(folder: Path, count: int, size: tuple[int, int] = (320, 240)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        picture = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        Image.fromarray(np.kron(picture, np.ones((8, 8, 1), dtype=np.uint8))).save(folder / f"photo_{index:02d}.jpg")
    return folder


def test_a_folder_of_photos_is_split_4_1_1_by_name_stably(tmp_path):
    folder = write_photos(tmp_path / "mine", 60)
    first = catalog((str(folder),))
    assert len(first) == 60 and all(Path(name).parent == folder.resolve() for name in first)
    shares = {split: sum(s == split for s in first.values()) / 60 for split in ("train", "validation", "test")}
    assert 0.5 < shares["train"] < 0.8 and shares["validation"] > 0.05 and shares["test"] > 0.05
    moved = write_photos(tmp_path / "elsewhere", 60)
    assert [first[str(folder.resolve() / n)] for n in sorted(p.name for p in folder.iterdir())] == \
        [catalog((str(moved),))[str(moved.resolve() / n)] for n in sorted(p.name for p in moved.iterdir())]
    both = catalog(("bundled", str(folder)))
    assert set(PHOTO_SPLITS) <= set(both) and len(both) == 60 + len(PHOTO_SPLITS)


def test_missing_empty_reserved_and_unknown_sources_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="not a folder"):
        catalog((str(tmp_path / "absent"),))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no .jpg"):
        catalog((str(tmp_path / "empty"),))
    reserved = write_photos(tmp_path / "reserved", 3)
    monkeypatch.setattr(photos, "RESERVED", (reserved.resolve(),))
    with pytest.raises(ConfigError, match="reserved for independent evaluation"):
        SceneOptions(photo_sources=("bundled", str(reserved / ".")))
    gone = photos.DebianSource("plasma-workspace-wallpapers", str(tmp_path / "nowhere"), "GPL-2+", True)
    monkeypatch.setitem(photos.DEBIAN_SOURCES, "plasma-workspace-wallpapers", gone)
    with pytest.raises(ConfigError, match=r"not installed \(apt-get install plasma-workspace-wallpapers\)"):
        catalog(("plasma-workspace-wallpapers",))


def test_a_package_sharing_its_folder_films_only_its_listed_photos(tmp_path, monkeypatch, request):
    catalog.cache_clear()
    request.addfinalizer(catalog.cache_clear)  # the real packages' catalogs are not the fakes'
    shared = write_photos(tmp_path / "backgrounds", 4)
    listed = photos.DebianSource("lomiri-wallpapers-20.04", str(shared), "CC-BY-SA-3.0",
                                 files=("photo_02.jpg", "photo_00.jpg"))
    monkeypatch.setitem(photos.DEBIAN_SOURCES, "lomiri-wallpapers-20.04", listed)
    names = catalog(("lomiri-wallpapers-20.04",))
    assert sorted(names) == ["lomiri-wallpapers-20.04/photo_00.jpg", "lomiri-wallpapers-20.04/photo_02.jpg"]
    assert load_photo("lomiri-wallpapers-20.04/photo_02.jpg").shape == (240, 320, 3)
    elsewhere = photos.DebianSource("lomiri-wallpapers-16.04", str(shared), "CC-BY-4.0", files=("absent.jpg",))
    monkeypatch.setitem(photos.DEBIAN_SOURCES, "lomiri-wallpapers-16.04", elsewhere)
    with pytest.raises(ConfigError, match=r"not installed \(apt-get install lomiri-wallpapers-16.04\)"):
        catalog(("lomiri-wallpapers-16.04",))


def test_the_mate_backgrounds_kept_for_evaluation_are_reserved():
    assert Path("/usr/share/backgrounds/mate") in photos.RESERVED


def test_gnome_backgrounds_are_read_downscaled():
    names = catalog(("gnome-backgrounds",))
    assert len(names) >= 10 and all(name.startswith("gnome-backgrounds/") and name.endswith(".webp") for name in names)
    picture = load_photo(sorted(names)[0])
    assert picture.dtype == np.uint8 and picture.shape[2] == 3 and max(picture.shape[:2]) <= MAX_PHOTO_SIDE


def test_synth_films_a_folder_of_photos_and_resumes_only_with_the_same_sources(tmp_path, capsys):
    folder = write_photos(tmp_path / "mine", 30, size=(400, 304))
    out = tmp_path / "synth"
    args = ["synth", "--out", str(out), "--num-videos", "6", "--seed", "2", "--resolution", "64", "96",
            "--duration", "0.5", "0.8", "--max-frames", "6", "--photos", f"bundled,{folder}"]
    assert main(args) == 0
    records = [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]
    filmed = {r["content"].split(":", 1)[1] for r in records if r["content"].startswith("photo:")}
    assert filmed <= set(catalog(("bundled", str(folder))))
    assert any(name.startswith(str(folder.resolve())) for name in filmed), filmed
    card = (out / "README.md").read_text()
    assert f"--photos bundled,{folder}" in card and f"the folder {folder}" in card
    assert main(args) == 0  # the same sources: resumed (nothing to do)
    with pytest.raises(ConfigError, match="different settings"):
        generate(out, SynthConfig(num_videos=6, seed=2, scene=SceneOptions(
            min_side=64, max_side=96, min_duration=0.5, max_duration=0.8, max_frames=6)))
