"""The public inference API: `FineVQ` (load, assess, chat, timeline), its typed results, and the batch
scoring job behind `finevq score`. Cheap to import; torch loads when `FineVQ` is first used."""

from finevq.lazy import lazy_exports

_EXPORTS = {
    "FineVQ": "assessor",
    "DEFAULT_MODEL": "assessor",
    "Assessment": "results",
    "DimensionRating": "results",
    "DistortionDiagnosis": "results",
    "TimelineWindow": "results",
    "ScoreJob": "batch",
    "run_scoring": "batch",
    "expand_inputs": "inputs",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
