"""What `finevq score` is asked to score: command-line paths expanded into a list of video paths
(files as given, folders searched recursively by video extension, listing files read line by line)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from finevq.errors import ConfigError

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".wmv", ".mpg", ".mpeg", ".ts", ".mts",
    ".m2ts", ".3gp", ".ogv", ".y4m", ".yuv",
})
"""Suffixes (lower case) of the files a folder search picks up."""

LISTING_EXTENSIONS = frozenset({".txt", ".list", ".lst"})
"""A file with one of these suffixes is a list of paths (one a line; blank lines and # comments skipped)."""


def _folder_videos(folder: Path) -> list[str]:
    """Video files under `folder`, recursively, sorted; hidden files and folders are skipped."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        found += [
            os.path.join(root, name) for name in sorted(files)
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS
        ]
    return found


def _listed_paths(listing: Path) -> list[str]:
    """The paths a listing file names; relative ones are relative to the listing's folder."""
    try:
        lines = listing.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the list of videos {str(listing)!r}: {error}") from None
    entries = [line.strip() for line in lines]
    return [
        entry if os.path.isabs(entry) else os.path.join(os.path.dirname(listing), entry)
        for entry in entries if entry and not entry.startswith("#")
    ]


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Video paths, in order and without repeats: a folder becomes the video files under it, a listing
    file (.txt/.list/.lst) the paths it names (folders in it are searched too), anything else stays as
    given, existing or not (a missing or unreadable video fails on its own row, not the whole run)."""
    expanded: dict[str, None] = {}
    pending = [os.fspath(p) for p in paths]
    seen_listings: set[str] = set()
    while pending:
        path = pending.pop(0)
        if os.path.isdir(path):
            expanded.update(dict.fromkeys(_folder_videos(Path(path))))
        elif Path(path).suffix.lower() in LISTING_EXTENSIONS and os.path.isfile(path):
            real = os.path.realpath(path)
            if real not in seen_listings:  # a listing read once (also guards against one naming itself)
                seen_listings.add(real)
                pending[:0] = _listed_paths(Path(path))
        else:
            expanded[path] = None
    return list(expanded)
