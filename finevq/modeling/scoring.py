"""Scoring without generation: a video encoded once (visual tokens + its prompt prefix's KV cache), then
batches of questions read at the answer position: scores, level probabilities, candidate answers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache

from finevq.errors import ConfigError, LabelError
from finevq.modeling.heads import qalign_score, restricted_softmax
from finevq.modeling.modeling import FineVQForConditionalGeneration, VisualTokens
from finevq.modeling.processor import FineVQProcessor
from finevq.taxonomy import DIMENSIONS, LEVELS, canonical_dimension


@dataclass
class EncodedVideo:
    """Videos (one or a batch) run through the backbone, the motion encoder and the shared prompt prefix."""

    visual: VisualTokens
    cache: Cache

    @property
    def count(self) -> int:
        return self.visual.frames.shape[0]


@dataclass
class DimensionScore:
    """score: the score head, on the model's score scale; level: the most probable level word;
    level_probabilities: softmax over the five level words (best first); level_score: their
    Q-Align weighted score mapped onto the same score scale."""

    dimension: str
    score: float
    level: str
    level_probabilities: dict[str, float]
    level_score: float


@torch.no_grad()
def encode_videos(model: FineVQForConditionalGeneration, processor: FineVQProcessor, videos: list) -> EncodedVideo:
    """Encode videos (paths, `VideoSample`s or frames) once, as one batch; every later question reuses them."""
    return encode_tensors(model, processor, [processor.video_tensors(video) for video in videos])


@torch.no_grad()
def encode_tensors(model: FineVQForConditionalGeneration, processor: FineVQProcessor, tensors: list[dict]) -> EncodedVideo:
    """Encode videos already preprocessed (each the processor's `video_tensors`) once, as one batch."""
    if not tensors:
        raise ConfigError("no videos to encode")
    visual = model.encode_batch(tensors)
    prefix = torch.tensor([processor.prefix_ids] * len(tensors), device=model.device)
    return EncodedVideo(visual=visual, cache=model.prefill(prefix, visual))


def encode_video(model: FineVQForConditionalGeneration, processor: FineVQProcessor, video) -> EncodedVideo:
    """Encode one video (see `encode_videos`)."""
    return encode_videos(model, processor, [video])


@torch.no_grad()
def answer_states(
    model: FineVQForConditionalGeneration,
    processor: FineVQProcessor,
    video,
    prompts: list[str],
    shared_prefix: bool = True,
    read_from_end: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states (B * N, width) and LM logits (B * N, vocab) at the `read_from_end`-th position
    from the end (1: the last) of each rendered prompt, for each of the B videos of an `EncodedVideo`
    (video-major), or of one video.

    shared_prefix=True: the video is encoded once and the prompts run as one batch after its
    cached prefix. False: each prompt is a separate full forward pass that encodes the video again
    (the reference the shared path must equal, and what scoring dimension by dimension costs)."""
    if shared_prefix:
        encoded = video if isinstance(video, EncodedVideo) else encode_video(model, processor, video)
        suffixes = [processor.suffix_ids(p) for p in prompts]
        hidden, _ = model.continue_from(encoded.cache, suffixes, rows=encoded.count, read_from_end=read_from_end)
    else:
        if isinstance(video, EncodedVideo):
            raise ConfigError("scoring prompt by prompt needs the video itself, not an EncodedVideo")
        rows = []
        for prompt in prompts:
            ids = torch.tensor([processor.prefix_ids + processor.suffix_ids(prompt)], device=model.device)
            visual = model.encode_batch([processor.video_tensors(video)])
            outputs = model(input_ids=ids, visual=visual, logits_to_keep=1)
            rows.append(outputs.last_hidden_state[0, -read_from_end])
        hidden = torch.stack(rows)
    return hidden, model.get_output_embeddings()(hidden)


def score_dimensions(
    model: FineVQForConditionalGeneration,
    processor: FineVQProcessor,
    video,
    dimensions: list[str] | tuple[str, ...] | None = None,
    shared_prefix: bool = True,
) -> dict[str, DimensionScore]:
    """Score, level and level probabilities of each requested dimension (default: all six) of one
    video, in one batched pass over the shared visual prefix."""
    if isinstance(video, EncodedVideo) and video.count != 1:
        raise ConfigError(f"score_dimensions scores one video; this EncodedVideo holds {video.count} (use score_videos)")
    return _dimension_scores(model, processor, video, dimensions, shared_prefix)[0]


def score_videos(
    model: FineVQForConditionalGeneration,
    processor: FineVQProcessor,
    videos,
    dimensions: list[str] | tuple[str, ...] | None = None,
) -> list[dict[str, DimensionScore]]:
    """`score_dimensions` of several videos (a list, or an `EncodedVideo` of them) in one batch."""
    encoded = videos if isinstance(videos, EncodedVideo) else encode_videos(model, processor, list(videos))
    return _dimension_scores(model, processor, encoded, dimensions, shared_prefix=True)


def _dimension_scores(model, processor, video, dimensions, shared_prefix: bool) -> list[dict[str, DimensionScore]]:
    dimensions = _checked_dimensions(dimensions)
    prompts = [processor.score_prompt(d) for d in dimensions]
    offset = processor.settings.score_readout_offset
    visual = None
    if model.score_readout is not None:
        if shared_prefix and not isinstance(video, EncodedVideo):
            video = encode_video(model, processor, video)
        # Prompt by prompt, the video is encoded once more here for the readout.
        visual = (video.visual if isinstance(video, EncodedVideo)
                  else model.encode_batch([processor.video_tensors(video)]))
    hidden, logits = answer_states(model, processor, video, prompts, shared_prefix, read_from_end=offset)
    scores = _score_rows(model, hidden, visual, dimensions).tolist()
    score_range = model.config.score_range
    levels = tuple(f" {level}" for level in LEVELS)
    level_ids = [processor.answer_token_ids(levels, processor.score_context(d)) for d in dimensions]
    results: list[dict[str, DimensionScore]] = []
    for row in range(len(scores)):
        index = row % len(dimensions)
        if index == 0:
            results.append({})
        probabilities = restricted_softmax(logits[row], level_ids[index])
        results[-1][dimensions[index]] = DimensionScore(
            dimension=dimensions[index],
            score=float(scores[row]),
            level=LEVELS[int(probabilities.argmax())],
            level_probabilities=dict(zip(LEVELS, probabilities.tolist())),
            level_score=float(qalign_score(probabilities, score_range)),
        )
    return results


@torch.no_grad()
def _score_rows(model: FineVQForConditionalGeneration, hidden: torch.Tensor, visual: VisualTokens | None,
                dimensions: list[str]) -> torch.Tensor:
    """The model's scores of `hidden` (B * N rows, video-major, N = len(dimensions))."""
    if visual is None:
        return model.dimension_scores(hidden, None, None)
    videos = visual.motion.shape[0]
    indices = torch.tensor([DIMENSIONS.index(d) for d in dimensions] * videos, device=hidden.device)
    video_index = torch.arange(videos, device=hidden.device).repeat_interleave(len(dimensions))
    return model.dimension_scores(hidden, visual, indices, video_index)


def candidate_probabilities(
    model: FineVQForConditionalGeneration,
    processor: FineVQProcessor,
    video,
    questions: list[str],
    candidates: list[str] | list[list[str]],
    answer_prefix: str = "",
    history: list[dict] | None = None,
) -> list[dict[str, float]]:
    """For each question, the probabilities of its candidate answers (e.g. ["Yes", "No"] or option
    letters), read from the LM logits at the answer position, normalised over the candidates.

    candidates: one list shared by every question, or one list per question. With an
    `EncodedVideo` of several videos, the answers come video by video (B * N dicts)."""
    per_question = candidates if candidates and isinstance(candidates[0], (list, tuple)) else [candidates] * len(questions)
    if len(per_question) != len(questions):
        raise LabelError(f"{len(questions)} questions but {len(per_question)} candidate lists")
    prompts = [processor.question_prompt(q, answer_prefix, history) for q in questions]
    candidate_ids = [processor.answer_token_ids(tuple(o), p) for p, o in zip(prompts, per_question)]
    _, logits = answer_states(model, processor, video, prompts)
    results = []
    for row in range(logits.shape[0]):
        index = row % len(questions)
        probabilities = restricted_softmax(logits[row], candidate_ids[index])
        results.append(dict(zip(per_question[index], probabilities.tolist())))
    return results


def _checked_dimensions(dimensions) -> list[str]:
    if dimensions is None:
        return list(DIMENSIONS)
    checked = [canonical_dimension(d) for d in dimensions]
    unknown = [d for d, c in zip(dimensions, checked) if c not in DIMENSIONS]
    if unknown or not checked:
        raise LabelError(f"cannot score dimensions {list(dimensions)}; known: {', '.join(DIMENSIONS)}")
    return checked
