"""Plain records of what label files say: one per video (scores) and one per question (qa).
Parsers produce them and the dataset builders turn them into `datasets` rows; plain Python, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from finevq.taxonomy import DIMENSIONS

@dataclass
class ScoreRecord:
    """What is known about one video: its split, per-dimension MOS and per-coarse-type subtype."""

    name: str
    """Video name relative to the video root, as the label file spells it."""
    split: str | None = None
    mos: dict[str, float] = field(default_factory=dict)
    """Dimension -> MOS, only the rated dimensions."""
    subtypes: dict[str, str] = field(default_factory=dict)
    """Coarse type -> canonical subtype present in the video, or "none"; only the known ones."""
    severities: dict[str, float] = field(default_factory=dict)
    """Coarse type -> how much of that dimension the distortions take off (0 clean), where a table
    states it (FineVD-Synth does; real datasets do not)."""
    alternatives: tuple[str, ...] = ()
    """Other names the video may have on disk (legacy names, other containers); the first existing wins."""


@dataclass
class QuestionRecord:
    """One published question about one video, with its answer made canonical."""

    name: str
    question_type: str
    """One of `finevq.taxonomy.QUESTION_TYPES`: score, yes_no, which_subtype, which_dimension."""
    question: str
    """The question as published, with placeholders such as <|video|> removed."""
    answer: str
    """The answer as published: Yes/No, an option letter, or a sentence ending in a level word."""
    label: str
    """Canonical answer: "yes"/"no", a subtype, a dimension (or "good"), or a level."""
    dimension: str | None = None
    """The dimension rated (score) or the coarse type asked about (yes/no, which subtype); else None,
    which a which-subtype question whose options mix coarse types also gets (it is over all types)."""
    options: list[str] = field(default_factory=list)
    """Option texts as published, in letter order (A, B, ...)."""
    option_labels: list[str] = field(default_factory=list)
    """Canonical label of each option."""
    mos: float | None = None
    split: str | None = None


@dataclass
class LabelSet:
    """Everything a loader read: per-video records, questions, and the MOS range of each dimension."""

    scores: list[ScoreRecord]
    qa: list[QuestionRecord]
    level_ranges: dict[str, tuple[float, float]]
    """Dimension -> (low, high) the levels are binned over."""


def min_max_ranges(records: list[ScoreRecord]) -> dict[str, tuple[float, float]]:
    """Per dimension, the (min, max) MOS of the records: the release's level binning range.

    Dimensions with fewer than two distinct values get no range (their levels stay unknown)."""
    ranges = {}
    for dimension in DIMENSIONS:
        values = [record.mos[dimension] for record in records if dimension in record.mos]
        if values and max(values) > min(values):
            ranges[dimension] = (min(values), max(values))
    return ranges
