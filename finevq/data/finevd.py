"""The FineVD loader: the published conversation files and score tables of a FineVD-format folder read
into a cached `datasets.DatasetDict` (`scores` or `qa` config) with train, validation and test splits."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets

from finevq.data.builder import LabelBuilder, build_labels
from finevq.data.folder import finevd_files, read_finevd
from finevq.data.records import LabelSet


class FineVD(LabelBuilder):
    """`datasets` builder of FineVD-format label files (configs `scores` and `qa`)."""

    def read_labels(self, options: dict) -> LabelSet:
        return read_finevd(self.config.sources, **options)


def load_finevd(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    config: str = "scores",
    video_root: str | os.PathLike | None = None,
    missing: str = "skip",
    split_ratios: Sequence[float] = (4, 1, 1),
    split_seed: int = 42,
    score_range: tuple[float, float] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """FineVD labels as a `DatasetDict` with train / validation / test splits, cached.

    `source` is a FineVD-format folder or label files; `video_root` defaults to `<folder>/videos` (or
    the first file's folder). Videos missing on disk are skipped (`missing="skip"`, logged), kept
    (`"keep"`) or an error (`"error"`). `split_ratios` (train:validation:test) and `split_seed` apply
    when no split is published; a published train/test gets a validation part carved out of train."""
    files = finevd_files(source)
    if video_root is None:
        first = Path(source if isinstance(source, (str, os.PathLike)) else source[0])
        video_root = first / "videos" if first.is_dir() else first.parent
    options = {
        "split_ratios": list(split_ratios),
        "split_seed": split_seed,
        "score_range": list(score_range) if score_range else None,
    }
    return build_labels(FineVD, config, files, video_root, missing, cache_dir, options)
