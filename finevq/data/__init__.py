"""Label data: FineVD and benchmark loaders as `datasets`, instruction conversations, export, inspection.
Importing this package is cheap; `datasets` loads when a loader is first used."""

from __future__ import annotations

from finevq.lazy import lazy_exports

_EXPORTS = {
    "load_finevd": "finevd",
    "read_finevd": "folder",
    "load_benchmark": "benchmarks",
    "read_benchmark": "benchmarks",
    "BENCHMARKS": "benchmarks",
    "build_conversations": "instructions",
    "score_question": "instructions",
    "export_dataset": "export",
    "inspect_labels": "inspection",
    "format_summary": "inspection",
    "load_report": "builder",
    "SCORES_FEATURES": "features",
    "QA_FEATURES": "features",
    "CONVERSATION_FEATURES": "features",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
