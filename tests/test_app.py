"""The demo: its handlers (finevq.demo) on a real tiny model and real encoded videos, the shipped
example clips, and the app served on localhost driven by gradio_client (assess, chat, errors, two users)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import socket
import threading
from pathlib import Path

import pytest

from finevq.demo import (
    MAX_HISTORY_TURNS,
    MAX_TIMELINE_WINDOWS,
    NO_ANSWER,
    DemoHandlers,
    DemoSettings,
    check_video,
    checked_dimensions,
    distortion_table,
    grounding_messages,
    history_messages,
    load_examples,
    message_text,
    ratings_table,
    score_axis,
    summary_markdown,
    timeline_window_seconds,
    user_message,
)
from finevq.errors import ConfigError, VideoError
from finevq.inference import Assessment, DimensionRating, DistortionDiagnosis, FineVQ
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS
from finevq.video import probe
from videos import truncated_copy, write_random_bytes, write_video

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TEST_SETTINGS = DemoSettings(timeline_after=3.0, max_new_tokens=16, max_file_mb=0.5)


def load_app_module():
    """app.py (at the repository root, outside the package) as a module."""
    spec = importlib.util.spec_from_file_location("finevq_demo_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


def serve_app(monkeypatch_env, settings: DemoSettings = TEST_SETTINGS):
    """Launch app.py's page the way a bare `python app.py` does (no FINEVQ_MODEL: the shipped default
    model), on a free localhost port without blocking; returns (demo, url)."""
    monkeypatch_env.delenv("FINEVQ_MODEL", raising=False)
    app = load_app_module()
    parsed, _ = app.parse_settings([])
    assert parsed.model is None
    settings = DemoSettings(**{**settings.__dict__, "model": parsed.model})
    demo = app.create_app(settings)
    _, url, _ = app.launch(demo, settings, server_name="127.0.0.1", server_port=free_port(),
                           prevent_thread_lock=True, quiet=True)
    return demo, url



@pytest.fixture(scope="module")
def handlers(model_folder):
    return DemoHandlers(FineVQ.from_pretrained(model_folder), TEST_SETTINGS)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app_clips")
    return {
        "short": write_video(folder / "short clip.mp4", num_frames=30, width=96, height=64, fps=25),
        "long": write_video(folder / "long.mp4", num_frames=120, width=96, height=64, fps=25, seed=2),
        "noise": write_video(folder / "noise.mp4", num_frames=30, width=80, height=64, fps=25, pattern="noise"),
        "avi": write_video(folder / "old.avi", num_frames=20, width=96, height=64, fps=20, codec="mpeg4"),
        "random": write_random_bytes(folder / "random.mp4"),
        "empty": _empty(folder / "empty.mp4"),
    }


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _assessment(levels: dict[str, str], present: dict[str, str | None]) -> Assessment:
    """A hand-made assessment: `levels` per dimension, `present` coarse type -> subtype (None: absent)."""
    ratings = {
        d: DimensionRating(score=20.0 * (len(LEVELS) - LEVELS.index(level)) - 10,
                           level=level, level_probabilities={lv: (0.6 if lv == level else 0.1) for lv in LEVELS})
        for d, level in levels.items()
    }
    distortions = {
        coarse: DistortionDiagnosis(probability=0.9 if subtype else 0.2, present=subtype is not None, subtype=subtype,
                                    subtype_probabilities={subtype or "other": 0.7, "x": 0.3})
        for coarse, subtype in present.items()
    }
    return Assessment("clip.mp4", "m", ratings, distortions, "noise", [0, 5], [1, 2, 3], 0.25)


# ------------------------------------------------------------------ presentation


def test_tables_show_each_rated_dimension_and_distortion():
    assessment = _assessment({"noise": "poor", "overall": "fair"}, {"noise": "gaussian noise", "blur": None})
    ratings = ratings_table(assessment)
    assert ratings.values.tolist() == [["Noise", "30.0", "poor", "60%"], ["Overall", "50.0", "fair", "60%"]]
    distortions = distortion_table(assessment)
    assert distortions.values.tolist() == [
        ["Noise", "yes", "90%", "gaussian noise (70%)"],
        ["Blur", "no", "20%", "(other)"],
    ]


def test_summary_names_the_verdict_the_worst_dimension_and_the_distortions(clips):
    info = probe(clips["short"])
    assessment = _assessment({"noise": "poor", "overall": "fair"}, {"noise": "gaussian noise", "blur": None})
    text = summary_markdown(assessment, info, (0.0, 100.0))
    assert "Overall quality: **fair** (50.0 on 0–100)" in text
    assert "Hurts most: **noise**" in text
    assert "Distortions found: noise (gaussian noise)" in text
    assert f"of {info.num_frames} (96×64" in text
    without_overall = summary_markdown(_assessment({"blur": "good"}, {}), info, (1.0, 5.0))
    assert "Mean of the rated dimensions: 70.0 on 1–5" in without_overall
    assert "Distortions found" not in without_overall


def test_history_keeps_answered_turns_as_plain_text():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Is it noisy?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Yes"}], "metadata": None},
        {"role": "user", "content": "stopped before any word"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "no answer at all"},
        {"role": "assistant", "content": NO_ANSWER},
        {"role": "user", "content": [{"type": "file", "file": {"path": "x.png"}}, {"type": "text", "text": "Blur?"}]},
        {"role": "assistant", "content": "No"},
    ]
    assert history_messages(history) == [
        {"role": "user", "content": "Is it noisy?"}, {"role": "assistant", "content": "Yes"},
        {"role": "user", "content": "Blur?"}, {"role": "assistant", "content": "No"},
    ]
    assert history_messages(None) == []
    long_chat = [{"role": role, "content": f"{role} {i}"} for i in range(MAX_HISTORY_TURNS + 3) for role in ("user", "assistant")]
    kept = history_messages(long_chat)
    assert len(kept) == 2 * MAX_HISTORY_TURNS and kept[-1]["content"] == f"assistant {MAX_HISTORY_TURNS + 2}"


def test_grounding_states_the_assessment_in_the_training_wording():
    record = _assessment({"noise": "poor"}, {"noise": "gaussian noise", "blur": None}).to_dict()
    messages = grounding_messages(record, "How would you rate the {dimension} quality?", "The {dimension} quality is")
    assert messages[:2] == [{"role": "user", "content": "How would you rate the noise quality?"},
                            {"role": "assistant", "content": "The noise quality is poor."}]
    answers = [m["content"] for m in messages[2:] if m["role"] == "assistant"]
    assert answers == ["Yes", "No"]
    assert "noise" in messages[2]["content"] and "blur" in messages[4]["content"]
    assert grounding_messages(None, "q {dimension}", "a {dimension}") == []


def test_checks_reject_bad_uploads_naming_the_file_not_the_server_path(clips):
    settings = DemoSettings()
    with pytest.raises(VideoError, match="upload a video file or click one of the examples"):
        check_video(None, settings)
    for name, expected in (("empty", "empty"), ("random", "cannot open")):
        with pytest.raises(VideoError, match=expected) as caught:
            check_video(clips[name], settings)
        shown = user_message(caught.value, clips[name])
        assert shown.startswith(f"{name}.mp4:") and str(clips[name].parent) not in shown
    with pytest.raises(VideoError, match="over this demo's limit of 0.001 MB"):
        check_video(clips["short"], DemoSettings(max_file_mb=0.001))
    with pytest.raises(VideoError, match=r"1 s is longer than this demo's limit of 0.5 s"):
        check_video(clips["short"], DemoSettings(max_seconds=0.5))
    with pytest.raises(ConfigError, match="tick at least one"):
        checked_dimensions([])
    with pytest.raises(ConfigError, match="unknown dimension"):
        checked_dimensions(["sharpness"])
    assert checked_dimensions(["overall", "color"]) == ["color", "overall"]
    with pytest.raises(ConfigError, match="max_new_tokens must be positive"):
        DemoSettings(max_new_tokens=0)


def test_score_axis_widens_only_to_show_every_score():
    assert score_axis([12.0, 99.0], (0.0, 100.0)) == [0.0, 100.0]
    assert score_axis([-20.9, 50.0], (0.0, 100.0)) == [-30, 100.0]
    assert score_axis([3.0, 5.4], (1.0, 5.0)) == [1.0, 10]


def test_timeline_windows_stay_bounded():
    settings = DemoSettings(timeline_after=5.0, timeline_window=1.5)
    assert timeline_window_seconds(5.0, settings) is None
    assert timeline_window_seconds(9.0, settings) == 1.5
    hour = timeline_window_seconds(3600.0, settings)
    assert 3600.0 / hour == pytest.approx(MAX_TIMELINE_WINDOWS)


# ------------------------------------------------------------------ handlers on a real model


def test_assess_rates_only_the_chosen_dimensions_and_reports_progress(handlers, clips):
    steps = []
    view = handlers.assess(str(clips["short"]), ["blur", "color"], True,
                           progress=lambda fraction, desc: steps.append((fraction, desc)))
    assert view.ratings["Dimension"].tolist() == ["Color", "Blur"]
    assert view.chart["Dimension"].tolist() == ["Color", "Blur"]
    assert view.distortions["Distortion"].tolist() == [c.capitalize() for c in COARSE_TYPES]
    assert view.timeline is None  # 1.2 s is under timeline_after
    fractions = [fraction for fraction, _ in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    restored = Assessment.from_dict(json.loads(json.dumps(view.record)))
    assert restored.video == "short clip.mp4" and set(restored.ratings) == {"color", "blur"}
    assert view.record["source"] == str(clips["short"])
    assert view.shown_record == {k: v for k, v in view.record.items() if k != "source"}
    assert "Mean of the rated dimensions" in view.summary


def test_assess_without_diagnosis_and_with_quality_over_time(handlers, clips):
    view = handlers.assess(str(clips["long"]), ["overall"], False)
    assert view.distortions.empty and view.record["distortions"] == {}
    windows = view.record["timeline"]  # 4.8 s in windows of about 1.5 s, the short rest joined
    assert len(windows) == 3 and windows[0]["start"] == 0.0 and windows[-1]["end"] == pytest.approx(4.8)
    assert windows[0]["end"] == pytest.approx(1.5, abs=0.05)
    midpoints = [round((w["start"] + w["end"]) / 2, 2) for w in windows]
    assert view.timeline["Time (s)"].tolist() == midpoints
    assert set(view.timeline["Dimension"]) == {"Overall"}


def test_chat_streams_an_answer_grounded_on_the_assessment(handlers, clips):
    video = str(clips["noise"])
    record = handlers.assess(video, list(DIMENSIONS), True).record
    states = [[dict(m) for m in state] for state in handlers.chat(video, "  Is there noise?  ", [], record)]
    assert states[0][-1] == {"role": "assistant", "content": ""}
    assert len(states) >= 2
    final = states[-1]
    assert final[0] == {"role": "user", "content": "Is there noise?"}
    settings = handlers.model.processor.settings
    expected_messages = grounding_messages(record, settings.score_question, settings.score_answer_prefix)
    expected = handlers.model.chat(video, expected_messages + [{"role": "user", "content": "Is there noise?"}],
                                   stream=False, max_new_tokens=TEST_SETTINGS.max_new_tokens)
    assert final[1]["content"] == (expected if expected.strip() else NO_ANSWER)

    second = list(handlers.chat(video, "And blur?", final, record))[-1]
    assert [m["role"] for m in second] == ["user", "assistant", "user", "assistant"]
    assert second[2]["content"] == "And blur?"


def test_chat_ignores_an_assessment_of_another_video_and_checks_its_input(handlers, clips):
    record = {**_assessment({"noise": "bad"}, {}).to_dict(), "source": str(clips["short"])}
    video = str(clips["noise"])
    answer = list(handlers.chat(video, "Is there noise?", [], record))[-1][-1]["content"]
    ungrounded = handlers.model.chat(video, "Is there noise?", stream=False, max_new_tokens=TEST_SETTINGS.max_new_tokens)
    assert answer == (ungrounded if ungrounded.strip() else NO_ANSWER)
    with pytest.raises(ConfigError, match="type a question"):
        next(handlers.chat(video, "   ", [], None))
    with pytest.raises(VideoError, match="no video yet"):
        next(handlers.chat(None, "Why?", [], None))


def test_preview_only_for_formats_browsers_cannot_play(handlers, clips, tmp_path):
    assert handlers.preview(str(clips["short"])) is None
    assert handlers.preview(None) is None
    preview = handlers.preview(str(clips["avi"]))
    info = probe(preview)
    assert preview.endswith(".mp4") and info.codec == "h264"
    assert info.num_frames == probe(clips["avi"]).num_frames
    broken = truncated_copy(clips["avi"], tmp_path / "cut.avi", 0.3)
    with pytest.raises(VideoError):
        handlers.preview(str(broken))


def test_model_card_describes_the_loaded_model(handlers):
    card = handlers.model_card()
    assert f"`{handlers.model.name}`" in card
    assert "0 (worst) to 100 (best)" in card
    assert "4 key frames + 8 motion frames" in card


# ------------------------------------------------------------------ example clips


def test_example_clips_are_small_listed_and_decodable():
    examples = load_examples(EXAMPLES)
    assert len(examples) >= 4
    listing = json.loads((EXAMPLES / "examples.json").read_text())
    distortions = set()
    for (path, title), entry in zip(examples, listing):
        assert Path(path).stat().st_size < 300 * 1024, path
        assert title == entry["title"]
        info = probe(path)
        assert info.codec == "h264" and info.duration == pytest.approx(entry["seconds"], abs=0.1)
        distortions.add(tuple(d for part in entry["parts"] for d in part["distortions"]))
    assert len(distortions) == len(listing)  # each clip shows different distortions
    assert any(info_seconds > TEST_SETTINGS.timeline_after for info_seconds in (e["seconds"] for e in listing))


@pytest.mark.slow
def test_example_clips_regenerate_byte_for_byte(tmp_path):
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    make_examples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_examples)
    entry = make_examples.make_clip("blocky_compressed", tmp_path)
    digests = [hashlib.sha256(path.read_bytes()).hexdigest()  # digests: a diff of video bytes takes minutes
               for path in (tmp_path / "blocky_compressed.mp4", EXAMPLES / "blocky_compressed.mp4")]
    assert digests[0] == digests[1], "examples/ is stale: run python examples/make_examples.py"
    listed = {e["file"]: e for e in json.loads((EXAMPLES / "examples.json").read_text())}
    assert entry == listed["blocky_compressed.mp4"]


# ------------------------------------------------------------------ the served app


@pytest.fixture(scope="module")
def served():
    """The app as `python app.py` serves it out of the box: with the shipped default model."""
    monkeypatch = pytest.MonkeyPatch()
    demo, url = serve_app(monkeypatch)
    yield url
    demo.close()
    monkeypatch.undo()


@pytest.mark.slow
def test_client_assesses_then_chats_with_streaming(served, clips):
    from gradio_client import Client, handle_file

    client = Client(served, verbose=False)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/assess", "/chat"} <= set(endpoints)
    summary, ratings, chart, distortions, timeline, record = client.predict(
        handle_file(str(clips["long"])), ["noise", "overall"], True, api_name="/assess")
    assert [row[0] for row in ratings["data"]] == ["Noise", "Overall"]
    assert "Overall quality" in summary and record["video"] == "long.mp4"
    assert "source" not in record  # no server paths in what clients see
    assert timeline["visible"] is True and len(record["timeline"]) == 3

    job = client.submit(handle_file(str(clips["long"])), "Is there any noise in this video?", [], api_name="/chat")
    outputs = list(job)
    history, question_box = job.result()
    assert len(outputs) >= 2  # the answer arrived in pieces
    assert question_box == ""
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert message_text(history[0]["content"]) == "Is there any noise in this video?"
    assert message_text(history[1]["content"])


@pytest.mark.slow
def test_client_gets_a_clear_error_for_a_corrupt_file_and_the_app_keeps_working(served, clips, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(served, verbose=False)
    assert client.config["max_file_size"] == int(TEST_SETTINGS.max_file_mb * 2**20)
    broken = truncated_copy(clips["short"], tmp_path / "broken upload.mp4", 0.4)
    for path, expected in ((broken, "broken upload.mp4: "), (clips["random"], "random.mp4: cannot open")):
        with pytest.raises(AppError) as caught:
            client.predict(handle_file(str(path)), list(DIMENSIONS), True, api_name="/assess")
        assert expected in str(caught.value)
        assert "Traceback" not in str(caught.value) and "/tmp/gradio" not in str(caught.value)
    with pytest.raises(AppError, match="tick at least one"):
        client.predict(handle_file(str(clips["short"])), [], True, api_name="/assess")
    too_large = write_random_bytes(tmp_path / "large.mp4", size=600 * 1024)
    with pytest.raises(ValueError, match="exceeds the maximum file size of 524288 bytes"):  # the app's limit
        client.predict(handle_file(str(too_large)), ["blur"], False, api_name="/assess")
    ratings = client.predict(handle_file(str(clips["short"])), ["blur"], False, api_name="/assess")[1]
    assert [row[0] for row in ratings["data"]] == ["Blur"]


@pytest.mark.slow
def test_two_clients_at_once_get_their_own_results(served, clips):
    from gradio_client import Client, handle_file

    videos = {"short": ["color"], "noise": ["temporal", "overall"]}
    results, errors = {}, []

    def user(name: str) -> None:
        try:
            client = Client(served, verbose=False)
            record = client.predict(handle_file(str(clips[name])), videos[name], True, api_name="/assess")[-1]
            history = client.predict(handle_file(str(clips[name])), f"What about {name}?", [], api_name="/chat")[0]
            results[name] = (record, history)
        except Exception as error:  # reported below with the user's name
            errors.append((name, error))

    threads = [threading.Thread(target=user, args=(name,)) for name in videos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for name, dimensions in videos.items():
        record, history = results[name]
        assert record["video"] == clips[name].name and list(record["scores"]) == dimensions
        assert message_text(history[0]["content"]) == f"What about {name}?" and len(history) == 2


@pytest.mark.slow
def test_without_configuration_the_app_serves_the_shipped_default_model(monkeypatch):
    monkeypatch.delenv("FINEVQ_MODEL", raising=False)
    settings, _ = load_app_module().parse_settings([])
    assert settings.model is None
    handlers = DemoHandlers(FineVQ.from_pretrained(settings.model), settings)
    card = handlers.model_card()
    assert "`finevq-tiny`" in card and "FineVD-Synth" in card


def test_app_refuses_to_start_without_a_usable_model_or_with_bad_limits(tmp_path, monkeypatch, model_folder):
    app = load_app_module()
    monkeypatch.setenv("FINEVQ_MODEL", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="app.py: error: model folder .*missing.* does not exist"):
        app.main([])
    with pytest.raises(SystemExit, match="concurrency must be positive"):
        app.main(["--model", str(model_folder), "--concurrency", "0"])
    settings, args = app.parse_settings(["--max-file-mb", "20", "--timeline-after", "9", "--port", "7999"])
    assert (settings.model, settings.max_file_mb, settings.timeline_after, args.port) == (str(tmp_path / "missing"), 20.0, 9.0, 7999)


@pytest.mark.slow
def test_the_app_serves_a_released_checkpoint_named_by_hub_id(tmp_path, monkeypatch, clips):
    """FINEVQ_MODEL=IntMeGroup/FineVQ_score: downloaded (here: the hub is replaced by a tiny checkpoint in
    the official layout), converted once into the cache, and served."""
    from gradio_client import Client, handle_file
    from official_checkpoint import write_official_checkpoint

    import finevq.modeling.checkpoint as checkpoint

    official = write_official_checkpoint(tmp_path / "FineVQ_score")
    monkeypatch.setattr(checkpoint, "download_model", lambda repo, patterns: official)
    monkeypatch.setenv("FINEVQ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FINEVQ_MODEL", "IntMeGroup/FineVQ_score")
    app = load_app_module()
    settings, _ = app.parse_settings([])
    assert settings.model == "IntMeGroup/FineVQ_score"
    settings = DemoSettings(**{**TEST_SETTINGS.__dict__, "model": settings.model})
    demo = app.create_app(settings)
    _, url, _ = app.launch(demo, settings, server_name="127.0.0.1", server_port=free_port(),
                           prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        summary, ratings, *_, record = client.predict(
            handle_file(str(clips["short"])), ["overall"], True, api_name="/assess")
        assert record["model"] == "IntMeGroup/FineVQ_score" and 0 <= record["scores"]["overall"] <= 100
        assert [row[0] for row in ratings["data"]] == ["Overall"]
    finally:
        demo.close()
    assert len(list((tmp_path / "cache" / "converted").iterdir())) == 1
