"""The typed results of an assessment (ratings, distortions, worst dimension, quality over time) and
their JSON form: `to_dict`/`from_dict` round-trip everything; `to_row` is the CLI's fixed output row."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from finevq.errors import LabelError
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS

ROW_KEYS = ("video", "model", "scores", "levels", "level_probs", "distortions", "worst_dimension", "seconds", "error")
"""The keys of a successful output row, in order; a failed row is {"video": ..., "error": ...}."""


@dataclass
class DimensionRating:
    """One dimension: the score head's score (on the model's score scale), the most probable level
    and the probabilities of the five levels (best first)."""

    score: float
    level: str
    level_probabilities: dict[str, float]

    @property
    def confidence(self) -> float:
        """Probability of the chosen level."""
        return self.level_probabilities[self.level]


@dataclass
class DistortionDiagnosis:
    """One coarse distortion type: the probability the model answers "Yes" to its yes/no question,
    whether that makes it present, and the most likely subtype (None when absent) with the
    probabilities of every subtype of the type from the which-subtype question."""

    probability: float
    present: bool
    subtype: str | None
    subtype_probabilities: dict[str, float] = field(default_factory=dict)


@dataclass
class TimelineWindow:
    """Scores and levels of one window of the video, [start, end) in seconds."""

    start: float
    end: float
    scores: dict[str, float]
    levels: dict[str, str]

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "scores": dict(self.scores), "levels": dict(self.levels)}

    @classmethod
    def from_dict(cls, values: dict) -> TimelineWindow:
        return cls(float(values["start"]), float(values["end"]), dict(values["scores"]), dict(values["levels"]))


@dataclass
class Assessment:
    """Everything `FineVQ.assess` found about one video.

    ratings: per requested dimension; distortions: per coarse type (empty without diagnosis);
    worst_dimension: the coarse dimension that hurts most, None when none is rated below "good";
    frames / motion_frames: the frame indices the model saw; seconds: wall time of decode + model."""

    video: str
    model: str
    ratings: dict[str, DimensionRating]
    distortions: dict[str, DistortionDiagnosis]
    worst_dimension: str | None
    frames: list[int]
    motion_frames: list[int]
    seconds: float
    timeline: list[TimelineWindow] | None = None

    @property
    def scores(self) -> dict[str, float]:
        return {d: r.score for d, r in self.ratings.items()}

    @property
    def levels(self) -> dict[str, str]:
        return {d: r.level for d, r in self.ratings.items()}

    def to_row(self) -> dict:
        """The output row of `finevq score` (the issue's schema, plus "timeline" when one was made)."""
        row = {
            "video": self.video,
            "model": self.model,
            "scores": self.scores,
            "levels": self.levels,
            "level_probs": {d: dict(r.level_probabilities) for d, r in self.ratings.items()},
            "distortions": {
                t: {"present": d.present, "probability": d.probability, "subtype": d.subtype}
                for t, d in self.distortions.items()
            },
            "worst_dimension": self.worst_dimension,
            "seconds": self.seconds,
            "error": None,
        }
        if self.timeline is not None:
            row["timeline"] = [window.to_dict() for window in self.timeline]
        return row

    def to_dict(self) -> dict:
        """The row plus what it leaves out (frames used, subtype probabilities); JSON-ready."""
        values = self.to_row()
        values["frames"] = list(self.frames)
        values["motion_frames"] = list(self.motion_frames)
        for coarse, diagnosis in self.distortions.items():
            values["distortions"][coarse]["subtype_probabilities"] = dict(diagnosis.subtype_probabilities)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Assessment:
        """An assessment from `to_dict` (or from an output row, which lacks frames and subtype
        probabilities); raises LabelError naming what is missing or unknown."""
        if values.get("error"):
            raise LabelError(f"row of {values.get('video')!r} is a failure, not an assessment: {values['error']}")
        try:
            ratings = {
                _known(d, DIMENSIONS, "dimension"): DimensionRating(
                    float(score), _known(values["levels"][d], LEVELS, "level"), dict(values["level_probs"][d])
                )
                for d, score in values["scores"].items()
            }
            distortions = {
                _known(t, COARSE_TYPES, "distortion type"): DistortionDiagnosis(
                    float(d["probability"]), bool(d["present"]), d["subtype"], dict(d.get("subtype_probabilities", {}))
                )
                for t, d in values.get("distortions", {}).items()
            }
            timeline = values.get("timeline")
            return cls(
                video=values["video"],
                model=values["model"],
                ratings=ratings,
                distortions=distortions,
                worst_dimension=values["worst_dimension"],
                frames=list(values.get("frames", [])),
                motion_frames=list(values.get("motion_frames", [])),
                seconds=float(values["seconds"]),
                timeline=None if timeline is None else [TimelineWindow.from_dict(w) for w in timeline],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise LabelError(f"not an assessment of a video ({type(error).__name__}: {error})") from None

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Assessment:
        try:
            values = json.loads(text)
        except ValueError as error:
            raise LabelError(f"assessment JSON does not parse: {error}") from None
        return cls.from_dict(values)


def failure_row(video: str, error: str) -> dict:
    """The output row of a video that could not be assessed."""
    return {"video": video, "error": error}


def _known(name: str, known: tuple[str, ...], what: str) -> str:
    if name not in known:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(known)}")
    return name
