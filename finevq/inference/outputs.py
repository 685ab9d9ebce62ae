"""The files `finevq score` writes and resumes: JSONL (one row per video, the issue's schema) or CSV
(the same rows flattened to score_/level_/distortion_/subtype_ columns), appended and flushed row by row."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from finevq.errors import ConfigError
from finevq.taxonomy import COARSE_TYPES

FORMATS = (".jsonl", ".csv")


def output_format(path: str | os.PathLike | None) -> str:
    """".jsonl" or ".csv" from the output's suffix (JSONL on standard output when path is None)."""
    if path is None:
        return ".jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"output {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; use .jsonl or .csv")
    return suffix


def csv_columns(dimensions: Sequence[str], diagnose: bool, timeline: bool = False) -> list[str]:
    """CSV header: video, model, score_<dim>, level_<dim>, distortion_<type> (probability present),
    subtype_<type>, worst_dimension, seconds, error (and timeline, as JSON text, when asked for)."""
    columns = ["video", "model", *(f"score_{d}" for d in dimensions), *(f"level_{d}" for d in dimensions)]
    if diagnose:
        columns += [f"distortion_{t}" for t in COARSE_TYPES] + [f"subtype_{t}" for t in COARSE_TYPES]
    columns += ["worst_dimension", "seconds", "error"]
    return columns + (["timeline"] if timeline else [])


def flatten_row(row: dict) -> dict:
    """A JSONL row as CSV cells (missing values become empty cells)."""
    flat = {"video": row["video"], "model": row.get("model"), "error": row.get("error")}
    for dimension, score in row.get("scores", {}).items():
        flat[f"score_{dimension}"] = score
        flat[f"level_{dimension}"] = row["levels"][dimension]
    for coarse, diagnosis in row.get("distortions", {}).items():
        flat[f"distortion_{coarse}"] = diagnosis["probability"]
        flat[f"subtype_{coarse}"] = diagnosis["subtype"]
    flat["worst_dimension"] = row.get("worst_dimension")
    flat["seconds"] = row.get("seconds")
    if "timeline" in row:
        flat["timeline"] = json.dumps(row["timeline"])
    return flat


class RowWriter:
    """Appends rows to a JSONL or CSV file (or JSONL to standard output), flushed after every row so
    that an interrupted run leaves only whole rows behind (at most one torn last line)."""

    def __init__(self, path: str | os.PathLike | None, columns: Sequence[str] | None = None):
        self.format = output_format(path)
        self.columns = list(columns or [])
        if path is None:
            self._file, self._owned = sys.stdout, False
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fresh = not Path(path).exists() or Path(path).stat().st_size == 0
            ends_mid_line = not fresh and _last_byte(path) != b"\n"
            self._file, self._owned = open(path, "a", encoding="utf-8", newline=""), True
            if ends_mid_line:  # a whole last row whose newline was never written
                self._file.write("\n")
            if self.format == ".csv" and fresh:
                self._write_csv(dict(zip(self.columns, self.columns)))

    def write(self, row: dict) -> None:
        if self.format == ".csv":
            self._write_csv(flatten_row(row))
        else:
            self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def _write_csv(self, cells: dict) -> None:
        unknown = sorted(set(cells) - set(self.columns))
        if unknown:
            raise ConfigError(f"row of {cells.get('video')!r} has values for columns {unknown} outside the CSV header")
        writer = csv.DictWriter(self._file, fieldnames=self.columns, lineterminator="\n")
        writer.writerow({k: "" if v is None else v for k, v in cells.items()})

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _last_byte(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1)


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows already in an output file (none if it does not exist). A torn last JSONL line (a run
    killed mid-write) is cut off the file; any other unreadable line is an error naming it. CSV rows
    come back as dicts of strings with empty cells as None."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    text = path.read_text(encoding="utf-8")
    if output_format(path) == ".csv":
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]
    rows = []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if number == len(lines):  # no newline after it: the run stopped while writing it
                with open(path, "r+", encoding="utf-8") as file:
                    file.truncate(len(text.encode("utf-8")) - len(line.encode("utf-8")))
                break
            raise ConfigError(f"{path}:{number}: not a JSON row of `finevq score`; choose another --output") from None
        if not isinstance(row, dict) or "video" not in row:
            raise ConfigError(f"{path}:{number}: not a row of `finevq score` (no 'video'); choose another --output")
        rows.append(row)
    return rows


def csv_header(path: str | os.PathLike) -> list[str] | None:
    """The header of an existing, non-empty CSV output (None otherwise)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, encoding="utf-8", newline="") as file:
        return next(csv.reader(file), None)


def rewrite_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    """Replace an output file's rows, as `read_rows` returned them, atomically (a temporary file
    renamed over it); a CSV keeps its header."""
    path = Path(path)
    header = csv_header(path) if output_format(path) == ".csv" else None
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            if header is None:
                file.writelines(json.dumps(row) + "\n" for row in rows)
            else:
                writer = csv.DictWriter(file, fieldnames=header, lineterminator="\n")
                writer.writeheader()
                writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise
