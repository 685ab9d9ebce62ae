"""The FineVD loader: splits, levels, canonical labels, the qa config, caching and its invalidation,
missing videos, unsafe names and the published files' quirks, on label folders the tests write."""

from __future__ import annotations

import json
import logging

import pytest
from data_folders import NOISE_LABELS, conversation, mos_of, write_finevd_folder, write_jsonl

import finevq.data.finevd as finevd_module
from finevq.cli import main
from finevq.data import load_finevd, load_report, read_finevd
from finevq.errors import LabelError, VideoError
from finevq.taxonomy import DIMENSIONS, LEVELS, canonical_subtype, coarse_type_of, mos_to_level


@pytest.fixture()
def folder(tmp_path):
    return write_finevd_folder(tmp_path / "finevd")


def test_scores_keep_published_test_and_carve_validation_out_of_train(folder, tmp_path):
    data = load_finevd(folder, cache_dir=tmp_path / "cache")
    assert set(data) == {"train", "validation", "test"}
    index_of = {f"0_00_{i:02d}_16135028{i:02d}.mp4": i for i in range(12)}
    assert sorted(index_of[n] for n in data["test"]["name"]) == [0, 4, 8]
    assert len(data["validation"]) == 2 and len(data["train"]) == 7
    assert not set(data["validation"]["name"]) & set(data["test"]["name"])
    row = data["train"][0]
    i = index_of[row["name"]]
    for dimension in DIMENSIONS:
        assert row[f"mos_{dimension}"] == mos_of(i, dimension)
        assert LEVELS[row[f"level_{dimension}"]] == mos_to_level(mos_of(i, dimension), 0, 100)
        assert row["level_ranges"][dimension] == [0.0, 100.0]
    assert row["subtype_noise"] == canonical_subtype(NOISE_LABELS[i % 3])
    assert row["subtype_blur"] in ("none", "shooting-system blur")
    assert row["video"]["path"] == str((folder / "videos" / row["name"]).resolve())
    assert data["train"].features["level_overall"].names == list(LEVELS)


def test_qa_config_parses_every_question_type(folder, tmp_path):
    qa = load_finevd(folder, config="qa", cache_dir=tmp_path / "cache")
    rows = [row for split in qa.values() for row in split]
    assert len(rows) == 36
    by_type = {t: [r for r in rows if r["question_type"] == t] for t in ("yes_no", "which_subtype", "which_dimension")}
    assert all(len(group) == 12 for group in by_type.values())
    subtype = by_type["which_subtype"][0]
    assert subtype["option_labels"] == ["none", "gaussian noise", "pulse noise", "stripe noise", "other noise"]
    assert subtype["coarse_type"] == "noise" and subtype["dimension"] is None
    assert "<|video|>" not in subtype["question"]
    assert subtype["label"] == subtype["option_labels"]["ABCDE".index(subtype["answer"])]
    assert {r["label"] for r in by_type["which_dimension"]} == {"noise"}
    assert {r["label"] for r in by_type["yes_no"]} == {"yes", "no"}
    assert not any(r["question"].startswith("<") for r in rows)


def test_second_load_is_served_from_the_cache_until_a_file_changes(folder, tmp_path, monkeypatch):
    calls = []

    def counting_read(*args, **kwargs):
        calls.append(1)
        return read_finevd(*args, **kwargs)

    monkeypatch.setattr(finevd_module, "read_finevd", counting_read)
    first = load_finevd(folder, cache_dir=tmp_path / "cache")
    again = load_finevd(folder, cache_dir=tmp_path / "cache")
    assert len(calls) == 1 and again["train"]["name"] == first["train"]["name"]
    table = (folder / "scores.csv").read_text().replace(str(mos_of(1, "overall")), "99.5")
    (folder / "scores.csv").write_text(table)
    changed = load_finevd(folder, cache_dir=tmp_path / "cache")
    assert len(calls) == 2
    overall = {row["name"]: row["mos_overall"] for split in changed.values() for row in split}
    assert overall["0_00_01_1613502801.mp4"] == 99.5
    load_finevd(folder, cache_dir=tmp_path / "cache", split_seed=7)
    assert len(calls) == 3


def test_seeded_four_one_one_split_when_none_is_published(tmp_path):
    folder = write_finevd_folder(tmp_path / "f", videos=30, published_split=False, questions=False)
    a = load_finevd(folder, cache_dir=tmp_path / "c1", split_seed=3)
    b = load_finevd(folder, cache_dir=tmp_path / "c2", split_seed=3)
    c = load_finevd(folder, cache_dir=tmp_path / "c3", split_seed=4)
    assert {s: len(d) for s, d in a.items()} == {"train": 20, "validation": 5, "test": 5}
    assert a["test"]["name"] == b["test"]["name"]
    assert set(a["test"]["name"]) != set(c["test"]["name"])


def test_missing_videos_are_skipped_kept_or_an_error(folder, tmp_path, caplog):
    (folder / "videos" / "0_00_05_1613502805.mp4").unlink()
    with caplog.at_level(logging.WARNING):
        skipped = load_finevd(folder, cache_dir=tmp_path / "cache")
    assert sum(len(split) for split in skipped.values()) == 11
    assert load_report(skipped)["missing_videos"] == ["0_00_05_1613502805.mp4"]
    assert "1 of 12 labelled videos are missing" in caplog.text and "0_00_05_1613502805.mp4" in caplog.text
    again = load_finevd(folder, cache_dir=tmp_path / "cache")
    assert load_report(again)["missing_videos"] == ["0_00_05_1613502805.mp4"]  # kept with the cached rows
    kept = load_finevd(folder, config="qa", missing="keep", cache_dir=tmp_path / "cache")
    assert sum(len(split) for split in kept.values()) == 36
    with pytest.raises(VideoError, match="1 of 12 videos are missing.*0_00_05_1613502805.mp4"):
        load_finevd(folder, missing="error", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("name", ["../outside.mp4", "/etc/passwd", "a/../../b.mp4", "C:\\videos\\x.mp4"])
def test_names_escaping_the_video_root_are_rejected(tmp_path, name):
    write_jsonl(tmp_path / "yesno_train.jsonl", [conversation(name, "Is there any blur distortion?", "No")])
    with pytest.raises(LabelError, match="absolute|escapes"):
        load_finevd(tmp_path / "yesno_train.jsonl", cache_dir=tmp_path / "cache")


def test_chinese_file_is_replaced_by_its_english_twin_and_reads_alone(tmp_path):
    chinese = "视频中有哪种噪声失真？{A:[None], B:[高斯噪声], C:[脉冲噪声], D:[条纹噪声], E:[其他噪声]}"
    english = "Which noise? {A:[None], B:[gussian noise], C:[pulse noise], D:[stripe noise], E:[other noise]}"
    for file_name, question in (("abcd_test.jsonl", chinese), ("abcd_test_en.jsonl", english)):
        write_jsonl(tmp_path / file_name, [conversation("a.mp4", question, "B"), conversation("b.mp4", question, "E")])
    both = read_finevd(tmp_path)
    alone = read_finevd(tmp_path / "abcd_test.jsonl")
    assert len(both.qa) == 2 and all("gussian" in q.question for q in both.qa)
    assert [q.label for q in alone.qa] == [q.label for q in both.qa] == ["gaussian noise", "other noise"]


# Which-subtype questions of the shape the published test file has: the five options mix coarse types.
MIXED_SUBTYPE_QUESTIONS = {
    "en": [
        ("a.mp4", ["None", "low saturation", "high saturation", "other noise", "compression artifact"], "E"),
        ("b.mp4", ["None", "gussian noise", "low saturation", "sqaure artifact", "motion blur"], "C"),
        ("c.mp4", ["None", "over dark", "other noise", "lagging"], "A"),
        ("d.mp4", ["None", "gussian noise", "pulse noise", "stripe noise", "other noise"], "A"),
        ("e.mp4", ["None", "guassian blur", "low contrast ratio", "stripe noise", "ring artifact"], "D"),
    ],
    "zh": [
        ("a.mp4", ["None", "饱和度过低", "饱和度过高", "其他噪声", "压缩伪影"], "E"),
        ("b.mp4", ["None", "高斯噪声", "饱和度过低", "块效应", "运动模糊"], "C"),
        ("c.mp4", ["None", "过暗", "其他噪声", "卡顿"], "A"),
        ("d.mp4", ["None", "高斯噪声", "脉冲噪声", "条纹噪声", "其他噪声"], "A"),
        ("e.mp4", ["None", "高斯模糊", "对比度不足", "条纹噪声", "振铃效应"], "D"),
    ],
}
MIXED_SUBTYPE_TRUTH = {  # video -> coarse type -> subtype that the answers say
    "a.mp4": {"artifact": "compression artifact"},
    "b.mp4": {"color": "low saturation"},
    "c.mp4": {},
    "d.mp4": {"noise": "none"},
    "e.mp4": {"noise": "stripe noise"},
}
SUBTYPE_QUESTION = {"en": "Which distortion is in the video? ", "zh": "视频中存在哪种失真？"}


def write_mixed_subtype_file(folder, language):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "videos").mkdir(exist_ok=True)
    items = []
    for name, options, answer in MIXED_SUBTYPE_QUESTIONS[language]:
        listed = "{" + ", ".join(f"{chr(65 + k)}:[{o}]" for k, o in enumerate(options)) + "}"
        items.append(conversation(name, f"<|video|>{SUBTYPE_QUESTION[language]}{listed}", answer))
        (folder / "videos" / name).write_bytes(b"")
    return write_jsonl(folder / ("abcd_test_en.jsonl" if language == "en" else "abcd_test.jsonl"), items)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_which_subtype_answers_belong_to_the_answered_subtypes_own_coarse_type(tmp_path, language):
    path = write_mixed_subtype_file(tmp_path / "finevd", language)
    labels = read_finevd(path)
    assert {record.name: record.subtypes for record in labels.scores} == MIXED_SUBTYPE_TRUTH
    asked_about = {question.name: question.dimension for question in labels.qa}
    assert asked_about == {"a.mp4": None, "b.mp4": None, "c.mp4": None, "d.mp4": "noise", "e.mp4": None}
    qa = load_finevd(tmp_path / "finevd", config="qa", cache_dir=tmp_path / "cache")
    rows = {row["name"]: row for row in qa["test"]}
    assert rows["a.mp4"]["label"] == "compression artifact" and rows["a.mp4"]["coarse_type"] is None
    assert rows["d.mp4"]["coarse_type"] == "noise"
    scores = load_finevd(tmp_path / "finevd", cache_dir=tmp_path / "cache")
    row = {row["name"]: row for row in scores["test"]}["b.mp4"]
    assert row["subtype_color"] == "low saturation" and row["subtype_noise"] is None


@pytest.mark.parametrize("language", ["en", "zh"])
def test_inspect_prints_each_subtype_only_under_its_own_coarse_type(tmp_path, language, capsys):
    write_mixed_subtype_file(tmp_path / "finevd", language)
    assert main(["data", "inspect", str(tmp_path / "finevd")]) == 0
    printed = {
        line.split(":")[0].removeprefix("subtypes "): line.split(": ", 1)[1]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("subtypes ")
    }
    assert printed == {
        "color": "low saturation 1",
        "noise": "none 1, stripe noise 1",
        "artifact": "compression artifact 1",
    }
    for coarse, listed in printed.items():
        for subtype in (item.rsplit(" ", 1)[0] for item in listed.split(", ")):
            assert subtype == "none" or coarse_type_of(subtype) == coarse


def test_reading_the_english_twin_instead_of_the_chinese_file_is_said(tmp_path, caplog, capsys):
    write_mixed_subtype_file(tmp_path, "zh")
    write_mixed_subtype_file(tmp_path, "en")
    with caplog.at_level(logging.WARNING, logger="finevq.data.folder"):
        load_finevd(tmp_path, config="qa", cache_dir=tmp_path / "cache")
    said = [record.getMessage() for record in caplog.records if "abcd_test" in record.getMessage()]
    assert said == [
        f"read {tmp_path / 'abcd_test_en.jsonl'} and not {tmp_path / 'abcd_test.jsonl'}: they are the English "
        "and Chinese versions of the same questions, reading both would count each question twice, and the "
        "model is asked in English (a Chinese file is read when it is alone)"
    ]
    assert main(["data", "inspect", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == [str(tmp_path / "abcd_test_en.jsonl")]
    assert summary["skipped_files"] == said


def test_unknown_labels_are_an_error_that_lists_them_all(tmp_path):
    questions = [
        conversation("a.mp4", "Which? {A:[None], B:[purple noise], C:[pulse noise], D:[stripe noise]}", "B"),
        conversation("b.mp4", "Which? {A:[None], B:[wobble], C:[pulse noise], D:[stripe noise]}", "B"),
    ]
    write_jsonl(tmp_path / "abcd_train_en.jsonl", questions)
    with pytest.raises(LabelError, match=r"abcd_train_en.jsonl: unknown labels \['purple noise', 'wobble'\]"):
        read_finevd(tmp_path)
    (tmp_path / "abcd_train_en.jsonl").unlink()
    (tmp_path / "scores.csv").write_text(
        "video,overall,subtype_noise,subtype_blur\na.mp4,50,hiss,none\nb.mp4,60,none,smear\n"
    )
    with pytest.raises(LabelError, match=r"unknown distortion labels \['hiss', 'smear'\]"):
        read_finevd(tmp_path)


def test_score_jsonl_with_placeholders_bom_and_crlf_fills_scores(tmp_path):
    noise, overall = "<|video|>How would you rate the noise quality of this video?", "<|video|>Rate this video."
    items = [
        conversation("\ufeffv1.mp4", noise, "The noise quality is poor.", mos=25.0),
        conversation("v2.mp4", overall, "The quality of this video is excellent.", mos=-3.5),
        conversation("v1.mp4", overall, "It is good.", mos=70.0),
    ]
    write_jsonl(tmp_path / "score_train.jsonl", items, line_end="\r\n")
    labels = read_finevd(tmp_path)
    videos = {record.name: record for record in labels.scores}
    assert set(videos) == {"v1.mp4", "v2.mp4"}
    assert videos["v1.mp4"].mos == {"noise": 25.0, "overall": 70.0}
    assert videos["v2.mp4"].mos == {"overall": -3.5}  # FineVD MOS can be negative: not clamped
    assert [q.label for q in labels.qa] == ["poor", "excellent", "good"]
    assert labels.level_ranges["overall"] == (-3.5, 70.0)  # no finevd.json: the min/max rule
    assert all(not q.question.startswith("<") for q in labels.qa)


def test_video_in_two_published_splits_is_an_error(tmp_path):
    write_jsonl(tmp_path / "yesno_train.jsonl", [conversation("a.mp4", "Is there any blur distortion?", "No")])
    write_jsonl(tmp_path / "yesno_test.jsonl", [conversation("a.mp4", "Is there any noise distortion?", "No")])
    with pytest.raises(LabelError, match="'a.mp4' is in both the test and the train split"):
        read_finevd(tmp_path)


def test_plain_jsonl_score_table_and_validation_split_column(tmp_path):
    splits = ["train", "val", "test"]
    rows = [{"video": f"v{i}.mp4", "split": splits[i % 3], "overall": i * 10.0, "noise": 5.0 + i} for i in range(6)]
    write_jsonl(tmp_path / "scores.jsonl", rows)
    labels = read_finevd(tmp_path)
    assert {r.name: r.split for r in labels.scores}["v1.mp4"] == "validation"
    assert labels.scores[2].mos == {"overall": 20.0, "noise": 7.0}
    assert json.dumps(labels.level_ranges["overall"]) == "[0.0, 50.0]"


def test_per_type_yes_no_files_repeat_the_combined_file_and_name_the_type(tmp_path):
    combined = [
        conversation(f"v{i}.mp4", f"Is there any {t} distortion?", "No") for i in range(3) for t in ("noise", "temporal")
    ]
    per_type = [conversation(f"v{i}.mp4", "Is there any such distortion?", "No") for i in range(3)]
    write_jsonl(tmp_path / "yesno_test.jsonl", combined)
    write_jsonl(tmp_path / "yesno_test_temp.jsonl", per_type)
    labels = read_finevd(tmp_path)
    assert len(labels.qa) == 6
    assert {q.dimension for q in labels.qa} == {"noise", "temporal"}
    assert all(r.subtypes == {"noise": "none", "temporal": "none"} for r in labels.scores)
