"""The quality vocabulary: dimensions, rating levels, distortion types and subtypes, and their aliases.
Plain Python, no torch: every other module names these things through this one."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping

from finevq.errors import LabelError

DIMENSIONS: tuple[str, ...] = ("color", "noise", "artifact", "blur", "temporal", "overall")
"""The six quality dimensions; the last one is the overall quality."""

LEVELS: tuple[str, ...] = ("excellent", "good", "fair", "poor", "bad")
"""The five rating levels, best first."""

LEVEL_WEIGHTS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)
"""Q-Align weights of the levels (best first) for a probability-weighted score in [0, 1]."""

COARSE_TYPES: tuple[str, ...] = ("color", "noise", "artifact", "blur", "temporal")
"""The five coarse distortion types (each is also a dimension)."""

NO_DISTORTION = "none"
"""Canonical label of "no distortion" in which-subtype questions and subtype columns."""

SUBTYPES: dict[str, tuple[str, ...]] = {
    "color": (
        "low saturation",
        "high saturation",
        "over dark",
        "over bright",
        "low contrast",
        "high contrast",
        "other color distortion",
    ),
    "noise": ("gaussian noise", "pulse noise", "stripe noise", "other noise"),
    "artifact": (
        "compression artifact",
        "square artifact",
        "ring artifact",
        "moire pattern",
        "other artifact",
    ),
    "blur": (
        "resolution blur",
        "shooting-system blur",
        "compression blur",
        "motion blur",
        "exposure blur",
        "gaussian blur",
        "other blur",
    ),
    "temporal": ("shaking", "lagging", "flickering", "other temporal distortion"),
}
"""The 27 canonical subtypes per coarse type; the last one of each type is its "other"."""

ALL_SUBTYPES: tuple[str, ...] = tuple(s for subtypes in SUBTYPES.values() for s in subtypes)
SPECIFIC_SUBTYPES: tuple[str, ...] = tuple(s for subtypes in SUBTYPES.values() for s in subtypes[:-1])
"""The 22 subtypes that are not an "other" catch-all."""

COARSE_OF_SUBTYPE: dict[str, str] = {s: t for t, subtypes in SUBTYPES.items() for s in subtypes}

WORST_DIMENSION_GOOD = "good"
"""Canonical answer of the which-dimension question when no dimension hurts ("Video quality is good")."""

QUESTION_TYPES: tuple[str, ...] = ("score", "yes_no", "which_subtype", "which_dimension")
"""The four question types of the release: per-dimension rating, yes/no per coarse type, which subtype,
which dimension hurts most."""

# Spellings seen in the published FineVD files (typos, "ratio" suffixes, the Chinese labels of the
# non-_en files) and common variants, each mapped to its canonical name. Keys are normalised with
# `_normalise` before lookup, so case, spacing, hyphens and underscores do not matter.
_ALIASES: dict[str, str] = {
    # colour
    "饱和度过低": "low saturation",
    "饱和度过高": "high saturation",
    "过暗": "over dark",
    "过亮": "over bright",
    "对比度不足": "low contrast",
    "对比度过高": "high contrast",
    "其他色彩失真": "other color distortion",
    "low contrast ratio": "low contrast",
    "high contrast ratio": "high contrast",
    "other colour distortion": "other color distortion",
    "overdark": "over dark",
    "overbright": "over bright",
    # noise
    "高斯噪声": "gaussian noise",
    "脉冲噪声": "pulse noise",
    "条纹噪声": "stripe noise",
    "其他噪声": "other noise",
    "gussian noise": "gaussian noise",
    "guassian noise": "gaussian noise",
    "impulse noise": "pulse noise",
    "salt and pepper noise": "pulse noise",
    # artifact
    "压缩伪影": "compression artifact",
    "块效应": "square artifact",
    "振铃效应": "ring artifact",
    "摩尔纹": "moire pattern",
    "其他伪影": "other artifact",
    "sqaure artifact": "square artifact",
    "block artifact": "square artifact",
    "blocking artifact": "square artifact",
    "mosaic artifact": "square artifact",
    "ringing artifact": "ring artifact",
    "moire": "moire pattern",
    "compression artefact": "compression artifact",
    # blur
    "分辨率模糊": "resolution blur",
    "拍摄系统模糊": "shooting-system blur",
    "压缩模糊": "compression blur",
    "运动模糊": "motion blur",
    "曝光模糊": "exposure blur",
    "高斯模糊": "gaussian blur",
    "其他模糊": "other blur",
    "shooting system blur": "shooting-system blur",
    "defocus blur": "shooting-system blur",
    "guassian blur": "gaussian blur",
    "gussian blur": "gaussian blur",
    # temporal
    "抖动": "shaking",
    "卡顿": "lagging",
    "频闪": "flickering",
    "其他时序失真": "other temporal distortion",
    "other tempporal distortion": "other temporal distortion",
    "shake": "shaking",
    "stutter": "lagging",
    "flicker": "flickering",
    # no distortion
    "none": NO_DISTORTION,
    "no distortion": NO_DISTORTION,
    "无": NO_DISTORTION,
}

_DIMENSION_ALIASES: dict[str, str] = {
    "colour": "color",
    "色彩": "color",
    "噪声": "noise",
    "伪影": "artifact",
    "artefact": "artifact",
    "模糊": "blur",
    "时序": "temporal",
    "temp": "temporal",
    "temporal distortion": "temporal",
    "总体": "overall",
    "overall quality": "overall",
    "quality": "overall",
    "video quality is good": WORST_DIMENSION_GOOD,
    "good": WORST_DIMENSION_GOOD,
}


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\ufeff", "").strip().lower()
    text = re.sub(r"[\s_\-]+", " ", text)
    return text.strip(" .")


_SUBTYPE_LOOKUP: dict[str, str] = {_normalise(s): s for s in ALL_SUBTYPES}
_SUBTYPE_LOOKUP.update({_normalise(alias): canon for alias, canon in _ALIASES.items()})
_DIMENSION_LOOKUP: dict[str, str] = {d: d for d in DIMENSIONS}
_DIMENSION_LOOKUP.update({_normalise(alias): canon for alias, canon in _DIMENSION_ALIASES.items()})


def canonical_subtype(label: str) -> str:
    """Map any published spelling of a distortion subtype (or "None") to its canonical name.

    Raises `LabelError` naming the label when it is unknown."""
    found = _SUBTYPE_LOOKUP.get(_normalise(str(label)))
    if found is None:
        raise LabelError(f"unknown distortion subtype {label!r}; known: {', '.join(ALL_SUBTYPES)}, none")
    return found


def canonical_dimension(label: str) -> str:
    """Map a spelling of a dimension ("Blur", "colour", "Video quality is good", ...) to its name.

    The which-dimension answer "Video quality is good" maps to `WORST_DIMENSION_GOOD`."""
    found = _DIMENSION_LOOKUP.get(_normalise(str(label)))
    if found is None:
        raise LabelError(f"unknown quality dimension {label!r}; known: {', '.join(DIMENSIONS)}")
    return found


def checked_dimensions(dimensions: Iterable[str] | None) -> tuple[str, ...]:
    """Canonical names of the dimensions to rate, in the given order without repeats (None: all six);
    `LabelError` names the request when a name is unknown or is not a dimension, or none is given."""
    if dimensions is None:
        return DIMENSIONS
    dimensions = list(dimensions)
    checked = tuple(dict.fromkeys(canonical_dimension(d) for d in dimensions))
    if not checked or any(d not in DIMENSIONS for d in checked):
        raise LabelError(f"cannot rate dimensions {dimensions}; choose among {', '.join(DIMENSIONS)}")
    return checked


def canonical_labels(labels: Iterable[str]) -> list[str]:
    """Canonical subtype names of many labels; an error lists every unknown one at once."""
    labels = list(labels)
    unknown = sorted({str(x) for x in labels if _normalise(str(x)) not in _SUBTYPE_LOOKUP})
    if unknown:
        raise LabelError(f"unknown distortion labels: {unknown}")
    return [_SUBTYPE_LOOKUP[_normalise(str(x))] for x in labels]


def coarse_type_of(subtype: str) -> str:
    """The coarse type of a (canonical or aliased) subtype; `none` has no coarse type."""
    canon = canonical_subtype(subtype)
    if canon == NO_DISTORTION:
        raise LabelError("'none' (no distortion) has no coarse type")
    return COARSE_OF_SUBTYPE[canon]


def mos_to_level(mos: float, low: float, high: float) -> str:
    """The level of a MOS: five equal-width bins over [low, high], best (highest MOS) first.

    Values outside the range fall into the end bins (FineVD MOS can be slightly below its stated
    minimum); NaN is an error."""
    return LEVELS[mos_to_level_index(mos, low, high)]


def mos_to_level_index(mos: float, low: float, high: float) -> int:
    """Index into `LEVELS` of a MOS under the equal-width binning of `mos_to_level`."""
    if not high > low:
        raise LabelError(f"level range must have high > low, got [{low}, {high}]")
    if mos is None or math.isnan(float(mos)):
        raise LabelError("cannot bin a missing (NaN) MOS into a level")
    fraction = (float(mos) - low) / (high - low)
    bin_from_bottom = min(max(int(math.floor(fraction * len(LEVELS))), 0), len(LEVELS) - 1)
    return len(LEVELS) - 1 - bin_from_bottom


def worst_rated_dimension(levels: Mapping[str, str], mos: Mapping[str, float],
                          ranges: Mapping[str, tuple[float, float]] | None = None) -> str | None:
    """The label rule of the which-dimension question: of the coarse dimensions with a level and a MOS,
    the one whose level is worst (ties: lowest MOS within its range, (0, 1) when `ranges` lacks it), or
    `WORST_DIMENSION_GOOD` when even that one is excellent or good; None when none is rated."""
    rated = [d for d in COARSE_TYPES if levels.get(d) is not None and mos.get(d) is not None]
    if not rated:
        return None

    def badness(dimension: str) -> tuple[int, float]:
        low, high = (ranges or {}).get(dimension) or (0.0, 1.0)
        return LEVELS.index(levels[dimension]), -(mos[dimension] - low) / (high - low)

    worst = max(rated, key=badness)
    return WORST_DIMENSION_GOOD if LEVELS.index(levels[worst]) < 2 else worst


def level_score(probabilities: Iterable[float]) -> float:
    """Q-Align score in [0, 1] of five level probabilities (best first)."""
    probabilities = list(probabilities)
    if len(probabilities) != len(LEVELS):
        raise LabelError(f"need {len(LEVELS)} level probabilities, got {len(probabilities)}")
    return float(sum(p * w for p, w in zip(probabilities, LEVEL_WEIGHTS)))
