"""The metrics against scipy and hand-computed values (ties, constant and tiny inputs), the logistic fit,
the evaluation report built from prediction records and its text table."""

import dataclasses
import json
import math
import re
import warnings

import numpy as np
import pytest
from scipy import special, stats

from finevq import metrics
from finevq.errors import LabelError
from finevq.metrics import QARecord, ScoreRecord


@pytest.fixture(autouse=True)
def warnings_are_errors():
    """Undefined correlations must come back as NaN quietly, not as scipy or numpy warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy_including_ties(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 8, size=60).astype(float)  # many ties on both sides
    predicted = np.round(true + rng.normal(0, 2, size=60))
    assert metrics.srcc(predicted, true) == pytest.approx(stats.spearmanr(predicted, true).statistic, abs=1e-12)
    assert metrics.krcc(predicted, true) == pytest.approx(stats.kendalltau(predicted, true).statistic, abs=1e-12)
    assert metrics.plcc_raw(predicted, true) == pytest.approx(stats.pearsonr(predicted, true).statistic, abs=1e-12)
    assert metrics.rmse(predicted, true) == pytest.approx(np.sqrt(np.mean((predicted - true) ** 2)))


def test_hand_computed_permutation():
    predicted, true = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    # SRCC = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 4 / 120; KRCC = (8 concordant - 2 discordant) / 10
    assert metrics.srcc(predicted, true) == pytest.approx(0.8)
    assert metrics.krcc(predicted, true) == pytest.approx(0.6)
    assert metrics.plcc_raw(predicted, true) == pytest.approx(0.8)
    assert metrics.rmse(predicted, true) == pytest.approx(math.sqrt(4 / 5))


def test_hand_computed_ties():
    predicted, true = [1, 2, 2, 3], [1, 2, 3, 4]
    # ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): r = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert metrics.srcc(predicted, true) == pytest.approx(3 / math.sqrt(10))
    # tau-b: 5 concordant, 0 discordant, one pair tied in the predictions: 5 / sqrt((6 - 1) * 6)
    assert metrics.krcc(predicted, true) == pytest.approx(5 / math.sqrt(30))


def test_descending_relation_is_negative():
    assert metrics.srcc([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert metrics.krcc([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)


@pytest.mark.parametrize("predicted, true, reason", [
    ([5.0] * 6, [1, 2, 3, 4, 5, 6], "constant predictions"),
    ([1, 2, 3, 4, 5, 6], [7.0] * 6, "constant true values"),
    ([1.0], [2.0], "fewer than 2 samples"),
    ([], [], "fewer than 2 samples"),
])
def test_undefined_correlations_are_nan_with_a_reason(predicted, true, reason):
    for correlation in (metrics.srcc, metrics.krcc, metrics.plcc_raw, metrics.plcc_logistic):
        assert math.isnan(correlation(predicted, true))
    assert metrics.why_undefined(predicted, true) == reason
    report = metrics.correlation_report(predicted, true)
    assert report["srcc"] is None and report["plcc_logistic"] is None
    assert report["note"] == f"{reason}: correlations undefined"


def test_small_samples():
    assert metrics.srcc([1, 2], [3, 5]) == pytest.approx(1.0)
    assert metrics.plcc_raw([1, 2], [5, 3]) == pytest.approx(-1.0)
    assert math.isnan(metrics.plcc_logistic([1, 2, 3, 4], [1, 3, 2, 4]))  # needs 5 samples for 4 parameters
    assert not math.isnan(metrics.plcc_logistic([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]))
    assert metrics.rmse([2.0], [5.0]) == pytest.approx(3.0)
    assert math.isnan(metrics.rmse([], []))


def test_constant_predictions_still_have_an_rmse():
    report = metrics.correlation_report([5.0] * 4, [1, 2, 3, 4])
    assert report["rmse"] == pytest.approx(math.sqrt((16 + 9 + 4 + 1) / 4))


@pytest.mark.parametrize("predicted, true, message", [
    ([1, float("nan"), 3], [1, 2, 3], "score_head[color]: 1 NaN/Inf predicted value(s), first at index 1"),
    ([1, 2, 3], [1, 2, float("inf")], "score_head[color]: 1 NaN/Inf true value(s), first at index 2"),
    ([1, 2, 3], [1, 2], "score_head[color]: predicted and true values must be two flat lists of equal length"),
    (["high", 2, 3], [1, 2, 3], "score_head[color]: values must be numbers"),
])
def test_bad_inputs_name_the_field(predicted, true, message):
    with pytest.raises(LabelError, match=re.escape(message)):
        metrics.srcc(predicted, true, field="score_head[color]")


def _logistic_data(seed: int = 1, n: int = 200):
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(-20, 25, n)
    true = 10 + 80 * special.expit((predicted - 5) / 4) + rng.normal(0, 1, n)
    return predicted, true


def test_logistic_fit_recovers_the_curve():
    predicted, true = _logistic_data()
    mapping = metrics.fit_logistic(predicted, true)
    assert mapping.kind == "logistic" and mapping.note == ""
    np.testing.assert_allclose(mapping.params, (90, 10, 5, 4), rtol=0.05, atol=0.3)
    assert metrics.plcc_logistic(predicted, true) > 0.99 > metrics.plcc_raw(predicted, true)


def test_logistic_fit_handles_a_falling_relation():
    predicted, true = _logistic_data()
    mapping = metrics.fit_logistic(-predicted, true)
    assert mapping.kind == "logistic" and mapping.params[0] < mapping.params[1]
    assert metrics.plcc_logistic(-predicted, true) == pytest.approx(metrics.plcc_logistic(predicted, true), abs=1e-6)


def test_logistic_fit_falls_back_to_a_line_when_it_cannot_converge():
    predicted, true = _logistic_data()
    mapping = metrics.fit_logistic(predicted, true, max_evaluations=1)
    assert mapping.kind == "linear" and "did not converge" in mapping.note
    slope, intercept = np.polyfit(predicted, true, 1)
    np.testing.assert_allclose(mapping.params, (slope, intercept))
    np.testing.assert_allclose(mapping(predicted), slope * predicted + intercept)


def test_logistic_fit_keeps_a_line_for_linear_data():
    predicted = np.arange(10.0)
    mapping = metrics.fit_logistic(predicted, 2 * predicted + 1)
    assert mapping.kind == "linear" and "worse than a straight line" in mapping.note
    np.testing.assert_allclose(mapping.params, (2, 1), atol=1e-9)
    report = metrics.correlation_report(predicted, 2 * predicted + 1)
    assert report["plcc_logistic"] == pytest.approx(1.0) and "linear fit used" in report["note"]


def test_logistic_fit_refuses_undefined_input():
    with pytest.raises(LabelError, match="level_score\\[blur\\]: cannot fit.*constant predictions"):
        metrics.fit_logistic([1.0] * 8, range(8), field="level_score[blur]")


def test_accuracy():
    assert metrics.accuracy(["a", "b", "c", "d"], ["a", "x", "c", "y"]) == 0.5
    assert math.isnan(metrics.accuracy([], []))
    assert metrics.accuracy_report([], []) == {"n": 0, "accuracy": None}
    with pytest.raises(LabelError, match="yes_no: 1 predictions for 2 true answers"):
        metrics.accuracy(["a"], ["a", "b"], field="yes_no")


def _score_records():
    """Five videos: color scores are a permutation of the MOS ranks (SRCC 0.8), overall is constant."""
    mos = [10.0, 30.0, 50.0, 70.0, 90.0]
    color = [30.0, 10.0, 70.0, 50.0, 90.0]
    levels = ["bad", "poor", "fair", "fair", "excellent"]  # right except video 3 (true level good)
    records = [ScoreRecord(f"v{i}.mp4", "colour", m, score=s, level_score=m / 100, level=lv)
               for i, (m, s, lv) in enumerate(zip(mos, color, levels))]
    records += [ScoreRecord(f"v{i}.mp4", "Overall", m, score=42.0) for i, m in enumerate(mos)]
    return records


def test_report_scores_and_levels():
    report = metrics.build_report(_score_records(), mos_range={"color": (0, 100), "overall": (0, 100)})
    assert report["n_videos"] == 5
    color = report["score_head"]["color"]
    assert color["n"] == 5 and color["srcc"] == pytest.approx(0.8) and color["krcc"] == pytest.approx(0.6)
    assert color["plcc_raw"] == pytest.approx(0.8) and color["rmse"] == pytest.approx(math.sqrt(1600 / 5))
    overall = report["score_head"]["overall"]
    assert overall["srcc"] is None and overall["note"] == "constant predictions: correlations undefined"
    assert overall["rmse"] == pytest.approx(math.sqrt(np.mean((np.array([10, 30, 50, 70, 90]) - 42.0) ** 2)))
    assert list(report["level_score"]) == ["color"] and "rmse" not in report["level_score"]["color"]
    assert report["level_score"]["color"]["srcc"] == pytest.approx(1.0)
    assert report["level_accuracy"] == {"color": {"n": 5, "accuracy": 0.8}, "all": {"n": 5, "accuracy": 0.8}}
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_report_takes_true_levels_from_records_before_binning():
    records = [ScoreRecord("a", "blur", 95.0, level="bad", true_level="Bad"),
               ScoreRecord("b", "blur", 5.0, level="bad")]
    report = metrics.build_report(records, mos_range=(0, 100))
    assert report["level_accuracy"]["blur"] == {"n": 2, "accuracy": 1.0}
    with pytest.raises(LabelError, match="ScoreRecord 1 \\(video 'b', blur\\): no true_level, and no mos_range"):
        metrics.build_report(records)
    with pytest.raises(LabelError, match="no mos_range for blur"):
        metrics.build_report(records, mos_range={"noise": (0, 100)})
    assert metrics.build_report(records, mos_range={"blur": (-10, 5)})["level_accuracy"]["blur"]["accuracy"] == 0.5


def test_report_accepts_mappings_like_dataclasses():
    records = _score_records()
    as_dicts = [dict(r.__dict__) for r in records]
    assert metrics.build_report(as_dicts, mos_range=(0, 100)) == metrics.build_report(records, mos_range=(0, 100))


def test_severity_section_ranks_scores_against_negated_severity_over_all_and_distorted_only():
    severities = [0.0, 0.0, 0.0, 0.2, 0.5, 0.9]
    scores = [80.0, 85.0, 82.0, 70.0, 60.0, 65.0]  # clean ones on top; among the distorted one swap
    records = [ScoreRecord(f"v{i}", "noise", true_mos=s, score=s, severity=v)
               for i, (s, v) in enumerate(zip(scores, severities))]
    records += [ScoreRecord(f"v{i}", "overall", true_mos=s, score=s, severity=0.0) for i, s in enumerate(scores)]
    report = metrics.build_report(records)
    row = report["severity"]["noise"]
    assert row["srcc"] == pytest.approx(stats.spearmanr(scores, [-v for v in severities]).statistic)
    assert row["n_distorted"] == 3 and row["srcc_distorted"] == pytest.approx(0.5)
    assert list(report["severity"]) == ["noise"]  # overall is not a distortion dimension
    assert "Score head vs distortion severity" in metrics.format_report(report)
    clean = metrics.build_report([ScoreRecord(f"c{i}", "blur", 50.0, score=50.0 + i, severity=0.0) for i in range(4)])
    assert clean["severity"]["blur"]["srcc"] is None and clean["severity"]["blur"]["n_distorted"] == 0
    assert "constant true values" in clean["severity"]["blur"]["note"]


def test_diagnosed_severity_ties_the_videos_the_model_finds_clean():
    rng = np.random.default_rng(0)
    severities = np.where(rng.uniform(size=400) < 0.75, 0.0, rng.integers(1, 6, 400) / 5)
    # Distorted videos ranked perfectly, clean ones scattered above them as a score head spreads them.
    scores = np.where(severities > 0, 60 - 40 * severities, 70 + 10 * rng.uniform(size=400))
    presence = np.where(severities > 0, 0.9, 0.1)
    presence[:10] = 1 - presence[:10]  # ten wrong diagnoses
    records = [ScoreRecord(f"v{i}", "noise", true_mos=0.0, score=s, severity=v, presence=p)
               for i, (s, v, p) in enumerate(zip(scores, severities, presence))]
    row = metrics.build_report(records)["severity"]["noise"]
    assert row["srcc"] < 0.85  # all clean above all distorted, yet their untied scores cap it
    gated = metrics.diagnosed_scores(scores, presence)
    assert len(set(gated[presence < 0.5])) == 1 and gated[presence < 0.5][0] > scores.max()
    assert row["srcc_diagnosed"] == pytest.approx(stats.spearmanr(gated, -severities).statistic)
    assert row["srcc_diagnosed"] > row["srcc"] + 0.1
    assert "SRCC diagnosed" in metrics.format_report({"severity": {"noise": row}})
    # Without a presence for every record the diagnosed figure is left out, not guessed.
    partial = [dataclasses.replace(r, presence=None) if i == 0 else r for i, r in enumerate(records)]
    assert "srcc_diagnosed" not in metrics.build_report(partial)["severity"]["noise"]


def test_worst_dimension_section_applies_the_label_rule_to_predicted_and_true_ratings():
    coarse = ("color", "noise", "artifact", "blur", "temporal")

    def video(name, true, predicted):
        """true / predicted: (level, MOS) per coarse dimension."""
        return [ScoreRecord(name, d, true_mos=t[1], true_level=t[0], score=p[1], level=p[0])
                for d, t, p in zip(coarse, true, predicted)]

    good = [("good", 70.0)] * 5
    blur_worst = [("good", 70.0)] * 3 + [("poor", 30.0), ("good", 70.0)]
    noise_and_blur_fair = [("good", 70.0), ("fair", 45.0), ("good", 70.0), ("fair", 55.0), ("good", 70.0)]
    records = (video("a", blur_worst, blur_worst)  # right: blur
               + video("b", good, good)  # right: good
               + video("c", noise_and_blur_fair, blur_worst)  # tie at fair broken by the lower MOS: noise
               + video("d", good, good)[:4])  # not rated on temporal: left out
    report = metrics.build_report(records, mos_range=(0, 100))
    assert report["worst_dimension_accuracy"] == {"n": 3, "accuracy": pytest.approx(2 / 3)}
    assert "Worst dimension of the ratings" in metrics.format_report(report)
    swapped = video("c", noise_and_blur_fair, [("good", 70.0), ("fair", 40.0), ("good", 70.0), ("fair", 50.0), ("good", 70.0)])
    assert metrics.build_report(swapped, mos_range=(0, 100))["worst_dimension_accuracy"]["accuracy"] == 1.0
    assert "worst_dimension_accuracy" not in metrics.build_report(_score_records(), mos_range=(0, 100))


def test_report_qa_accuracies_with_published_spellings():
    qa = [
        QARecord("yes_no", "Yes.", "Yes", coarse_type="noise"),
        QARecord("yes_no", "yes, there is", "No", coarse_type="Noise"),
        QARecord("yes_no", "No", "No", coarse_type="temp"),
        QARecord("yes_no", "I cannot tell", "Yes", coarse_type="temporal"),
        QARecord("which_subtype", "gussian noise", "Gaussian noise"),
        QARecord("which_subtype", "sqaure artifact", "block artifact"),
        QARecord("which_subtype", "B", "none"),
        QARecord("which_subtype", "none", "none", coarse_type="blur"),
        QARecord("which_subtype", "motion blur", "motion blur", coarse_type="blur"),
        QARecord("which_dimension", "Video quality is good", "good"),
        QARecord("which_dimension", "Blur", "Colour"),
    ]
    report = metrics.build_report(qa=qa)
    assert report["yes_no_accuracy"] == {
        "noise": {"n": 2, "accuracy": 0.5}, "temporal": {"n": 2, "accuracy": 0.5}, "all": {"n": 4, "accuracy": 0.5}}
    assert report["which_subtype_accuracy"] == {  # by the type asked about, else the true subtype's type
        "noise": {"n": 1, "accuracy": 1.0}, "artifact": {"n": 1, "accuracy": 1.0}, "blur": {"n": 2, "accuracy": 1.0},
        "mixed": {"n": 1, "accuracy": 0.0}, "all": {"n": 5, "accuracy": pytest.approx(4 / 5)}}
    assert report["which_dimension_accuracy"] == {"n": 2, "accuracy": 0.5}
    assert "score_head" not in report and report["n_videos"] == 0


@pytest.mark.parametrize("scores, qa, message", [
    ([ScoreRecord("v.mp4", "blur", float("nan"), score=1.0)], [], r"ScoreRecord 0 \(video 'v.mp4', blur\): true_mos is nan"),
    ([ScoreRecord("v.mp4", "noise", 1.0, score=float("nan"))], [], r"ScoreRecord 0 \(video 'v.mp4', noise\): score is nan"),
    ([{"video": "v.mp4", "dimension": "blur", "true_mos": 1.0, "score": "high"}], [],
     r"ScoreRecord 0 \(video 'v.mp4', blur\): score is not a number: 'high'"),
    ([ScoreRecord("v.mp4", "sharpness", 1.0)], [], "ScoreRecord 0 dimension: unknown quality dimension 'sharpness'"),
    ([ScoreRecord("v", "blur", 1.0), ScoreRecord("v", "Blur", 2.0)], [], "ScoreRecord 1 .*duplicate record"),
    ([{"video": "v", "dimension": "blur", "true_mos": 1.0, "scores": 2.0}], [], r"unknown keys \['scores'\]"),
    ([{"video": "v", "dimension": "blur"}], [], r"missing keys \['true_mos'\]"),
    ([], [QARecord("yes_no", "Yes", "Yes")], "QARecord 0: a yes_no question needs its coarse_type"),
    ([], [QARecord("yes_no", "Yes", "Yes", coarse_type="overall")], "QARecord 0 coarse_type: 'overall' is not one of"),
    ([], [QARecord("yes_no", "Yes", "Maybe", coarse_type="blur", video="x.mp4")], r"QARecord 0 \(video 'x.mp4'\) true answer"),
    ([], [QARecord("which_subtype", "none", "sharpening halo")], "unknown distortion subtype 'sharpening halo'"),
    ([], [QARecord("caption", "a", "b")], "question_type 'caption' is not one of yes_no, which_subtype"),
])
def test_report_errors_name_the_record_and_field(scores, qa, message):
    with pytest.raises(LabelError, match=message):
        metrics.build_report(scores, qa, mos_range=(0, 100))


def test_format_report_table():
    qa = [QARecord("yes_no", "Yes", "Yes", coarse_type="blur"), QARecord("which_subtype", "none", "none")]
    text = metrics.format_report(metrics.build_report(_score_records(), qa, mos_range=(0, 100)))
    lines = text.splitlines()
    assert lines[0] == "Videos: 5"
    header = next(line for line in lines if line.startswith("Score head"))
    assert header.split()[-8:] == ["n", "SRCC", "KRCC", "PLCC", "raw", "PLCC", "logistic", "RMSE"]
    color = next(line for line in lines if line.startswith("color") and "0.8000" in line)
    assert color.split()[1:5] == ["5", "0.8000", "0.6000", "0.8000"]
    overall = next(line for line in lines if line.startswith("overall [1]"))
    assert overall.split()[3:7] == ["n/a", "n/a", "n/a", "n/a"]
    assert "[1] score_head overall: constant predictions: correlations undefined" in lines
    assert any(line.startswith("Which-subtype accuracy") for line in lines)
    assert any(line.split() == ["all", "1", "1.0000"] for line in lines)
