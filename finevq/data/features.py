"""The `datasets` features of the rows every loader yields: `scores` (one row per video), `qa` (one row
per published question) and `conversations` (training conversations made from either)."""

from __future__ import annotations

from datasets import ClassLabel, Features, List, Value, Video

from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS

_VIDEO = {
    "video": Video(decode=False),  # a path; decode with finevq.video (datasets' decoder needs torchcodec)
    "name": Value("string"),  # the video's name relative to the video root, as the label file spells it
    "source": Value("string"),  # which dataset the row comes from ("finevd", "konvid_1k", ...)
}

SCORES_FEATURES = Features(
    {
        **_VIDEO,
        **{f"mos_{dimension}": Value("float64") for dimension in DIMENSIONS},
        **{f"level_{dimension}": ClassLabel(names=list(LEVELS)) for dimension in DIMENSIONS},
        **{f"subtype_{coarse}": Value("string") for coarse in COARSE_TYPES},
        **{f"severity_{coarse}": Value("float64") for coarse in COARSE_TYPES},
        "level_ranges": {dimension: List(Value("float64"), length=2) for dimension in DIMENSIONS},
    }
)
"""One row per video: MOS and level per dimension (None where unrated), the canonical subtype present per
coarse type ("none", or None where unknown), the distortion severity per coarse type (0 clean; None
where the labels do not state it: only FineVD-Synth does), and the [low, high] MOS range each dimension's levels bin."""

QA_FEATURES = Features(
    {
        **_VIDEO,
        "question_type": Value("string"),
        "dimension": Value("string"),
        "coarse_type": Value("string"),
        "question": Value("string"),
        "options": List(Value("string")),
        "option_labels": List(Value("string")),
        "answer": Value("string"),
        "label": Value("string"),
        "mos": Value("float64"),
    }
)
"""One row per published question: `question_type` one of taxonomy.QUESTION_TYPES; `dimension` the rated
dimension (score questions), `coarse_type` the type asked about (yes/no, which subtype; None for a
which-subtype question whose options mix types, which is over all types); see
`finevq.data.records.QuestionRecord` for the other fields."""

CONVERSATION_FEATURES = Features(
    {
        **_VIDEO,
        "conversations": List({"role": Value("string"), "content": Value("string")}),
        "question_type": Value("string"),
        "dimension": Value("string"),
        "mos": Value("float64"),
        "severity": Value("float64"),
        "level": Value("string"),
        "coarse_type": Value("string"),
        "label": Value("string"),
    }
)
"""One row per training conversation; the schema is documented in `finevq.data.instructions`."""
