"""Video names from label files resolved safely against a video root, and the account of missing files.
A name may not leave the root: absolute paths and `..` components are label errors."""

from __future__ import annotations

import functools
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from finevq.errors import LabelError


@functools.lru_cache(maxsize=65536)
def safe_relative_name(name: str) -> str:
    """The name as a clean POSIX relative path; raises `LabelError` if it is empty or escapes the root."""
    cleaned = str(name).replace("\ufeff", "").strip().replace("\\", "/")
    path = PurePosixPath(cleaned)
    if not cleaned or cleaned in (".", "/"):
        raise LabelError(f"empty video name {name!r}")
    if path.is_absolute() or PureWindowsPath(cleaned).drive:
        raise LabelError(f"video name {name!r} is an absolute path; names must be relative to the video root")
    if ".." in path.parts:
        raise LabelError(f"video name {name!r} escapes the video root with '..'")
    return str(path)


def resolve_video(root: str | os.PathLike, names: tuple[str, ...]) -> tuple[str, bool]:
    """The absolute path of the first of `names` that exists under `root`, and whether one exists.

    When none exists, the path of the first name is returned with False."""
    root_path = Path(root).resolve()
    candidates = [root_path / safe_relative_name(name) for name in names]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate), True
    return str(candidates[0]), False


def video_root_listing(root: str | os.PathLike) -> list[str]:
    """Relative path, size and mtime of every file under `root`, sorted: what the cache keys on."""
    entries = []
    for folder, _, files in os.walk(root):
        for file_name in files:
            path = os.path.join(folder, file_name)
            stat = os.stat(path)
            entries.append(f"{os.path.relpath(path, root)}|{stat.st_size}|{stat.st_mtime_ns}")
    return sorted(entries)
