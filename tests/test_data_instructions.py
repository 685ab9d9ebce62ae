"""Training conversations from `scores` and `qa` rows: seeded determinism, paraphrases, score answers
ending in the level word, multiple-choice letters that point at the right label, composed descriptions."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from data_folders import write_finevd_folder

from finevq.data import build_conversations, load_finevd
from finevq.data.instructions import (
    CONVERSATION_TYPES,
    conversations_from_score_row,
    distortion_presence,
    score_question,
    worst_dimension,
)
from finevq.errors import ConfigError
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS, NO_DISTORTION, SUBTYPES


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    root = tmp_path_factory.mktemp("instructions")
    return load_finevd(write_finevd_folder(root / "f", videos=24), cache_dir=root / "cache")


def options_of(question: str) -> dict[str, str]:
    return dict(re.findall(r"([A-Z]):\[([^\]]*)\]", question))


def test_same_seed_same_conversations_other_seed_other_wording(scores):
    first = build_conversations(scores["train"], seed=3)
    assert first.to_list() == build_conversations(scores["train"], seed=3).to_list()
    other = build_conversations(scores["train"], seed=4)
    assert [r["conversations"] for r in first] != [r["conversations"] for r in other]
    assert [r["label"] for r in first] == [r["label"] for r in other]


def test_every_video_gets_every_question_type(scores):
    conversations = build_conversations(scores, seed=0)
    assert set(conversations) == set(scores)
    counts = Counter(conversations["train"]["question_type"])
    videos = len(scores["train"])
    assert counts == {
        "score": 6 * videos,
        "yes_no": 5 * videos,
        "which_subtype": 5 * videos,
        "which_dimension": videos,
        "describe": videos,
    }
    limited = build_conversations(scores["train"], seed=0, question_types=["score"])
    assert set(limited["question_type"]) == {"score"}
    with pytest.raises(ConfigError, match="unknown question types"):
        build_conversations(scores["train"], question_types=["essay"])


def test_score_answers_end_in_the_level_word_and_carry_the_mos(scores):
    by_name = {row["name"]: row for row in scores["train"]}
    questions = set()
    for row in build_conversations(scores["train"], seed=1, question_types=["score"]):
        user, assistant = row["conversations"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        source = by_name[row["name"]]
        assert row["mos"] == source[f"mos_{row['dimension']}"]
        assert row["level"] == row["label"] == LEVELS[source[f"level_{row['dimension']}"]]
        assert re.search(r"(\w+)\.$", assistant["content"]).group(1) == row["level"]
        assert row["dimension"] in user["content"]
        questions.add(re.sub(r"\b(" + "|".join(DIMENSIONS) + r")\b", "", user["content"]))
    assert len(questions) >= 3  # several paraphrases, not one string
    assert score_question("noise") == "How would you rate the noise quality of this video?"


def test_multiple_choice_letters_point_at_the_label(scores):
    rows = build_conversations(scores["train"], seed=2, question_types=["which_subtype", "which_dimension"])
    full_lists = 0
    for row in rows:
        question, answer = (turn["content"] for turn in row["conversations"])
        options = options_of(question)
        chosen = options[answer]
        if row["question_type"] == "which_subtype":
            coarse = row["coarse_type"]
            full_list = len(SUBTYPES[coarse]) + 1  # None and every subtype: the form inference asks
            assert len(options) in {(4 if row["label"] == "none" else 5), full_list}
            full_lists += len(options) == full_list
            assert chosen == ("None" if row["label"] == "none" else row["label"])
            assert set(options.values()) - {"None"} <= set(SUBTYPES[coarse])
        else:
            assert len(options) == 4 and len(set(options.values())) == 4
            expected = "Video quality is good" if row["label"] == "good" else row["label"].capitalize()
            assert chosen == expected
    subtype_questions = sum(row["question_type"] == "which_subtype" for row in rows)
    assert 0 < full_lists < subtype_questions  # both the published and the inference form are trained
    letters = Counter(turn["content"] for row in rows for turn in row["conversations"][1:])
    assert len(letters) >= 3  # options are shuffled, the answer is not always the same letter


def test_worst_dimension_and_description(scores):
    row = dict(scores["train"][0])
    for i, coarse in enumerate(COARSE_TYPES):
        row[f"mos_{coarse}"], row[f"level_{coarse}"] = 90.0 - i, 0
    assert worst_dimension(row) == "good"
    row["mos_blur"], row["level_blur"] = 30.0, LEVELS.index("poor")
    row["mos_noise"], row["level_noise"] = 35.0, LEVELS.index("poor")
    assert worst_dimension(row) == "blur"
    [describe] = [r for r in conversations_from_score_row(row, seed=0) if r["question_type"] == "describe"]
    text = describe["conversations"][1]["content"]
    assert "The blur quality hurts it the most." in text
    assert f"the quality of this video is {LEVELS[row['level_overall']]}" in text
    assert describe["label"] == LEVELS[row["level_overall"]]


def test_published_questions_convert_one_to_one(scores, tmp_path):
    folder = write_finevd_folder(tmp_path / "f")
    qa = load_finevd(folder, config="qa", cache_dir=tmp_path / "cache")
    conversations = build_conversations(qa["test"])
    assert len(conversations) == len(qa["test"])
    for source, row in zip(qa["test"], conversations):
        assert row["conversations"][0]["content"] == source["question"]
        assert row["conversations"][1]["content"] == source["answer"]
        assert row["label"] == source["label"]
        if source["question_type"] in ("yes_no", "which_subtype"):
            assert row["coarse_type"] == source["coarse_type"] and row["dimension"] is None
    assert set(conversations["question_type"]) <= set(CONVERSATION_TYPES)


def test_presence_labels_follow_the_subtype_and_severity_labels(scores):
    source = dict(scores["train"][0])
    source.update({"subtype_noise": "gaussian noise", "severity_noise": 0.6, "subtype_blur": NO_DISTORTION,
                   "severity_blur": 0.0, "severity_color": None})
    told = {}
    for row in conversations_from_score_row(source, seed=0):
        presence = distortion_presence(row)
        told.setdefault((row["question_type"], row["dimension"] or row["coarse_type"]), presence)
    for question_type in ("yes_no", "which_subtype", "score"):
        assert told[(question_type, "noise")] == ("noise", True)
        assert told[(question_type, "blur")] == ("blur", False)
    # A score row without a stated severity, the overall score, the worst dimension and the
    # description say nothing of presence.
    assert told[("score", "color")] is None and told[("score", "overall")] is None
    assert all(presence is None for (question_type, _), presence in told.items()
               if question_type in ("which_dimension", "describe"))
    mixed_types = {"question_type": "which_subtype", "coarse_type": None, "label": "gaussian noise"}
    assert distortion_presence(mixed_types) is None
