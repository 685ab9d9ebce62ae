"""The Gradio demo's handlers without Gradio: input checks with clear messages, an assessment as table
rows, chart data and markdown, quality over time, chat history grounded on the assessment, previews."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finevq.errors import ConfigError, FineVQError, VideoError
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS

SUGGESTED_QUESTIONS = (
    "Which quality dimension is the worst?",
    "Is there any noise in this video?",
    "What kind of blur does this video have?",
    "Why is the overall score low?",
)
LEVEL_COLORS = {"excellent": "#2e7d32", "good": "#7cb342", "fair": "#f9a825", "poor": "#ef6c00", "bad": "#c62828"}
"""Chart colour of each level, green (best) to red (worst)."""

BROWSER_PLAYABLE = {
    ".mp4": {"h264", "av1", "vp9"}, ".m4v": {"h264"}, ".webm": {"vp8", "vp9", "av1"},
    ".ogg": {"theora"}, ".ogv": {"theora"},
}
"""(suffix -> codecs) a browser plays as they are; anything else gets an H.264 preview."""

RATING_COLUMNS = ["Dimension", "Score", "Level", "Confidence"]
DISTORTION_COLUMNS = ["Distortion", "Found", "Probability", "Likely subtype"]
TIMELINE_COLUMNS = ["Time (s)", "Score", "Dimension"]
NO_ANSWER = "*(the model gave no answer)*"
MAX_HISTORY_TURNS = 6  # question-answer pairs the model sees again: the prompt stays bounded
MAX_TIMELINE_WINDOWS = 24  # bounds the model calls for quality over time, whatever the length
_PREVIEW_LONG_SIDE = 640


@dataclass(frozen=True)
class DemoSettings:
    """What the demo accepts and how much work one request may cost.

    model: checkpoint folder or hub id (None: the shipped default); max_file_mb / max_seconds:
    upload limits; timeline_after: videos longer than this (seconds) also get quality over time, in
    windows of at least timeline_window seconds; max_new_tokens: length cap of a chat answer."""

    model: str | None = None
    max_file_mb: float = 200.0
    max_seconds: float = 600.0
    timeline_after: float = 5.0
    timeline_window: float = 1.5
    max_new_tokens: int = 200
    queue_size: int = 16
    concurrency: int = 2

    def __post_init__(self) -> None:
        positive = ("max_file_mb", "max_seconds", "timeline_window", "max_new_tokens", "queue_size", "concurrency")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"demo setting {name} must be positive, got {getattr(self, name)!r}")


@dataclass
class AssessmentView:
    """Everything the page shows of one assessment. `record`: the JSON-ready assessment plus the
    server path of the video it is about ("source"), which grounds the chat on that video only."""

    summary: str
    ratings: pd.DataFrame
    chart: pd.DataFrame
    distortions: pd.DataFrame
    timeline: pd.DataFrame | None
    axis: list[float]
    record: dict

    @property
    def shown_record(self) -> dict:
        """The record without the server path: what a person or an API client sees."""
        return {key: value for key, value in self.record.items() if key != "source"}


def display_name(path: str | os.PathLike) -> str:
    """The file's own name: what a person uploaded, without the server's temporary folders."""
    return Path(path).name


def user_message(error: FineVQError, path: str | os.PathLike | None = None) -> str:
    """The error's message with the server's path of the upload replaced by the file's name."""
    text = str(error)
    if path:
        text = text.replace(os.fspath(path), display_name(path))
    return text


def check_video(path: str | os.PathLike | None, settings: DemoSettings):
    """The probed `VideoInfo` of an upload within the demo's limits; VideoError otherwise."""
    from finevq.video import probe

    if not path:
        raise VideoError("no video yet: upload a video file or click one of the examples")
    name = display_name(path)
    if not os.path.isfile(path):
        raise VideoError(f"{name}: the upload is gone from the server; upload it again")
    megabytes = os.path.getsize(path) / 2**20
    if megabytes > settings.max_file_mb:
        raise VideoError(f"{name}: {megabytes:.1f} MB is over this demo's limit of {settings.max_file_mb:g} MB")
    info = probe(path)
    if info.duration > settings.max_seconds:
        raise VideoError(f"{name}: {info.duration:.0f} s is longer than this demo's limit of {settings.max_seconds:g} s")
    return info


def checked_dimensions(dimensions: Sequence[str] | None) -> list[str]:
    """The chosen dimensions in the taxonomy's order; ConfigError when none or an unknown one."""
    chosen = list(dimensions or [])
    unknown = [d for d in chosen if d not in DIMENSIONS]
    if unknown:
        raise ConfigError(f"unknown dimension(s) {', '.join(map(repr, unknown))}; choose from {', '.join(DIMENSIONS)}")
    if not chosen:
        raise ConfigError("no dimension chosen: tick at least one quality dimension")
    return [d for d in DIMENSIONS if d in chosen]


def _percent(probability: float) -> str:
    return f"{100 * probability:.0f}%"


def ratings_table(assessment) -> pd.DataFrame:
    """One row per rated dimension: score (one decimal), level, confidence (probability of that level)."""
    rows = [
        [dimension.capitalize(), f"{rating.score:.1f}", rating.level, _percent(rating.confidence)]
        for dimension, rating in assessment.ratings.items()
    ]
    return pd.DataFrame(rows, columns=RATING_COLUMNS)


def chart_data(assessment) -> pd.DataFrame:
    """Bar chart data: dimension, score and level (the bar's colour)."""
    rows = [[d.capitalize(), float(r.score), r.level] for d, r in assessment.ratings.items()]
    return pd.DataFrame(rows, columns=["Dimension", "Score", "Level"])


def distortion_table(assessment) -> pd.DataFrame:
    """One row per coarse distortion type: found or not, presence probability, and the likely
    subtype (for an absent type, the subtype the model would pick, in parentheses)."""
    rows = []
    for coarse, diagnosis in assessment.distortions.items():
        subtypes = diagnosis.subtype_probabilities
        best = max(subtypes, key=subtypes.get) if subtypes else None
        if diagnosis.present and diagnosis.subtype:
            likely = f"{diagnosis.subtype} ({_percent(subtypes.get(diagnosis.subtype, 0.0))})"
        else:
            likely = f"({best})" if best else ""
        rows.append([coarse.capitalize(), "yes" if diagnosis.present else "no", _percent(diagnosis.probability), likely])
    return pd.DataFrame(rows, columns=DISTORTION_COLUMNS)


def timeline_table(windows) -> pd.DataFrame:
    """Line chart data: each window's midpoint, score and dimension."""
    rows = [
        [round((window.start + window.end) / 2, 2), float(score), dimension.capitalize()]
        for window in windows for dimension, score in window.scores.items()
    ]
    return pd.DataFrame(rows, columns=TIMELINE_COLUMNS)


def score_axis(scores: Sequence[float], score_range: tuple[float, float]) -> list[float]:
    """The charts' score axis: the model's scale, widened to whole tens when a score falls outside
    it (a model can overshoot its scale), so that no bar or point is cut off."""
    low, high = score_range
    values = [float(s) for s in scores]
    lowest, highest = min([low, *values]), max([high, *values])
    return [low if lowest >= low else math.floor(lowest / 10) * 10, high if highest <= high else math.ceil(highest / 10) * 10]


def timeline_window_seconds(duration: float, settings: DemoSettings) -> float | None:
    """Window length for quality over time, or None when the video is too short to need it."""
    if duration <= settings.timeline_after:
        return None
    return max(settings.timeline_window, duration / MAX_TIMELINE_WINDOWS)


def summary_markdown(assessment, info, score_range: tuple[float, float]) -> str:
    """The verdict in a few lines: overall (or the mean of what was rated), what hurts most, the
    distortions found and what the model read."""
    low, high = score_range
    if "overall" in assessment.ratings:
        rating = assessment.ratings["overall"]
        head = f"### Overall quality: **{rating.level}** ({rating.score:.1f} on {low:g}–{high:g})"
    else:
        mean = sum(assessment.scores.values()) / len(assessment.scores)
        head = f"### Mean of the rated dimensions: {mean:.1f} on {low:g}–{high:g}"
    lines = [head]
    rated_coarse = [d for d in assessment.ratings if d in COARSE_TYPES]
    if assessment.worst_dimension:
        lines.append(f"- Hurts most: **{assessment.worst_dimension}**")
    elif rated_coarse:
        lines.append("- No rated dimension falls below *good*.")
    if assessment.distortions:
        found = [
            f"{coarse}" + (f" ({diagnosis.subtype})" if diagnosis.subtype else "")
            for coarse, diagnosis in assessment.distortions.items() if diagnosis.present
        ]
        lines.append("- Distortions found: " + (", ".join(found) if found else "none"))
    lines.append(
        f"- Read {len(assessment.frames)} key frames and {len(assessment.motion_frames)} motion frames of "
        f"{info.num_frames} ({info.width}×{info.height}, {info.duration:.1f} s, {info.codec}) in {assessment.seconds:.1f} s"
    )
    return "\n".join(lines)


def grounding_messages(record: dict | None, score_question: str, score_answer_prefix: str) -> list[dict]:
    """The assessment as earlier chat turns in the training wording (rating questions answered with
    the predicted levels, yes/no distortion questions with the diagnosis), so that chat answers
    follow what the page shows."""
    from finevq.data.instructions import yes_no_question
    from finevq.inference.assessor import YES_NO_ANSWERS

    if not record:
        return []
    messages = []
    for dimension, level in record.get("levels", {}).items():
        answer = f"{score_answer_prefix.format(dimension=dimension)} {level}."
        messages += [{"role": "user", "content": score_question.format(dimension=dimension)},
                     {"role": "assistant", "content": answer}]
    for coarse, diagnosis in record.get("distortions", {}).items():
        answer = YES_NO_ANSWERS[0] if diagnosis["present"] else YES_NO_ANSWERS[1]
        messages += [{"role": "user", "content": yes_no_question(coarse)}, {"role": "assistant", "content": answer}]
    return messages


def message_text(content) -> str:
    """The text of a chatbot message's content: a string, or Gradio's list of content blocks (text
    blocks joined; files and components, which the model cannot read, skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text")
    return ""


def history_messages(history: Sequence[dict] | None) -> list[dict]:
    """Chatbot history as plain {"role", "content"} turns for the model: text only, each question
    kept with its answer, the last MAX_HISTORY_TURNS pairs; an unanswered (stopped) question is dropped."""
    turns, question = [], None
    for message in history or []:
        text = message_text(message.get("content")).strip()
        if message.get("role") == "user":
            question = text or None
        elif message.get("role") == "assistant" and question and text and text != NO_ANSWER:
            turns += [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
            question = None
    return turns[-2 * MAX_HISTORY_TURNS:]


def browser_playable(info) -> bool:
    """Whether browsers play this file as it is (container by suffix, codec by probe)."""
    return info.codec in BROWSER_PLAYABLE.get(Path(info.path).suffix.lower(), set())


def transcode_preview(path: str | os.PathLike, info, out_dir: str | os.PathLike | None = None) -> str:
    """An H.264 MP4 copy for playback in the browser (long side at most 640 px), written with PyAV;
    the original stays what is scored. VideoError when the file cannot be decoded."""
    import av
    import numpy as np

    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="finevq-preview-"))
    target = out_dir / f"{Path(path).stem}.preview.mp4"
    scale = min(1.0, _PREVIEW_LONG_SIDE / max(info.width, info.height))
    width, height = (max(2, int(side * scale) // 2 * 2) for side in (info.width, info.height))
    try:
        with av.open(os.fspath(path)) as source, av.open(str(target), "w") as output:
            stream = output.add_stream("libx264", rate=round(info.fps) or 25, options={"preset": "veryfast", "crf": "26"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in source.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                output.mux(stream.encode(picture))
            output.mux(stream.encode())
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoError(f"{display_name(path)}: cannot make a browser preview ({error})") from None
    return str(target)


class DemoHandlers:
    """The demo's actions over a loaded `FineVQ`: assess (with progress), chat (streamed, grounded
    on the assessment), previews and the model card. Gradio-free, so tests call them directly."""

    def __init__(self, model, settings: DemoSettings):
        self.model = model
        self.settings = settings

    def assess(
        self,
        video: str | None,
        dimensions: Sequence[str] | None = DIMENSIONS,
        diagnose: bool = True,
        progress: Callable[..., object] | None = None,
    ) -> AssessmentView:
        """Check, sample, rate (and diagnose) a video; quality over time for long ones."""
        report = progress or (lambda *args, **kwargs: None)
        report(0.0, desc="Checking the video")
        info = check_video(video, self.settings)
        chosen = checked_dimensions(dimensions)
        report(0.1, desc="Reading frames")
        start = time.perf_counter()
        sample = self.model.sample(video)
        report(0.4, desc=f"Rating {len(chosen)} dimension(s)" + (" and diagnosing distortions" if diagnose else ""))
        assessment = self.model.assess_samples([sample], [display_name(video)], chosen, diagnose)[0]
        assessment.seconds = time.perf_counter() - start
        window = timeline_window_seconds(info.duration, self.settings)
        timeline = None
        if window is not None:
            report(0.7, desc="Scoring quality over time")
            assessment.timeline = self.model.timeline(video, window_seconds=window, dimensions=chosen)
            timeline = timeline_table(assessment.timeline)
        report(1.0, desc="Done")
        shown_scores = [*assessment.scores.values(), *(s for w in assessment.timeline or [] for s in w.scores.values())]
        return AssessmentView(
            summary=summary_markdown(assessment, info, self.model.score_range),
            ratings=ratings_table(assessment),
            chart=chart_data(assessment),
            distortions=distortion_table(assessment),
            timeline=timeline,
            axis=score_axis(shown_scores, self.model.score_range),
            record={**assessment.to_dict(), "source": os.fspath(video)},
        )

    def chat(self, video: str | None, question: str, history: Sequence[dict] | None, record: dict | None = None) -> Iterator[list[dict]]:
        """The chat history with the question and the growing answer, yielded as the answer streams.
        The assessment `record` grounds the answer when it is of this same video."""
        question = (question or "").strip()
        if not question:
            raise ConfigError("type a question about the video first")
        check_video(video, self.settings)
        settings = self.model.processor.settings
        same_video = record is not None and record.get("source") == os.fspath(video)
        context = grounding_messages(record if same_video else None, settings.score_question, settings.score_answer_prefix)
        messages = context + history_messages(history) + [{"role": "user", "content": question}]
        shown = [*(history or []), {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        yield [*shown]
        answer = ""
        for piece in self.model.chat(video, messages, stream=True, max_new_tokens=self.settings.max_new_tokens):
            answer += piece
            shown[-1] = {"role": "assistant", "content": answer}
            yield [*shown]
        if not answer.strip():
            shown[-1] = {"role": "assistant", "content": NO_ANSWER}
            yield shown

    def preview(self, video: str | None) -> str | None:
        """A browser-playable copy of the upload when its format needs one, else None."""
        if not video:
            return None
        info = check_video(video, self.settings)
        return None if browser_playable(info) else transcode_preview(video, info)

    def model_card(self) -> str:
        """Markdown about the loaded model: name, size, score scale, levels, and what it is."""
        from finevq.inference.assessor import DEFAULT_MODEL

        low, high = self.model.score_range
        parameters = sum(p.numel() for p in self.model.model.parameters())
        config = self.model.model.config
        lines = [
            f"**Model:** `{self.model.name}` ({parameters / 1e6:.1f} M parameters, {config.backbone} backbone)",
            f"**Scores:** {low:g} (worst) to {high:g} (best); levels, best first: {', '.join(LEVELS)}",
            f"**Frames:** {self.model.processor.settings.num_frames} key frames + "
            f"{self.model.processor.settings.num_motion_frames} motion frames per video",
        ]
        if self.model.name == DEFAULT_MODEL:
            lines.append(
                "**About it:** the default model is small and was trained on CPU on FineVD-Synth, videos "
                "with synthetic distortions and known labels. It shows the method end to end; on real "
                "user videos its ratings are rough and its chat answers short. For the paper's quality, "
                "load a larger checkpoint with `--model DIR` or the `FINEVQ_MODEL` variable."
            )
        else:
            lines.append("**About it:** loaded with `--model` / `FINEVQ_MODEL`.")
        return "\n\n".join(lines)


def load_examples(folder: str | os.PathLike) -> list[tuple[str, str]]:
    """(video path, title) of each example clip listed in the folder's examples.json."""
    folder = Path(folder)
    listing = folder / "examples.json"
    if not listing.is_file():
        return []
    entries = json.loads(listing.read_text())
    return [(str(folder / entry["file"]), entry["title"]) for entry in entries if (folder / entry["file"]).is_file()]
