"""The evaluation harness behind `finevq eval`: a split of any of our datasets, the model run over it with
the training recipe's evaluation code, and the `finevq.metrics` report (SRCC/KRCC/PLCC, QA accuracies)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import datasets
import yaml
from tqdm.auto import tqdm

from finevq.data.benchmarks import BENCHMARKS, load_benchmark
from finevq.data.finevd import load_finevd
from finevq.data.instructions import build_conversations
from finevq.errors import ConfigError
from finevq.inference.assessor import FineVQ
from finevq.metrics import build_report
from finevq.taxonomy import DIMENSIONS, QUESTION_TYPES
from finevq.modeling.evaluation import evaluate_videos, group_by_video

QUESTION_SOURCES = ("generated", "published")

LOADERS = ("finevd", *BENCHMARKS, "csv")
"""Dataset names `--data` accepts: FineVD-format folders (all question types) and the UGC benchmarks
(overall score only; "csv" is any table with a video and a MOS column)."""


def parse_data_spec(spec: Sequence[str]) -> tuple[str, str, dict]:
    """`LOADER SOURCE [KEY=VALUE ...]` -> (loader, source, keyword arguments); values are read as YAML
    (numbers, lists, booleans), e.g. `finevd data/synth split_ratios=[1,1,2]`."""
    if len(spec) < 2:
        raise ConfigError(f"--data needs a loader and its source: LOADER SOURCE [KEY=VALUE ...]; loaders: {', '.join(LOADERS)}")
    name, source, *pairs = spec
    if name not in LOADERS:
        raise ConfigError(f"unknown dataset loader {name!r}; known: {', '.join(LOADERS)}")
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--data option {pair!r} is not KEY=VALUE")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"--data option {pair!r}: the value does not parse ({error})") from None
    return name, source, options


def _call(loader, what: str, *args, **options):
    accepted = set(inspect.signature(loader).parameters) - {"source", "config", "name", "labels"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"{what} takes no option(s) {unknown}; its options: {', '.join(sorted(accepted))}")
    return loader(*args, **options)


def load_eval_rows(spec: Sequence[str], split: str = "test") -> datasets.Dataset:
    """The conversation rows of one split of a dataset named by a `--data` spec.

    FineVD-format folders give score questions per rated dimension and yes/no, which-subtype and
    which-dimension questions: generated from the labels with `conversation_seed` (default 0) as the
    recipe generates them, or with `questions=published` the folder's own QA files, wording kept.
    Benchmarks give overall score questions."""
    name, source, options = parse_data_spec(spec)
    seed = options.pop("conversation_seed", 0)
    questions = options.pop("questions", "generated")
    if questions not in QUESTION_SOURCES:
        raise ConfigError(f"--data option questions={questions!r}: choose one of {', '.join(QUESTION_SOURCES)}")
    if name != "finevd":
        labels = _call(load_benchmark, f"the {name} loader", name, source, **options)
        return build_conversations(_split(labels, split, name, source), seed, ("score",))
    scores = _split(_call(load_finevd, "the finevd loader", source, "scores", **options), split, name, source)
    if questions == "generated":
        return build_conversations(scores, seed, QUESTION_TYPES)
    published = _split(_call(load_finevd, "the finevd loader", source, "qa", **options), split, name, source)
    return datasets.concatenate_datasets(
        [build_conversations(scores, seed, ("score",)), build_conversations(published)]
    )


def _split(labels: datasets.DatasetDict, split: str, name: str, source: str) -> datasets.Dataset:
    if split not in labels:
        raise ConfigError(f"{name} data {source!r} has no {split!r} split; it has: {', '.join(labels)}")
    return labels[split]


def evaluate(
    assessor: FineVQ,
    rows: datasets.Dataset,
    dimensions: Sequence[str] = DIMENSIONS,
    max_videos: int | None = None,
    progress: bool = True,
) -> dict:
    """The `finevq.metrics` report of the model on conversation rows (each video encoded once; its
    rated dimensions scored, its questions answered by the most probable option)."""
    videos = group_by_video(rows, dimensions, max_videos)
    bar = tqdm(videos, unit="video", desc="evaluating", disable=not progress)
    scores, answers = evaluate_videos(assessor.model, assessor.processor, bar)
    return build_report(scores, answers)
