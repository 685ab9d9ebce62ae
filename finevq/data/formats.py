"""Parsing of the published FineVD files into records: conversation JSONL (yes/no, which subtype, which
dimension, score questions with `mos`), plain per-dimension score tables, and `finevd.json`."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from finevq.data.records import QuestionRecord, ScoreRecord
from finevq.data.splits import canonical_split
from finevq.data.tables import find_column, is_blank, parse_float, read_jsonl, read_table, read_text
from finevq.errors import LabelError
from finevq.taxonomy import (
    COARSE_TYPES,
    DIMENSIONS,
    LEVELS,
    NO_DISTORTION,
    canonical_dimension,
    canonical_subtype,
    coarse_type_of,
)

_PLACEHOLDER = re.compile(r"<\|[^<>|]*\|>|</?(?:video|image|img)>", re.IGNORECASE)
_OPTION = re.compile(r"([A-Z])\s*[:：.)]\s*\[([^\]]*)\]")
_ANSWER_LETTER = re.compile(r"^\W*(?:answer\s*(?:is)?\s*[:：]?\s*)?\(?([A-Z])\)?(?=$|[\s.:：,)\]])", re.IGNORECASE)
_DIMENSION_WORD = re.compile(
    r"\b(colou?r|noise|artifacts?|artefacts?|blur|temporal|overall)\b|(色彩|颜色|噪声|伪影|模糊|时序)",
    re.IGNORECASE,
)
_YES = {"yes", "y", "true", "是", "有"}
_NO = {"no", "n", "false", "否", "无", "没有"}
_SPLIT_IN_NAME = re.compile(r"(?:^|[_\-.])(train|val|valid|validation|test)(?=$|[_\-.])", re.IGNORECASE)
_HUMAN_ROLES = {"human", "user"}


def strip_placeholders(text: str) -> str:
    """The text without video/image placeholders (`<|video|>`, `<video>`, `<image>`) and outer blanks."""
    return re.sub(r"[ \t]+", " ", _PLACEHOLDER.sub("", str(text))).strip()


def split_from_file_name(path: str | Path) -> str | None:
    """train / validation / test when the file name says so (`yesno_train.jsonl`), else None."""
    found = _SPLIT_IN_NAME.search(Path(path).stem)
    return canonical_split(found.group(1)) if found else None


def dimension_mentioned(text: str) -> str | None:
    """The first quality dimension a question names ("noise", "色彩", ...), or None."""
    found = _DIMENSION_WORD.search(text)
    if not found:
        return None
    word = (found.group(1) or found.group(2)).lower().rstrip("s")
    return canonical_dimension(word)


def parse_options(question: str) -> list[tuple[str, str]]:
    """(letter, text) of the options embedded in a question as `{A:[none], B:[gaussian noise], ...}`."""
    return [(letter, text.strip()) for letter, text in _OPTION.findall(question)]


_CANONICAL = {"subtype": canonical_subtype, "dimension": canonical_dimension}


@functools.lru_cache(maxsize=8192)
def _canonical_or_none(kind: str, label: str) -> str | None:
    """The canonical name of `label` as a "subtype" or a "dimension", or None when unknown (cached:
    release files repeat the same few labels tens of thousands of times)."""
    try:
        return _CANONICAL[kind](label)
    except LabelError:
        return None


def _option_labels(options: list[str], where: str) -> tuple[str, list[str]]:
    """("subtype" | "dimension": what the options name, canonical labels) of a multiple-choice question."""
    for kind in ("subtype", "dimension"):
        labels = [_canonical_or_none(kind, text) for text in options]
        if None not in labels:
            return kind, labels
    unknown = [text for text in options if _canonical_or_none("subtype", text) is None]
    raise LabelError(f"{where}: unknown option labels {unknown}")


def _answer_index(answer: str, letters: list[str], labels: list[str], kind: str, where: str) -> int:
    found = _ANSWER_LETTER.match(answer)
    if found and found.group(1).upper() in letters:
        return letters.index(found.group(1).upper())
    canonical = _canonical_or_none(kind, answer)
    if canonical in labels:
        return labels.index(canonical)
    raise LabelError(f"{where}: answer {answer!r} is not one of the options {letters}")


def _level_in(answer: str) -> str | None:
    words = re.findall(r"[a-z]+", answer.lower())
    levels = [word for word in words if word in LEVELS]
    return levels[-1] if levels else None


def parse_question(
    question: str, answer: str, where: str, mos: float | None = None, dimension_hint: str | None = None
) -> QuestionRecord:
    """One published question and answer as a record (without video name and split)."""
    question, answer = strip_placeholders(question), str(answer).strip()
    options = parse_options(question)
    if options:
        letters, texts = [letter for letter, _ in options], [text for _, text in options]
        kind, labels = _option_labels(texts, where)
        label = labels[_answer_index(answer, letters, labels, kind, where)]
        # A which-subtype question is about one coarse type only when all its options are of that type;
        # the published test file also mixes types (None / low saturation / other noise / ...), and
        # such a question is over all types: its answer belongs to the answered subtype's own type.
        coarse = {coarse_type_of(x) for x in labels if x != NO_DISTORTION} if kind == "subtype" else set()
        dimension = coarse.pop() if len(coarse) == 1 else None
        return QuestionRecord("", f"which_{kind}", question, answer, label, dimension, texts, labels, mos)
    yes_no = answer.lower().strip(" .!。")
    if yes_no in _YES | _NO:
        dimension = dimension_mentioned(question) or dimension_hint
        if dimension not in COARSE_TYPES:
            raise LabelError(f"{where}: cannot tell which distortion type the yes/no question asks about: {question!r}")
        return QuestionRecord("", "yes_no", question, answer, "yes" if yes_no in _YES else "no", dimension, mos=mos)
    level = _level_in(answer)
    if level is None:
        raise LabelError(
            f"{where}: cannot tell the question type (no options, not Yes/No, no level word in the answer {answer!r})"
        )
    dimension = dimension_mentioned(question) or dimension_hint or "overall"
    return QuestionRecord("", "score", question, answer, level, dimension, mos=mos)


def _turn_pairs(conversations: list, where: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of a published conversation (`from`: human/ai, `value`: text)."""
    pairs, question = [], None
    for turn in conversations:
        if not isinstance(turn, dict):
            raise LabelError(f"{where}: a conversation turn must be an object, got {turn!r}")
        role = str(turn.get("from", turn.get("role", ""))).lower()
        text = turn.get("value", turn.get("content"))
        if text is None:
            raise LabelError(f"{where}: conversation turn without 'value': {turn!r}")
        if role in _HUMAN_ROLES:
            question = str(text)
        elif question is not None:
            pairs.append((question, str(text)))
            question = None
    if not pairs:
        raise LabelError(f"{where}: conversation has no question-answer pair")
    return pairs


def _check_option_labels(items: list[tuple[int, dict]], path: Path) -> None:
    """Raise one error listing every unknown option label of a conversation file."""
    unknown = set()
    for _, item in items:
        for turn in item.get("conversations") or []:
            if isinstance(turn, dict):
                for _, text in parse_options(str(turn.get("value", turn.get("content", "")))):
                    if _canonical_or_none("subtype", text) is None and _canonical_or_none("dimension", text) is None:
                        unknown.add(text)
    if unknown:
        raise LabelError(f"{path}: unknown labels {sorted(unknown)}")


def is_conversation_file(path: str | Path) -> bool:
    """True when a JSONL file holds published conversations (its first object has `conversations`)."""
    first = next((line for line in read_text(path).split("\n") if line.strip()), "")
    if first.lstrip().startswith("["):  # a JSON list instead of JSON lines
        items = read_jsonl(path)
        return bool(items) and "conversations" in items[0][1]
    try:
        item = json.loads(first)
    except json.JSONDecodeError:
        return False  # a JSON list, or a broken line that the table reader will report
    return isinstance(item, dict) and "conversations" in item


def read_conversation_file(path: str | Path) -> list[QuestionRecord]:
    """Every question of a published conversation JSONL file, split taken from the file name."""
    path = Path(path)
    items = read_jsonl(path)
    _check_option_labels(items, path)
    split = split_from_file_name(path)
    hint = next((d for d in COARSE_TYPES if re.search(rf"_{d[:4]}", path.stem)), None)
    records = []
    for number, item in items:
        where = f"{path}:{number}"
        if "video" not in item or "conversations" not in item:
            raise LabelError(f"{where}: expected keys 'video' and 'conversations', got {sorted(item)}")
        mos = parse_float(item.get("mos"), f"{where} mos")
        for question, answer in _turn_pairs(item["conversations"], where):
            record = parse_question(question, answer, where, mos, hint)
            record.name, record.split = str(item["video"]), split
            records.append(record)
    return records


def _distortion_columns(header: dict) -> tuple[dict[str, str], str | None]:
    """The subtype column of each coarse type (subtype_<type>) and a `distortions` list column, if any."""
    per_type = {}
    for coarse in COARSE_TYPES:
        column = find_column(header, f"subtype_{coarse}", f"{coarse}_subtype", f"distortion_{coarse}")
        if column is not None:
            per_type[coarse] = column
    return per_type, find_column(header, "distortions", "subtypes")


def _distortion_cells(row: dict, per_type: dict[str, str], list_column: str | None) -> tuple[dict[str, str], list[str]]:
    """Coarse type -> raw subtype label of a score-table row, and the labels that are unknown."""
    cells = {coarse: str(row[column]) for coarse, column in per_type.items() if not is_blank(row.get(column))}
    unknown = [raw for raw in cells.values() if _canonical_or_none("subtype", raw) is None]
    value = row.get(list_column) if list_column else None
    if not is_blank(value):
        labels = value if isinstance(value, list) else re.split(r"[;|,]", str(value))
        for raw in (str(x).strip() for x in labels if str(x).strip()):
            subtype = _canonical_or_none("subtype", raw)
            if subtype is None:
                unknown.append(raw)
            elif subtype != NO_DISTORTION:
                cells[coarse_type_of(subtype)] = raw
    return cells, unknown


def read_score_table(path: str | Path, sheet: str | None = None) -> list[ScoreRecord]:
    """Per-video records of a plain score table (CSV/TSV/JSONL/xlsx): a video column, one MOS column per
    dimension (a lone `mos` column is the overall one), optional `split`, subtype and `severity_<type>`
    columns."""
    path = Path(path)
    rows = read_table(path, sheet)
    if not rows:
        return []
    video_column = find_column(rows[0], "video", "name", "video_name", "file_name", "filename", "file")
    dimension_columns = {
        dimension: column
        for dimension in DIMENSIONS
        if (column := find_column(rows[0], dimension, f"mos_{dimension}", f"{dimension}_mos")) is not None
    }
    if "overall" not in dimension_columns and (column := find_column(rows[0], "mos", "score")) is not None:
        dimension_columns["overall"] = column
    if video_column is None or not dimension_columns:
        raise LabelError(
            f"{path}: a score table needs a video column and at least one dimension column "
            f"({', '.join(DIMENSIONS)}); found columns {list(rows[0])}"
        )
    distortion_columns = _distortion_columns(rows[0])
    severity_columns = {
        coarse: column for coarse in COARSE_TYPES if (column := find_column(rows[0], f"severity_{coarse}")) is not None
    }
    parsed = [_distortion_cells(row, *distortion_columns) for row in rows]
    unknown = sorted({raw for _, row_unknown in parsed for raw in row_unknown})
    if unknown:
        raise LabelError(f"{path}: unknown distortion labels {unknown}")
    split_column = find_column(rows[0], "split", "subset")
    records = []
    for number, (row, (cells, _)) in enumerate(zip(rows, parsed), start=2):
        where = f"{path} row {number}"
        if is_blank(row.get(video_column)):
            raise LabelError(f"{where}: empty video name")
        mos = {d: parse_float(row.get(c), f"{where} column {c!r}") for d, c in dimension_columns.items()}
        severities = {d: parse_float(row.get(c), f"{where} column {c!r}") for d, c in severity_columns.items()}
        split = row.get(split_column) if split_column else None
        records.append(
            ScoreRecord(
                name=str(row[video_column]),
                split=None if is_blank(split) else canonical_split(str(split)),
                mos={d: value for d, value in mos.items() if value is not None},
                subtypes={coarse: _subtype_of(coarse, raw, where) for coarse, raw in cells.items()},
                severities={d: value for d, value in severities.items() if value is not None},
            )
        )
    return records


def _subtype_of(coarse: str, raw: str, where: str) -> str:
    subtype = canonical_subtype(raw)
    if subtype != NO_DISTORTION and coarse_type_of(subtype) != coarse:
        raise LabelError(f"{where}: subtype {raw!r} is a {coarse_type_of(subtype)} distortion, not a {coarse} one")
    return subtype


def read_finevd_meta(path: str | Path) -> tuple[float, float] | None:
    """The `score_range` [low, high] of a `finevd.json`, or None when it states none."""
    try:
        meta = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise LabelError(f"{path}: not valid JSON ({error.msg})") from error
    score_range = meta.get("score_range") if isinstance(meta, dict) else None
    if score_range is None:
        return None
    if not (isinstance(score_range, list) and len(score_range) == 2):
        raise LabelError(f"{path}: score_range must be [low, high], got {score_range!r}")
    low, high = (parse_float(x, f"{path} score_range") for x in score_range)
    if low is None or high is None or not high > low:
        raise LabelError(f"{path}: score_range must have high > low, got {score_range!r}")
    return low, high
