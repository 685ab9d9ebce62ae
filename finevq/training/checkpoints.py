"""Crash-safe folders of a run: every checkpoint and model export is written to a hidden staging folder
and renamed into place, so a run killed at any moment leaves the previous complete folder loadable."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from finevq.errors import CheckpointError

STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^step-(\d+)$")


@dataclass
class TrainerState:
    """Progress of a run, saved in each checkpoint: optimizer steps done, the best validation value
    and its step, the validation metric of every evaluation, and the best step's validation report."""

    step: int = 0
    best_step: int | None = None
    best_value: float | None = None
    evaluations: list[dict] = field(default_factory=list)
    best_report: dict | None = None

    def save(self, folder: Path) -> None:
        write_text_atomic(folder / STATE_FILE, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TrainerState:
        path = folder / STATE_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise CheckpointError(f"cannot read the trainer state {str(path)!r}: {error}") from None


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through a temporary file and a rename."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def staging_folder(final: Path) -> Path:
    """The empty hidden folder next to `final` where its new content is written."""
    staging = final.parent / f".{final.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def commit_folder(staging: Path, final: Path) -> None:
    """Put a completely written staging folder in place of `final`.

    An existing `final` is first renamed aside (and deleted after), so at every moment either the
    old or the new folder is complete under its name or under the aside name `recover_folder` restores."""
    aside = final.parent / f".{final.name}.old"
    shutil.rmtree(aside, ignore_errors=True)
    if final.exists():
        os.replace(final, aside)
    os.replace(staging, final)
    shutil.rmtree(aside, ignore_errors=True)


def recover_folder(final: Path) -> None:
    """Undo an interrupted `commit_folder`: restore the aside folder when `final` is missing, and drop
    a half-written staging folder."""
    aside = final.parent / f".{final.name}.old"
    if aside.exists() and not final.exists():
        os.replace(aside, final)
    shutil.rmtree(final.parent / f".{final.name}.staging", ignore_errors=True)


def checkpoint_folder(parent: Path, step: int) -> Path:
    return parent / f"step-{step:08d}"


def checkpoints(parent: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints under `parent` (those holding a trainer state), oldest first."""
    if not parent.is_dir():
        return []
    found = []
    for path in parent.iterdir():
        match = _CHECKPOINT.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_checkpoints(parent: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints; each is renamed to a hidden name before deletion,
    so a kill mid-delete never leaves a half-deleted folder that looks complete."""
    for _, path in checkpoints(parent)[:-keep]:
        doomed = parent / f".{path.name}.deleting"
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    for leftover in parent.glob(".step-*.deleting"):
        shutil.rmtree(leftover, ignore_errors=True)
