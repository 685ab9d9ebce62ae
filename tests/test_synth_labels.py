"""FineVD-Synth labels and sampling: the label function is monotone, clean videos score high, every
subtype is drawn, held-out photos stay out of training, and the QA items are consistent."""

import itertools

import numpy as np
import pytest

from finevq.data.synth.content import SceneOptions
from finevq.data.synth.photos import PHOTO_SPLITS
from finevq.data.synth.distortions import DISTORTIONS, sample_distortions
from finevq.data.synth.labels import IMPACT, clean_scores, dimension_scores, label_video
from finevq.data.synth.writer import SynthConfig, plan_video, qa_items
from finevq.taxonomy import (
    COARSE_OF_SUBTYPE,
    COARSE_TYPES,
    DIMENSIONS,
    LEVELS,
    NO_DISTORTION,
    SPECIFIC_SUBTYPES,
    WORST_DIMENSION_GOOD,
)

CLEAN = {"color": 88.0, "noise": 90.0, "artifact": 86.0, "blur": 89.0, "temporal": 87.0}


def test_every_specific_subtype_has_a_distortion_and_an_impact():
    assert set(DISTORTIONS) == set(SPECIFIC_SUBTYPES)
    assert set(IMPACT) == set(SPECIFIC_SUBTYPES)
    for subtype, impact in IMPACT.items():
        own = impact[COARSE_OF_SUBTYPE[subtype]]
        assert own == max(impact.values()), f"{subtype} must hurt its own dimension most"


@pytest.mark.parametrize("subtype", SPECIFIC_SUBTYPES)
def test_scores_never_rise_with_severity(subtype):
    rng = np.random.default_rng(0)
    others = [s for s in SPECIFIC_SUBTYPES if s != subtype]
    for trial in range(20):
        companions = [(str(s), float(rng.uniform(0.1, 1))) for s in rng.choice(others, size=trial % 3, replace=False)]
        previous = None
        for severity in np.linspace(0, 1, 11):
            scores = dimension_scores(CLEAN, [(subtype, float(severity)), *companions])
            if previous is not None:
                assert all(scores[d] <= previous[d] for d in DIMENSIONS), (subtype, severity, companions)
            previous = scores
        own = COARSE_OF_SUBTYPE[subtype]
        start = dimension_scores(CLEAN, [(subtype, 0.1), *companions])[own]
        assert dimension_scores(CLEAN, [(subtype, 1.0), *companions])[own] < 0.35 * start


def test_clean_videos_score_high_with_spread_and_distortions_cover_all_levels():
    rng = np.random.default_rng(1)
    cleans = [clean_scores(int(rng.integers(64, 720)), float(rng.uniform(0, 8)), rng) for _ in range(200)]
    overall = [dimension_scores(c, [])["overall"] for c in cleans]
    assert min(overall) > 70 and np.std(overall) > 1.0
    assert label_video(cleans[0], []).worst_dimension == WORST_DIMENSION_GOOD
    levels = {label_video(CLEAN, []).levels["overall"]}
    for subtype, severity in itertools.product(SPECIFIC_SUBTYPES, (0.2, 0.4, 0.6, 0.8, 1.0)):
        levels.add(label_video(CLEAN, [(subtype, severity)]).levels[COARSE_OF_SUBTYPE[subtype]])
    assert levels == set(LEVELS)


def test_dominant_subtype_and_worst_dimension():
    labels = label_video(CLEAN, [("gaussian noise", 0.3), ("stripe noise", 0.9), ("gaussian blur", 0.2)])
    assert labels.subtypes["noise"] == "stripe noise"
    assert labels.subtypes["blur"] == "gaussian blur"
    assert labels.subtypes["color"] == NO_DISTORTION
    assert labels.worst_dimension == "noise" and labels.main_subtype == "stripe noise"
    assert labels.scores["overall"] < min(CLEAN.values())


def test_sampler_draws_every_subtype_and_clean_share():
    rng = np.random.default_rng(2)
    draws = [sample_distortions(rng) for _ in range(600)]
    seen = {subtype for draw in draws for subtype, _ in draw}
    assert seen == set(SPECIFIC_SUBTYPES)
    clean = sum(not draw for draw in draws) / len(draws)
    assert 0.08 < clean < 0.25
    assert {len(draw) for draw in draws} == {0, 1, 2, 3}
    severities = [severity for draw in draws for _, severity in draw]
    assert min(severities) >= 0.1 and max(severities) <= 1.0 and np.std(severities) > 0.2
    overall_levels = [label_video(CLEAN, draw).levels["overall"] for draw in draws]
    assert all(overall_levels.count(level) > 20 for level in LEVELS), "overall spans every level"


def test_plans_cover_subtypes_hold_out_photos_and_vary_the_format():
    config = SynthConfig(num_videos=300, seed=5, scene=SceneOptions(max_frames=16))
    plans = [plan_video(config, index) for index in range(300)]
    assert {d["subtype"] for plan in plans for d in plan["distortions"]} == set(SPECIFIC_SUBTYPES)
    assert {plan["split"] for plan in plans} == {"train", "validation", "test"}
    for plan in plans:
        kind, name = plan["content"].split(":")
        if kind == "photo":
            assert PHOTO_SPLITS[name] == plan["split"], plan["content"]
        assert plan["scene"]["width"] % 2 == 0 and plan["scene"]["height"] % 2 == 0
    assert any(p["scene"]["height"] > p["scene"]["width"] for p in plans), "no portrait video"
    assert len({tuple(p["scene"]["fps"]) for p in plans}) >= 5
    assert len({p["scene"]["camera_kind"] for p in plans}) == 6
    implementations = {d["params"].get("method") for p in plans for d in p["distortions"] if d["subtype"] == "lagging"}
    assert implementations == {"freeze", "low_fps", "irregular"}
    assert plan_video(config, 17) == plans[17], "a plan depends only on (seed, index)"


def test_qa_items_agree_with_the_labels():
    config = SynthConfig(num_videos=1, seed=3)
    record = {"index": 4, "video": "x.mp4", "subtypes": {c: NO_DISTORTION for c in COARSE_TYPES},
              "main_subtype": "motion blur", "worst_dimension": "blur"}
    record["subtypes"]["blur"] = "motion blur"
    items = qa_items(record, config.seed)
    answers = {item["conversations"][0]["value"].split()[3]: item["conversations"][1]["value"] for item in items["yesno"]}
    assert answers == {"color": "No", "noise": "No", "artifact": "No", "blur": "Yes", "temporal": "No"}
    question = items["abcd"][0]["conversations"][0]["value"]
    letter = items["abcd"][0]["conversations"][1]["value"]
    assert f"{letter}:[motion blur]" in question and question.count(":[") == 5 and "[None]" in question
    dimension = items["abcd2"][0]["conversations"]
    assert f"{dimension[1]['value']}:[Blur]" in dimension[0]["value"] and dimension[0]["value"].count(":[") == 4
