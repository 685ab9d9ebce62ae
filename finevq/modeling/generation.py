"""Chat about a video with streaming: the conversation after the video's cached prefix, decoded token
by token (greedy, or sampled with temperature and top-p), each new piece of text yielded as it appears."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from finevq.errors import ConfigError
from finevq.modeling.modeling import FineVQForConditionalGeneration
from finevq.modeling.processor import FineVQProcessor
from finevq.modeling.scoring import EncodedVideo, encode_video


@torch.no_grad()
def stream_chat(
    model: FineVQForConditionalGeneration,
    processor: FineVQProcessor,
    video,
    messages: list[dict],
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> Iterator[str]:
    """Yield the assistant's reply to `messages` (the history, ending with a user turn) piece by
    piece; `video` is a path, sample, frames or an `EncodedVideo` (encoded once, reused)."""
    encoded = video if isinstance(video, EncodedVideo) else encode_video(model, processor, video)
    if encoded.count != 1:
        raise ConfigError(f"a chat is about one video; this EncodedVideo holds {encoded.count}")
    tokenizer = processor.tokenizer
    stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
    generator = torch.Generator(device=model.device)
    if seed is not None:
        generator.manual_seed(seed)
    prompt = processor.render(messages, add_generation_prompt=True)
    hidden, cache = model.continue_from(encoded.cache, [processor.suffix_ids(prompt)])
    # The video's placeholder tokens stand for visual embeddings, never for text: a reply may not hold one.
    placeholders = [processor.frame_token_id, processor.motion_token_id]
    generated: list[int] = []
    emitted = ""
    for _ in range(max_new_tokens):
        logits = model.get_output_embeddings()(hidden)[0].float()
        logits[placeholders] = float("-inf")
        token = _next_token(logits, temperature, top_p, generator)
        if token in stop_ids:
            break
        generated.append(token)
        text = tokenizer.decode(generated, skip_special_tokens=True)
        # A multi-byte character may span tokens: wait until it is complete.
        if not text.endswith("\ufffd") and len(text) > len(emitted):
            yield text[len(emitted):]
            emitted = text
        hidden, cache = model.continue_from(cache, [[token]], copy_cache=False)
    rest = tokenizer.decode(generated, skip_special_tokens=True)[len(emitted):]
    if rest:
        yield rest


def _next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    probabilities = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probabilities, order = probabilities.sort(descending=True)
        outside = sorted_probabilities.cumsum(-1) - sorted_probabilities > top_p
        sorted_probabilities[outside] = 0.0
        probabilities = torch.zeros_like(probabilities).scatter_(0, order, sorted_probabilities)
    return int(torch.multinomial(probabilities, 1, generator=generator))
