"""Running a model over a split's conversation rows: each video encoded once, scored on its rated
dimensions and asked its yes/no and multiple-choice questions, giving `finevq.metrics` records."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from finevq.data.formats import parse_options
from finevq.data.instructions import yes_no_question
from finevq.metrics import QA_QUESTION_TYPES, QARecord, ScoreRecord
from finevq.modeling.scoring import candidate_probabilities, encode_tensors, encode_video, score_dimensions
from finevq.taxonomy import COARSE_TYPES

YES_NO = ("Yes", "No")


@dataclass
class VideoQuestions:
    """What one video is asked: its rated dimensions (with MOS, level and distortion severity, None
    where unknown) and its QA rows."""

    video: str
    path: str
    ratings: dict[str, tuple[float, str, float | None]] = field(default_factory=dict)
    questions: list[dict] = field(default_factory=list)


def group_by_video(rows: Iterable[dict], dimensions: Sequence[str],
                   max_videos: int | None = None) -> list[VideoQuestions]:
    """The split's conversation rows per video, in order of first appearance (the first `max_videos`)."""
    videos: dict[str, VideoQuestions] = {}
    for row in rows:
        name = row["name"]
        if name not in videos:
            if max_videos is not None and len(videos) >= max_videos:
                continue
            videos[name] = VideoQuestions(name, row["video"]["path"])
        if row["question_type"] == "score" and row["dimension"] in dimensions and row["mos"] is not None:
            videos[name].ratings[row["dimension"]] = (float(row["mos"]), row["level"], row.get("severity"))
        elif row["question_type"] in QA_QUESTION_TYPES:
            videos[name].questions.append(row)
    return list(videos.values())


def _options(row: dict) -> list[tuple[str, str]]:
    if row["question_type"] == "yes_no":
        return [(answer, answer) for answer in YES_NO]
    return parse_options(row["conversations"][0]["content"])


@torch.no_grad()
def evaluate_videos(model, processor, videos: Sequence[VideoQuestions], progress: str | None = None,
                    tensors_of: Callable[[str], dict] | None = None) -> tuple[list[ScoreRecord], list[QARecord]]:
    """Score and QA records of the videos; `model` is the (unwrapped) FineVQ model, LoRA layers in place.
    Each rated coarse dimension's record carries the model's presence probability of that distortion
    type (its yes/no answer). `progress`: the label of a progress bar over the videos (none when None);
    `tensors_of`: a video path's preprocessed tensors (training's video cache), instead of the processor."""
    low, high = (float(x) for x in model.config.score_range)
    scores: list[ScoreRecord] = []
    answers: list[QARecord] = []
    for item in tqdm(videos, desc=progress, disable=progress is None, leave=False, unit="video"):
        if tensors_of is None:
            encoded = encode_video(model, processor, item.path)
        else:
            encoded = encode_tensors(model, processor, [tensors_of(item.path)])
        if item.ratings:
            coarse = [d for d in item.ratings if d in COARSE_TYPES]
            presence = {}
            if coarse:
                asked = candidate_probabilities(model, processor, encoded, [yes_no_question(d) for d in coarse],
                                                [list(YES_NO)] * len(coarse))
                presence = {d: answer["Yes"] for d, answer in zip(coarse, asked)}
            for dimension, result in score_dimensions(model, processor, encoded, list(item.ratings)).items():
                true_mos, true_level, severity = item.ratings[dimension]
                scores.append(ScoreRecord(
                    video=item.video, dimension=dimension, true_mos=true_mos, score=result.score,
                    level_score=(result.level_score - low) / (high - low), level=result.level, true_level=true_level,
                    severity=severity, presence=presence.get(dimension),
                ))
        if item.questions:
            options = [_options(row) for row in item.questions]
            questions = [row["conversations"][0]["content"] for row in item.questions]
            candidates = [[letter for letter, _ in choice] for choice in options]
            probabilities = candidate_probabilities(model, processor, encoded, questions, candidates)
            for row, choice, probability in zip(item.questions, options, probabilities):
                best = max(probability, key=probability.get)
                answers.append(QARecord(
                    question_type=row["question_type"], predicted=dict(choice)[best], true=row["label"],
                    coarse_type=row["coarse_type"], video=item.video,
                ))
    return scores, answers
