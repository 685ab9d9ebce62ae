"""A model's predictions on a dataset split, made by the `finevq eval` code one video at a time and
cached in a folder (one JSONL row per video, appended as it goes), so that re-running is instant."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from finevq.errors import ConfigError
from finevq.evaluation import load_eval_rows
from finevq.inference.assessor import DEFAULT_MODEL, FineVQ, default_model_folder
from finevq.inference.outputs import RowWriter, read_rows
from finevq.inference.results import TimelineWindow
from finevq.metrics import QARecord, ScoreRecord, build_report
from finevq.taxonomy import DIMENSIONS
from finevq.modeling.evaluation import evaluate_videos, group_by_video
from finevq.video import probe

ROWS_FILE = "predictions.jsonl"
RUN_FILE = "run.json"
TIMELINES_DIR = "timelines"


def data_spec(loader: str, source: str | os.PathLike, options: Mapping | None = None) -> list[str]:
    """The `finevq eval --data` arguments naming a dataset: the loader, its source and its keyword
    options (written so that `--data` reads them back as YAML: plain text, or JSON)."""
    return [loader, os.fspath(source), *(f"{key}={_option_text(value)}" for key, value in (options or {}).items())]


def _option_text(value) -> str:
    """A `--data` option value as YAML reads it back: plain text when it reads back as itself, else JSON."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        try:
            if text and yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass  # not valid YAML as it stands: quoted below
    return json.dumps(value, default=os.fspath)


def model_identity(model: str | os.PathLike | None) -> dict:
    """What decides a model's predictions, as far as can be told without loading it: a local folder's
    path and the size and modification time of its config and weight files; a hub id by its name."""
    folder = default_model_folder() if model is None else Path(model)
    if not folder.is_dir():
        return {"model": DEFAULT_MODEL if model is None else os.fspath(model)}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors"))
    stats = [[p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    return {"model": str(folder.resolve()), "files": stats}


def run_folder(cache_dir: str | os.PathLike, model: str | os.PathLike | None, data: Sequence[str], split: str
               ) -> tuple[Path, dict]:
    """(the cache folder of one model on one split of one dataset, what identifies that run): another
    model file, dataset option or split gets another folder."""
    identity = {"model": model_identity(model), "data": list(data), "split": split}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    name = re.sub(r"[^\w.-]+", "_", Path(identity["model"]["model"]).name) or "model"
    return Path(cache_dir) / f"{name}-{split}-{digest}", identity


@dataclass
class Predictions:
    """A model's predictions on the videos of a split: the `finevq eval` score and QA records, each
    video's file and duration (seconds), the model's score range; `report()` is the `finevq eval` report."""

    folder: Path
    model: str | os.PathLike | None
    score_range: tuple[float, float]
    paths: dict[str, str]
    durations: dict[str, float]
    scores: list[ScoreRecord]
    answers: list[QARecord]
    loaded: FineVQ | None = field(default=None, repr=False)

    def report(self) -> dict:
        """The `finevq.metrics` report of these predictions: the numbers `finevq eval` prints."""
        return build_report(self.scores, self.answers)

    def assessor(self) -> FineVQ:
        """The model, loaded on first use only (cached predictions need none)."""
        if self.loaded is None:
            self.loaded = FineVQ.from_pretrained(self.model)
        return self.loaded

    def longest_video(self) -> str:
        """The name of the longest video (by probed duration)."""
        return max(self.durations, key=self.durations.get)

    def timeline(self, video: str, window_seconds: float = 1.0, dimensions: Sequence[str] = DIMENSIONS
                 ) -> list[TimelineWindow]:
        """Scores and levels of consecutive windows of one video of the split (`FineVQ.timeline`), cached."""
        if video not in self.paths:
            raise ConfigError(f"video {video!r} is not among the {len(self.paths)} predicted videos of {self.folder}")
        key = json.dumps([video, float(window_seconds), list(dimensions)])
        cached = self.folder / TIMELINES_DIR / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        if cached.is_file():
            return [TimelineWindow.from_dict(window) for window in json.loads(cached.read_text())]
        windows = self.assessor().timeline(self.paths[video], window_seconds, dimensions)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.partial")
        partial.write_text(json.dumps([window.to_dict() for window in windows]))
        os.replace(partial, cached)
        return windows


def predict(
    model: str | os.PathLike | None,
    data: Sequence[str],
    split: str = "test",
    max_videos: int | None = None,
    cache_dir: str | os.PathLike = "predictions",
    progress: bool = True,
) -> Predictions:
    """The model's predictions on the first `max_videos` videos of a split (`data`: a `finevq eval
    --data` spec, see `data_spec`), made with the `finevq eval` code and cached under `cache_dir`:
    videos already predicted are read back, the others run with a progress bar and appended one by
    one, so an interrupted run resumes where it stopped and a finished one does not load the model."""
    videos = group_by_video(load_eval_rows(data, split), DIMENSIONS, max_videos)
    if not videos:
        raise ConfigError(f"the {split!r} split of {data[1]!r} has no videos to predict")
    folder, identity = run_folder(cache_dir, model, data, split)
    cached = {row["video"]: row for row in read_rows(folder / ROWS_FILE)}
    todo = [item for item in videos if item.video not in cached]
    run_file = folder / RUN_FILE
    assessor = None
    if todo or not run_file.is_file():
        assessor = FineVQ.from_pretrained(model)
        folder.mkdir(parents=True, exist_ok=True)
        run = {**identity, "name": assessor.name, "score_range": assessor.score_range}
        run_file.write_text(json.dumps(run, indent=1))
    with RowWriter(folder / ROWS_FILE) as writer:
        bar = tqdm(todo, desc="predicting", unit="video", total=len(videos), initial=len(videos) - len(todo),
                   disable=not progress)
        for item in bar:
            scores, answers = evaluate_videos(assessor.model, assessor.processor, [item])
            row = {"video": item.video, "path": item.path, "duration": probe(item.path).duration,
                   "scores": [asdict(s) for s in scores], "answers": [asdict(a) for a in answers]}
            writer.write(row)
            cached[item.video] = row
    rows = [cached[item.video] for item in videos]
    return Predictions(
        folder=folder,
        model=model,
        score_range=tuple(json.loads(run_file.read_text())["score_range"]),
        paths={row["video"]: row["path"] for row in rows},
        durations={row["video"]: row["duration"] for row in rows},
        scores=[ScoreRecord(**record) for row in rows for record in row["scores"]],
        answers=[QARecord(**record) for row in rows for record in row["answers"]],
        loaded=assessor,
    )
