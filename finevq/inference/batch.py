"""The batch scoring job behind `finevq score`: decode in worker processes while the model scores, one
row per video (a bad video gets an error row), resume from the output, shard over `accelerate launch`."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from finevq.errors import ConfigError, FineVQError
from finevq.inference.assessor import FineVQ, PreparedVideo, prepare_video, prepare_windows
from finevq.inference.inputs import expand_inputs
from finevq.inference.outputs import RowWriter, csv_columns, csv_header, output_format, read_rows, rewrite_rows
from finevq.inference.results import failure_row
from finevq.taxonomy import checked_dimensions


@dataclass
class ScoreJob:
    """What to score and how (the options of `finevq score`).

    inputs: files, folders and listing files (see `expand_inputs`); output: a .jsonl or .csv file
    (None: JSONL on standard output, no resume); model: a folder or hub id (None: the default model);
    batch_size: videos whose visual encoding runs as one batch; workers: decoding processes (0: decode
    in the main process); timeline_seconds: also score windows of this length."""

    inputs: Sequence[str]
    output: str | None = None
    model: str | None = None
    dimensions: Sequence[str] | None = None
    diagnose: bool = True
    batch_size: int = 1
    workers: int = 1
    timeline_seconds: float | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more, got {self.workers}")
        if self.timeline_seconds is not None and not self.timeline_seconds > 0:
            raise ConfigError(f"--timeline must be a positive number of seconds, got {self.timeline_seconds}")
        output_format(self.output)
        self.dimensions = checked_dimensions(self.dimensions)


@dataclass
class ScoreSummary:
    """What a run did in this process: videos scored, failed, skipped as already done; the seconds the
    model spent and the seconds it waited for decoded videos."""

    scored: int = 0
    failed: int = 0
    skipped: int = 0
    model_seconds: float = 0.0
    wait_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def wait_share(self) -> float:
        total = self.model_seconds + self.wait_seconds
        return self.wait_seconds / total if total else 0.0


@dataclass
class _Decoded:
    """A worker's result for one video: the video (and its windows) prepared for the model, or the
    error message; seconds: the time decoding and preprocessing took."""

    video: str
    prepared: PreparedVideo | None
    windows: list[PreparedVideo] | None
    error: str | None
    seconds: float


class _DecodeDataset(Dataset):
    """Decodes and preprocesses the frames the model needs; runs in DataLoader worker processes."""

    def __init__(self, videos: Sequence[str], processor, window_seconds: float | None):
        self.videos = list(videos)
        self.processor = processor
        self.window_seconds = window_seconds

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> _Decoded:
        video = self.videos[index]
        start = time.perf_counter()
        try:
            prepared = prepare_video(self.processor, video)
            windows = prepare_windows(self.processor, video, self.window_seconds) if self.window_seconds else None
            return _Decoded(video, prepared, windows, None, time.perf_counter() - start)
        except FineVQError as error:
            message = str(error)
        except Exception as error:  # one bad video must not stop the run: its row carries the error
            message = f"{video}: cannot be read ({type(error).__name__}: {error})"
        return _Decoded(video, None, None, message, time.perf_counter() - start)


def _identity(item):
    return item


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not compete with the model for cores


def decoded_videos(
    videos: Sequence[str], processor, workers: int, window_seconds: float | None = None
) -> Iterator[_Decoded]:
    """Prepared videos in input order, `workers` processes decoding ahead of the consumer."""
    loader = DataLoader(
        _DecodeDataset(videos, processor, window_seconds),
        batch_size=None,
        num_workers=workers,
        collate_fn=_identity,
        worker_init_fn=_single_thread_worker if workers else None,
        prefetch_factor=2 if workers else None,
    )
    return iter(loader)


def _batches(items: Iterator[_Decoded], size: int, summary: ScoreSummary) -> Iterator[list[_Decoded]]:
    """Groups of `size` decoded videos; the time spent waiting for them is added to `summary`."""
    batch: list[_Decoded] = []
    while True:
        start = time.perf_counter()
        item = next(items, None)
        summary.wait_seconds += time.perf_counter() - start
        if item is None:
            break
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_batch(assessor: FineVQ, batch: list[_Decoded], job: ScoreJob) -> list[dict]:
    """Output rows of a batch, in order; if the batched model call fails, each video is retried
    alone so that only the videos that fail get error rows."""
    good = [item for item in batch if item.error is None]
    try:
        assessments = dict(zip((i.video for i in good), _assess(assessor, good, job)))
    except Exception:  # any failure: find the video that breaks the batch
        assessments = {}
        for item in good:
            try:
                assessments[item.video] = _assess(assessor, [item], job)[0]
            except Exception as error:
                item.error = str(error) if isinstance(error, FineVQError) else (
                    f"{item.video}: the model failed on it ({type(error).__name__}: {error})"
                )
    rows = []
    for item in batch:
        if item.error is not None:
            rows.append(failure_row(item.video, item.error))
            continue
        row = assessments[item.video].to_row()
        row["seconds"] += item.seconds
        rows.append(row)
    return rows


def _assess(assessor: FineVQ, items: list[_Decoded], job: ScoreJob) -> list:
    results = assessor.assess_samples([i.prepared for i in items], [i.video for i in items], job.dimensions, job.diagnose)
    if job.timeline_seconds:
        for result, item in zip(results, items):
            start = time.perf_counter()
            result.timeline = assessor.timeline_of(item.windows, job.dimensions)
            result.seconds += time.perf_counter() - start
    return results


# ---------------------------------------------------------------- resume and sharding


def _part_path(output: str, rank: int) -> str:
    return f"{output}.part{rank}.jsonl"


def _parts(output: str) -> list[str]:
    return sorted(glob.glob(glob.escape(output) + ".part*.jsonl"))


def merge_parts(output: str, videos: Sequence[str], columns: list[str] | None) -> None:
    """Append the rows of the per-process part files to the output, in input order, then remove them."""
    parts = _parts(output)
    if not parts:
        return
    order = {video: index for index, video in enumerate(videos)}
    rows = sorted((row for part in parts for row in read_rows(part)), key=lambda r: order.get(r["video"], len(order)))
    with RowWriter(output, columns) as writer:
        for row in rows:
            writer.write(row)
    for part in parts:
        os.remove(part)


def prepare_resume(output: str, model_name: str, columns: list[str] | None) -> None:
    """Make an existing output ready to be continued: its failed rows are dropped (those videos are
    tried again); an output written by another model or with other CSV columns is an error."""
    rows = read_rows(output)
    others = sorted({row.get("model") for row in rows if not row.get("error")} - {model_name})
    if others:
        raise ConfigError(
            f"output {output!r} holds rows of model {others[0]!r}, this run uses {model_name!r}; choose another --output"
        )
    header = csv_header(output) if columns is not None else None
    if header is not None and header != columns:
        raise ConfigError(
            f"output {output!r} has the columns {header}, this run writes {columns} "
            "(other --dimensions, diagnosis or --timeline); choose another --output"
        )
    if any(row.get("error") for row in rows):
        rewrite_rows(output, [row for row in rows if not row.get("error")])


def _distributed_state():
    """accelerate's process state when launched with several processes (`accelerate launch`, torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def run_scoring(job: ScoreJob, assessor: FineVQ | None = None) -> ScoreSummary:
    """Score every video of the job, appending one row per video to the output (resuming it).

    Under several processes each takes every n-th video still to do, writes a part file, and the
    main process merges the parts into the output, in input order, at the end."""
    state = _distributed_state()
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)
    if world > 1 and job.output is None:
        raise ConfigError("scoring with several processes needs --output (the processes merge into it)")
    assessor = assessor or FineVQ.from_pretrained(job.model, device=state.device if state else None)
    columns = None
    if output_format(job.output) == ".csv":
        columns = csv_columns(job.dimensions, job.diagnose, job.timeline_seconds is not None)
    videos = expand_inputs(job.inputs)
    if job.output is not None and rank == 0:
        merge_parts(job.output, videos, columns)
        prepare_resume(job.output, assessor.name, columns)
    if state:
        state.wait_for_everyone()
    done = {row["video"] for row in read_rows(job.output)} if job.output else set()
    todo = [video for video in videos if video not in done]
    mine = todo[rank::world]
    summary = ScoreSummary(skipped=len(videos) - len(todo))
    destination = _part_path(job.output, rank) if world > 1 else job.output
    bar = tqdm(total=len(mine), unit="video", desc="scoring", disable=not job.progress or rank != 0)
    items = decoded_videos(mine, assessor.processor, job.workers, job.timeline_seconds)
    with RowWriter(destination, columns if world == 1 else None) as writer, bar:
        for batch in _batches(items, job.batch_size, summary):
            start = time.perf_counter()
            rows = score_batch(assessor, batch, job)
            summary.model_seconds += time.perf_counter() - start
            for row in rows:
                writer.write(row)
                if row["error"]:
                    summary.failed += 1
                    summary.failures.append(row["error"])
                else:
                    summary.scored += 1
            bar.update(len(rows))
            bar.set_postfix(failed=summary.failed)
    if state:
        state.wait_for_everyone()
        if rank == 0:
            merge_parts(job.output, videos, columns)
    return summary
