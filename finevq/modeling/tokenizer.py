"""The tokenizer of models trained from scratch: a byte-level BPE trained locally with `tokenizers`
on the project's quality vocabulary, with a ChatML chat template; and answer-token lookup for any tokenizer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from finevq.errors import LabelError
from finevq.taxonomy import ALL_SUBTYPES, COARSE_TYPES, DIMENSIONS, LEVELS, SUBTYPES

PAD_TOKEN = "<|endoftext|>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"
FRAME_TOKEN = "<|frame|>"
MOTION_TOKEN = "<|motion|>"
SPECIAL_TOKENS = (PAD_TOKEN, TURN_START, TURN_END, FRAME_TOKEN, MOTION_TOKEN)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

OPTION_LETTERS = ("A", "B", "C", "D", "E")


def quality_corpus() -> Iterator[str]:
    """Sentences in the style of the instruction data (`finevq.data.instructions`): its question and
    answer templates filled with every dimension, level, distortion type and option letter."""
    from finevq.data import instructions

    for dimension in DIMENSIONS:
        aspect = instructions.aspect(dimension)
        for level in LEVELS:
            yield from (q.format(aspect=aspect) for q in instructions.SCORE_QUESTIONS)
            yield from (a.format(aspect=aspect, level=level) for a in instructions.SCORE_ANSWERS)
    for coarse in COARSE_TYPES:
        for template in instructions.YESNO_QUESTIONS + instructions.SUBTYPE_QUESTIONS:
            yield template.format(coarse=coarse)
        options, _ = instructions.render_options(["None", *SUBTYPES[coarse]][:5])
        for letter in OPTION_LETTERS:
            yield f"{options}\n{letter}"
    for answer in ("Yes", "No"):
        yield f"\n{answer}"
    for subtype in ALL_SUBTYPES:
        yield f"It shows {subtype}."
    yield from instructions.DIMENSION_QUESTIONS + instructions.DESCRIBE_QUESTIONS
    yield "Frame1: Frame2: Frame3: Frame4: Frame5: Frame6: Frame7: Frame8: Motion Feature: Video quality is good."


def train_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `corpus` (default: `quality_corpus`, repeated so the rating words,
    Yes/No and option letters become single tokens) and wrap it with the chat template."""
    texts = list(corpus) if corpus is not None else list(quality_corpus()) * 20
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        eos_token=TURN_END,
        additional_special_tokens=[TURN_START, FRAME_TOKEN, MOTION_TOKEN],
        chat_template=CHATML_TEMPLATE,
        model_max_length=32768,
    )


def candidate_token_ids(tokenizer, candidates: list[str], context: str = "") -> list[int]:
    """The token id that starts each candidate answer when it follows `context`.

    A candidate that tokenizes to several tokens is represented by its first one; the first tokens
    must all differ, else `LabelError` names the candidates that collide."""
    context_ids = tokenizer.encode(context, add_special_tokens=False)
    first_ids = []
    for candidate in candidates:
        ids = tokenizer.encode(context + candidate, add_special_tokens=False)
        if len(ids) <= len(context_ids) or ids[: len(context_ids)] != context_ids:
            raise LabelError(f"candidate answer {candidate!r} does not tokenize as a continuation of {context!r}")
        first_ids.append(ids[len(context_ids)])
    collisions = sorted(
        {c for c, i in zip(candidates, first_ids) if first_ids.count(i) > 1}, key=candidates.index
    )
    if collisions:
        raise LabelError(
            f"candidate answers {collisions} start with the same token, so their probabilities cannot be told apart"
        )
    return first_ids
