"""`finevq score` end to end: folders with corrupt files, listing files, resume, the JSONL schema field
by field, the CSV flattening, decode workers, and sharding over two processes."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from finevq.cli import main
from finevq.inference.results import ROW_KEYS
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS, SUBTYPES
from finevq.video import probe, window_bounds
from videos import truncated_copy, write_random_bytes, write_video



@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A folder of videos as users have them: nested folders, other files, and broken videos."""
    root = tmp_path_factory.mktemp("library")
    write_video(root / "a.mp4", num_frames=30, width=96, height=64, seed=0)
    write_video(root / "nested" / "b.mkv", num_frames=24, width=64, height=64, seed=1, pattern="noise")
    write_video(root / "nested" / "deeper" / "c.webm", num_frames=20, width=80, height=48, codec="libvpx-vp9", seed=2)
    write_random_bytes(root / "nested" / "garbage.mp4")
    (root / "empty.mov").write_bytes(b"")
    truncated_copy(root / "a.mp4", root / "cut.mp4", 0.3)
    (root / "notes.md").write_text("not a video, not picked up by the folder search")
    (root / ".hidden.mp4").write_bytes(b"")
    return root


GOOD = ("a.mp4", "nested/b.mkv", "nested/deeper/c.webm")
BAD = ("cut.mp4", "empty.mov", "nested/garbage.mp4")


def _score(*args) -> int:
    return main(["score", *map(str, args), "--quiet"])


def _rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def _check_row_schema(row, dimensions=DIMENSIONS, diagnose=True):
    assert list(row) == list(ROW_KEYS)
    assert isinstance(row["video"], str) and row["model"] == "finevq-tiny-test" and row["error"] is None
    for field in ("scores", "levels", "level_probs"):
        assert list(row[field]) == list(dimensions)
    for dimension in dimensions:
        assert isinstance(row["scores"][dimension], float)
        assert row["levels"][dimension] in LEVELS
        probabilities = row["level_probs"][dimension]
        assert list(probabilities) == list(LEVELS) and all(0 <= p <= 1 for p in probabilities.values())
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert row["levels"][dimension] == max(probabilities, key=probabilities.get)
    if diagnose:
        assert list(row["distortions"]) == list(COARSE_TYPES)
        for coarse, diagnosis in row["distortions"].items():
            assert list(diagnosis) == ["present", "probability", "subtype"]
            assert isinstance(diagnosis["present"], bool) and 0 <= diagnosis["probability"] <= 1
            assert diagnosis["present"] == (diagnosis["probability"] >= 0.5)
            assert diagnosis["subtype"] in SUBTYPES[coarse] if diagnosis["present"] else diagnosis["subtype"] is None
    else:
        assert row["distortions"] == {}
    assert row["worst_dimension"] is None or row["worst_dimension"] in COARSE_TYPES
    assert isinstance(row["seconds"], float) and row["seconds"] > 0


def test_folder_with_corrupt_files_gives_one_row_each_and_exit_status_1(model_folder, library, tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    assert _score(library, "--model", model_folder, "--output", out, "--workers", "2", "--batch-size", "2") == 1
    rows = _rows(out)
    # Folder order: each folder's files sorted by name, then its subfolders.
    order = ("a.mp4", "cut.mp4", "empty.mov", "nested/b.mkv", "nested/garbage.mp4", "nested/deeper/c.webm")
    assert [r["video"] for r in rows] == [str(library / name) for name in order]
    by_name = {os.path.relpath(r["video"], library): r for r in rows}
    for name in GOOD:
        _check_row_schema(by_name[name])
    for name in BAD:
        assert list(by_name[name]) == ["video", "error"] and name.split("/")[-1] in by_name[name]["error"]
    assert "3 scored, 3 failed" in capsys.readouterr().err


def test_listing_file_and_resume_skip_done_videos_and_retry_failed_ones(model_folder, library, tmp_path):
    listing = tmp_path / "todo.txt"
    listing.write_text(f"# videos to rate\n{library / 'a.mp4'}\n\nnot-there.mp4\n{library / 'nested'}\n")
    out = tmp_path / "resumed.jsonl"
    assert _score(library / "a.mp4", library / "empty.mov", "--model", model_folder, "--output", out, "--workers", "0") == 1
    first = {r["video"]: r for r in _rows(out)}
    with open(out, "a", encoding="utf-8") as file:
        file.write('{"video": "torn')  # a run killed while writing its last row
    assert _score(listing, library / "empty.mov", "--model", model_folder, "--output", out) == 1
    rows = _rows(out)
    videos = [r["video"] for r in rows]
    expected = [str(library / "a.mp4"), str(tmp_path / "not-there.mp4"), str(library / "nested" / "b.mkv"),
                str(library / "nested" / "deeper" / "c.webm"), str(library / "nested" / "garbage.mp4"),
                str(library / "empty.mov")]
    assert sorted(videos) == sorted(expected) and len(videos) == len(set(videos))  # one row per video
    assert rows[0] == first[str(library / "a.mp4")]  # done before: kept, not scored again
    assert "no such file" in next(r for r in rows if r["video"].endswith("not-there.mp4"))["error"]
    other_model = shutil.copytree(model_folder, tmp_path / "other-model")
    assert _score(listing, "--model", other_model, "--output", out) == 2  # would mix two models' rows
    assert _rows(out) == rows


def test_dimension_subset_without_diagnosis_and_standard_output(model_folder, library, capsys):
    code = _score(library / "a.mp4", "--model", model_folder, "--dimensions", "overall,Noise", "--no-diagnosis")
    assert code == 0
    row = json.loads(capsys.readouterr().out)
    _check_row_schema(row, dimensions=("overall", "noise"), diagnose=False)


@pytest.mark.slow
def test_csv_flattens_the_jsonl_rows(model_folder, library, tmp_path):
    videos = [library / "a.mp4", library / "empty.mov", library / "nested" / "b.mkv"]
    assert _score(*videos, "--model", model_folder, "--output", tmp_path / "s.jsonl", "--workers", "0") == 1
    assert _score(*videos, "--model", model_folder, "--output", tmp_path / "s.csv", "--workers", "0") == 1
    with open(tmp_path / "s.csv", newline="", encoding="utf-8") as file:
        table = list(csv.DictReader(file))
    assert list(table[0]) == (
        ["video", "model", *(f"score_{d}" for d in DIMENSIONS), *(f"level_{d}" for d in DIMENSIONS),
         *(f"distortion_{t}" for t in COARSE_TYPES), *(f"subtype_{t}" for t in COARSE_TYPES),
         "worst_dimension", "seconds", "error"]
    )
    for row, flat in zip(_rows(tmp_path / "s.jsonl"), table):
        assert flat["video"] == row["video"]
        if row["error"]:
            assert flat["error"] == row["error"] and flat["score_overall"] == "" and flat["model"] == ""
            continue
        for dimension in DIMENSIONS:
            assert float(flat[f"score_{dimension}"]) == pytest.approx(row["scores"][dimension], abs=1e-3)
            assert flat[f"level_{dimension}"] == row["levels"][dimension]
        for coarse in COARSE_TYPES:
            diagnosis = row["distortions"][coarse]
            assert float(flat[f"distortion_{coarse}"]) == pytest.approx(diagnosis["probability"], abs=1e-4)
            assert flat[f"subtype_{coarse}"] == (diagnosis["subtype"] or "")
        assert flat["worst_dimension"] == (row["worst_dimension"] or "") and flat["error"] == ""
    # Resuming a CSV with other columns would mix two tables: refused with a clear message.
    assert _score(*videos, "--model", model_folder, "--output", tmp_path / "s.csv", "--dimensions", "noise") == 2
    # Resuming it as it is retries only the failed video, keeping one row per video.
    assert _score(*videos, "--model", model_folder, "--output", tmp_path / "s.csv", "--workers", "0") == 1
    with open(tmp_path / "s.csv", newline="", encoding="utf-8") as file:
        again = list(csv.DictReader(file))
    assert sorted(r["video"] for r in again) == sorted(r["video"] for r in table)
    assert [r for r in again if not r["error"]] == [r for r in table if not r["error"]]


@pytest.mark.slow
def test_timeline_rows_and_bad_options(model_folder, library, tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    assert _score(library / "a.mp4", "--model", model_folder, "--output", out, "--timeline", "0.5") == 0
    (row,) = _rows(out)
    info = probe(library / "a.mp4")
    expected = [bound / info.fps for window in window_bounds(info, 0.5) for bound in window]
    assert len(expected) > 2
    assert [bound for w in row["timeline"] for bound in (w["start"], w["end"])] == pytest.approx(expected)
    assert all(list(w["scores"]) == list(DIMENSIONS) for w in row["timeline"])
    assert _score(library / "a.mp4", "--model", model_folder, "--output", tmp_path / "x.parquet") == 2
    assert _score(library / "a.mp4", "--model", model_folder, "--dimensions", "sharpness") == 2
    assert _score(library / "a.mp4", "--model", tmp_path / "no-model") == 2
    errors = capsys.readouterr().err
    assert "x.parquet" in errors and "sharpness" in errors and "no-model" in errors


@pytest.mark.slow
def test_decode_workers_give_the_same_rows_as_decoding_in_process(model_folder, library, tmp_path):
    for workers in ("0", "2"):
        _score(library, "--model", model_folder, "--output", tmp_path / f"w{workers}.jsonl", "--workers", workers)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(tmp_path / "w0.jsonl")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(tmp_path / "w2.jsonl")]


@pytest.mark.slow
def test_two_processes_share_the_videos_and_merge_one_output(model_folder, library, tmp_path):
    single = tmp_path / "single.jsonl"
    assert _score(library, "--model", model_folder, "--output", single, "--workers", "0") == 1
    sharded = tmp_path / "sharded.jsonl"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "finevq", "score",
               str(library), "--model", str(model_folder), "--output", str(sharded), "--workers", "0", "--quiet"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode != 0, result.stderr  # three videos fail, in either process
    summaries = re.findall(r"finevq score: (\d+) scored, (\d+) failed", result.stderr)
    assert len(summaries) == 2 and sum(int(scored) + int(failed) for scored, failed in summaries) == 6, result.stderr
    rows, expected = _rows(sharded), _rows(single)
    assert [r["video"] for r in rows] == [r["video"] for r in expected]
    for row, reference in zip(rows, expected):
        assert row.get("error") == reference.get("error")
        for dimension, score in reference.get("scores", {}).items():
            assert row["scores"][dimension] == pytest.approx(score, abs=1e-3)
    assert not list(tmp_path.glob("sharded.jsonl.part*"))  # the part files were merged away


def test_a_video_that_breaks_the_model_fails_alone_not_its_batch(model_folder, library, tmp_path, monkeypatch):
    from finevq.inference import FineVQ

    original = FineVQ.assess_samples

    def fragile(self, videos, names, *args, **kwargs):
        if any(name.endswith("b.mkv") for name in names):
            raise RuntimeError("out of memory")
        return original(self, videos, names, *args, **kwargs)

    monkeypatch.setattr(FineVQ, "assess_samples", fragile)
    out = tmp_path / "batch.jsonl"
    videos = [library / name for name in GOOD]
    assert _score(*videos, "--model", model_folder, "--output", out, "--batch-size", "3", "--workers", "0") == 1
    rows = {os.path.relpath(r["video"], library): r for r in _rows(out)}
    assert "RuntimeError: out of memory" in rows["nested/b.mkv"]["error"]
    _check_row_schema(rows["a.mp4"])
    _check_row_schema(rows["nested/deeper/c.webm"])


def test_appending_after_a_row_whose_newline_was_never_written(tmp_path):
    from finevq.inference.outputs import RowWriter, read_rows

    out = tmp_path / "rows.jsonl"
    out.write_text('{"video": "a.mp4", "error": "cannot open"}')  # killed between the row and its newline
    with RowWriter(out) as writer:
        writer.write({"video": "b.mp4", "error": None})
    assert [row["video"] for row in read_rows(out)] == ["a.mp4", "b.mp4"]
