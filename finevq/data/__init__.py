"""Label data: FineVD and benchmark loaders as `datasets`, instruction conversations, export, inspection.
Importing this package is cheap; `datasets` loads when a loader is first used."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_finevd": "finevq.data.finevd",
    "read_finevd": "finevq.data.folder",
    "load_benchmark": "finevq.data.benchmarks",
    "read_benchmark": "finevq.data.benchmarks",
    "BENCHMARKS": "finevq.data.benchmarks",
    "build_conversations": "finevq.data.instructions",
    "score_question": "finevq.data.instructions",
    "export_dataset": "finevq.data.export",
    "inspect_labels": "finevq.data.inspection",
    "format_summary": "finevq.data.inspection",
    "load_report": "finevq.data.builder",
    "SCORES_FEATURES": "finevq.data.features",
    "QA_FEATURES": "finevq.data.features",
    "CONVERSATION_FEATURES": "finevq.data.features",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'finevq.data' has no attribute {name!r}")
