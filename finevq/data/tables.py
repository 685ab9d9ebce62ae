"""Tolerant readers of the tabular files labels come in: CSV, JSON lines, Excel sheets, MATLAB .mat.
They absorb the quirks seen in published files (BOM, CRLF, quoted values, short rows, floats for ints)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

from finevq.errors import LabelError

Row = dict[str, object]


def read_text(path: str | Path) -> str:
    """A text file decoded as UTF-8 without its BOM (anywhere at a line start) and with LF line ends."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise LabelError(f"cannot read label file {path}: {error.strerror or error}") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LabelError(f"label file {path} is not UTF-8 text ({error.reason} at byte {error.start})") from error
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n\ufeff", "\n")


def read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line of a JSON-lines file (a JSON list also works)."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise LabelError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from error
        pairs = list(enumerate(items, start=1))
    else:
        pairs = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                pairs.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise LabelError(f"{path}:{number}: not valid JSON ({error.msg})") from error
    for number, item in pairs:
        if not isinstance(item, dict):
            raise LabelError(f"{path}:{number}: expected a JSON object, got {type(item).__name__}")
    return pairs


def read_csv(path: str | Path) -> list[Row]:
    """Rows of a CSV (or tab-separated) file keyed by its header; short rows get None for missing fields."""
    text = read_text(path)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise LabelError(f"{path}: empty table, expected a header row")
    header = [column.strip() for column in header]
    rows = []
    for values in reader:
        if not any(value.strip() for value in values):
            continue
        values = values + [None] * (len(header) - len(values))
        rows.append({column: value for column, value in zip(header, values)})
    return rows


def read_xlsx(path: str | Path, sheet: str | None = None) -> list[Row]:
    """Rows of one sheet of an Excel workbook (the named one, else the first), keyed by its header."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises zipfile, KeyError and its own errors on bad files
        raise LabelError(f"cannot open Excel file {path}: {error}") from error
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise LabelError(f"{path}: no sheet {sheet!r}; sheets: {workbook.sheetnames}")
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        lines = [list(values) for values in worksheet.iter_rows(values_only=True)]
    finally:
        workbook.close()
    lines = [values for values in lines if any(value is not None and str(value).strip() for value in values)]
    if not lines:
        raise LabelError(f"{path}: empty sheet, expected a header row")
    header = [str(value).strip() if value is not None else "" for value in lines[0]]
    return [dict(zip(header, values + [None] * (len(header) - len(values)))) for values in lines[1:]]


def read_mat(path: str | Path) -> dict[str, list]:
    """The variables of a MATLAB v5 file as flat lists (1xN and Nx1 arrays alike; cells of strings as str)."""
    import numpy as np
    from scipy.io import loadmat

    try:
        variables = loadmat(str(path))
    except (OSError, ValueError, NotImplementedError) as error:
        raise LabelError(f"cannot read MATLAB file {path}: {error}") from error

    def flat(value) -> list:
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "US":  # char arrays load as one string per row
                return [str(text).strip() for text in value.ravel()] or [""]
            return [item for element in value.ravel(order="F") for item in flat(element)]
        return [value.item() if isinstance(value, np.generic) else value]

    return {key: flat(value) for key, value in variables.items() if not key.startswith("__")}


def read_table(path: str | Path, sheet: str | None = None) -> list[Row]:
    """Rows of a CSV/TSV, JSON-lines or Excel table, chosen by the file extension."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv(path)
    if suffix in (".jsonl", ".json"):
        return [item for _, item in read_jsonl(path)]
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path, sheet)
    raise LabelError(f"{path}: unsupported table format {suffix!r} (use .csv, .tsv, .jsonl or .xlsx)")


def find_column(row: Row, *names: str) -> str | None:
    """The key of `row` that matches one of `names` ignoring case, spaces and underscores, or None."""

    def norm(text: str) -> str:
        return str(text).replace("\ufeff", "").strip().lower().replace("_", "").replace(" ", "")

    keys = {norm(key): key for key in row}
    for name in names:
        if norm(name) in keys:
            return keys[norm(name)]
    return None


def is_blank(value: object) -> bool:
    """True for None, empty or whitespace strings, and NaN (how spreadsheets say "no value")."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return not str(value).strip()


def parse_float(value: object, where: str) -> float | None:
    """A number from a cell ("4.64", " 4.64 ", 4.64); None when blank; `LabelError` naming `where` otherwise."""
    if is_blank(value):
        return None
    try:
        number = float(str(value).strip().strip('"'))
    except ValueError as error:
        raise LabelError(f"{where}: expected a number, got {value!r}") from error
    return None if math.isnan(number) else number


def parse_identifier(value: object) -> str:
    """An id cell as text, with floats that are whole numbers written as ints (3337642103.0 -> 3337642103)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).replace("\ufeff", "").strip().strip('"')
    return text[: text.index(".")] if re.fullmatch(r"[1-9]\d*\.0+", text) else text


def parse_bool(value: object, where: str) -> bool:
    """A boolean cell: True/False, yes/no, 1/0, 1.0/0.0, in any case."""
    text = str(value).strip().strip('"').lower()
    if text in ("true", "yes", "y", "t"):
        return True
    if text in ("false", "no", "n", "f"):
        return False
    if text in ("1", "1.0", "0", "0.0"):
        return text.startswith("1")
    raise LabelError(f"{where}: expected a boolean, got {value!r}")
