"""The public inference API: `FineVQ` (load, assess, chat, timeline), its typed results, and the batch
scoring job behind `finevq score`. Cheap to import; torch loads when `FineVQ` is first used."""

from importlib import import_module

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


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"finevq.inference.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'finevq.inference' has no attribute {name!r}")
