"""Reading FineVD-format label files into records: which files count, merged per video, the splits
completed and the level ranges decided; plain Python (the `datasets` builder lives in `finevd`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from finevq.data.formats import is_conversation_file, read_conversation_file, read_finevd_meta, read_score_table
from finevq.data.paths import safe_relative_name
from finevq.data.records import LabelSet, QuestionRecord, ScoreRecord, min_max_ranges
from finevq.data.splits import complete_splits
from finevq.errors import LabelError
from finevq.taxonomy import DIMENSIONS, NO_DISTORTION, coarse_type_of

logger = logging.getLogger(__name__)

META_FILE = "finevd.json"
_LABEL_PATTERNS = ("*.jsonl", "*.csv", "*.tsv", "*.xlsx")


def _given_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Every label file a source names: the files given, and the label files of the folders given."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files = []
    for item in map(Path, sources):
        if item.is_dir():
            files += sorted(p for pattern in _LABEL_PATTERNS for p in item.glob(pattern))
            files += [item / META_FILE] if (item / META_FILE).is_file() else []
        elif item.is_file():
            files.append(item)
        else:
            raise LabelError(f"label source {item} does not exist")
    return files


def label_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """The label files to read from a FineVD-format folder (or the given files), and one sentence per
    file left out: `X.jsonl` is left out when its English twin `X_en.jsonl` is there too (the two carry
    the same labels, Chinese and English)."""
    files = _given_files(source)
    english = {(path.parent, path.stem): path for path in files}
    skipped = {path: twin for path in files if (twin := english.get((path.parent, f"{path.stem}_en")))}
    reasons = [
        f"read {twin} and not {path}: they are the English and Chinese versions of the same questions, "
        "reading both would count each question twice, and the model is asked in English "
        "(a Chinese file is read when it is alone)"
        for path, twin in skipped.items()
    ]
    return [path for path in files if path not in skipped], reasons


def finevd_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The label files `label_files` picks, each file it leaves out logged with the reason."""
    files, reasons = label_files(source)
    for reason in reasons:
        logger.warning("%s", reason)
    return files


def _record_subtype(video: ScoreRecord, question: QuestionRecord) -> None:
    """What a which-subtype answer says of the video: the answered subtype is present in its own coarse
    type; "None" says that type is clean when the question is about one type, and nothing otherwise."""
    if question.label != NO_DISTORTION:
        video.subtypes.setdefault(coarse_type_of(question.label), question.label)
    elif question.dimension:
        video.subtypes.setdefault(question.dimension, NO_DISTORTION)


def _merge_split(splits: dict[str, str | None], name: str, split: str | None, where: str) -> None:
    known = splits.get(name)
    if split and known and split != known:
        raise LabelError(f"video {name!r} is in both the {known} and the {split} split ({where})")
    splits[name] = split or known


def read_finevd(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    split_ratios: Sequence[float] = (4, 1, 1),
    split_seed: int = 42,
    score_range: tuple[float, float] | None = None,
) -> LabelSet:
    """Every video and question of FineVD label files, splits completed, levels' MOS ranges decided.

    The range is `score_range`, else `finevd.json`'s, else each dimension's min/max MOS (the release's
    rule). Distortion subtypes come from score-table columns, else from the which-subtype answers, and
    a yes/no "No" means "none" for that type."""
    tables: list[ScoreRecord] = []
    questions: list[QuestionRecord] = []
    meta_range = None
    files = finevd_files(source)
    for path in files:
        if path.name == META_FILE:
            meta_range = read_finevd_meta(path)
        elif path.suffix == ".jsonl" and is_conversation_file(path):
            questions += read_conversation_file(path)
        else:
            tables += read_score_table(path)
    if not tables and not questions:
        raise LabelError(f"no FineVD label files (score tables or conversation JSONL) in {source}")

    videos: dict[str, ScoreRecord] = {}
    splits: dict[str, str | None] = {}
    for record in tables:
        record.name = safe_relative_name(record.name)
        _merge_split(splits, record.name, record.split, "score table")
        video = videos.setdefault(record.name, ScoreRecord(record.name))
        video.mos.update(record.mos)
        video.subtypes.update(record.subtypes)
        video.severities.update(record.severities)
    seen_questions = set()
    unique_questions = []
    for question in questions:
        question.name = safe_relative_name(question.name)
        key = (question.name, question.question_type, question.dimension, question.label, tuple(question.option_labels))
        if key in seen_questions:  # per-type yes/no files repeat the combined file's questions
            continue
        seen_questions.add(key)
        unique_questions.append(question)
        _merge_split(splits, question.name, question.split, "conversation files")
        video = videos.setdefault(question.name, ScoreRecord(question.name))
        if question.question_type == "score" and question.mos is not None:
            video.mos.setdefault(question.dimension, question.mos)
        elif question.question_type == "which_subtype":
            _record_subtype(video, question)
        elif question.question_type == "yes_no" and question.label == "no":
            video.subtypes.setdefault(question.dimension, NO_DISTORTION)

    assignment = complete_splits(splits, split_ratios, split_seed)
    for video in videos.values():
        video.split = assignment[video.name]
    for question in unique_questions:
        question.split = assignment[question.name]
    if score_range is None:
        score_range = meta_range
    level_ranges = {d: tuple(score_range) for d in DIMENSIONS} if score_range else min_max_ranges(list(videos.values()))
    return LabelSet(scores=list(videos.values()), qa=unique_questions, level_ranges=level_ranges)
