"""Loaders of the public UGC-VQA benchmarks (KoNViD-1k, LIVE-VQC, YouTube-UGC, LSVQ, LIVE-YT-Gaming) and
of any CSV with a video and a MOS column: `scores` rows (overall only) under the papers' split protocols."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import datasets

from finevq.data.builder import LabelBuilder, build_labels
from finevq.data.paths import safe_relative_name
from finevq.data.records import LabelSet, ScoreRecord, min_max_ranges
from finevq.data.splits import TEST, TRAIN, canonical_split, carve_validation, random_protocol_split
from finevq.data.tables import find_column, parse_bool, parse_float, parse_identifier, read_mat, read_table
from finevq.errors import ConfigError, LabelError

logger = logging.getLogger(__name__)

PROTOCOLS = ("official", "random")
"""`official`: the published split (LSVQ, or a CSV's split column); `random`: the index-th of 10 seeded
80/20 train/test splits (seed 42 * (index + 1)). Both carve a seeded validation part out of train."""


def _column(rows: list[dict], path: Path, *names: str) -> str:
    column = find_column(rows[0], *names) if rows else None
    if column is None:
        found = list(rows[0]) if rows else []
        raise LabelError(f"{path}: no column {' / '.join(names)}; found columns {found}")
    return column


def _rated(rows: list[dict], path: Path, mos_column: str) -> list[tuple[int, dict, float]]:
    """(row number, row, MOS) of the rows that have a MOS; unrated rows are counted and logged."""
    rated = []
    for number, row in enumerate(rows, start=2):
        mos = parse_float(row.get(mos_column), f"{path} row {number} column {mos_column!r}")
        if mos is not None:
            rated.append((number, row, mos))
    if len(rated) < len(rows):
        logger.info("%s: %d of %d rows have no MOS and are left out", path, len(rows) - len(rated), len(rows))
    return rated


def _with_extension(name: str, extension: str = ".mp4") -> str:
    return name if PurePosixPath(name).suffix else name + extension


def read_konvid(paths: list[Path]) -> list[ScoreRecord]:
    """KoNViD_1k_mos.csv (flickr_id, mos) or KoNViD_1k_attributes.csv (flickr_id, file_name, MOS):
    `<flickr_id>.mp4`, or the legacy `file_name` when that is what is on disk."""
    path = paths[0]
    rows = read_table(path)
    id_column, mos_column = _column(rows, path, "flickr_id"), _column(rows, path, "mos")
    legacy_column = find_column(rows[0], "file_name") if rows else None
    records = []
    for _, row, mos in _rated(rows, path, mos_column):
        video_id = parse_identifier(row[id_column])
        legacy = (str(row[legacy_column]).strip(),) if legacy_column and row.get(legacy_column) else ()
        records.append(ScoreRecord(f"{video_id}.mp4", mos={"overall": mos}, alternatives=legacy))
    return records


def read_live_vqc(paths: list[Path]) -> list[ScoreRecord]:
    """data.mat with `video_list` (cell array of file names) and `mos` (585x1 or 1x585)."""
    path = paths[0]
    variables = read_mat(path)
    if "video_list" not in variables or "mos" not in variables:
        raise LabelError(f"{path}: expected MATLAB variables 'video_list' and 'mos', found {sorted(variables)}")
    names, scores = variables["video_list"], variables["mos"]
    if len(names) != len(scores):
        raise LabelError(f"{path}: {len(names)} names in video_list but {len(scores)} values in mos")
    return [
        ScoreRecord(str(name), mos={"overall": parse_float(mos, f"{path} mos[{i}]")})
        for i, (name, mos) in enumerate(zip(names, scores))
    ]


def read_youtube_ugc(paths: list[Path]) -> list[ScoreRecord]:
    """The MOS sheet of the YouTube-UGC workbook (`vid`, `MOS full`): the H.264 copy
    `<vid>_crf_10_ss_00_t_20.0.mp4`, else the original `<vid>.mkv` or `<vid>.mp4`; rows without MOS out."""
    path = paths[0]
    rows = read_table(path, sheet="MOS") if path.suffix.lower().startswith(".xls") else read_table(path)
    vid_column, mos_column = _column(rows, path, "vid"), _column(rows, path, "MOS full", "mos")
    records = []
    for _, row, mos in _rated(rows, path, mos_column):
        vid = str(row[vid_column]).strip()
        records.append(
            ScoreRecord(
                f"{vid}_crf_10_ss_00_t_20.0.mp4", mos={"overall": mos}, alternatives=(f"{vid}.mkv", f"{vid}.mp4")
            )
        )
    return records


def read_lsvq(paths: list[Path]) -> list[ScoreRecord]:
    """labels_train_test.csv (`name` without extension, `mos`, boolean `is_test`) and, when given,
    labels_test_1080p.csv (split `test_1080p`)."""
    records = []
    for path in paths:
        rows = read_table(path)
        name_column, mos_column = _column(rows, path, "name"), _column(rows, path, "mos")
        is_1080p = "1080p" in path.name
        test_column = None if is_1080p else _column(rows, path, "is_test")
        for number, row, mos in _rated(rows, path, mos_column):
            if is_1080p:
                split = "test_1080p"
            else:
                split = TEST if parse_bool(row[test_column], f"{path} row {number} is_test") else TRAIN
            name = _with_extension(str(row[name_column]).strip())
            records.append(ScoreRecord(name, split=split, mos={"overall": mos}))
    return records


def read_live_yt_gaming(paths: list[Path]) -> list[ScoreRecord]:
    """A CSV/xlsx with `File` and `MOS`, or a .mat with `video_list` (names without extension) and `MOS`."""
    path = paths[0]
    if path.suffix.lower() == ".mat":
        variables = {key.lower(): value for key, value in read_mat(path).items()}
        if "video_list" not in variables or "mos" not in variables:
            raise LabelError(f"{path}: expected MATLAB variables 'video_list' and 'MOS', found {sorted(variables)}")
        pairs = list(zip(variables["video_list"], variables["mos"]))
        if len(variables["video_list"]) != len(variables["mos"]):
            raise LabelError(f"{path}: video_list and MOS differ in length")
    else:
        rows = read_table(path)
        file_column, mos_column = _column(rows, path, "File", "video", "name"), _column(rows, path, "MOS")
        pairs = [(row[file_column], mos) for _, row, mos in _rated(rows, path, mos_column)]
    return [
        ScoreRecord(_with_extension(str(name).strip()), mos={"overall": parse_float(mos, f"{path} MOS of {name}")})
        for name, mos in pairs
    ]


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to find and read one benchmark's labels, and the MOS scale its levels are binned over."""

    title: str
    label_files: tuple[str, ...]
    """File names looked for in a labels folder; the first one present is used (all present for LSVQ)."""
    video_folders: tuple[str, ...]
    """Default video roots under the labels folder, first existing wins (else the folder itself)."""
    scale: tuple[float, float]
    reader: Callable[[list[Path]], list[ScoreRecord]]
    all_files: bool = False


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "konvid_1k": BenchmarkSpec(
        "KoNViD-1k", ("KoNViD_1k_mos.csv", "KoNViD_1k_attributes.csv"), ("KoNViD_1k_videos",), (1.0, 5.0), read_konvid
    ),
    "live_vqc": BenchmarkSpec("LIVE-VQC", ("data.mat",), ("Video",), (0.0, 100.0), read_live_vqc),
    "youtube_ugc": BenchmarkSpec(
        "YouTube-UGC",
        ("original_videos_MOS_for_YouTube_UGC_dataset.xlsx",),
        ("original_videos_h264", "videos"),
        (1.0, 5.0),
        read_youtube_ugc,
    ),
    "lsvq": BenchmarkSpec(
        "LSVQ", ("labels_train_test.csv", "labels_test_1080p.csv"), ("videos",), (0.0, 100.0), read_lsvq, True
    ),
    "live_yt_gaming": BenchmarkSpec(
        "LIVE-YT-Gaming",
        ("LIVE-YT-Gaming_mos.csv", "mos.csv", "data.mat"),
        ("videos",),
        (0.0, 100.0),
        read_live_yt_gaming,
    ),
}
"""Benchmark name -> spec; the names `load_benchmark` accepts besides "csv"."""


def read_csv_scores(
    paths: list[Path], video_column: str, mos_column: str, split_column: str | None
) -> list[ScoreRecord]:
    """Any table with a video column and a MOS column (and optionally a train/test split column)."""
    path = paths[0]
    rows = read_table(path)
    video_key, mos_key = _column(rows, path, video_column), _column(rows, path, mos_column)
    split_key = _column(rows, path, split_column) if split_column else None
    return [
        ScoreRecord(
            str(row[video_key]).strip(),
            split=canonical_split(str(row[split_key])) if split_key else None,
            mos={"overall": mos},
        )
        for _, row, mos in _rated(rows, path, mos_key)
    ]


def _label_files(name: str, labels: Path) -> list[Path]:
    """The label files of benchmark `name`: `labels` itself, or the known files in the folder `labels`."""
    if name == "csv" or labels.is_file():
        if not labels.is_file():
            raise LabelError(f"label file {labels} does not exist (the generic loader needs the CSV file itself)")
        return [labels]
    if not labels.is_dir():
        raise LabelError(f"label folder {labels} does not exist")
    spec = BENCHMARKS[name]
    found = [labels / file for file in spec.label_files if (labels / file).is_file()]
    if not found:
        raise LabelError(f"{labels}: no {spec.title} label file ({', '.join(spec.label_files)})")
    return found if spec.all_files else found[:1]


def read_benchmark(
    name: str,
    files: Sequence[str | os.PathLike],
    protocol: str,
    split_index: int = 0,
    validation_fraction: float = 0.2,
    score_range: tuple[float, float] | None = None,
    csv_columns: tuple[str, str, str | None] = ("video", "mos", None),
) -> LabelSet:
    """A benchmark's records with splits by `protocol` and the level range (its nominal scale by default;
    the min/max MOS for a generic CSV)."""
    paths = [Path(file) for file in files]
    records = read_csv_scores(paths, *csv_columns) if name == "csv" else BENCHMARKS[name].reader(paths)
    for record in records:
        record.name = safe_relative_name(record.name)
    if not records:
        raise LabelError(f"no rated videos in {', '.join(map(str, paths))}")
    if protocol == "official":
        if not any(record.split for record in records):
            raise ConfigError(f"{name} has no official split in {paths[0]}; use protocol='random'")
        assignment = {record.name: record.split or TRAIN for record in records}
        assignment = carve_validation(assignment, validation_fraction, 42)
    else:
        assignment = random_protocol_split([r.name for r in records], split_index, 0.8, validation_fraction)
    for record in records:
        record.split = assignment[record.name]
    if score_range is None and name != "csv":
        score_range = BENCHMARKS[name].scale
    ranges = {"overall": tuple(score_range)} if score_range else min_max_ranges(records)
    return LabelSet(scores=records, qa=[], level_ranges=ranges)


class Benchmark(LabelBuilder):
    """`datasets` builder of a benchmark's label files (`scores` config, overall dimension only)."""

    def read_labels(self, options: dict) -> LabelSet:
        return read_benchmark(files=self.config.sources, **options)


def load_benchmark(
    name: str,
    labels: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    protocol: str | None = None,
    split_index: int = 0,
    validation_fraction: float = 0.2,
    missing: str = "skip",
    score_range: tuple[float, float] | None = None,
    video_column: str = "video",
    mos_column: str = "mos",
    split_column: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """A benchmark's `scores` rows (overall MOS and level) as a cached `DatasetDict`.

    `name` is a key of `BENCHMARKS` or "csv" (then `video_column`, `mos_column` and optionally
    `split_column` name the columns). `labels` is the label file or the folder holding it. `protocol`
    defaults to "official" where one is published (LSVQ, a CSV with a split column), else "random"
    with `split_index` 0-9. Validation is always carved out of train (`validation_fraction`)."""
    if name != "csv" and name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}, csv")
    labels = Path(labels)
    files = _label_files(name, labels)
    has_official = name == "lsvq" or (name == "csv" and split_column is not None)
    protocol = protocol or ("official" if has_official else "random")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if video_root is None:
        folder = labels if labels.is_dir() else labels.parent
        folders = BENCHMARKS[name].video_folders if name in BENCHMARKS else ()
        video_root = next((folder / sub for sub in folders if (folder / sub).is_dir()), folder)
    options = {
        "name": name,
        "protocol": protocol,
        "split_index": split_index,
        "validation_fraction": validation_fraction,
        "score_range": list(score_range) if score_range else None,
        "csv_columns": [video_column, mos_column, split_column],
    }
    return build_labels(Benchmark, "scores", files, video_root, missing, cache_dir, options, dataset_name=name)
