"""`FineVQ`: the public model API. Load a checkpoint (the shipped default, a folder or a hub id), then
assess a video (all dimensions from one encode, plus diagnosis), chat about it, or score it over time."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from finevq.data.instructions import SUBTYPE_QUESTIONS, render_options, yes_no_question
from finevq.errors import CheckpointError, ConfigError
from finevq.inference.results import Assessment, DimensionRating, DistortionDiagnosis, TimelineWindow
from finevq.metrics import PRESENCE_THRESHOLD
from finevq.modeling.checkpoint import local_folder
from finevq.modeling.generation import stream_chat
from finevq.modeling.modeling import FineVQForConditionalGeneration, VisualTokens
from finevq.modeling.official import OFFICIAL_DOWNLOAD_PATTERNS, convert_official, is_official_folder
from finevq.modeling.processor import FineVQProcessor
from finevq.modeling.scoring import EncodedVideo, candidate_probabilities, score_dimensions
from finevq.taxonomy import (
    COARSE_TYPES,
    NO_DISTORTION,
    SUBTYPES,
    WORST_DIMENSION_GOOD,
    checked_dimensions,
    worst_rated_dimension,
)
from finevq.video import VideoSample, sample_windows

DEFAULT_MODEL = "finevq-tiny"
"""The model shipped inside the package, under finevq/pretrained/."""

YES_NO_ANSWERS = ("Yes", "No")
_ENCODED_CACHE_SIZE = 4
_WINDOWS_PER_BATCH = 8  # windows encoded together: bounded memory on long videos


def default_model_folder() -> Path:
    """Where the shipped default model lives inside the installed package."""
    return Path(str(resources.files("finevq") / "pretrained" / DEFAULT_MODEL))


def subtype_question(coarse: str) -> tuple[str, dict[str, str]]:
    """The which-subtype question of a coarse type with "None" and all its subtypes as options, in
    the training wording, and the label of each option letter."""
    labels = [NO_DISTORTION, *SUBTYPES[coarse]]
    text, letters = render_options(["None" if label == NO_DISTORTION else label for label in labels])
    return f"{SUBTYPE_QUESTIONS[0].format(coarse=coarse)} {text}", dict(zip(letters, labels))


@dataclass
class PreparedVideo:
    """A video (or one window of it) ready for the model: its unbatched pixel tensors and the frames
    they show; small, unlike the decoded frames, so decode workers hand these over."""

    tensors: dict[str, torch.Tensor]
    frames: list[int]
    motion_frames: list[int]
    start: float = 0.0
    end: float = 0.0


def _prepared(processor: FineVQProcessor, sample: VideoSample) -> PreparedVideo:
    timed = sample.info is not None  # frames handed over in memory have no timing
    return PreparedVideo(
        tensors=processor.video_tensors(sample),
        frames=list(sample.keyframe_indices),
        motion_frames=list(sample.motion_indices),
        start=sample.start_seconds if timed else 0.0,
        end=sample.stop_seconds if timed else 0.0,
    )


def prepare_video(processor: FineVQProcessor, video) -> PreparedVideo:
    """Decode and preprocess a video (a path, a `VideoSample`, or uint8 frames (T, H, W, 3))."""
    return _prepared(processor, processor.sample(video))


def prepare_windows(processor: FineVQProcessor, path: str | os.PathLike, window_seconds: float) -> list[PreparedVideo]:
    """Consecutive `window_seconds` windows of a video file (see `finevq.video.sample_windows`), each
    sampled as the processor samples whole videos, and preprocessed."""
    samples = sample_windows(path, window_seconds, **processor.settings.sampling_kwargs())
    return [_prepared(processor, sample) for sample in samples]


def _resolve_folder(path: str | os.PathLike | None) -> tuple[Path, str]:
    """(local model folder, model name) of a folder, a hub id, or None for the default model; an
    official FineVQ checkpoint (InternVL2 layout) is converted once into the cache and loaded from there."""
    if path is None:
        folder = default_model_folder()
        if not (folder / "config.json").is_file():
            raise CheckpointError(
                f"the default model {DEFAULT_MODEL!r} is not installed in this package (expected at {folder}); "
                "pass a model folder: `--model DIR` on the command line, FineVQ.from_pretrained(DIR) in Python"
            )
        return folder, DEFAULT_MODEL
    folder = local_folder(path, OFFICIAL_DOWNLOAD_PATTERNS)
    name = folder.resolve().name if Path(path).exists() else str(path)
    return (converted_folder(folder) if is_official_folder(folder) else folder), name


def converted_folder(official: Path) -> Path:
    """The converted copy of an official checkpoint in the cache ($FINEVQ_CACHE, default
    ~/.cache/finevq), made on first use; a checkpoint with NaN/Inf tensors is refused with the
    `finevq convert-official --repair` command that converts it knowingly."""
    root = Path(os.environ.get("FINEVQ_CACHE") or Path.home() / ".cache" / "finevq") / "converted"
    key = hashlib.sha256(f"{official.resolve()}\n{(official / 'config.json').read_text()}".encode()).hexdigest()[:16]
    target = root / f"{official.resolve().name}-{key}"
    if not (target / "config.json").is_file():
        try:
            convert_official(official, target)
        except CheckpointError as error:
            raise CheckpointError(
                f"{error}\nTo use it anyway: finevq convert-official {official} --out DIR --repair drop-unused "
                "(or zero), then pass DIR as the model"
            ) from None
    return target


class FineVQ:
    """A loaded model and its processor. Thread-safe: calls share the model under a lock."""

    def __init__(self, model: FineVQForConditionalGeneration, processor: FineVQProcessor, name: str):
        self.model = model.eval()
        self.processor = processor
        self.name = name
        self._lock = threading.RLock()
        self._encoded: OrderedDict[tuple, EncodedVideo] = OrderedDict()

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> FineVQ:
        """Load a model folder (merged, or base + adapter), a hub id, or the shipped default (None).

        device: default CUDA when available, else CPU; dtype: default float32 on the CPU, the
        checkpoint's own on a GPU (bfloat16 for a converted official checkpoint)."""
        folder, name = _resolve_folder(path)
        model = FineVQForConditionalGeneration.from_pretrained(folder)
        processor = FineVQProcessor.from_pretrained(folder)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or (model.dtype if device.type == "cuda" else torch.float32)
        return cls(model.to(device=device, dtype=dtype), processor, name)

    @property
    def score_range(self) -> tuple[float, float]:
        low, high = self.model.config.score_range
        return float(low), float(high)

    # ----------------------------------------------------------------- video in

    def sample(self, video) -> PreparedVideo:
        """What the model sees of `video` (a path, a `VideoSample`, or uint8 frames (T, H, W, 3)):
        its sampled frames, decoded and preprocessed."""
        return prepare_video(self.processor, video)

    @torch.no_grad()
    def encode(self, videos: Sequence[PreparedVideo]) -> list[EncodedVideo]:
        """Encode videos as one batch through the visual encoders, then each video's shared prompt
        prefix once; every question about a video reuses its `EncodedVideo`."""
        with self._lock:
            visual = self.model.encode_batch([v.tensors for v in videos])
            prefix = torch.tensor([self.processor.prefix_ids], device=self.model.device)
            encoded = []
            for row in range(len(videos)):
                tokens = VisualTokens(frames=visual.frames[row:row + 1], motion=visual.motion[row:row + 1])
                encoded.append(EncodedVideo(visual=tokens, cache=self.model.prefill(prefix, tokens)))
        return encoded

    # ----------------------------------------------------------------- assessing

    def assess(self, video, dimensions: Sequence[str] | None = None, diagnose: bool = True) -> Assessment:
        """Score, level and level probabilities of each dimension (default all six), and with
        `diagnose` the presence probability and likely subtype of each coarse distortion type."""
        start = time.perf_counter()
        dimensions = checked_dimensions(dimensions)
        prepared = self.sample(video)
        name = os.fspath(video) if isinstance(video, (str, os.PathLike)) else "<frames>"
        result = self.assess_samples([prepared], [name], dimensions, diagnose)[0]
        result.seconds = time.perf_counter() - start
        return result

    def assess_samples(
        self,
        videos: Sequence[PreparedVideo],
        names: Sequence[str],
        dimensions: Sequence[str] | None = None,
        diagnose: bool = True,
    ) -> list[Assessment]:
        """`assess` of sampled videos (`sample`), their visual encoding batched; `seconds` is each video's share
        of the model time."""
        start = time.perf_counter()
        results = []
        for prepared, name, video in zip(videos, names, self.encode(videos)):
            with self._lock:
                ratings = {
                    d: DimensionRating(r.score, r.level, r.level_probabilities)
                    for d, r in score_dimensions(self.model, self.processor, video, dimensions).items()
                }
                distortions = self._diagnose(video) if diagnose else {}
            results.append(Assessment(
                video=name,
                model=self.name,
                ratings=ratings,
                distortions=distortions,
                worst_dimension=self._worst_dimension(ratings),
                frames=prepared.frames,
                motion_frames=prepared.motion_frames,
                seconds=0.0,
            ))
        share = (time.perf_counter() - start) / max(len(results), 1)
        for result in results:
            result.seconds = share
        return results

    def _diagnose(self, video: EncodedVideo) -> dict[str, DistortionDiagnosis]:
        """Yes/no per coarse type and which-subtype per coarse type, as one batch of questions."""
        subtype_questions = [subtype_question(coarse) for coarse in COARSE_TYPES]
        questions = [yes_no_question(c) for c in COARSE_TYPES] + [text for text, _ in subtype_questions]
        candidates = [list(YES_NO_ANSWERS)] * len(COARSE_TYPES) + [list(options) for _, options in subtype_questions]
        answers = candidate_probabilities(self.model, self.processor, video, questions, candidates)
        diagnoses = {}
        for index, coarse in enumerate(COARSE_TYPES):
            presence = answers[index]["Yes"]
            options = subtype_questions[index][1]
            by_subtype = {options[letter]: p for letter, p in answers[len(COARSE_TYPES) + index].items()}
            by_subtype.pop(NO_DISTORTION)
            total = sum(by_subtype.values()) or 1.0
            by_subtype = {subtype: p / total for subtype, p in by_subtype.items()}
            present = presence >= PRESENCE_THRESHOLD
            diagnoses[coarse] = DistortionDiagnosis(
                probability=presence,
                present=present,
                subtype=max(by_subtype, key=by_subtype.get) if present else None,
                subtype_probabilities=by_subtype,
            )
        return diagnoses

    def _worst_dimension(self, ratings: dict[str, DimensionRating]) -> str | None:
        """The training labels' rule (finevq.taxonomy.worst_rated_dimension) on the predictions."""
        worst = worst_rated_dimension({d: r.level for d, r in ratings.items()}, {d: r.score for d, r in ratings.items()},
                                      dict.fromkeys(ratings, self.score_range))
        return None if worst == WORST_DIMENSION_GOOD else worst

    # ----------------------------------------------------------------- over time

    def timeline(
        self, video: str | os.PathLike, window_seconds: float = 2.0, dimensions: Sequence[str] | None = ("overall",)
    ) -> list[TimelineWindow]:
        """Scores and levels of consecutive windows of `window_seconds` (the last short piece joins
        the window before it): quality over time."""
        return self.timeline_of(prepare_windows(self.processor, video, window_seconds), dimensions)

    def timeline_of(
        self, windows: Sequence[PreparedVideo], dimensions: Sequence[str] | None = ("overall",)
    ) -> list[TimelineWindow]:
        """`timeline` of windows already prepared (`prepare_windows`)."""
        encoded_windows = [
            encoded for start in range(0, len(windows), _WINDOWS_PER_BATCH)
            for encoded in self.encode(windows[start:start + _WINDOWS_PER_BATCH])
        ]
        timeline = []
        for window, encoded in zip(windows, encoded_windows):
            with self._lock:
                ratings = score_dimensions(self.model, self.processor, encoded, dimensions)
            timeline.append(TimelineWindow(
                start=window.start,
                end=window.end,
                scores={d: r.score for d, r in ratings.items()},
                levels={d: r.level for d, r in ratings.items()},
            ))
        return timeline

    # ----------------------------------------------------------------- chat

    def chat(
        self,
        video,
        messages: str | list[dict],
        stream: bool = True,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[str] | str:
        """The assistant's reply to `messages` (a question, or the history ending with a user turn of
        {"role", "content"} dicts) about `video`: pieces of text as they are generated (stream=True),
        or the whole reply. A video file is encoded once and reused over the following turns."""
        messages = _checked_messages(messages)
        encoded = self.encoded(video)
        pieces = self._locked(stream_chat(
            self.model, self.processor, encoded, messages, max_new_tokens, temperature, top_p, seed
        ))
        return pieces if stream else "".join(pieces)

    def _locked(self, pieces: Iterator[str]) -> Iterator[str]:
        """Each generation step under the model lock, so that concurrent chats interleave safely."""
        while True:
            with self._lock:
                piece = next(pieces, None)
            if piece is None:
                return
            yield piece

    def encoded(self, video) -> EncodedVideo:
        """`video` encoded for questions; a video file's encoding is cached for the next turns."""
        if isinstance(video, EncodedVideo):
            return video
        if not isinstance(video, (str, os.PathLike)):
            return self.encode([self.sample(video)])[0]
        path = Path(video)
        stat = path.stat() if path.is_file() else None
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size) if stat else None
        with self._lock:
            if key in self._encoded:
                self._encoded.move_to_end(key)
                return self._encoded[key]
        encoded = self.encode([self.sample(video)])[0]
        with self._lock:
            self._encoded[key] = encoded
            while len(self._encoded) > _ENCODED_CACHE_SIZE:
                self._encoded.popitem(last=False)
        return encoded


def _checked_messages(messages: str | list[dict]) -> list[dict]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, list) or not messages:
        raise ConfigError("chat messages must be a question or a non-empty list of {'role', 'content'} dicts")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise ConfigError(f"chat message {index} must be a dict with role user, assistant or system: {message!r}")
        if not isinstance(message.get("content"), str):
            raise ConfigError(f"chat message {index} must have text content, got {message.get('content')!r}")
    if messages[-1]["role"] != "user":
        raise ConfigError("the last chat message must be the user's question")
    return [{"role": m["role"], "content": m["content"]} for m in messages]
