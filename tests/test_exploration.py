"""finevq.exploration: predictions made by the `finevq eval` code and cached (resumed, reused, never
recomputed), the tables built from them, and the figures drawn from those, on a generated FineVD-Synth
set with a real tiny model, and on hand-made records where the expected numbers are known."""

import math
import os
import shutil

import numpy as np
import pytest

from finevq.cli import main
from finevq.errors import LabelError
from finevq.evaluation import evaluate, load_eval_rows, parse_data_spec
from finevq.exploration import figures, tables
from finevq.exploration import predictions as predictions_module
from finevq.exploration.predictions import ROWS_FILE, Predictions, data_spec, predict, run_folder
from finevq.inference import FineVQ
from finevq.metrics import QARecord, ScoreRecord, correlation_report
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS



@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore") / "finevd-synth"
    assert main(["synth", "--out", str(root), "--num-videos", "12", "--seed", "4", "--resolution", "64", "80",
                 "--duration", "1.5", "2.5", "--fps", "12", "16"]) == 0
    return data_spec("finevd", root, {"cache_dir": root.parent / "datasets"})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("predictions")


@pytest.fixture(scope="module")
def predicted(model_folder, spec, cache):
    return predict(model_folder, spec, "train", cache_dir=cache, progress=False)


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails: what passes with it read everything from the cache."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded although the predictions are cached")

    monkeypatch.setattr(FineVQ, "from_pretrained", refuse)


def test_data_spec_reads_back_as_the_loader_options(tmp_path):
    options = {"cache_dir": tmp_path / "a b", "split_ratios": [4, 1, 1], "missing": "keep", "protocol": "yes",
               "video_column": "1.5", "mos_column": "", "split_column": None, "name": "[x: 'y'"}
    spec = data_spec("csv", tmp_path / "mos.csv", options)
    assert f"cache_dir={tmp_path / 'a b'}" in spec  # plain where plain text reads back as itself
    assert parse_data_spec(spec) == ("csv", str(tmp_path / "mos.csv"), {**options, "cache_dir": str(tmp_path / "a b")})


def test_predictions_report_is_the_finevq_eval_report_and_rerunning_needs_no_model(
    predicted, model_folder, spec, cache, monkeypatch
):
    reference = evaluate(FineVQ.from_pretrained(model_folder), load_eval_rows(spec, "train"), progress=False)
    assert predicted.report() == reference and reference["n_videos"] == len(predicted.paths) >= 5
    monkeypatch.setattr(FineVQ, "from_pretrained", lambda *a, **k: pytest.fail("model loaded for cached predictions"))
    again = predict(model_folder, spec, "train", cache_dir=cache, progress=False)
    assert again.loaded is None
    assert (again.scores, again.answers, again.paths) == (predicted.scores, predicted.answers, predicted.paths)
    assert set(again.durations.values()) == set(predicted.durations.values()) and min(again.durations.values()) >= 1


def test_an_interrupted_run_predicts_only_the_videos_it_had_not_finished(
    predicted, model_folder, spec, tmp_path, monkeypatch
):
    interrupted = tmp_path / predicted.folder.name
    shutil.copytree(predicted.folder, interrupted)
    lines = (interrupted / ROWS_FILE).read_text().splitlines(keepends=True)
    (interrupted / ROWS_FILE).write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # killed mid-row
    calls = []
    real = predictions_module.evaluate_videos
    monkeypatch.setattr(predictions_module, "evaluate_videos", lambda *args: calls.append(args[2]) or real(*args))
    resumed = predict(model_folder, spec, "train", cache_dir=tmp_path, progress=False)
    assert resumed.folder == interrupted and len(calls) == len(lines) - 2
    assert resumed.scores == predicted.scores and resumed.answers == predicted.answers
    assert len((interrupted / ROWS_FILE).read_text().splitlines()) == len(lines)


def test_fewer_videos_come_from_the_cache_and_other_model_files_get_another_folder(
    predicted, model_folder, spec, cache, tmp_path, no_model
):
    first = predict(model_folder, spec, "train", max_videos=3, cache_dir=cache, progress=False)
    assert list(first.paths) == list(predicted.paths)[:3]
    assert {r.video for r in first.scores} == set(first.paths) and {r.video for r in first.answers} == set(first.paths)
    copy = shutil.copytree(model_folder, tmp_path / model_folder.name)
    folder, _ = run_folder(cache, copy, spec, "train")
    assert folder != predicted.folder and folder.name.startswith(model_folder.name)
    weights = next(copy.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert run_folder(cache, copy, spec, "train")[0] != folder
    assert run_folder(cache, model_folder, spec, "validation")[0] != predicted.folder


def test_timeline_of_the_longest_video_covers_it_and_is_cached(predicted, no_model):
    video = predicted.longest_video()
    assert predicted.durations[video] == max(predicted.durations.values())
    windows = predicted.timeline(video, 0.5, ("overall", "blur"))
    assert len(windows) >= 3 and windows[0].start == 0
    assert windows[-1].end == pytest.approx(predicted.durations[video], abs=0.1)
    assert all(a.end == b.start for a, b in zip(windows, windows[1:]))
    fresh = Predictions(**{**vars(predicted), "loaded": None})
    assert fresh.timeline(video, 0.5, ("overall", "blur")) == windows
    figure = figures.quality_over_time(windows, predicted.score_range, f"{video} over time")
    (ax,) = figure.axes
    assert [p.get_label() for p in ax.patches if p.get_label() in DIMENSIONS] == ["blur", "overall"]
    assert ax.get_xlim() == (0, windows[-1].end) and ax.get_xlabel() == "time (seconds)"


# ---------------------------------------------------------------- tables on known records


def hand_made(tmp_path) -> Predictions:
    scores = [
        ScoreRecord("a", "overall", true_mos=90.0, score=88.0, level_score=0.9, level="excellent",
                    true_level="excellent"),
        ScoreRecord("b", "overall", true_mos=20.0, score=85.0, level_score=0.2, level="poor", true_level="poor"),
        ScoreRecord("c", "overall", true_mos=50.0, score=51.0, level_score=0.55, level="fair", true_level="fair"),
        ScoreRecord("a", "color", true_mos=70.0, score=30.0, level_score=0.7, level="good", true_level="good"),
    ]
    answers = [
        QARecord("yes_no", "Yes", "yes", "color", "a"), QARecord("yes_no", "No", "yes", "color", "b"),
        QARecord("yes_no", "Yes", "no", "color", "c"), QARecord("yes_no", "No", "no", "color", "d"),
        QARecord("yes_no", "No", "yes", "color", "e"),
        QARecord("yes_no", "No", "no", "noise", "a"), QARecord("yes_no", "No", "no", "noise", "b"),
        QARecord("which_subtype", "None", "over dark", "color", "b"),
        QARecord("which_subtype", "gussian noise", "none", "noise", "b"),
        QARecord("which_subtype", "over dark", "over dark", "color", "a"),
        QARecord("which_dimension", "Video quality is good", "temporal", None, "b"),
    ]
    return Predictions(tmp_path, None, (0.0, 100.0), {}, {}, scores, answers)


def test_answer_table_holds_canonical_labels(tmp_path):
    answers = tables.answer_table(hand_made(tmp_path))
    assert list(answers["predicted"]) == [
        "yes", "no", "yes", "no", "no", "no", "no", "none", "gaussian noise", "over dark", "good"
    ]
    assert list(answers["true"][-4:]) == ["over dark", "none", "over dark", "temporal"]


def test_yes_no_table_counts_precision_and_recall_of_yes(tmp_path):
    table = tables.yes_no_table(tables.answer_table(hand_made(tmp_path)))
    assert list(table.index) == [*COARSE_TYPES, "all"]
    color, noise, everything = table.loc["color"], table.loc["noise"], table.loc["all"]
    assert (color.n, color.true_yes, color.predicted_yes) == (5, 3, 2)
    assert (color.precision, color.recall, color.accuracy) == pytest.approx((1 / 2, 1 / 3, 2 / 5))
    assert math.isnan(noise.precision) and math.isnan(noise.recall) and noise.accuracy == 1.0
    assert everything.n == 7 and everything.accuracy == pytest.approx(4 / 7)
    assert table.loc["blur"].n == 0 and math.isnan(table.loc["blur"].accuracy)
    figure = figures.yes_no_bars(table)
    heights = [bar.get_height() for bar in figure.axes[0].patches]
    assert heights[:len(table)] == list(np.nan_to_num(table["precision"]))
    assert heights[len(table):2 * len(table)] == list(np.nan_to_num(table["recall"]))


def test_score_table_puts_both_heads_on_one_scale_and_finds_where_they_disagree(tmp_path):
    scores = tables.score_table(hand_made(tmp_path))
    assert list(scores["score_01"]) == pytest.approx([0.88, 0.85, 0.51, 0.30])
    assert list(scores["score_level"]) == ["excellent", "excellent", "fair", "poor"]
    disagreements = tables.score_disagreements(scores, top=2)
    assert list(disagreements["video"]) == ["b", "a"] and list(disagreements["dimension"]) == ["overall", "color"]
    assert list(disagreements["gap"]) == pytest.approx([0.65, -0.40])
    assert list(disagreements["levels_agree"]) == [False, False]
    figure = figures.score_agreement(scores)
    assert [ax.get_title().split(":")[0] for ax in figure.axes] == ["color", "overall"]
    overall = figure.axes[1]
    assert overall.get_title().startswith("overall: 1 of 3 in another level")
    assert [len(points.get_offsets()) for points in overall.collections] == [2, 1]


def test_worst_predicted_ranks_by_error_and_lists_distortions(tmp_path):
    made = hand_made(tmp_path)
    worst = tables.worst_predicted(tables.score_table(made), tables.answer_table(made), "overall", count=2)
    assert list(worst["video"]) == ["b", "a"]  # too few videos for a logistic fit: raw errors 65 and 2
    assert list(worst["error"]) == pytest.approx([65.0, 2.0])
    assert list(worst["true_distortions"]) == [["over dark"], ["over dark"]]
    assert list(worst["predicted_distortions"]) == [["gaussian noise"], ["over dark"]]
    with pytest.raises(LabelError, match="no 'blur' scores"):
        tables.worst_predicted(tables.score_table(made), tables.answer_table(made), "blur")


# ---------------------------------------------------------------- figures of real predictions


def test_figures_show_the_reported_numbers(predicted, tmp_path):
    scores, answers = tables.score_table(predicted), tables.answer_table(predicted)
    report, videos = predicted.report(), len(predicted.paths)
    scatter = figures.score_scatter(scores)
    assert len(scatter.axes) == len(DIMENSIONS)
    for ax, dimension in zip(scatter.axes, DIMENSIONS):
        row = report["score_head"][dimension]
        assert f"SRCC {row['srcc']:.3f}" in ax.get_title() and f"KRCC {row['krcc']:.3f}" in ax.get_title()
        assert f"PLCC {row['plcc_logistic']:.3f}" in ax.get_title()
        assert len(ax.collections[0].get_offsets()) == videos and len(ax.lines) == 1  # the fitted curve
    level = figures.score_scatter(scores, "level_score")
    assert f"SRCC {report['level_score']['overall']['srcc']:.3f}" in level.axes[-1].get_title()
    for ax, dimension in zip(figures.level_confusion(scores).axes, DIMENSIONS):
        counts = ax.images[0].get_array()
        assert counts.shape == (5, 5) and counts.sum() == videos
        assert f"accuracy {report['level_accuracy'][dimension]['accuracy']:.2f}" in ax.get_title()
    subtypes = figures.subtype_confusion(answers)
    assert [ax.get_title().split()[0] for ax in subtypes.axes] == list(COARSE_TYPES)
    assert all(ax.images[0].get_array().sum() == videos for ax in subtypes.axes)
    worst = tables.worst_predicted(scores, answers, count=3)
    grid = figures.keyframe_grid(worst, predicted.paths, frames=4, max_side=48)
    assert len(grid.axes) == 12 and all(max(ax.images[0].get_array().shape[:2]) <= 48 for ax in grid.axes)
    assert worst.loc[0, "video"] in grid.subfigs[0].get_suptitle()
    assert list(worst["error"]) == sorted(worst["error"], reverse=True)
    path = figures.save_figure(grid, tmp_path / "figures", "worst")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figures.save_figure(grid, None, "worst") is None


def test_score_scatter_title_says_n_a_when_a_correlation_is_undefined(tmp_path):
    scores = tables.score_table(hand_made(tmp_path))
    (color, overall) = figures.score_scatter(scores).axes
    assert "SRCC n/a" in color.get_title() and "PLCC n/a" in overall.get_title()  # one video; three: no fit
    assert f"SRCC {correlation_report([88, 85, 51], [90, 20, 50])['srcc']:.3f}" in overall.get_title()
