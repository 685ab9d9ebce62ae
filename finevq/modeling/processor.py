"""The processor shared by training and inference: video -> normalised pixel tensors, and the prompt
builder (labelled frame slots, the motion slot, the question, in the chat template) -> token ids and labels."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from finevq.data.instructions import distortion_presence
from finevq.errors import CheckpointError, ConfigError, FineVQError
from finevq.modeling.configuration import FineVQConfig
from finevq.modeling.detectors import detector_statistics
from finevq.modeling.modeling import adapter_base_folder
from finevq.modeling.statistics import unit_pixels, video_statistics
from finevq.modeling.tokenizer import FRAME_TOKEN, MOTION_TOKEN, candidate_token_ids
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, LEVELS

PROCESSOR_FILE = "processor_config.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_INDEX = -100
VIDEO_TENSORS = ("pixel_values", "motion_values", "fragment_values", "frame_statistics", "clip_statistics",
                 "detector_statistics")
"""The per-video model inputs `video_tensors` makes (fragments and statistics when the model reads them)."""
_LEVEL_WORD = re.compile(r"\b(" + "|".join(LEVELS) + r")\b", re.IGNORECASE)


@dataclass
class ProcessorSettings:
    """Everything the processor needs besides the tokenizer; saved as processor_config.json."""

    num_frames: int = 8
    image_size: int = 448
    use_fragments: bool = False
    fragment_grid: int = 4
    fragment_patch: int = 32
    # 0: every frame of the video (at least finevq.video.MIN_EVERY_FRAME), as the official FineVQ
    # reads it at inference; unbounded, so long videos need a budget instead.
    num_motion_frames: int = 16
    motion_size: int = 224
    # Video sampling rule (see finevq.video.sample_video): keyframes and motion runs aligned to the
    # stream's keyframes ("keyframe"), at exact segment centres ("exact"), or at the official
    # FineVQ's indices ("official"); motion in runs of `motion_burst` consecutive frames.
    seek: str = "keyframe"
    # "bilinear" (antialiased) or "bicubic" (antialiased, as the official FineVQ's PIL resize).
    resize_filter: str = "bilinear"
    motion_burst: int = 8
    image_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    motion_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    motion_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    tokens_per_frame: int = 256
    num_motion_tokens: int = 1
    quality_statistics: bool = False
    # With quality_statistics: keyframes are decoded with a short side of at least this many pixels
    # (native when smaller) and measured at that size before the resize to image_size, and fragments
    # (fragment_grid x fragment_patch, native) are sampled for them even if the model does not read them.
    statistics_size: int = 256
    nss_statistics: bool = False
    flicker_statistics: bool = False
    # With detector_statistics (and quality_statistics): keyframes are decoded with a short side of at
    # least detector_size (native when smaller) for `finevq.modeling.detectors`, which measures them
    # there, and the motion clip at least detector_motion_size; the frame statistics are still measured
    # at statistics_size and the motion encoder still sees motion_size.
    detector_statistics: bool = False
    unclipped_noise_statistics: bool = False
    detector_size: int = 540
    detector_motion_size: int = 256
    frame_token: str = FRAME_TOKEN
    motion_token: str = MOTION_TOKEN
    # Text around each slot's placeholders (InternVL: "<img>" and "</img>").
    image_start: str = ""
    image_end: str = ""
    score_range: list[float] = field(default_factory=lambda: [0.0, 100.0])
    score_question: str = "How would you rate the {dimension} quality of this video?"
    score_answer_prefix: str = "The {dimension} quality of this video is"
    # The official readout: the answer prefix + this suffix teacher-forced with the end of turn, and
    # the hidden state read `score_readout_offset` tokens from the end (1: the prompt's last token).
    score_answer_suffix: str = ""
    score_readout_offset: int = 1
    max_length: int = 4096

    def sampling_kwargs(self) -> dict:
        """Keyword arguments of `finevq.video.sample_video` / `sample_windows` for this processor:
        its frame counts and sampling rule, fragments if used, and frames decoded just large
        enough (short side at least image_size / motion_size) for the S x S resize that follows."""
        return {
            "num_keyframes": self.num_frames,
            "num_motion_frames": self.num_motion_frames,
            "motion_burst": self.motion_burst,
            "seek": self.seek,
            "min_short_side": max((self.image_size, *self._statistics_sizes[:1])),
            "motion_min_short_side": max((self.motion_size, *self._statistics_sizes[1:])),
            "fragment_grid": self.fragment_grid if self.needs_fragments else None,
            "fragment_patch": self.fragment_patch,
        }

    @property
    def _statistics_sizes(self) -> tuple[int, ...]:
        """(keyframe short side, motion short side) the statistics need; () without statistics."""
        if not self.quality_statistics:
            return ()
        if self.detector_statistics:
            return max(self.statistics_size, self.detector_size), self.detector_motion_size
        return (self.statistics_size,)

    @property
    def needs_fragments(self) -> bool:
        return self.use_fragments or self.quality_statistics

    @classmethod
    def from_dict(cls, values: dict, source: str = "processor settings") -> ProcessorSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def settings_for_model(config: FineVQConfig, **overrides) -> ProcessorSettings:
    """Processor settings whose token counts, sizes and score scale match a model config."""
    values = {
        "image_size": config.image_size,
        "use_fragments": config.use_fragments,
        "tokens_per_frame": config.tokens_per_frame,
        "num_motion_tokens": config.motion_slot_tokens,
        "quality_statistics": config.quality_statistics,
        "nss_statistics": config.nss_statistics,
        "flicker_statistics": config.flicker_statistics,
        "detector_statistics": config.detector_tokens > 0,
        "unclipped_noise_statistics": config.unclipped_noise_statistics,
        "score_range": [float(x) for x in config.score_range],
    }
    if config.motion_encoder == "videomae":
        values["num_motion_frames"] = config.motion_config.num_frames
        values["motion_size"] = config.motion_config.image_size
    values.update(overrides)
    return ProcessorSettings.from_dict(values)


RESIZE_FILTERS = ("bilinear", "bicubic")


def resized_pixels(frames: np.ndarray, size: int, resize_filter: str = "bilinear") -> torch.Tensor:
    """uint8 RGB frames (T, H, W, 3) -> float (T, 3, size, size) in [0, 1], resized (aspect ignored,
    as in the paper) with an antialiased `resize_filter`."""
    if resize_filter not in RESIZE_FILTERS:
        raise ConfigError(f"processor setting 'resize_filter' must be one of {RESIZE_FILTERS}, got {resize_filter!r}")
    pixels = unit_pixels(frames)
    if tuple(pixels.shape[-2:]) != (size, size):
        pixels = F.interpolate(pixels, size=(size, size), mode=resize_filter, antialias=True, align_corners=False)
        pixels = pixels.clamp(0.0, 1.0) if resize_filter == "bicubic" else pixels
    return pixels


def normalised(pixels: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Pixels in [0, 1] (T, 3, H, W), normalised per channel."""
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def frames_to_tensor(
    frames: np.ndarray, size: int, mean: list[float], std: list[float], resize_filter: str = "bilinear"
) -> torch.Tensor:
    """uint8 RGB frames (T, H, W, 3) -> float (T, 3, size, size): resized, scaled to [0, 1] and
    normalised per channel."""
    return normalised(resized_pixels(frames, size, resize_filter), mean, std)


class FineVQProcessor:
    """Turns videos and conversations into `FineVQForConditionalGeneration` inputs."""

    def __init__(self, tokenizer, settings: ProcessorSettings | None = None):
        self.tokenizer = tokenizer
        self.settings = settings or ProcessorSettings()
        vocab = tokenizer.get_vocab()
        for token in (self.settings.frame_token, self.settings.motion_token):
            if token not in vocab:
                raise CheckpointError(f"the tokenizer has no {token!r} token (add it as a special token)")
        if tokenizer.chat_template is None:
            raise CheckpointError("the tokenizer has no chat template")
        self.frame_token_id = vocab[self.settings.frame_token]
        self.motion_token_id = vocab[self.settings.motion_token]
        try:
            self.level_token_ids = self.answer_token_ids(
                tuple(f" {level}" for level in LEVELS), self.settings.score_answer_prefix.format(dimension="overall")
            )
        except FineVQError as error:
            raise CheckpointError(f"the tokenizer cannot score level words: {error}") from None

    # ----------------------------------------------------------------- saving and loading

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        (folder / PROCESSOR_FILE).write_text(json.dumps(dataclasses.asdict(self.settings), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> FineVQProcessor:
        """Load from a model folder, or from the base folder an adapter-only folder names."""
        folder = Path(folder)
        if not (folder / PROCESSOR_FILE).is_file() and (folder / "adapter_config.json").is_file():
            folder = adapter_base_folder(folder)
        path = folder / PROCESSOR_FILE
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise CheckpointError(f"cannot read processor settings {str(path)!r}: {error}") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as error:
            raise CheckpointError(f"cannot load the tokenizer of {str(folder)!r}: {error}") from None
        return cls(tokenizer, ProcessorSettings.from_dict(values, source=str(path)))

    # ----------------------------------------------------------------- video

    def sample(self, video):
        """A `finevq.video.VideoSample` of `video`: a path (decoded with `finevq.video` by
        `settings.sampling_kwargs()`), a sample already taken, or decoded uint8 frames (T, H, W, 3)
        of a whole clip, sampled at the exact segment centres, or the official indices under
        seek="official" (frames carry no stream keyframes)."""
        from finevq import video as video_io

        s = self.settings
        if isinstance(video, (str, os.PathLike)):
            return video_io.sample_video(video, **s.sampling_kwargs())
        if hasattr(video, "keyframes"):
            return video
        frames = np.asarray(video)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ConfigError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
        rule = "official" if s.seek == "official" else "exact"
        keyframe_indices, motion_indices = video_io.sample_indices(
            0, len(frames), s.num_frames, s.num_motion_frames, s.motion_burst, rule
        )
        keyframes = frames[keyframe_indices]
        return video_io.VideoSample(
            info=None, keyframes=keyframes, keyframe_indices=keyframe_indices,
            motion=frames[motion_indices], motion_indices=motion_indices,
            fragments=video_io.fragments(keyframes, s.fragment_grid, s.fragment_patch) if s.needs_fragments else None,
        )

    def video_tensors(self, video) -> dict[str, torch.Tensor]:
        """Unbatched pixel tensors of one video: pixel_values (F, 3, S, S), motion_values
        (T, 3, s, s), for backbones that see them fragment_values (F, 3, S, S), and with
        `quality_statistics` their frame_statistics and clip_statistics (`finevq.modeling.statistics`)."""
        s = self.settings
        sample = self.sample(video)
        motion_ok = len(sample.motion) == s.num_motion_frames or (s.num_motion_frames == 0 and len(sample.motion))
        if len(sample.keyframes) != s.num_frames or not motion_ok:
            raise ConfigError(
                f"video sample has {len(sample.keyframes)} keyframes and {len(sample.motion)} motion frames; "
                f"the processor expects {s.num_frames} and {s.num_motion_frames or 'every frame'}"
            )
        motion = resized_pixels(sample.motion, s.motion_size, s.resize_filter)
        tensors = {
            "pixel_values": frames_to_tensor(sample.keyframes, s.image_size, s.image_mean, s.image_std, s.resize_filter),
            "motion_values": normalised(motion, s.motion_mean, s.motion_std),
        }
        if s.needs_fragments and sample.fragments is None:
            raise ConfigError("the video sample has no fragments; sample it with fragment_grid set")
        if s.use_fragments:
            tensors["fragment_values"] = frames_to_tensor(
                sample.fragments, s.image_size, s.image_mean, s.image_std, s.resize_filter
            )
        if s.quality_statistics:
            from finevq import video as video_io

            keyframes = sample.keyframes
            if s.detector_statistics:
                native_short_side = min(sample.info.height, sample.info.width) if sample.info else min(keyframes.shape[1:3])
                tensors["detector_statistics"] = detector_statistics(keyframes, sample.motion, native_short_side,
                                                                    s.unclipped_noise_statistics)
                height, width = keyframes.shape[1:3]
                if min(height, width) > s.statistics_size:
                    long_side = round(max(height, width) * s.statistics_size / min(height, width))
                    keyframes = video_io.resize_frames(keyframes, long_side, keep_aspect=True)
            tensors.update(video_statistics(keyframes, sample.fragments, motion, s.fragment_patch, s.nss_statistics,
                                            s.flicker_statistics))
        return tensors

    def video_inputs(self, video) -> dict[str, torch.Tensor]:
        """`video_tensors` with a batch dimension of one, ready for the model."""
        return {name: tensor.unsqueeze(0) for name, tensor in self.video_tensors(video).items()}

    # ----------------------------------------------------------------- prompts

    @cached_property
    def video_prompt(self) -> str:
        """Per keyframe a labelled slot `Frame{i}: <frame tokens>`, then `Motion Feature: <motion tokens>`,
        each slot's tokens between `image_start` and `image_end`."""
        s = self.settings
        frame_slot = s.image_start + s.frame_token * s.tokens_per_frame + s.image_end
        lines = [f"Frame{i}: {frame_slot}" for i in range(1, s.num_frames + 1)]
        lines.append(f"Motion Feature: {s.image_start}{s.motion_token * s.num_motion_tokens}{s.image_end}")
        return "\n".join(lines) + "\n"

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        """The conversation in the chat template, the video slots opening the first user message."""
        messages = [dict(m) for m in messages]
        first_user = next((m for m in messages if m["role"] == "user"), None)
        if first_user is None:
            raise ConfigError("a conversation needs at least one user message")
        first_user["content"] = self.video_prompt + first_user["content"]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    @cached_property
    def prefix_ids(self) -> list[int]:
        """Token ids of everything up to the end of the video slots: the same for every question."""
        text = self.render([{"role": "user", "content": "?"}])
        return self._ids(text[: text.index(self.video_prompt) + len(self.video_prompt)])

    def suffix_ids(self, text: str) -> list[int]:
        """Token ids of a rendered prompt after the shared video prefix."""
        ids = self._ids(text)
        prefix = self.prefix_ids
        if ids[: len(prefix)] != prefix:
            raise ConfigError("the prompt does not start with the shared video prefix; the chat template moves it")
        return ids[len(prefix):]

    def score_prompt(self, dimension: str) -> str:
        """The rating question of a dimension, ending in the teacher-forced answer prefix (with a
        `score_answer_suffix`: the whole teacher-forced answer and its end of turn, read
        `score_readout_offset` tokens from the end)."""
        s = self.settings
        if not s.score_answer_suffix:
            return self.score_context(dimension)
        question = {"role": "user", "content": s.score_question.format(dimension=dimension)}
        answer = s.score_answer_prefix.format(dimension=dimension) + s.score_answer_suffix
        return self.render([question, {"role": "assistant", "content": answer}])

    def score_context(self, dimension: str) -> str:
        """The text up to the score readout's answer word: what the level word follows."""
        s = self.settings
        question = [{"role": "user", "content": s.score_question.format(dimension=dimension)}]
        return self.render(question, add_generation_prompt=True) + s.score_answer_prefix.format(dimension=dimension)

    def question_prompt(self, question: str, answer_prefix: str = "", history: list[dict] | None = None) -> str:
        """A question (after an optional message history) with the assistant's answer prefix."""
        messages = list(history or []) + [{"role": "user", "content": question}]
        return self.render(messages, add_generation_prompt=True) + answer_prefix

    def answer_token_ids(self, candidates: tuple[str, ...] | list[str], context: str) -> list[int]:
        """First token of each candidate answer after `context` (see `candidate_token_ids`)."""
        return list(_cached_candidate_ids(self.tokenizer, tuple(candidates), context[-200:]))

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    # ----------------------------------------------------------------- training rows

    def encode_conversation(
        self, messages: list[dict], question_type: str | None = None, mos=None, dimension: str | None = None,
        presence: tuple[str, bool] | None = None,
    ) -> dict:
        """Token ids, labels on assistant tokens only (their end-of-turn included), for score rows
        the score position (the position whose output predicts the answer's level word) and the rated
        dimension's index in DIMENSIONS (-1 when unknown), and the row's presence label (coarse type,
        present; `finevq.data.instructions.distortion_presence`) as the type's index in COARSE_TYPES
        (-1: none) and 1.0 / 0.0."""
        text = self.render(messages)
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        spans = self._assistant_spans(messages, text)
        labels = [
            token if any(start <= begin < stop for start, stop in spans) else IGNORE_INDEX
            for token, (begin, _) in zip(ids, offsets)
        ]
        score_position = -1
        if question_type == "score" and spans:
            start, stop = spans[-1]
            words = list(_LEVEL_WORD.finditer(text, start, stop))
            if not words:
                raise ConfigError(f"score answer {text[start:stop]!r} holds no level word ({', '.join(LEVELS)})")
            char = words[-1].start()
            token = next(i for i, (begin, end) in enumerate(offsets) if begin <= char < end)
            score_position = token - 1
        limit = self.settings.max_length
        if len(ids) > limit:
            if self.prefix_ids != ids[: len(self.prefix_ids)] or len(self.prefix_ids) >= limit:
                raise ConfigError(f"max_length {limit} cannot hold the video slots of {len(self.prefix_ids)} tokens")
            ids, labels = ids[:limit], labels[:limit]
            score_position = score_position if score_position < limit - 1 else -1
        has_mos = score_position >= 0 and mos is not None and math.isfinite(float(mos))
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "score_position": score_position,
            "mos": float(mos) if has_mos else float("nan"),
            "score_dimension": DIMENSIONS.index(dimension) if has_mos and dimension in DIMENSIONS else -1,
            "presence_type": COARSE_TYPES.index(presence[0]) if presence is not None else -1,
            "present": float(presence[1]) if presence is not None else float("nan"),
        }

    def _assistant_spans(self, messages: list[dict], text: str) -> list[tuple[int, int]]:
        """Character spans of each assistant turn in the rendered text (content + end of turn)."""
        spans = []
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(self.render(messages[:index], add_generation_prompt=True))
            through_answer = self.render(messages[: index + 1])
            if not text.startswith(through_answer):
                raise ConfigError("the chat template does not render conversations incrementally")
            spans.append((start, len(through_answer)))
        return spans

    def encode_row_text(self, row: dict) -> dict:
        """`encode_conversation` of an instruction row's conversation, question type, MOS, dimension and
        presence label."""
        messages = row.get("conversations", row.get("messages"))
        if messages is None:
            raise ConfigError(f"instruction row has no 'conversations' (keys: {sorted(row)})")
        return self.encode_conversation(messages, row.get("question_type"), row.get("mos"), row.get("dimension"),
                                        distortion_presence(row))

    def encode_row(self, row: dict, video=None) -> dict:
        """One instruction row (`finevq.data.instructions`: "video", "conversations" (or "messages"),
        "question_type", "mos") -> unbatched model tensors; `video` (a path, sample or frames)
        defaults to the row's "video" (a path, or a `datasets.Video` {"path": ...} value)."""
        features = self.encode_row_text(row)
        if video is None:
            video = row["video"]["path"] if isinstance(row["video"], dict) else row["video"]
        features.update(self.video_tensors(video))
        return features

    def collate(self, features: list[dict]) -> dict[str, torch.Tensor]:
        """Pad and stack `encode_row` outputs into a batch (right padding).

        When rows carry a "video" key and some share one, the video tensors are stacked once per
        distinct video and "video_index" maps each row to its video: the model encodes it once."""
        width = max(len(f["input_ids"]) for f in features)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = {
            "input_ids": torch.full((len(features), width), pad_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(features), width), dtype=torch.long),
            "labels": torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long),
        }
        for row, f in enumerate(features):
            length = len(f["input_ids"])
            batch["input_ids"][row, :length] = f["input_ids"]
            batch["attention_mask"][row, :length] = 1
            batch["labels"][row, :length] = f["labels"]
        batch["score_positions"] = torch.tensor([f["score_position"] for f in features], dtype=torch.long)
        batch["mos"] = torch.tensor([f["mos"] for f in features], dtype=torch.float)
        batch["score_dimensions"] = torch.tensor([f.get("score_dimension", -1) for f in features], dtype=torch.long)
        batch["presence_types"] = torch.tensor([f.get("presence_type", -1) for f in features], dtype=torch.long)
        batch["present"] = torch.tensor([f.get("present", float("nan")) for f in features], dtype=torch.float)
        videos = features
        if all("video" in f for f in features):
            first_of_video = {}
            for f in features:
                first_of_video.setdefault(f["video"], f)
            if len(first_of_video) < len(features):
                videos = list(first_of_video.values())
                position = {video: index for index, video in enumerate(first_of_video)}
                batch["video_index"] = torch.tensor([position[f["video"]] for f in features], dtype=torch.long)
        for name in VIDEO_TENSORS:
            if name in features[0]:
                batch[name] = torch.stack([f[name] for f in videos])
        return batch


@lru_cache(maxsize=256)
def _cached_candidate_ids(tokenizer, candidates: tuple[str, ...], context: str) -> tuple[int, ...]:
    return tuple(candidate_token_ids(tokenizer, list(candidates), context))
