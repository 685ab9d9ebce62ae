"""Training data: FineVD labels -> conversations per split -> model tensors in DataLoader worker processes,
with a disk cache of preprocessed video tensors and a seeded, sharded, resumable order of the rows."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset

from finevq.data.finevd import load_finevd
from finevq.data.instructions import build_conversations
from finevq.errors import ConfigError, LabelError
from finevq.metrics import QA_QUESTION_TYPES
from finevq.training.config import DataSection

SPLITS = ("train", "validation", "test")


def synthesize_source(data: DataSection, progress: bool = True) -> None:
    """Generate (or finish) the FineVD-Synth folder `data.source` that `data.synthesize` describes."""
    from finevq.data.synth import SynthConfig, generate

    settings = data.synthesize
    config = SynthConfig(num_videos=settings.num_videos, seed=settings.seed, scene=settings.scene_options())
    generate(data.source, config, workers=settings.workers, progress=progress)


def load_splits(data: DataSection) -> dict[str, datasets.Dataset]:
    """The conversation rows of each split of the FineVD-format folder `data.source`.

    Conversations are generated from the score table (`finevq.data.instructions`); with
    `data.published_qa` the yes/no and multiple-choice ones are the folder's published questions
    instead. `max_train_videos` keeps the first N training videos (in label order), for smoke runs."""
    options = {"video_root": data.video_root, "split_ratios": data.split_ratios, "split_seed": data.split_seed,
               "cache_dir": data.labels_cache}
    if not os.path.exists(data.source):
        raise LabelError(
            f"data.source {data.source} does not exist: write it with `finevq synth --out {data.source} ...`, "
            "point data.source at a FineVD-format folder, or let the run generate it (data.synthesize)"
        )
    labels = load_finevd(data.source, "scores", **options)
    if "train" not in labels:
        raise LabelError(f"{data.source}: the labels have no training videos (splits: {', '.join(labels)})")
    if data.max_train_videos is not None:
        labels["train"] = labels["train"].select(range(min(data.max_train_videos, len(labels["train"]))))
    published = set(QA_QUESTION_TYPES) & set(data.question_types) if data.published_qa else set()
    generated = [t for t in data.question_types if t not in published]
    qa = load_finevd(data.source, "qa", **options) if published else {}
    splits = {}
    for split in SPLITS:
        parts = []
        if split in labels and generated:
            parts.append(build_conversations(labels[split], data.conversation_seed, generated))
        if split in qa:
            names = set(labels[split]["name"]) if split in labels else set()
            parts.append(build_conversations(qa[split]).filter(
                lambda row: row["question_type"] in published and row["name"] in names))
        if parts:
            splits[split] = datasets.concatenate_datasets(parts)
    return splits


def weighted_indices(question_types: list[str], weights: dict[str, float], seed: int) -> list[int]:
    """Row indices with each row of type t repeated `weights[t]` times: whole repeats, plus a seeded
    share of the rows for the fractional part (weight 0.5 keeps half of that type's rows)."""
    rng = random.Random(seed)
    by_type: dict[str, list[int]] = {}
    for index, question_type in enumerate(question_types):
        by_type.setdefault(question_type, []).append(index)
    chosen: list[int] = []
    for question_type, rows in by_type.items():
        weight = weights.get(question_type, 1.0)
        chosen += rows * int(weight)
        chosen += sorted(rng.sample(rows, round(len(rows) * (weight - int(weight)))))
    return sorted(chosen)


class VideoTensorCache:
    """Preprocessed video tensors on disk, one safetensors file per (video file, processor settings).

    The key covers the file's path, size and modification time, and every processor setting, so a
    changed video or setting is decoded again. Files are written atomically; an unreadable one is
    decoded again and replaced."""

    def __init__(self, folder: str | os.PathLike, processor):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.processor = processor
        self._settings = json.dumps(asdict(processor.settings), sort_keys=True)

    def path_of(self, video: str) -> Path:
        stat = os.stat(video)
        key = json.dumps([os.path.abspath(video), stat.st_size, stat.st_mtime_ns, self._settings])
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.safetensors"

    def get(self, video: str) -> dict[str, torch.Tensor]:
        path = self.path_of(video)
        if path.is_file():
            try:
                return load_file(str(path))
            except (SafetensorError, OSError):
                pass
        tensors = self.processor.video_tensors(video)
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, temporary)
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
        return tensors


def _video_tensors(path: str, processor, cache: VideoTensorCache | None) -> dict[str, torch.Tensor]:
    return cache.get(path) if cache is not None else processor.video_tensors(path)


class VideoStatisticsDataset(Dataset):
    """Videos -> their measured statistics (the processor tensors named `names`), computed in the
    loader's workers; through `cache` if given, which training then reads instead of decoding again."""

    def __init__(self, videos: list[str], names: list[str], processor, cache: VideoTensorCache | None = None):
        self.videos, self.names = videos, names
        self.processor, self.cache = processor, cache

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        tensors = _video_tensors(self.videos[index], self.processor, self.cache)
        return {name: tensors[name] for name in self.names}


class ConversationDataset(Dataset):
    """Conversation rows -> the features of `FineVQProcessor.encode_row` (token ids, labels, score
    position and MOS, video tensors) and the video's path (which rows share a video), computed in the
    loader's workers; videos through `cache` if given."""

    def __init__(self, rows: datasets.Dataset, processor, cache: VideoTensorCache | None = None):
        self.rows = rows.to_list()
        self.processor = processor
        self.cache = cache

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def videos(self) -> list[str]:
        """The video path of every row."""
        return [row["video"]["path"] for row in self.rows]

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        path = row["video"]["path"]
        features = self.processor.encode_row_text(row)
        features.update(_video_tensors(path, self.processor, self.cache))
        features["video"] = path
        return features


@dataclass(frozen=True)
class ShardedOrder:
    """The order in which one process sees the rows: a seeded permutation per epoch, padded by
    wrapping around to a whole number of optimizer steps on every process, cut into micro-batches
    that go to the processes in turn (micro-batch i to process i % num_processes), so the shards are
    disjoint whenever the rows fill whole steps.

    With `videos` (the video of every dataset row) and `rows_per_video` > 1, each video's rows are
    shuffled and cut into runs of `rows_per_video` that stay next to each other: a micro-batch holds
    several questions about each of its videos, and the collate encodes each video once for them."""

    rows: list[int]
    batch_size: int
    accumulation: int
    num_processes: int = 1
    process_index: int = 0
    seed: int = 0
    videos: list[str] | None = None
    rows_per_video: int = 1

    def __post_init__(self) -> None:
        if not self.rows:
            raise ConfigError("no training rows: check data.question_types and data.question_weights")
        if self.rows_per_video > 1 and self.videos is None:
            raise ConfigError("rows_per_video > 1 needs the video of every row")

    @property
    def rows_per_step(self) -> int:
        """Rows one optimizer step consumes on all processes together."""
        return self.batch_size * self.accumulation * self.num_processes

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.rows) / self.rows_per_step)

    def _permutation(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = [self.rows[i] for i in torch.randperm(len(self.rows), generator=generator).tolist()]
        if self.rows_per_video == 1:
            return order
        by_video: dict[str, list[int]] = {}
        for row in order:
            by_video.setdefault(self.videos[row], []).append(row)
        runs = [rows[start:start + self.rows_per_video]
                for rows in by_video.values() for start in range(0, len(rows), self.rows_per_video)]
        return [row for i in torch.randperm(len(runs), generator=generator).tolist() for row in runs[i]]

    def epoch_rows(self, epoch: int) -> list[int]:
        """This process's rows of `epoch`, in order."""
        order = self._permutation(epoch)
        padded_length = self.steps_per_epoch * self.rows_per_step
        padded = (order * math.ceil(padded_length / len(order)))[:padded_length]
        batches = range(self.process_index * self.batch_size, padded_length, self.num_processes * self.batch_size)
        return [row for start in batches for row in padded[start:start + self.batch_size]]

    def loader(self, dataset: Dataset, collate, epoch: int, start_step: int, num_workers: int) -> DataLoader:
        """Micro-batches of `epoch` from optimizer step `start_step` on (the data position of a resume).

        Workers draw their seeds from a generator of their own, so creating a loader leaves the
        global RNG (dropout) untouched and a resumed run sees the same random numbers."""
        rows = self.epoch_rows(epoch)[start_step * self.batch_size * self.accumulation:]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=rows,
            collate_fn=collate,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(self.seed),
            persistent_workers=False,
            prefetch_factor=4 if num_workers else None,
        )
