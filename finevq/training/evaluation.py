"""Checkpoint selection for training: the validation metric named in the config, read from a
`finevq.metrics` report (the records come from `finevq.modeling.evaluation`)."""

from __future__ import annotations

from finevq.errors import ConfigError


def metric_value(report: dict, path: str) -> float | None:
    """The number at a dotted path of a report, None when the report has it undefined (null).

    A path the report does not have is a ConfigError listing the keys available where it failed."""
    node = report
    for depth, key in enumerate(path.split(".")):
        if not isinstance(node, dict) or key not in node:
            where = ".".join(path.split(".")[:depth]) or "the report"
            known = ", ".join(node) if isinstance(node, dict) else "none (a number)"
            raise ConfigError(f"evaluation.metric {path!r}: no {key!r} under {where}; available: {known}")
        node = node[key]
    if node is not None and not (isinstance(node, (int, float)) and not isinstance(node, bool)):
        raise ConfigError(f"evaluation.metric {path!r} names a section, not a number")
    return None if node is None else float(node)
