"""The cached `datasets` builder every label loader shares: records from a reader become `scores` or `qa`
rows, cached under a fingerprint of the label files' contents, the video folder and the options."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import datasets

from finevq.data.features import QA_FEATURES, SCORES_FEATURES
from finevq.data.paths import resolve_video, video_root_listing
from finevq.data.records import LabelSet, QuestionRecord, ScoreRecord
from finevq.errors import ConfigError, LabelError, VideoError
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, mos_to_level

logger = logging.getLogger(__name__)

CONFIG_NAMES = ("scores", "qa")
MISSING_POLICIES = ("skip", "error", "keep")
_FORMAT_VERSION = "1.2.0"  # bump when rows change for the same inputs, so old caches are not reused
_SPLIT_ORDER = ("train", "validation", "test")


@dataclass
class LabelConfig(datasets.BuilderConfig):
    """What to read: label files, the video root, what to do with missing videos, reader options (JSON)."""

    sources: tuple[str, ...] = ()
    video_root: str | None = None
    missing: str = "skip"
    options: str = "{}"


class LabelBuilder(datasets.GeneratorBasedBuilder):
    """Base builder: subclasses implement `read_labels(options)`; this class writes the rows, whose
    `source` column is the builder's `dataset_name` (the module name unless given)."""

    BUILDER_CONFIG_CLASS = LabelConfig
    BUILDER_CONFIGS = [LabelConfig(name=name, version=datasets.Version(_FORMAT_VERSION)) for name in CONFIG_NAMES]
    DEFAULT_CONFIG_NAME = "scores"
    DEFAULT_WRITER_BATCH_SIZE = 1000  # rows hold video paths, not bytes: datasets' 10 rows per batch for Video is slow

    def read_labels(self, options: dict) -> LabelSet:
        raise NotImplementedError(f"{type(self).__name__} must implement read_labels")

    def _info(self) -> datasets.DatasetInfo:
        features = QA_FEATURES if self.config.name == "qa" else SCORES_FEATURES
        return datasets.DatasetInfo(features=features)

    def _split_generators(self, dl_manager):
        labels = self.read_labels(json.loads(self.config.options))
        root = self.config.video_root
        located = {
            record.name: resolve_video(root, (record.name, *record.alternatives)) for record in labels.scores
        }
        missing = sorted(name for name, (_, exists) in located.items() if not exists)
        if missing and self.config.missing == "error":
            raise VideoError(
                f"{len(missing)} of {len(located)} videos are missing under {root}: {', '.join(missing[:10])}"
                + (" ..." if len(missing) > 10 else "")
            )
        dropped = set(missing) if self.config.missing == "skip" else set()
        if self.config.name == "qa":
            rows = [(q.split, self._qa_row(q, located[q.name][0])) for q in labels.qa if q.name not in dropped]
        else:
            rows = [
                (r.split, self._score_row(r, located[r.name][0], labels.level_ranges))
                for r in labels.scores
                if r.name not in dropped
            ]
        self.info.description = json.dumps(
            {
                "sources": list(self.config.sources),
                "video_root": root,
                "videos": len(located),
                "missing_videos": missing,
                "missing_policy": self.config.missing,
                "level_ranges": labels.level_ranges,
            }
        )
        if not rows:
            raise LabelError(
                f"no {self.config.name} rows in {', '.join(self.config.sources)}"
                + (f" ({len(missing)} videos missing under {root}, skipped)" if dropped else "")
            )
        splits = {split: [] for split in _SPLIT_ORDER}
        for split, row in rows:
            splits.setdefault(split, []).append(row)
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"rows": split_rows})
            for split, split_rows in splits.items()
            if split_rows  # datasets cannot read back an empty split
        ]

    def _generate_examples(self, rows):
        yield from enumerate(rows)

    def _score_row(self, record: ScoreRecord, path: str, level_ranges: dict) -> dict:
        row = {"video": path, "name": record.name, "source": self.dataset_name}
        for dimension in DIMENSIONS:
            mos, level_range = record.mos.get(dimension), level_ranges.get(dimension)
            row[f"mos_{dimension}"] = mos
            row[f"level_{dimension}"] = mos_to_level(mos, *level_range) if mos is not None and level_range else None
        for coarse in COARSE_TYPES:
            row[f"subtype_{coarse}"] = record.subtypes.get(coarse)
            row[f"severity_{coarse}"] = record.severities.get(coarse)
        row["level_ranges"] = {d: list(level_ranges[d]) if d in level_ranges else None for d in DIMENSIONS}
        return row

    def _qa_row(self, record: QuestionRecord, path: str) -> dict:
        return {
            "video": path,
            "name": record.name,
            "source": self.dataset_name,
            "question_type": record.question_type,
            "dimension": record.dimension if record.question_type == "score" else None,
            "coarse_type": record.dimension if record.question_type in ("yes_no", "which_subtype") else None,
            "question": record.question,
            "options": record.options,
            "option_labels": record.option_labels,
            "answer": record.answer,
            "label": record.label,
            "mos": record.mos,
        }


def fingerprint(sources: list[str], video_root: str | None, options: dict) -> str:
    """A digest of the label files' contents, the video folder's listing and the options."""
    digest = hashlib.sha256(_FORMAT_VERSION.encode())
    for source in sources:
        digest.update(source.encode())
        digest.update(hashlib.sha256(Path(source).read_bytes()).digest())
    if video_root and os.path.isdir(video_root):
        digest.update("\n".join(video_root_listing(video_root)).encode())
    digest.update(json.dumps([video_root, options], sort_keys=True).encode())
    return digest.hexdigest()[:32]


def build_labels(
    builder_class: type[LabelBuilder],
    config: str,
    sources: list[str | os.PathLike],
    video_root: str | os.PathLike,
    missing: str,
    cache_dir: str | os.PathLike | None,
    options: dict,
    dataset_name: str | None = None,
) -> datasets.DatasetDict:
    """Build (or reuse from the cache) the `config` rows of `builder_class` and return them by split."""
    if config not in CONFIG_NAMES:
        raise ConfigError(f"unknown label config {config!r}; choose one of {', '.join(CONFIG_NAMES)}")
    if missing not in MISSING_POLICIES:
        raise ConfigError(f"unknown missing-video policy {missing!r}; choose one of {', '.join(MISSING_POLICIES)}")
    source_paths = sorted(str(Path(source).resolve()) for source in sources)
    root = str(Path(video_root).resolve())
    builder = builder_class(
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        config_name=config,
        dataset_name=dataset_name,
        hash=fingerprint(source_paths, root, options),
        sources=tuple(source_paths),
        video_root=root,
        missing=missing,
        options=json.dumps(options, sort_keys=True),
    )
    builder.download_and_prepare()
    dataset = builder.as_dataset()
    report = load_report(dataset)
    if report["missing_videos"]:
        logger.warning(
            "%d of %d labelled videos are missing under %s (%s): %s%s",
            len(report["missing_videos"]),
            report["videos"],
            root,
            "skipped" if missing == "skip" else "kept",
            ", ".join(report["missing_videos"][:10]),
            " ..." if len(report["missing_videos"]) > 10 else "",
        )
    return dataset


def load_report(dataset: datasets.DatasetDict) -> dict:
    """What the loader recorded: sources, video_root, videos, missing_videos, missing_policy, level_ranges."""
    return json.loads(next(iter(dataset.values())).info.description)
