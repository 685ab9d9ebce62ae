"""Matplotlib figures of predictions against ground truth: scores against MOS with the fitted logistic,
confusion matrices, yes/no precision and recall, the two score heads compared, keyframes, quality over time."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from finevq.exploration.tables import fitted_mapping
from finevq.inference.results import TimelineWindow
from finevq.metrics import correlation_report, srcc
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS, NO_DISTORTION, SUBTYPES
from finevq.video import keyframe_indices, open_video

PANEL_INCHES = (4.4, 3.8)
"""Width and height of one subplot."""

_SCORE_AXES = {
    "score": "predicted score (score head, model scale)",
    "level_score": "level-probability score (0-1)",
}


def _panels(count: int, columns: int = 3, panel: tuple[float, float] = PANEL_INCHES) -> tuple[Figure, list[Axes]]:
    """A figure with `count` subplots in rows of `columns` (unused cells removed)."""
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(panel[0] * columns, panel[1] * rows), layout="constrained")
    axes = list(figure.subplots(rows, columns, squeeze=False).ravel())
    for unused in axes[count:]:
        unused.remove()
    return figure, axes[:count]


def _number(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _rated_dimensions(scores: pd.DataFrame) -> list[str]:
    rated = set(scores["dimension"])
    return [d for d in DIMENSIONS if d in rated]


def score_scatter(scores: pd.DataFrame, column: str = "score") -> Figure:
    """Per rated dimension, the predicted score (`column` of `score_table`: "score" for the score
    head, "level_score" for the level-probability score) against the true MOS, with the fitted
    logistic curve and SRCC, KRCC and PLCC (after the fit, as in `finevq eval`) in the title."""
    dimensions = _rated_dimensions(scores)
    figure, axes = _panels(len(dimensions))
    for ax, dimension in zip(axes, dimensions):
        rows = scores[scores["dimension"] == dimension]
        x, y = rows[column].to_numpy(float), rows["true_mos"].to_numpy(float)
        ax.scatter(x, y, s=20, alpha=0.75, label="one video")
        mapping = fitted_mapping(x, y)
        if mapping is not None:
            grid = np.linspace(x.min(), x.max(), 200)
            ax.plot(grid, mapping(grid), color="C3", label=f"fitted {mapping.kind}")
        report = correlation_report(x, y, field=f"{column}[{dimension}]", with_rmse=False)
        ax.set_title(f"{dimension} (n={report['n']})\nSRCC {_number(report['srcc'])}  KRCC {_number(report['krcc'])}  "
                     f"PLCC {_number(report['plcc_logistic'])}")
        ax.set_xlabel(_SCORE_AXES[column])
        ax.set_ylabel("true MOS (dataset scale)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    figure.suptitle(f"{_SCORE_AXES[column].capitalize()} against true MOS, per dimension")
    return figure


def _confusion(ax: Axes, true: Sequence[str], predicted: Sequence[str], labels: Sequence[str], title: str) -> None:
    """A confusion matrix of labels on `ax`: rows true, columns predicted, counts written in the cells."""
    position = {label: index for index, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(true, predicted):
        counts[position[t], position[p]] += 1
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
    for (row, column), count in np.ndenumerate(counts):
        if count:
            dark = count > counts.max() / 2
            ax.text(column, row, str(count), ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(counts.sum())
    accuracy = f"{np.trace(counts) / total:.2f}" if total else "n/a"
    ax.set_title(f"{title}\naccuracy {accuracy} (n={total})")


def level_confusion(scores: pd.DataFrame) -> Figure:
    """Per rated dimension, the predicted level (most probable level word) against the true level."""
    dimensions = _rated_dimensions(scores)
    figure, axes = _panels(len(dimensions))
    for ax, dimension in zip(axes, dimensions):
        rows = scores[scores["dimension"] == dimension]
        _confusion(ax, rows["true_level"], rows["level"], LEVELS, dimension)
    figure.suptitle("Rating levels: predicted against true (counts of videos)")
    return figure


def subtype_confusion(answers: pd.DataFrame) -> Figure:
    """Per coarse type, the which-subtype answer against the true subtype ("none": no distortion of
    that type); only the subtypes that occur, truly or predicted, are shown, in taxonomy order."""
    subtypes = answers[answers["question_type"] == "which_subtype"]
    coarse_types = [c for c in COARSE_TYPES if c in set(subtypes["coarse_type"])]
    figure, axes = _panels(len(coarse_types), panel=(4.8, 4.4))
    for ax, coarse in zip(axes, coarse_types):
        rows = subtypes[subtypes["coarse_type"] == coarse]
        seen = set(rows["true"]) | set(rows["predicted"])
        labels = [label for label in (NO_DISTORTION, *SUBTYPES[coarse]) if label in seen]
        _confusion(ax, rows["true"], rows["predicted"], labels, f"{coarse} distortion")
    figure.suptitle("Which subtype: predicted against true (counts of videos)")
    return figure


def yes_no_bars(table: pd.DataFrame) -> Figure:
    """Precision, recall and accuracy of "yes" per coarse type (a `yes_no_table`); undefined values
    (nothing predicted or truly present) are marked n/a."""
    figure = Figure(figsize=(9.5, 4.2), layout="constrained")
    ax = figure.subplots()
    metrics = ("precision", "recall", "accuracy")
    width = 0.8 / len(metrics)
    for offset, metric in enumerate(metrics):
        positions = np.arange(len(table)) + (offset - 1) * width
        values = table[metric].to_numpy(float)
        ax.bar(positions, np.nan_to_num(values), width, label=metric, color=f"C{offset}")
        for x, value in zip(positions, values):
            ax.text(x, (0 if np.isnan(value) else value) + 0.02, "n/a" if np.isnan(value) else f"{value:.2f}",
                    ha="center", va="bottom", fontsize="x-small")
    names = [f"{name}\n{int(row.true_yes)} yes / {int(row.n)}" for name, row in table.iterrows()]
    ax.set_xticks(range(len(table)), names)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share (0-1)")
    ax.set_xlabel("coarse distortion type (true yes / questions)")
    ax.legend(loc="upper left", ncols=len(metrics), fontsize="small")
    ax.set_title('Is there a distortion of this type? Precision and recall of "yes"')
    return figure


def score_agreement(scores: pd.DataFrame) -> Figure:
    """Per rated dimension, the score head (on 0-1 over the model's score range) against the
    level-probability score (0-1): on the diagonal they agree; orange points fall in another level."""
    dimensions = _rated_dimensions(scores)
    figure, axes = _panels(len(dimensions))
    for ax, dimension in zip(axes, dimensions):
        rows = scores[scores["dimension"] == dimension]
        agree = (rows["score_level"] == rows["level"]).to_numpy()
        for mask, colour, label in ((agree, "C0", "same level"), (~agree, "C1", "another level")):
            ax.scatter(rows["score_01"][mask], rows["level_score"][mask], s=20, alpha=0.8, color=colour, label=label)
        values = np.concatenate([rows["score_01"], rows["level_score"], [0.0, 1.0]])
        limits = (values.min() - 0.05, values.max() + 0.05)  # a score head can leave its range
        ax.plot(limits, limits, color="grey", linestyle="--", linewidth=1, label="agreement")
        ax.set_xlim(limits)
        ax.set_ylim(limits)
        correlation = srcc(rows["score_01"], rows["level_score"]) if len(rows) else math.nan
        ax.set_title(f"{dimension}: {int((~agree).sum())} of {len(rows)} in another level\n"
                     f"SRCC between the two {_number(correlation)}")
        ax.set_xlabel("score head (0-1 of the score range)")
        ax.set_ylabel("level-probability score (0-1)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    figure.suptitle("Score head against level-probability score")
    return figure


def _keyframes(path: str, count: int, max_side: int) -> tuple[list[int], np.ndarray]:
    with open_video(path) as reader:
        indices = keyframe_indices(reader.info.num_frames, count)
        return indices, reader.read(indices, max_side=max_side)


def _listed(labels: Sequence[str]) -> str:
    return ", ".join(labels) if len(labels) else "none"


def keyframe_grid(worst: pd.DataFrame, paths: dict[str, str], frames: int = 4, max_side: int = 256) -> Figure:
    """One row per video of `worst` (a `worst_predicted` table): `frames` keyframes (centres of equal
    segments) under its true and predicted MOS, level and distortions."""
    figure = Figure(figsize=(3.2 * frames, 3.1 * len(worst)), layout="constrained")
    for row_figure, (_, row) in zip(figure.subfigures(len(worst), 1, squeeze=False).ravel(), worst.iterrows()):
        indices, images = _keyframes(paths[row["video"]], frames, max_side)
        for ax, index, image in zip(row_figure.subplots(1, frames, squeeze=False)[0], indices, images):
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"frame {index}", fontsize="small")
        row_figure.suptitle(
            f"{row['video']}: true MOS {row['true_mos']:.1f} (level {row['true_level']}); predicted "
            f"{row['mapped_score']:.1f} (level {row['level']}); error {row['error']:.1f}\n"
            f"true distortions: {_listed(row['true_distortions'])}; predicted: {_listed(row['predicted_distortions'])}",
            x=0.01, ha="left", fontsize="small",
        )
    figure.suptitle("Worst-predicted videos (predicted score mapped onto the MOS scale)")
    return figure


def quality_over_time(windows: Sequence[TimelineWindow], score_range: tuple[float, float], title: str) -> Figure:
    """Each dimension's score per window over time (a `FineVQ.timeline`), on bands of the five levels
    (equal-width bins of the model's score range; the end bins take in scores beyond it)."""
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    ax = figure.subplots()
    values = [score for window in windows for score in window.scores.values()]
    edges = np.linspace(*score_range, len(LEVELS) + 1)
    edges[0], edges[-1] = min(edges[0], *values), max(edges[-1], *values)
    for index, level in enumerate(reversed(LEVELS)):
        ax.axhspan(edges[index], edges[index + 1], color="grey", alpha=0.12 if index % 2 else 0.04, linewidth=0)
        ax.text(1.005, (edges[index] + edges[index + 1]) / 2, level, transform=ax.get_yaxis_transform(),
                va="center", fontsize="small")
    times = [window.start for window in windows] + [windows[-1].end]
    for dimension in [d for d in DIMENSIONS if d in windows[0].scores]:
        ax.stairs([window.scores[dimension] for window in windows], times, label=dimension, linewidth=2,
                  baseline=None)
    ax.set_ylim(edges[0], edges[-1])
    ax.set_xlim(times[0], times[-1])
    ax.set_xlabel("time (seconds)")
    ax.set_ylabel("predicted score (model scale)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.08, 1), fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return figure


def save_figure(figure: Figure, folder: str | os.PathLike | None, name: str) -> Path | None:
    """Write `figure` as `folder/name.png` (nothing when folder is None); returns the path."""
    if folder is None:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
