"""The plain readers under the loaders: tolerant tables (BOM, CRLF, quotes, short rows, floats for ints,
MATLAB 1xN/Nx1, Excel), question parsing, splits and safe video names; no `datasets` needed."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from openpyxl import Workbook

from finevq.data.formats import dimension_mentioned, parse_question, split_from_file_name, strip_placeholders
from finevq.data.paths import resolve_video, safe_relative_name
from finevq.data.splits import (
    complete_splits,
    protocol_seed,
    random_protocol_split,
    seeded_split,
)
from finevq.data.tables import parse_bool, parse_identifier, read_csv, read_jsonl, read_mat, read_xlsx
from finevq.errors import LabelError


def test_csv_with_bom_crlf_quotes_and_short_rows(tmp_path):
    path = tmp_path / "labels.csv"
    text = '\ufeff"flickr_id","mos","note"\r\n"3337642103","4.64","a, b"\r\n"10053703034","1.22"\r\n\r\n'
    path.write_bytes(text.encode())
    rows = read_csv(path)
    assert rows == [
        {"flickr_id": "3337642103", "mos": "4.64", "note": "a, b"},
        {"flickr_id": "10053703034", "mos": "1.22", "note": None},
    ]


def test_tab_separated_table_and_bom_on_a_later_line(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("video\tmos\n\ufeffa.mp4\t3\n", encoding="utf-8")
    assert read_csv(path) == [{"video": "a.mp4", "mos": "3"}]


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(LabelError, match=r"x.jsonl:2: not valid JSON"):
        read_jsonl(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LabelError, match="not UTF-8"):
        read_jsonl(path)


def test_floats_where_ints_and_booleans_are_expected():
    assert parse_identifier(3337642103.0) == "3337642103"
    assert parse_identifier("3337642103.0") == "3337642103"
    assert parse_identifier("0_00_00_1498361484") == "0_00_00_1498361484"
    assert parse_identifier("007") == "007"
    values = ("True", "false", "1", "0.0", 1.0, "yes")
    assert [parse_bool(v, "x") for v in values] == [True, False, True, False, True, True]
    with pytest.raises(LabelError, match="expected a boolean"):
        parse_bool("maybe", "x")


@pytest.mark.parametrize("shape", [(1, 3), (3, 1)])
def test_matlab_arrays_in_either_orientation(tmp_path, shape):
    names = np.empty(shape, dtype=object)
    for i, name in enumerate(["A001.mp4", "A002.mp4", "B010.mp4"]):
        names.flat[i] = name
    path = tmp_path / "data.mat"
    scipy.io.savemat(path, {"video_list": names, "mos": np.array([6.2, 50.0, 94.3]).reshape(shape)})
    variables = read_mat(path)
    assert variables["video_list"] == ["A001.mp4", "A002.mp4", "B010.mp4"]
    assert variables["mos"] == pytest.approx([6.2, 50.0, 94.3])


def test_excel_sheet_by_name_with_blank_cells(tmp_path):
    workbook = Workbook()
    workbook.active.title = "Other"
    sheet = workbook.create_sheet("MOS")
    sheet.append(["vid", "MOS full", "MOS chunk00"])
    sheet.append(["Animation_1080P-05f8", 3.9, None])
    sheet.append([None, None, None])
    sheet.append(["Gaming_360P-3eb6", None, 2.0])
    workbook.save(tmp_path / "ugc.xlsx")
    rows = read_xlsx(tmp_path / "ugc.xlsx", sheet="MOS")
    assert rows == [
        {"vid": "Animation_1080P-05f8", "MOS full": 3.9, "MOS chunk00": None},
        {"vid": "Gaming_360P-3eb6", "MOS full": None, "MOS chunk00": 2.0},
    ]
    with pytest.raises(LabelError, match="no sheet 'Scores'"):
        read_xlsx(tmp_path / "ugc.xlsx", sheet="Scores")


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("B", "gaussian noise"),
        ("B.", "gaussian noise"),
        ("(C)", "pulse noise"),
        ("A: None", "none"),
        ("pulse noise", "pulse noise"),
    ],
)
def test_multiple_choice_answers_as_letter_or_text(answer, label):
    question = "<|video|> Which noise? {A:[None], B:[gussian noise], C:[pulse noise], D:[stripe noise]}"
    record = parse_question(question, answer, "f:1")
    assert record.question_type == "which_subtype" and record.label == label and record.dimension == "noise"


def test_question_parsing_errors_name_the_place():
    with pytest.raises(LabelError, match="f:3: answer 'F' is not one of the options"):
        parse_question("Which? {A:[None], B:[motion blur]}", "F", "f:3")
    with pytest.raises(LabelError, match="f:4: cannot tell the question type"):
        parse_question("What is in the video?", "A cat.", "f:4")
    with pytest.raises(LabelError, match="f:5: cannot tell which distortion type"):
        parse_question("Is it nice?", "Yes", "f:5")


def test_yes_no_placeholders_dimensions_and_split_names():
    assert parse_question("<image>\nIs there any temporal distortion in the video?", "No.", "x").label == "no"
    assert parse_question("视频中是否存在色彩失真？", "是", "x").dimension == "color"
    assert strip_placeholders("<|video|>\n  <video>Rate it.") == "Rate it."
    assert dimension_mentioned("Are there artifacts?") == "artifact"
    names = ("yesno_train.jsonl", "abcd_test_en.jsonl", "scores.csv", "x_val.csv")
    assert [split_from_file_name(n) for n in names] == ["train", "test", None, "validation"]


def test_seeded_splits_are_reproducible_and_follow_the_ratios():
    names = [f"v{i}" for i in range(100)]
    first = seeded_split(names, (4, 1, 1), seed=5)
    assert first == seeded_split(list(reversed(names)), (4, 1, 1), seed=5)
    assert first != seeded_split(names, (4, 1, 1), seed=6)
    counts = [list(first.values()).count(s) for s in ("train", "validation", "test")]
    assert sum(counts) == 100 and all(abs(n - exact) < 1 for n, exact in zip(counts, (66.7, 16.7, 16.7)))
    assert set(seeded_split(["a", "b", "c"], (4, 1, 1), seed=0).values()) == {"train", "validation", "test"}


def test_benchmark_protocol_seeds_and_validation_from_train():
    assert [protocol_seed(i) for i in (0, 1, 9)] == [42, 84, 420]
    names = [f"v{i}" for i in range(50)]
    split = random_protocol_split(names, index=2)
    assert split == random_protocol_split(names, index=2) != random_protocol_split(names, index=3)
    counts = {s: list(split.values()).count(s) for s in ("train", "validation", "test")}
    assert counts == {"train": 32, "validation": 8, "test": 10}
    carved = {n: "validation" for n, s in split.items() if s == "validation"}
    assert split == {**seeded_split(names, (0.8, 0.2), 126, ("train", "test")), **carved}


def test_complete_splits_keeps_published_and_always_has_validation():
    known = {f"v{i}": ("test" if i < 5 else "train") for i in range(25)} | {"extra": None}
    done = complete_splits(known, (4, 1, 1), seed=1)
    assert all(done[f"v{i}"] == "test" for i in range(5))
    assert list(done.values()).count("validation") == 4 and done["extra"] in ("train", "validation")


def test_safe_names_and_first_existing_alternative(tmp_path):
    assert safe_relative_name("\ufeffsub\\a.mp4 ") == "sub/a.mp4"
    for bad in ("", "..", "../a.mp4", "/a.mp4", "D:/a.mp4"):
        with pytest.raises(LabelError):
            safe_relative_name(bad)
    (tmp_path / "b.mkv").write_bytes(b"")
    assert resolve_video(tmp_path, ("b.mp4", "b.mkv")) == (str(tmp_path.resolve() / "b.mkv"), True)
    assert resolve_video(tmp_path, ("c.mp4", "c.mkv")) == (str(tmp_path.resolve() / "c.mp4"), False)
