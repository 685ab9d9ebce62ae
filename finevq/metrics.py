"""Evaluation metrics and the evaluation report: SRCC, KRCC, PLCC (raw and after a 4-parameter logistic
fit), RMSE and the QA accuracies, in numpy/scipy only; training, `finevq eval` and notebooks share it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, special, stats

from finevq import taxonomy
from finevq.errors import LabelError

MIN_CORRELATION_SAMPLES = 2
"""Correlations of fewer samples are undefined (reported as NaN / null with the reason)."""

MIN_LOGISTIC_SAMPLES = 5
"""The 4-parameter logistic fit needs more samples than parameters; below this PLCC-logistic is NaN."""

QA_QUESTION_TYPES: tuple[str, ...] = tuple(q for q in taxonomy.QUESTION_TYPES if q != "score")

_MIXED = "mixed"
"""The which-subtype group of a "none" answer to a question over all coarse types."""


def _paired(predicted: Iterable[float], true: Iterable[float], field: str) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and truths as finite 1-D float arrays of equal length; errors name `field`."""
    try:
        x = np.asarray(list(predicted), dtype=float)
        y = np.asarray(list(true), dtype=float)
    except (TypeError, ValueError) as error:
        raise LabelError(f"{field}: values must be numbers ({error})") from None
    if x.ndim != 1 or y.ndim != 1 or len(x) != len(y):
        raise LabelError(f"{field}: predicted and true values must be two flat lists of equal length, "
                         f"got shapes {x.shape} and {y.shape}")
    for name, values in (("predicted", x), ("true", y)):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise LabelError(f"{field}: {len(bad)} NaN/Inf {name} value(s), first at index {bad[0]}")
    return x, y


def why_undefined(predicted: Sequence[float], true: Sequence[float],
                  min_samples: int = MIN_CORRELATION_SAMPLES) -> str | None:
    """Why a correlation of these values is undefined (too few samples, constant input), or None."""
    x, y = np.asarray(predicted, dtype=float), np.asarray(true, dtype=float)
    if len(x) < min_samples:
        return f"fewer than {min_samples} samples"
    if np.ptp(x) == 0:
        return "constant predictions"
    if np.ptp(y) == 0:
        return "constant true values"
    return None


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    return float(np.clip(xc @ yc / math.sqrt((xc @ xc) * (yc @ yc)), -1.0, 1.0))


def srcc(predicted: Iterable[float], true: Iterable[float], field: str = "scores") -> float:
    """Spearman rank correlation (ties get their average rank); NaN when undefined."""
    x, y = _paired(predicted, true, field)
    if why_undefined(x, y):
        return math.nan
    return _pearson(stats.rankdata(x), stats.rankdata(y))


def krcc(predicted: Iterable[float], true: Iterable[float], field: str = "scores") -> float:
    """Kendall rank correlation, tau-b (corrected for ties); NaN when undefined."""
    x, y = _paired(predicted, true, field)
    if why_undefined(x, y):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def plcc_raw(predicted: Iterable[float], true: Iterable[float], field: str = "scores") -> float:
    """Pearson linear correlation of the raw predictions (no fitted mapping); NaN when undefined."""
    x, y = _paired(predicted, true, field)
    if why_undefined(x, y):
        return math.nan
    return _pearson(x, y)


def rmse(predicted: Iterable[float], true: Iterable[float], field: str = "scores") -> float:
    """Root mean squared error of the raw predictions (only meaningful on the truth's scale); NaN if empty."""
    x, y = _paired(predicted, true, field)
    return float(np.sqrt(np.mean((x - y) ** 2))) if len(x) else math.nan


@dataclass(frozen=True)
class MosMapping:
    """A fitted monotonic map from predictions to the truth's scale.

    `kind == "logistic"`: f(x) = b2 + (b1 - b2) / (1 + exp(-(x - b3) / b4)), params (b1, b2, b3, b4).
    `kind == "linear"`: the fallback f(x) = a * x + c, params (a, c), used when the logistic fit did not
    converge or fits worse than a line; `note` says why."""

    kind: Literal["logistic", "linear"]
    params: tuple[float, ...]
    note: str = ""

    def __call__(self, predicted: Iterable[float]) -> np.ndarray:
        x = np.asarray(list(predicted), dtype=float)
        if self.kind == "linear":
            slope, intercept = self.params
            return slope * x + intercept
        b1, b2, b3, b4 = self.params
        return b2 + (b1 - b2) * special.expit((x - b3) / b4)


def fit_logistic(predicted: Iterable[float], true: Iterable[float], field: str = "scores",
                 max_evaluations: int = 2000) -> MosMapping:
    """Fit the 4-parameter logistic of VQEG practice from predictions to true values.

    The fit runs on standardised predictions from a data-driven start (asymptotes at the truth's range,
    centre at the mean, rising or falling with the raw correlation), bounded, with at most
    `max_evaluations` residual evaluations. When it does not converge, or fits worse than a straight
    line, the least-squares line is returned instead, with a note saying why."""
    x, y = _paired(predicted, true, field)
    reason = why_undefined(x, y, MIN_LOGISTIC_SAMPLES)
    if reason:
        raise LabelError(f"{field}: cannot fit a logistic mapping: {reason}")
    mean, std = x.mean(), x.std()
    z = (x - mean) / std
    slope, intercept = np.polyfit(x, y, 1)
    line = MosMapping("linear", (float(slope), float(intercept)))
    low, high, span = y.min(), y.max(), np.ptp(y)
    start = (high, low, 0.0, 1.0) if slope >= 0 else (low, high, 0.0, 1.0)
    bounds = ([low - 10 * span, low - 10 * span, -10.0, 1e-2], [high + 10 * span, high + 10 * span, 10.0, 1e2])

    def residuals(params: np.ndarray) -> np.ndarray:
        b1, b2, b3, b4 = params
        return b2 + (b1 - b2) * special.expit((z - b3) / b4) - y

    result = optimize.least_squares(residuals, start, bounds=bounds, method="trf", max_nfev=max_evaluations)
    if not result.success or not np.all(np.isfinite(result.x)):
        return dataclasses.replace(line, note=f"logistic fit did not converge ({result.message}); linear fit used")
    b1, b2, b3, b4 = (float(v) for v in result.x)
    logistic = MosMapping("logistic", (b1, b2, float(mean + b3 * std), float(b4 * std)))
    if np.sum((logistic(x) - y) ** 2) > np.sum((line(x) - y) ** 2):
        return dataclasses.replace(line, note="logistic fit was worse than a straight line; linear fit used")
    return logistic


def plcc_logistic(predicted: Iterable[float], true: Iterable[float], field: str = "scores") -> float:
    """Pearson correlation after mapping the predictions with `fit_logistic`; NaN when undefined
    (fewer than `MIN_LOGISTIC_SAMPLES` samples or constant input). The fit absorbs the direction, so a
    falling relation gives a positive value, unlike `plcc_raw`."""
    return _plcc_after_fit(*_paired(predicted, true, field), field)[0]


def _plcc_after_fit(x: np.ndarray, y: np.ndarray, field: str) -> tuple[float, str]:
    reason = why_undefined(x, y, MIN_LOGISTIC_SAMPLES)
    if reason:
        return math.nan, reason
    mapping = fit_logistic(x, y, field)
    fitted = mapping(x)
    if np.ptp(fitted) == 0:
        return math.nan, "logistic fit is constant"
    return _pearson(fitted, y), mapping.note


def accuracy(predicted: Iterable[Hashable], true: Iterable[Hashable], field: str = "answers") -> float:
    """Share of predictions equal to the truth; NaN when there are none."""
    predicted, true = list(predicted), list(true)
    if len(predicted) != len(true):
        raise LabelError(f"{field}: {len(predicted)} predictions for {len(true)} true answers")
    if not true:
        return math.nan
    return sum(p == t for p, t in zip(predicted, true)) / len(true)


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def correlation_report(predicted: Iterable[float], true: Iterable[float], field: str = "scores",
                       with_rmse: bool = True) -> dict[str, Any]:
    """n, SRCC, KRCC, PLCC raw, PLCC after the logistic fit (and RMSE) as a JSON-ready dict.

    Undefined values are None and `note` says why; `note` also flags a linear fallback of the fit."""
    x, y = _paired(predicted, true, field)
    reason = why_undefined(x, y)
    values = {"srcc": srcc(x, y, field), "krcc": krcc(x, y, field), "plcc_raw": plcc_raw(x, y, field)}
    values["plcc_logistic"], fit_note = (math.nan, reason) if reason else _plcc_after_fit(x, y, field)
    report: dict[str, Any] = {"n": len(x), **{k: _json_number(v) for k, v in values.items()}}
    if with_rmse:
        report["rmse"] = _json_number(rmse(x, y, field))
    if reason:
        report["note"] = f"{reason}: correlations undefined"
    else:
        report["note"] = f"plcc_logistic: {fit_note}" if fit_note else None
    return report


PRESENCE_THRESHOLD = 0.5
"""A distortion type is present when the model's probability of "Yes" to its presence question reaches this."""


def diagnosed_scores(predicted: Sequence[float], presence: Sequence[float], field: str = "presence") -> np.ndarray:
    """Scores with every video the model diagnoses as free of the distortion type (presence below
    PRESENCE_THRESHOLD) tied above all others: severity as the diagnosis states it, zero where no
    distortion was found. Untied scores of the many clean videos cap any SRCC against severity (with
    three in four clean, about 0.76 even for a flawless ranking of the rest); the diagnosis ties them."""
    x, p = _paired(predicted, presence, field)
    return np.where(p >= PRESENCE_THRESHOLD, x, (x.max() if len(x) else 0.0) + 1.0)


def severity_report(predicted: Sequence[float], severity: Sequence[float], field: str = "severity",
                    presence: Sequence[float] | None = None) -> dict[str, Any]:
    """How well predicted scores rank distortion severity, as a JSON-ready dict: `srcc` against the
    negated severity over all videos (the clean ones tie at 0) and `srcc_distorted` over the videos the
    distortion hits (severity > 0) only, with their counts; with the model's `presence` probabilities of
    the distortion type, `srcc_diagnosed`: the same for `diagnosed_scores`. Undefined values are None,
    `note` says why."""
    x, s = _paired(predicted, severity, field)
    hit = s > 0
    report: dict[str, Any] = {"n": len(x), "srcc": _json_number(srcc(x, -s, field)),
                              "n_distorted": int(hit.sum()), "srcc_distorted": _json_number(srcc(x[hit], -s[hit], field))}
    pairs = {"srcc": (x, s), "srcc_distorted": (x[hit], s[hit])}
    if presence is not None:
        diagnosed = diagnosed_scores(x, presence, f"{field} presence")
        report["srcc_diagnosed"] = _json_number(srcc(diagnosed, -s, field))
        pairs["srcc_diagnosed"] = (diagnosed, s)
    reasons = {name: why_undefined(a, b) for name, (a, b) in pairs.items()}
    report["note"] = "; ".join(f"{name}: {reason}" for name, reason in reasons.items() if reason) or None
    return report


def accuracy_report(predicted: Sequence[Hashable], true: Sequence[Hashable], field: str = "answers") -> dict:
    """n and accuracy as a JSON-ready dict (accuracy None when there are no items)."""
    return {"n": len(true), "accuracy": _json_number(accuracy(predicted, true, field))}


@dataclass(frozen=True)
class ScoreRecord:
    """One video's prediction for one quality dimension, with its ground truth.

    `score` is the score head's output on the MOS scale, `level_score` the level-probability (Q-Align)
    score in [0, 1], `level` the predicted level word; any may be None when the model lacks it.
    `true_level` is the level of `true_mos`; when None it is binned from the report's `mos_range`.
    `severity` is how strongly the video's distortions hit this (coarse) dimension, 0 when clean, where
    the labels know it (FineVD-Synth): it ranks videos without the clean scores' natural spread.
    `presence` is the model's probability that this dimension's distortion type is present (its answer
    to the yes/no question), where asked."""

    video: str
    dimension: str
    true_mos: float
    score: float | None = None
    level_score: float | None = None
    level: str | None = None
    true_level: str | None = None
    severity: float | None = None
    presence: float | None = None


@dataclass(frozen=True)
class QARecord:
    """One answered question: `question_type` is one of `QA_QUESTION_TYPES`; answers are labels
    (Yes/No, a subtype, a dimension), not option letters; `coarse_type` is required for yes_no."""

    question_type: str
    predicted: str
    true: str
    coarse_type: str | None = None
    video: str = ""


def _record(cls: type, item: Any, index: int) -> Any:
    if isinstance(item, cls):
        return item
    if not isinstance(item, Mapping):
        raise LabelError(f"{cls.__name__} {index}: expected a {cls.__name__} or a mapping, got {item!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(item) - names)
    missing = sorted(f.name for f in dataclasses.fields(cls)
                     if f.default is dataclasses.MISSING and f.name not in item)
    if unknown or missing:
        raise LabelError(f"{cls.__name__} {index}: unknown keys {unknown}, missing keys {missing}")
    return cls(**item)


def _canonical(canonicalise: Callable[[str], str], text: str) -> str:
    """The canonical label of `text`, or its normalised spelling when the label is unknown: an
    unparseable model answer is simply wrong, and option letters still compare."""
    try:
        return canonicalise(text)
    except LabelError:
        return " ".join(str(text).lower().split()).strip(" .")


def _yes_no(text: str) -> str:
    words = str(text).lower().replace(",", " ").replace(".", " ").split()
    if words and words[0] in ("yes", "no"):
        return words[0]
    raise LabelError(f"not a yes/no answer: {text!r}")


_ANSWER_CANONICALISERS: dict[str, Callable[[str], str]] = {
    "yes_no": _yes_no,
    "which_subtype": taxonomy.canonical_subtype,
    "which_dimension": taxonomy.canonical_dimension,
}


def _dimension_of(label: str, allowed: Sequence[str], what: str) -> str:
    try:
        canon = taxonomy.canonical_dimension(label)
    except LabelError as error:
        raise LabelError(f"{what}: {error}") from error
    if canon not in allowed:
        raise LabelError(f"{what}: {label!r} is not one of {', '.join(allowed)}")
    return canon


def _true_level(record: ScoreRecord, dimension: str, mos_range: Any, what: str) -> str:
    if record.true_level is not None:
        level = str(record.true_level).strip().lower()
        if level not in taxonomy.LEVELS:
            raise LabelError(f"{what}: true_level {record.true_level!r} is not one of {', '.join(taxonomy.LEVELS)}")
        return level
    if isinstance(mos_range, Mapping):
        mos_range = mos_range.get(dimension)
    if mos_range is None:
        raise LabelError(f"{what}: no true_level, and no mos_range for {dimension} to bin true_mos into a level")
    low, high = mos_range
    return taxonomy.mos_to_level(record.true_mos, low, high)


def _finite_or_none(record: Any, name: str, what: str) -> float | None:
    value = getattr(record, name)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LabelError(f"{what}: {name} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise LabelError(f"{what}: {name} is {value}")
    return number


def build_report(scores: Iterable[ScoreRecord | Mapping] = (), qa: Iterable[QARecord | Mapping] = (),
                 mos_range: tuple[float, float] | Mapping[str, tuple[float, float]] | None = None) -> dict:
    """The evaluation report of score and QA predictions, as a JSON-serialisable dict.

    Always `n_videos` (videos with score records); then the sections that have predictions:
    `score_head` and `level_score` per dimension (`correlation_report`; RMSE for the score head only,
    the level score being on [0, 1]); `severity` per coarse dimension whose records carry a severity
    (`severity_report` of the score head); `level_accuracy` per dimension and `all` (predicted level vs the
    level of the true MOS, from `true_level` or binned over `mos_range`: one (low, high) or one per
    dimension); `yes_no_accuracy` per coarse type and `all`; `which_subtype_accuracy` per coarse type
    (the type asked about, else the type of the true subtype; `mixed` for a "none" answer to a question
    over all types) and `all`; `which_dimension_accuracy`; `worst_dimension_accuracy` (videos rated on all
    five coarse dimensions: the labels' rule on the predicted levels and scores vs on the true ones). Records may be dataclasses or mappings with the same keys (e.g. read
    back from JSON). Select a metric by path, e.g. `report["score_head"]["overall"]["srcc"]`."""
    return {**_score_sections(scores, mos_range), **_qa_sections(qa)}


def _score_sections(scores: Iterable[ScoreRecord | Mapping], mos_range: Any) -> dict[str, Any]:
    by_dimension: dict[str, dict[str, list]] = {}
    seen: set[tuple[str, str]] = set()
    rated: dict[str, dict[str, tuple[str, float, str, float]]] = {}
    for index, item in enumerate(scores):
        record = _record(ScoreRecord, item, index)
        dimension = _dimension_of(record.dimension, taxonomy.DIMENSIONS, f"ScoreRecord {index} dimension")
        what = f"ScoreRecord {index} (video {record.video!r}, {dimension})"
        if (record.video, dimension) in seen:
            raise LabelError(f"{what}: duplicate record for this video and dimension")
        seen.add((record.video, dimension))
        columns = by_dimension.setdefault(dimension, {k: [] for k in ("score", "level_score", "level", "severity")})
        true_mos = _finite_or_none(record, "true_mos", what)
        predicted = {name: _finite_or_none(record, name, what) for name in ("score", "level_score")}
        for name, value in predicted.items():
            if value is not None:
                columns[name].append((value, true_mos))
        severity = _finite_or_none(record, "severity", what)
        if severity is not None and predicted["score"] is not None and dimension in taxonomy.COARSE_TYPES:
            columns["severity"].append((predicted["score"], severity, _finite_or_none(record, "presence", what)))
        if record.level is not None:
            true_level = _true_level(record, dimension, mos_range, what)
            level = str(record.level).strip().lower()
            columns["level"].append((level, true_level))
            if predicted["score"] is not None and dimension in taxonomy.COARSE_TYPES and level in taxonomy.LEVELS:
                rated.setdefault(record.video, {})[dimension] = (level, predicted["score"], true_level, true_mos)

    report: dict[str, Any] = {"n_videos": len({video for video, _ in seen})}
    dimensions = [d for d in taxonomy.DIMENSIONS if d in by_dimension]
    for section, column, with_rmse in (("score_head", "score", True), ("level_score", "level_score", False)):
        rows = {d: correlation_report(*zip(*by_dimension[d][column]), field=f"{section}[{d}]", with_rmse=with_rmse)
                for d in dimensions if by_dimension[d][column]}
        if rows:
            report[section] = rows
    severity = {d: _severity_of(by_dimension[d]["severity"], d) for d in dimensions if by_dimension[d]["severity"]}
    if severity:
        report["severity"] = severity
    level_pairs = {d: by_dimension[d]["level"] for d in dimensions if by_dimension[d]["level"]}
    if level_pairs:
        report["level_accuracy"] = _accuracy_by_group(level_pairs, "level_accuracy")
    worst = _worst_dimension_pairs(rated, mos_range)
    if worst:
        report["worst_dimension_accuracy"] = accuracy_report(*zip(*worst), field="worst_dimension")
    return report


def _severity_of(triples: list[tuple[float, float, float | None]], dimension: str) -> dict[str, Any]:
    """severity_report of (score, severity, presence) triples, diagnosed when every one has a presence."""
    scores, severities, presences = zip(*triples)
    known = None if any(p is None for p in presences) else presences
    return severity_report(scores, severities, field=f"severity[{dimension}]", presence=known)


def _worst_dimension_pairs(rated: Mapping[str, Mapping[str, tuple[str, float, str, float]]], mos_range: Any
                           ) -> list[tuple[str, str]]:
    """(predicted, true) worst dimension of each video rated on all five coarse dimensions: the label rule
    (`taxonomy.worst_rated_dimension`) on the predicted levels and scores, and on the true ones. It is what
    `FineVQ.assess` reports as `worst_dimension`, beside the answered which-dimension question."""
    if mos_range is None or isinstance(mos_range, Mapping):
        ranges = mos_range
    else:
        ranges = dict.fromkeys(taxonomy.COARSE_TYPES, tuple(mos_range))
    pairs = []
    for dimensions in rated.values():
        if len(dimensions) < len(taxonomy.COARSE_TYPES):
            continue
        levels, scores, true_levels, true_mos = (
            {d: values[column] for d, values in dimensions.items()} for column in range(4))
        pairs.append((taxonomy.worst_rated_dimension(levels, scores, ranges),
                      taxonomy.worst_rated_dimension(true_levels, true_mos, ranges)))
    return pairs


def _qa_sections(qa: Iterable[QARecord | Mapping]) -> dict[str, Any]:
    answers: dict[str, dict[str, list[tuple[str, str]]]] = {q: {} for q in QA_QUESTION_TYPES}
    for index, item in enumerate(qa):
        record = _record(QARecord, item, index)
        question_type = str(record.question_type).strip().lower()
        if question_type not in QA_QUESTION_TYPES:
            raise LabelError(f"QARecord {index}: question_type {record.question_type!r} is not one of "
                             f"{', '.join(QA_QUESTION_TYPES)}")
        if question_type == "yes_no" and record.coarse_type is None:
            raise LabelError(f"QARecord {index}: a yes_no question needs its coarse_type")
        canonicalise = _ANSWER_CANONICALISERS[question_type]
        try:
            true = canonicalise(record.true)
        except LabelError as error:
            raise LabelError(f"QARecord {index} (video {record.video!r}) true answer: {error}") from error
        group = _qa_group(question_type, record.coarse_type, true, index)
        answers[question_type].setdefault(group, []).append((_canonical(canonicalise, record.predicted), true))

    report: dict[str, Any] = {}
    for question_type in ("yes_no", "which_subtype"):
        if answers[question_type]:
            groups = {t: answers[question_type][t] for t in (*taxonomy.COARSE_TYPES, _MIXED) if t in answers[question_type]}
            report[f"{question_type}_accuracy"] = _accuracy_by_group(groups, f"{question_type}_accuracy")
    if answers["which_dimension"]:
        pairs = answers["which_dimension"]["all"]
        report["which_dimension_accuracy"] = accuracy_report(*zip(*pairs), field="which_dimension")
    return report


def _qa_group(question_type: str, coarse_type: str | None, true: str, index: int) -> str:
    """The accuracy group of an answered question: yes/no and which-subtype by the coarse type asked
    about, a which-subtype question over all types by its true subtype's type (`_MIXED` for "none")."""
    if question_type == "which_dimension":
        return "all"
    if coarse_type is not None:
        return _dimension_of(coarse_type, taxonomy.COARSE_TYPES, f"QARecord {index} coarse_type")
    return _MIXED if true == taxonomy.NO_DISTORTION else taxonomy.coarse_type_of(true)


def _accuracy_by_group(pairs: Mapping[str, list[tuple[str, str]]], field: str) -> dict[str, dict]:
    groups = {g: accuracy_report(*zip(*p), field=f"{field}[{g}]") for g, p in pairs.items()}
    groups["all"] = accuracy_report(*zip(*(pair for p in pairs.values() for pair in p)), field=field)
    return groups


_CORRELATION_COLUMNS = (("n", "n"), ("srcc", "SRCC"), ("krcc", "KRCC"), ("plcc_raw", "PLCC raw"),
                        ("plcc_logistic", "PLCC logistic"), ("rmse", "RMSE"))
_ACCURACY_COLUMNS = (("n", "n"), ("accuracy", "accuracy"))
_COUNT_COLUMNS = {"n", "n_distorted"}
_SEVERITY_COLUMNS = (("n", "n"), ("srcc", "SRCC vs -severity"), ("n_distorted", "n distorted"),
                     ("srcc_distorted", "SRCC distorted only"), ("srcc_diagnosed", "SRCC diagnosed"))
_SECTIONS = {
    "score_head": ("Score head (predicted MOS)", _CORRELATION_COLUMNS),
    "level_score": ("Level-probability score (Q-Align, 0-1)", _CORRELATION_COLUMNS[:-1]),
    "severity": ("Score head vs distortion severity (clean = 0; diagnosed: no-distortion answers tied)",
                 _SEVERITY_COLUMNS),
    "level_accuracy": ("Level accuracy (predicted level vs level of true MOS)", _ACCURACY_COLUMNS),
    "yes_no_accuracy": ("Yes/no accuracy per coarse type", _ACCURACY_COLUMNS),
    "which_subtype_accuracy": ("Which-subtype accuracy per coarse type", _ACCURACY_COLUMNS),
    "which_dimension_accuracy": ("Which-dimension accuracy", _ACCURACY_COLUMNS),
    "worst_dimension_accuracy": ("Worst dimension of the ratings (level rule) accuracy", _ACCURACY_COLUMNS),
}


def format_report(report: Mapping[str, Any]) -> str:
    """The report of `build_report` as aligned text tables; undefined values print as `n/a` with a
    numbered note giving the reason."""
    notes: list[str] = []
    blocks = [f"Videos: {report.get('n_videos', 0)}"]
    for section, (title, columns) in _SECTIONS.items():
        if section not in report:
            continue
        rows = report[section]
        if "n" in rows:  # one accuracy for the whole question type, not one per group
            rows = {"all": rows}
        lines = [[title] + [label for _, label in columns]]
        for group, row in rows.items():
            mark = ""
            if row.get("note"):
                notes.append(f"[{len(notes) + 1}] {section} {group}: {row['note']}")
                mark = f" [{len(notes)}]"
            cells = ["n/a" if row.get(k) is None else (str(row[k]) if k in _COUNT_COLUMNS else f"{row[k]:.4f}")
                     for k, _ in columns]
            lines.append([group + mark] + cells)
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        blocks.append("\n".join(
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines))
    if notes:
        blocks.append("Notes:\n" + "\n".join(notes))
    return "\n\n".join(blocks) + "\n"
