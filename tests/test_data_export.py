"""Export to a Hub-ready folder that plain `datasets.load_dataset` reads back, and the `finevq data
inspect` / `finevq data export` commands on a FineVD-format folder."""

from __future__ import annotations

import json

import datasets
import pytest
import yaml
from data_folders import conversation, write_finevd_folder, write_jsonl

from finevq.cli import main
from finevq.data import export_dataset, load_finevd


@pytest.fixture()
def folder(tmp_path):
    return write_finevd_folder(tmp_path / "finevd")


def test_export_round_trips_through_plain_load_dataset(folder, tmp_path):
    out = export_dataset(folder, tmp_path / "hub", cache_dir=tmp_path / "cache", conversation_seed=0, copy_videos=True)
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert {c["config_name"] for c in header["configs"]} == {"scores", "qa", "conversations"}
    assert [c for c in header["configs"] if c.get("default")][0]["config_name"] == "scores"
    original = load_finevd(folder, cache_dir=tmp_path / "cache")
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert set(loaded) == {"train", "validation", "test"}
    assert loaded["train"].features["level_color"] == original["train"].features["level_color"]
    for split in original:
        expected = original[split].remove_columns("video").to_list()
        got = loaded[split].remove_columns("video").to_list()
        assert got == expected
        assert loaded[split]["video"] == [f"videos/{name}" for name in original[split]["name"]]
        assert all((out / path).is_file() for path in loaded[split]["video"])
    qa = datasets.load_dataset(str(out), "qa", cache_dir=str(tmp_path / "hf"))
    assert sum(len(s) for s in qa.values()) == 36 and qa["test"][0]["option_labels"]
    conversations = datasets.load_dataset(str(out), "conversations", cache_dir=str(tmp_path / "hf"))
    assert conversations["train"][0]["conversations"][0]["role"] == "user"


def test_export_without_questions_writes_only_scores(tmp_path):
    folder = write_finevd_folder(tmp_path / "f", questions=False)
    out = export_dataset(folder, tmp_path / "hub", cache_dir=tmp_path / "cache")
    header = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["scores"]
    assert not (out / "videos").exists()


def test_cli_inspect_prints_counts_distributions_and_problems(folder, tmp_path, capsys):
    (folder / "videos" / "0_00_03_1613502803.mp4").unlink()
    assert main(["data", "inspect", str(folder), "--video-root", str(folder / "videos")]) == 0
    text = capsys.readouterr().out
    assert "videos: 12 (train 7, validation 2, test 3)" in text
    assert "questions per split and type:" in text
    assert "subtypes noise: gaussian noise 4, none 4, pulse noise 4" in text
    assert "answers yes_no: yes 8, no 4" in text
    assert "missing videos under" in text and "0_00_03_1613502803.mp4" in text
    write_jsonl(folder / "abcd2_train.jsonl", [conversation("x.mp4", "Which? {A:[Blur], B:[Smell]}", "B")])
    assert main(["data", "inspect", str(folder), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["errors"] == [f"{folder / 'abcd2_train.jsonl'}: unknown labels ['Smell']"]
    assert summary["levels"]["overall"]["range"] == [0.0, 100.0]


def test_cli_export_and_its_errors(folder, tmp_path, capsys):
    target = tmp_path / "out"
    assert main(["data", "export", str(folder), "--to", str(target), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "wrote" in capsys.readouterr().out and (target / "scores").is_dir()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["data", "export", str(folder), "--to", str(tmp_path / "busy")]) == 2
    assert "is not an earlier export" in capsys.readouterr().err
    assert main(["data", "inspect", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
