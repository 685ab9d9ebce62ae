"""`finevq eval` on a generated FineVD-format set (real synthetic videos) with a real tiny model folder:
the recipe's report per dimension and question type, the JSON report, and clear errors for bad --data."""

import json

import pytest

from finevq.cli import main
from finevq.data.finevd import load_finevd
from finevq.metrics import format_report
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS



@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "finevd-synth"
    args = ["synth", "--out", str(root), "--num-videos", "8", "--seed", "3", "--resolution", "64", "80",
            "--duration", "1", "1.5", "--fps", "12", "16"]
    assert main(args) == 0
    return root


def test_eval_prints_and_writes_the_recipe_report(model_folder, synth, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    code = main(["eval", "--data", "finevd", str(synth), f"cache_dir={tmp_path / 'cache'}", "--split", "train",
                 "--model", str(model_folder), "--output", str(report_path), "--quiet"])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["model"] == "finevq-tiny-test" and report["split"] == "train"
    videos = len(load_finevd(synth, "scores", cache_dir=tmp_path / "cache")["train"])
    assert videos >= 2 and report["n_videos"] == videos
    assert list(report["score_head"]) == list(DIMENSIONS)
    for dimension in DIMENSIONS:
        row = report["score_head"][dimension]
        assert row["n"] == videos and -1 <= row["srcc"] <= 1 and -1 <= row["plcc_raw"] <= 1
    assert list(report["yes_no_accuracy"]) == [*COARSE_TYPES, "all"]
    assert report["yes_no_accuracy"]["all"]["n"] == len(COARSE_TYPES) * videos
    assert report["which_subtype_accuracy"]["all"]["n"] == len(COARSE_TYPES) * videos
    assert set(report["which_subtype_accuracy"]) == {*COARSE_TYPES, "all"}
    assert list(report["severity"]) == list(COARSE_TYPES)
    assert all(report["severity"][c]["n"] == videos for c in COARSE_TYPES)
    assert report["which_dimension_accuracy"]["n"] == videos
    assert report["level_accuracy"]["all"]["n"] == len(DIMENSIONS) * videos
    assert capsys.readouterr().out == format_report(report)  # what it prints is the report it wrote


def test_eval_with_the_published_questions_of_the_folder(model_folder, synth, tmp_path):
    code = main(["eval", "--data", "finevd", str(synth), "questions=published", f"cache_dir={tmp_path / 'cache'}",
                 "--split", "train", "--model", str(model_folder), "--output", str(tmp_path / "r.json"), "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    published = load_finevd(synth, "qa", cache_dir=tmp_path / "cache")["train"]
    yes_no = [row for row in published if row["question_type"] == "yes_no"]
    assert report["yes_no_accuracy"]["all"]["n"] == len(yes_no) > 0
    assert report["which_subtype_accuracy"]["all"]["n"] == sum(r["question_type"] == "which_subtype" for r in published)
    assert list(report["score_head"]) == list(DIMENSIONS)


def test_eval_on_a_plain_score_table_reports_overall_only(model_folder, synth, tmp_path, capsys):
    table = tmp_path / "mos.csv"
    names = sorted(p.name for p in (synth / "videos").glob("*.mp4"))
    table.write_text("file,score\n" + "".join(f"{n},{10 * i + 3}\n" for i, n in enumerate(names)))
    code = main(["eval", "--data", "csv", str(table), f"video_root={synth / 'videos'}", "video_column=file",
                 "mos_column=score", f"cache_dir={tmp_path / 'cache'}", "--split", "train", "--model",
                 str(model_folder), "--output", str(tmp_path / "r.json"), "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert list(report["score_head"]) == ["overall"] and report["score_head"]["overall"]["n"] >= 2
    assert "yes_no_accuracy" not in report and "Score head" in capsys.readouterr().out


@pytest.mark.parametrize(
    "data, message",
    [
        (["finevd"], "LOADER SOURCE"),
        (["imagenet", "x"], "unknown dataset loader 'imagenet'"),
        (["finevd", "{synth}", "bogus=1"], "bogus"),
        (["finevd", "{synth}", "split_ratios"], "KEY=VALUE"),
        (["finevd", "{synth}", "questions=invented"], "generated, published"),
    ],
)
def test_bad_data_specs_are_named(synth, data, message, capsys):
    data = [part.format(synth=synth) for part in data]
    assert main(["eval", "--data", *data, "--model", "unused", "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_missing_split_names_the_splits_there_are(synth, tmp_path, capsys):
    code = main(["eval", "--data", "finevd", str(synth), f"cache_dir={tmp_path}", "--split", "holdout",
                 "--model", "unused", "--quiet"])
    assert code == 2
    assert "no 'holdout' split; it has: train, validation, test" in capsys.readouterr().err
