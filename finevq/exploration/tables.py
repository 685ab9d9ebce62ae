"""Predictions as pandas tables: scores against MOS per video and dimension, answers against labels,
yes/no precision and recall, score head versus level-probability disagreements, worst-predicted videos."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, fields

import numpy as np
import pandas as pd

from finevq.errors import LabelError
from finevq.exploration.predictions import Predictions
from finevq.metrics import MosMapping, QARecord, ScoreRecord, fit_logistic
from finevq.taxonomy import COARSE_TYPES, NO_DISTORTION, canonical_dimension, canonical_subtype, mos_to_level

_CANONICAL_ANSWER = {
    "yes_no": lambda answer: answer.strip().lower(),
    "which_subtype": canonical_subtype,
    "which_dimension": canonical_dimension,
}


def _records_frame(records: Iterable, record_type: type) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in records], columns=[f.name for f in fields(record_type)])


def score_table(predictions: Predictions) -> pd.DataFrame:
    """One row per video and rated dimension: true_mos, true_level; score (the score head, on the
    model's score scale), level (the most probable level word), level_score (the level-probability
    score, 0-1); score_01 (the score head on 0-1 over the model's score range) and score_level (the
    level that score falls in), to compare the two heads on one scale."""
    low, high = predictions.score_range
    table = _records_frame(predictions.scores, ScoreRecord)
    table["score_01"] = (table["score"] - low) / (high - low)
    table["score_level"] = [mos_to_level(score, low, high) for score in table["score"]]
    return table


def answer_table(predictions: Predictions) -> pd.DataFrame:
    """One row per answered question: video, question_type, coarse_type, and the predicted and true
    answers as canonical labels ("yes"/"no", a subtype or "none", a coarse type or "good")."""
    table = _records_frame(predictions.answers, QARecord)
    for column in ("predicted", "true"):
        table[column] = [_CANONICAL_ANSWER[kind](answer) for kind, answer in zip(table["question_type"], table[column])]
    return table


def yes_no_table(answers: pd.DataFrame) -> pd.DataFrame:
    """Per coarse type (and all together): questions, true and predicted "yes" counts, precision and
    recall of "yes" (NaN when nothing was predicted / truly present) and accuracy."""
    yes_no = answers[answers["question_type"] == "yes_no"]
    groups = [(coarse, yes_no[yes_no["coarse_type"] == coarse]) for coarse in COARSE_TYPES] + [("all", yes_no)]
    rows = {}
    for name, group in groups:
        true, predicted = group["true"] == "yes", group["predicted"] == "yes"
        hits = int((true & predicted).sum())
        rows[name] = {
            "n": len(group),
            "true_yes": int(true.sum()),
            "predicted_yes": int(predicted.sum()),
            "precision": hits / predicted.sum() if predicted.any() else np.nan,
            "recall": hits / true.sum() if true.any() else np.nan,
            "accuracy": float((true == predicted).mean()) if len(group) else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def fitted_mapping(predicted: Iterable[float], true: Iterable[float]) -> MosMapping | None:
    """The logistic map of predictions onto the MOS scale (`finevq.metrics.fit_logistic`), or None
    when it cannot be fitted (fewer than five videos, constant values)."""
    try:
        return fit_logistic(predicted, true)
    except LabelError:
        return None


def score_disagreements(scores: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The `top` rows of `score_table` where the score head and the level probabilities disagree most:
    gap = score_01 - level_score (both 0-1); levels_agree says whether the score head's value falls in
    the level the level probabilities chose."""
    table = scores.assign(gap=scores["score_01"] - scores["level_score"],
                          levels_agree=scores["score_level"] == scores["level"])
    order = table["gap"].abs().sort_values(ascending=False).index
    columns = ["video", "dimension", "true_mos", "true_level", "score", "score_01", "score_level", "level_score",
               "level", "gap", "levels_agree"]
    return table.loc[order[:top], columns].reset_index(drop=True)


def _distortions(subtype_answers: pd.DataFrame, column: str) -> dict[str, list[str]]:
    present = subtype_answers[subtype_answers[column] != NO_DISTORTION]
    return {video: sorted(group[column]) for video, group in present.groupby("video")}


def worst_predicted(scores: pd.DataFrame, answers: pd.DataFrame, dimension: str = "overall", count: int = 6
                    ) -> pd.DataFrame:
    """The `count` videos whose `dimension` score is furthest from the MOS after the logistic map
    (the raw score when it cannot be fitted): mapped_score, error, levels, and the true and
    predicted distortion subtypes from the which-subtype questions (empty without QA labels)."""
    rows = scores[scores["dimension"] == dimension]
    if rows.empty:
        raise LabelError(f"no {dimension!r} scores among the predictions; rated: {sorted(set(scores['dimension']))}")
    mapping = fitted_mapping(rows["score"], rows["true_mos"])
    mapped = mapping(rows["score"]) if mapping is not None else rows["score"].to_numpy()
    rows = rows.assign(mapped_score=mapped, error=np.abs(mapped - rows["true_mos"].to_numpy()))
    worst = rows.nlargest(count, "error").reset_index(drop=True)
    subtypes = answers[answers["question_type"] == "which_subtype"]
    for column in ("true", "predicted"):
        found = _distortions(subtypes, column)
        worst[f"{column}_distortions"] = [found.get(video, []) for video in worst["video"]]
    columns = ["video", "true_mos", "score", "mapped_score", "error", "true_level", "level", "true_distortions",
               "predicted_distortions"]
    return worst[columns]
