"""The one documented function from distortion severities to FineVD-style labels: per-dimension
scores on 0-100, overall, levels, the dominant subtype per coarse type and the worst dimension."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from finevq.taxonomy import COARSE_OF_SUBTYPE, COARSE_TYPES, NO_DISTORTION, WORST_DIMENSION_GOOD, mos_to_level

SCORE_RANGE: tuple[float, float] = (0.0, 100.0)
"""The MOS range scores live in; levels are five equal bins over it (finevd.json's score_range)."""

IMPACT: dict[str, dict[str, float]] = {
    "low saturation": {"color": 0.80},
    "high saturation": {"color": 0.78},
    "over dark": {"color": 0.80, "noise": 0.05},
    "over bright": {"color": 0.80},
    "low contrast": {"color": 0.78},
    "high contrast": {"color": 0.75},
    "gaussian noise": {"noise": 0.85, "blur": 0.05},
    "pulse noise": {"noise": 0.82},
    "stripe noise": {"noise": 0.78},
    "compression artifact": {"artifact": 0.85, "blur": 0.25},
    "square artifact": {"artifact": 0.85, "blur": 0.10},
    "ring artifact": {"artifact": 0.75},
    "moire pattern": {"artifact": 0.75, "color": 0.10},
    "resolution blur": {"blur": 0.82},
    "shooting-system blur": {"blur": 0.85},
    "compression blur": {"blur": 0.78, "artifact": 0.20},
    "motion blur": {"blur": 0.82, "temporal": 0.10},
    "exposure blur": {"blur": 0.75, "temporal": 0.15, "color": 0.10},
    "gaussian blur": {"blur": 0.85},
    "shaking": {"temporal": 0.85, "blur": 0.05},
    "lagging": {"temporal": 0.80},
    "flickering": {"temporal": 0.80, "color": 0.10},
}
"""How much each subtype at full severity takes off each dimension (a fraction of its clean score).
Each subtype's own coarse type gets the largest share; a few also hurt a neighbour (compression
blurs, exposure blur smears in time)."""

OVERALL_EXPONENT = 0.5
"""overall = mean(clean dimensions) * prod over dimensions d of (score_d / clean_d) ** OVERALL_EXPONENT:
every dimension's relative loss carries into overall, several losses compound."""


@dataclass(frozen=True)
class VideoLabels:
    """All labels of one video, derived from its clean scores and (subtype, severity) distortions."""

    scores: dict[str, float]
    levels: dict[str, str]
    subtypes: dict[str, str]
    worst_dimension: str
    main_subtype: str


def expected_clean_scores(short_side: int, motion_speed: float) -> dict[str, float]:
    """The part of the clean scores that the video shows: higher for sharper (larger) frames,
    temporal lower for fast camera motion."""
    base = 82.0 + 8.0 * float(np.clip((short_side - 200) / 500, 0, 1))
    scores = dict.fromkeys(COARSE_TYPES, base)
    scores["temporal"] -= 4.0 * float(np.clip(motion_speed / 8, 0, 1))
    return scores


def clean_scores(short_side: int, motion_speed: float, rng: np.random.Generator) -> dict[str, float]:
    """Scores of the undistorted clip: `expected_clean_scores` plus a natural spread no pixel
    shows, per video (N(0, 1.5)) and per video and dimension (N(0, 1.2)), capped at 99."""
    shared = rng.normal(0, 1.5)
    expected = expected_clean_scores(short_side, motion_speed)
    return {dimension: float(min(expected[dimension] + shared + rng.normal(0, 1.2), 99.0)) for dimension in COARSE_TYPES}


def dimension_scores(clean: dict[str, float], distortions: list[tuple[str, float]]) -> dict[str, float]:
    """score_d = clean_d * prod over distortions k of (1 - IMPACT[k][d] * severity_k), for the five
    coarse dimensions, then overall from them (`OVERALL_EXPONENT`). Every factor lies in (0, 1] and
    falls as a severity rises, so a stronger distortion never raises any score."""
    scores = dict(clean)
    for subtype, severity in distortions:
        for dimension, weight in IMPACT[subtype].items():
            scores[dimension] *= 1.0 - weight * float(np.clip(severity, 0.0, 1.0))
    retained = np.prod([(scores[d] / clean[d]) ** OVERALL_EXPONENT for d in COARSE_TYPES])
    scores["overall"] = float(np.mean([clean[d] for d in COARSE_TYPES])) * float(retained)
    return {dimension: round(float(score), 3) for dimension, score in scores.items()}


def dimension_severities(distortions: list[tuple[str, float]]) -> dict[str, float]:
    """Per coarse dimension, the share of its clean score the distortions take off: 1 - prod over
    distortions k of (1 - IMPACT[k][d] * severity_k); exactly 0 for a dimension no distortion touches.
    It depends on the distortions alone, so unlike the scores it has no clean spread to cap a ranking."""
    kept = dict.fromkeys(COARSE_TYPES, 1.0)
    for subtype, severity in distortions:
        for dimension, weight in IMPACT[subtype].items():
            kept[dimension] *= 1.0 - weight * float(np.clip(severity, 0.0, 1.0))
    return {dimension: round(1.0 - share, 4) for dimension, share in kept.items()}


def label_video(clean: dict[str, float], distortions: list[tuple[str, float]]) -> VideoLabels:
    """Scores, levels (five bins over `SCORE_RANGE`), dominant subtype per coarse type (the present
    subtype of that type that takes the most off its dimension, else none), the worst dimension (the
    distorted coarse dimension that lost the most; "good" for a clean video) and its subtype."""
    scores = dimension_scores(clean, distortions)
    levels = {dimension: mos_to_level(score, *SCORE_RANGE) for dimension, score in scores.items()}
    subtypes, drops = {}, {}
    for coarse in COARSE_TYPES:
        present = [(IMPACT[s][coarse] * severity, s) for s, severity in distortions if COARSE_OF_SUBTYPE[s] == coarse]
        subtypes[coarse] = max(present)[1] if present else NO_DISTORTION
        if present:
            drops[coarse] = clean[coarse] - scores[coarse]
    worst = max(drops, key=drops.get) if drops else WORST_DIMENSION_GOOD
    return VideoLabels(scores, levels, subtypes, worst, subtypes.get(worst, NO_DISTORTION))


def describe_label_function() -> str:
    """The label function in Markdown, for the generated README (same constants the code uses)."""
    rows = "\n".join(
        f"| {subtype} | {COARSE_OF_SUBTYPE[subtype]} | "
        + ", ".join(f"{dimension} {weight:.2f}" for dimension, weight in impact.items()) + " |"
        for subtype, impact in IMPACT.items()
    )
    low, high = SCORE_RANGE
    return f"""Scores are on {low:g}-{high:g}. A clean clip scores
`base = 82 + 8 * clip((short_side - 200) / 500, 0, 1) + N(0, 1.5)` on every coarse dimension, plus
`N(0, 1.2)` per dimension, temporal minus `4 * clip(camera_speed_px_per_frame / 8, 0, 1)`, capped at 99.
Each distortion k of severity s_k in (0, 1] multiplies dimension d by `1 - impact[k][d] * s_k`
(monotone: a stronger distortion never raises a score). Overall is
`mean(clean dimensions) * prod_d (score_d / clean_d) ** {OVERALL_EXPONENT:g}`: every dimension's relative
loss carries into overall, and several losses compound.
Levels: five equal bins over [{low:g}, {high:g}] (`finevq.taxonomy.mos_to_level`).
`subtype_<type>`: the present subtype of that coarse type with the largest `impact * severity`, else none.
Worst dimension: the distorted coarse dimension that lost the most points ("Video quality is good"
for clean videos).

| subtype | coarse type | impact at severity 1 |
|---|---|---|
{rows}
"""
