"""A summary of FineVD-format label files without building a dataset: counts per split and question
type, label distributions, unknown labels and other file errors, and videos missing on disk."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from finevq.data.folder import META_FILE, label_files, read_finevd
from finevq.data.formats import is_conversation_file, read_conversation_file, read_finevd_meta, read_score_table
from finevq.data.paths import resolve_video
from finevq.errors import LabelError
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS, mos_to_level

_SPLITS = ("train", "validation", "test")


def _check_file(path: Path) -> None:
    if path.name == META_FILE:
        read_finevd_meta(path)
    elif path.suffix == ".jsonl" and is_conversation_file(path):
        read_conversation_file(path)
    else:
        read_score_table(path)


def inspect_labels(
    source: str | os.PathLike | Sequence[str | os.PathLike], video_root: str | os.PathLike | None = None
) -> dict:
    """The summary of FineVD label files (a folder or files) as a JSON-ready dict.

    Files that cannot be read (unknown labels, bad values) are listed under `errors` and left out of
    the counts. Missing videos are checked only when `video_root` is given."""
    files, skipped = label_files(source)
    errors, good = [], []
    for path in files:
        try:
            _check_file(path)
            good.append(path)
        except LabelError as error:
            errors.append(str(error))
    labels = read_finevd(good) if any(path.name != META_FILE for path in good) else None
    summary = {"files": [str(path) for path in files], "skipped_files": skipped, "errors": errors}
    if labels is None:
        return summary
    split_of = {record.name: record.split for record in labels.scores}
    summary["videos"] = dict(Counter(split_of.values()))
    questions = Counter((q.split, q.question_type) for q in labels.qa)
    summary["questions"] = {split: {t: n for (s, t), n in questions.items() if s == split} for split in _SPLITS}
    summary["answers"] = {
        question_type: dict(Counter(q.label for q in labels.qa if q.question_type == question_type).most_common())
        for question_type in sorted({q.question_type for q in labels.qa})
    }
    summary["levels"] = {}
    for dimension in DIMENSIONS:
        values = [record.mos[dimension] for record in labels.scores if dimension in record.mos]
        if values and dimension in labels.level_ranges:
            counts = Counter(mos_to_level(value, *labels.level_ranges[dimension]) for value in values)
            summary["levels"][dimension] = {
                "range": list(labels.level_ranges[dimension]),
                "min": min(values),
                "max": max(values),
                **{level: counts.get(level, 0) for level in LEVELS},
            }
    summary["subtypes"] = {
        coarse: dict(Counter(r.subtypes[coarse] for r in labels.scores if coarse in r.subtypes).most_common())
        for coarse in COARSE_TYPES
    }
    if video_root is not None:
        missing = sorted(
            record.name
            for record in labels.scores
            if not resolve_video(video_root, (record.name, *record.alternatives))[1]
        )
        summary["video_root"] = str(video_root)
        summary["missing_videos"] = missing
    return summary


def format_summary(summary: dict) -> str:
    """The summary of `inspect_labels` as the text `finevq data inspect` prints."""
    lines = [f"files: {len(summary['files'])}"] + [f"  {path}" for path in summary["files"]]
    lines += [f"  {sentence}" for sentence in summary["skipped_files"]]
    if "videos" in summary:
        videos = summary["videos"]
        lines.append(f"videos: {sum(videos.values())} (" + ", ".join(f"{s} {videos.get(s, 0)}" for s in _SPLITS) + ")")
        types = sorted({t for per_split in summary["questions"].values() for t in per_split})
        if types:
            lines.append("questions per split and type:")
            lines.append("  " + "".join(f"{t:>16}" for t in ["split", *types, "total"]))
            for split, per_split in summary["questions"].items():
                counts = [per_split.get(t, 0) for t in types]
                lines.append("  " + "".join(f"{x:>16}" for x in [split, *counts, sum(counts)]))
        if summary["levels"]:
            lines.append("levels per dimension:")
            lines.append("  " + "".join(f"{x:>11}" for x in ["dimension", *LEVELS, "MOS min", "MOS max", "bins over"]))
            for dimension, row in summary["levels"].items():
                cells = [dimension, *(row[level] for level in LEVELS), f"{row['min']:.2f}", f"{row['max']:.2f}"]
                low, high = row["range"]
                lines.append("  " + "".join(f"{x:>11}" for x in cells) + f"  [{low:g}, {high:g}]")
        for coarse, counts in summary["subtypes"].items():
            if counts:
                lines.append(f"subtypes {coarse}: " + ", ".join(f"{label} {n}" for label, n in counts.items()))
        for question_type, counts in summary["answers"].items():
            lines.append(f"answers {question_type}: " + ", ".join(f"{label} {n}" for label, n in counts.items()))
    lines.append(f"errors (unknown labels, bad values): {len(summary['errors'])}")
    lines += [f"  {error}" for error in summary["errors"]]
    if "missing_videos" in summary:
        missing = summary["missing_videos"]
        lines.append(f"missing videos under {summary['video_root']}: {len(missing)}")
        lines += [f"  {name}" for name in missing[:20]]
        lines += [f"  ... {len(missing) - 20} more"] if len(missing) > 20 else []
    return "\n".join(lines)
