"""Seeded, reproducible train/validation/test splits of video names, and the benchmark protocols.
There is always a validation split for model selection; the test split never picks a checkpoint."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from finevq.errors import LabelError

TRAIN, VALIDATION, TEST = "train", "validation", "test"

_SPLIT_ALIASES = {
    "train": TRAIN,
    "training": TRAIN,
    "val": VALIDATION,
    "valid": VALIDATION,
    "validation": VALIDATION,
    "dev": VALIDATION,
    "test": TEST,
    "testing": TEST,
}


def canonical_split(name: str) -> str:
    """train / validation / test from the spellings used in file names and split columns."""
    found = _SPLIT_ALIASES.get(str(name).strip().lower())
    if found is None:
        raise LabelError(f"unknown split {name!r}; known: {', '.join(sorted(_SPLIT_ALIASES))}")
    return found


def _counts(total: int, ratios: Sequence[float]) -> list[int]:
    """Largest-remainder sizes of `total` items cut by `ratios`; no part is empty when total allows."""
    weight = sum(ratios)
    exact = [total * r / weight for r in ratios]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    for i, count in enumerate(counts):
        if count == 0 and ratios[i] > 0 and total >= len(ratios):
            counts[i] = 1
            counts[counts.index(max(counts))] -= 1
    return counts


def seeded_split(
    names: Iterable[str], ratios: Sequence[float], seed: int, split_names: Sequence[str] = (TRAIN, VALIDATION, TEST)
) -> dict[str, str]:
    """Video name -> split, shuffling the sorted names with `seed` and cutting them by `ratios`."""
    if len(ratios) != len(split_names) or any(r < 0 for r in ratios) or not sum(ratios) > 0:
        raise LabelError(f"split ratios {tuple(ratios)} do not fit the splits {tuple(split_names)}")
    ordered = sorted(set(names))
    random.Random(seed).shuffle(ordered)
    assignment, start = {}, 0
    for split, count in zip(split_names, _counts(len(ordered), ratios)):
        assignment.update({name: split for name in ordered[start : start + count]})
        start += count
    return assignment


def carve_validation(assignment: dict[str, str], fraction: float, seed: int) -> dict[str, str]:
    """A copy of `assignment` in which a seeded `fraction` of the train videos moved to validation."""
    if not 0 < fraction < 1:
        raise LabelError(f"validation fraction must be in (0, 1), got {fraction}")
    train = [name for name, split in assignment.items() if split == TRAIN]
    carved = seeded_split(train, (1 - fraction, fraction), seed, (TRAIN, VALIDATION))
    return {**assignment, **carved}


def complete_splits(
    known: dict[str, str | None], ratios: Sequence[float] = (4, 1, 1), seed: int = 42
) -> dict[str, str]:
    """Every video's split: the published ones kept, a validation part carved out of train if none is
    published, and a seeded split by `ratios` (train:validation:test) when nothing is published.

    Videos without a published split while others have one join the train pool."""
    published = {name: split for name, split in known.items() if split}
    if not published:
        return seeded_split(known, ratios, seed)
    assignment = {name: published.get(name, TRAIN) for name in known}
    if VALIDATION in assignment.values():
        return assignment
    if len(ratios) != 3:
        raise LabelError(f"split ratios must be (train, validation, test), got {tuple(ratios)}")
    return carve_validation(assignment, ratios[1] / (ratios[0] + ratios[1]), seed)


def protocol_seed(index: int) -> int:
    """Seed of the `index`-th (0-based) of the 10 random splits papers use: 42 * (index + 1)."""
    if not 0 <= index:
        raise LabelError(f"split index must be >= 0, got {index}")
    return 42 * (index + 1)


def random_protocol_split(
    names: Iterable[str], index: int, train_fraction: float = 0.8, validation_fraction: float = 0.2
) -> dict[str, str]:
    """The `index`-th seeded train/test split (80/20 by default) with validation carved out of train."""
    seed = protocol_seed(index)
    assignment = seeded_split(names, (train_fraction, 1 - train_fraction), seed, (TRAIN, TEST))
    return carve_validation(assignment, validation_fraction, seed)
