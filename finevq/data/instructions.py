"""Training conversations made from `scores` and `qa` rows: per-dimension score questions, yes/no per
coarse type, which-subtype and which-dimension multiple choice, and a free-form description; seeded.

Each conversation row (features `finevq.data.features.CONVERSATION_FEATURES`) is:

    video          {"path": str, "bytes": None}: the video file (datasets.Video(decode=False))
    name           str: the video's name relative to its root
    source         str: the dataset the row comes from ("finevd", "konvid_1k", ...)
    conversations  [{"role": "user", "content": question}, {"role": "assistant", "content": answer}];
                   the question carries no video placeholder: the processor puts the frames before it
    question_type  "score" | "yes_no" | "which_subtype" | "which_dimension" (taxonomy.QUESTION_TYPES) | "describe"
    dimension      score: the dimension rated (one of DIMENSIONS); otherwise None
    mos            score: that dimension's MOS (the score head's target, raw scale); otherwise None
    severity       score of a coarse dimension: its distortion severity where the labels state it (0
                   clean; FineVD-Synth), for evaluation and the presence label; otherwise None
    level          score: that dimension's level; describe: the overall level; otherwise None
    coarse_type    yes_no / which_subtype: the coarse distortion type asked about; otherwise None
    label          the canonical answer: a level word (score, describe), "yes"/"no", a subtype or "none",
                   a coarse type or "good" (which dimension hurts most)

Score answers end in the level word followed by a full stop ("... is good."). Multiple-choice questions
embed their options as `{A:[...], B:[...], ...}` like the published files, and are answered with the
letter. Everything is deterministic given `seed` (each video draws from its own seeded generator)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

from finevq.taxonomy import (
    COARSE_TYPES,
    DIMENSIONS,
    LEVELS,
    NO_DISTORTION,
    QUESTION_TYPES,
    SUBTYPES,
    WORST_DIMENSION_GOOD,
    worst_rated_dimension,
)

if TYPE_CHECKING:
    import datasets

CONVERSATION_TYPES: tuple[str, ...] = (*QUESTION_TYPES, "describe")

SCORE_QUESTIONS: tuple[str, ...] = (
    "How would you rate the {aspect} of this video?",
    "What is your rating of the {aspect} of this video?",
    "Rate the {aspect} of this video.",
    "Can you evaluate the {aspect} of this video?",
    "How good is the {aspect} of this video?",
)
SCORE_ANSWERS: tuple[str, ...] = (
    "The {aspect} of this video is {level}.",
    "I would rate the {aspect} of this video as {level}.",
    "Its {aspect} is {level}.",
)
YESNO_QUESTIONS: tuple[str, ...] = (
    "Is there any {coarse} distortion in the video?",
    "Does this video have {coarse} distortion?",
    "Do you see any {coarse} distortion in this video?",
    "Is the video affected by {coarse} distortion?",
)


def yes_no_question(coarse: str) -> str:
    """The presence question of a coarse type in the first training wording, as inference and
    evaluation ask it."""
    return YESNO_QUESTIONS[0].format(coarse=coarse)


SUBTYPE_QUESTIONS: tuple[str, ...] = (
    "Which {coarse} distortion does the video have?",
    "What kind of {coarse} distortion is present in this video?",
    "Which type of {coarse} distortion can be seen in the video?",
)
DIMENSION_QUESTIONS: tuple[str, ...] = (
    "Which aspect hurts the quality of this video the most?",
    "Which distortion affects this video the most?",
    "What is the most serious quality problem of this video?",
)
DESCRIBE_QUESTIONS: tuple[str, ...] = (
    "Describe the quality of this video.",
    "How is the quality of this video? Please explain.",
    "Give a short assessment of the quality of this video.",
    "What do you think of the visual quality of this video?",
)
_DIMENSION_OPTION = {
    **{coarse: coarse.capitalize() for coarse in COARSE_TYPES},
    WORST_DIMENSION_GOOD: "Video quality is good",
}


def aspect(dimension: str) -> str:
    """How questions name a dimension: "overall quality", "noise quality", ..."""
    return f"{dimension} quality"


def score_question(dimension: str, variant: int = 0) -> str:
    """The `variant`-th paraphrase of the score question for `dimension` (variant 0 for inference)."""
    return SCORE_QUESTIONS[variant % len(SCORE_QUESTIONS)].format(aspect=aspect(dimension))


def render_options(labels: list[str]) -> tuple[str, list[str]]:
    """The `{A:[..], B:[..]}` text of option labels, and the letters in order."""
    letters = [chr(ord("A") + i) for i in range(len(labels))]
    return "{" + ", ".join(f"{letter}:[{label}]" for letter, label in zip(letters, labels)) + "}", letters


def _level_name(value) -> str | None:
    return LEVELS[value] if isinstance(value, int) else value


def _conversation(row: dict, question: str, answer: str, question_type: str, label: str, **fields) -> dict:
    return {
        "video": row["video"],
        "name": row["name"],
        "source": row.get("source"),
        "conversations": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        "question_type": question_type,
        "dimension": fields.get("dimension"),
        "mos": fields.get("mos"),
        "severity": fields.get("severity"),
        "level": fields.get("level"),
        "coarse_type": fields.get("coarse_type"),
        "label": label,
    }


def _multiple_choice(question: str, correct: str, distractors: list[str], shown: dict, rng: random.Random):
    options = [correct, *distractors]
    rng.shuffle(options)
    text, letters = render_options([shown.get(option, option) for option in options])
    return f"{question} {text}", letters[options.index(correct)]


def worst_dimension(row: dict) -> str | None:
    """`taxonomy.worst_rated_dimension` of a label row (level_<d>, mos_<d>, level_ranges)."""
    levels = {d: _level_name(row.get(f"level_{d}")) for d in COARSE_TYPES}
    return worst_rated_dimension(levels, {d: row.get(f"mos_{d}") for d in COARSE_TYPES}, row.get("level_ranges"))


def _describe(row: dict, worst: str | None) -> str:
    parts = [f"Overall, the quality of this video is {_level_name(row['level_overall'])}."]
    levels = [(d, _level_name(row.get(f"level_{d}"))) for d in COARSE_TYPES]
    levels = [f"{d} {level}" for d, level in levels if level is not None]
    if levels:
        listed = ", ".join(levels[:-1]) + " and " + levels[-1] if len(levels) > 1 else levels[0]
        parts.append(f"By dimension: {listed}.")
    subtypes = [row.get(f"subtype_{c}") for c in COARSE_TYPES]
    present = [s for s in subtypes if s and s != NO_DISTORTION]
    if present:
        parts.append("It shows " + ", ".join(present) + ".")
    elif all(s == NO_DISTORTION for s in subtypes):
        parts.append("No obvious distortion is visible.")
    if worst == WORST_DIMENSION_GOOD:
        parts.append("No single dimension hurts it much.")
    elif worst:
        parts.append(f"The {worst} quality hurts it the most.")
    return " ".join(parts)


def conversations_from_score_row(
    row: dict, seed: int = 0, question_types: Iterable[str] = CONVERSATION_TYPES
) -> list[dict]:
    """The conversations one `scores` row supports (only rated dimensions and known subtypes)."""
    wanted = set(question_types)
    rng = random.Random(f"{seed}:{row['name']}")
    out = []
    for dimension in DIMENSIONS:
        level = _level_name(row.get(f"level_{dimension}"))
        if "score" in wanted and level is not None:
            question = rng.choice(SCORE_QUESTIONS).format(aspect=aspect(dimension))
            answer = rng.choice(SCORE_ANSWERS).format(aspect=aspect(dimension), level=level)
            mos, severity = row.get(f"mos_{dimension}"), row.get(f"severity_{dimension}")
            out.append(_conversation(row, question, answer, "score", level, dimension=dimension, mos=mos,
                                     severity=severity, level=level))
    for coarse in COARSE_TYPES:
        subtype = row.get(f"subtype_{coarse}")
        if subtype is None:
            continue
        if "yes_no" in wanted:
            label = "no" if subtype == NO_DISTORTION else "yes"
            question = rng.choice(YESNO_QUESTIONS).format(coarse=coarse)
            out.append(_conversation(row, question, label.capitalize(), "yes_no", label, coarse_type=coarse))
        if "which_subtype" in wanted:
            others = [s for s in SUBTYPES[coarse] if s != subtype]
            # Half the questions list every subtype of the type, as inference asks; half list three
            # distractors, as the published files do.
            distractors = rng.sample(others, len(others) if rng.random() < 0.5 else 3)
            correct_and_none = [subtype] if subtype == NO_DISTORTION else [subtype, NO_DISTORTION]
            question, letter = _multiple_choice(
                rng.choice(SUBTYPE_QUESTIONS).format(coarse=coarse),
                correct_and_none[0],
                correct_and_none[1:] + distractors,
                {NO_DISTORTION: "None"},
                rng,
            )
            out.append(_conversation(row, question, letter, "which_subtype", subtype, coarse_type=coarse))
    worst = worst_dimension(row)
    if "which_dimension" in wanted and worst is not None:
        distractors = rng.sample([d for d in _DIMENSION_OPTION if d != worst], 3)
        question, letter = _multiple_choice(rng.choice(DIMENSION_QUESTIONS), worst, distractors, _DIMENSION_OPTION, rng)
        out.append(_conversation(row, question, letter, "which_dimension", worst))
    overall = _level_name(row.get("level_overall"))
    if "describe" in wanted and overall is not None:
        question, answer = rng.choice(DESCRIBE_QUESTIONS), _describe(row, worst)
        out.append(_conversation(row, question, answer, "describe", overall, level=overall))
    return out


def conversation_from_qa_row(row: dict) -> dict:
    """A published question (a `qa` row) as a conversation, with its wording and answer kept."""
    is_score = row["question_type"] == "score"
    return _conversation(
        row,
        row["question"],
        row["answer"],
        row["question_type"],
        row["label"],
        dimension=row["dimension"],
        mos=row["mos"] if is_score else None,
        level=row["label"] if is_score else None,
        coarse_type=row["coarse_type"],
    )


def distortion_presence(row: dict) -> tuple[str, bool] | None:
    """(coarse type, whether the video carries it) as a conversation row's labels tell it: a yes/no
    answer, the answer to one type's which-subtype question, or a coarse dimension's severity; None
    for rows that tell none (which-dimension, description, overall, real MOS without severity)."""
    question_type, coarse, label = row.get("question_type"), row.get("coarse_type"), row.get("label")
    if question_type == "yes_no" and coarse in COARSE_TYPES and label in ("yes", "no"):
        return coarse, label == "yes"
    if question_type == "which_subtype" and coarse in COARSE_TYPES and label:
        return coarse, label != NO_DISTORTION
    severity = row.get("severity")
    if question_type == "score" and row.get("dimension") in COARSE_TYPES and severity is not None and math.isfinite(severity):
        return row["dimension"], severity > 0
    return None


def build_conversations(
    data: datasets.Dataset | datasets.DatasetDict, seed: int = 0, question_types: Iterable[str] = CONVERSATION_TYPES
) -> datasets.Dataset | datasets.DatasetDict:
    """Conversations of a `scores` or `qa` dataset (or of each split of a DatasetDict).

    `question_types` limits what is generated from `scores` rows; `qa` rows convert one to one."""
    # datasets is imported here, not at the top: inference reads this module's question templates
    # and should not pay for importing datasets (a second of start-up).
    import datasets

    from finevq.data.features import CONVERSATION_FEATURES

    if isinstance(data, datasets.DatasetDict):
        return datasets.DatasetDict(
            {split: build_conversations(part, seed, question_types) for split, part in data.items()}
        )
    question_types = tuple(question_types)
    unknown = sorted(set(question_types) - set(CONVERSATION_TYPES))
    if unknown:
        from finevq.errors import ConfigError

        raise ConfigError(f"unknown question types {unknown}; known: {', '.join(CONVERSATION_TYPES)}")
    if "question_type" in data.column_names:
        rows = [conversation_from_qa_row(row) for row in data]
    else:
        rows = [c for row in data for c in conversations_from_score_row(row, seed, question_types)]
    return datasets.Dataset.from_list(rows, features=CONVERSATION_FEATURES)
