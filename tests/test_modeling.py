"""The tiny FineVQ model end to end: forward with both losses, LoRA gradients, save/load round trips,
checkpoint checks, batched multi-dimension scoring against one-by-one, candidate answers, streaming."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_model import TINY

from finevq.errors import CheckpointError, ConfigError, LabelError
from finevq.modeling import (
    FineVQForConditionalGeneration,
    FineVQProcessor,
    apply_lora,
    build_model,
    candidate_probabilities,
    encode_video,
    encode_videos,
    merge_lora,
    save_lora_checkpoint,
    score_dimensions,
    score_videos,
    stream_chat,
    train_tokenizer,
)
from finevq.modeling.heads import qalign_score
from finevq.taxonomy import DIMENSIONS, LEVELS

SCORE_ROW = {  # the shape of `finevq.data.instructions` rows
    "conversations": [
        {"role": "user", "content": "How would you rate the noise quality of this video?"},
        {"role": "assistant", "content": "The noise quality of this video is poor."},
    ],
    "question_type": "score",
    "dimension": "noise",
    "mos": 31.5,
}
YESNO_ROW = {
    "messages": [
        {"role": "user", "content": "Is there any blur distortion in the video? Answer Yes or No."},
        {"role": "assistant", "content": "Yes"},
        {"role": "user", "content": "Which blur is it?"},
        {"role": "assistant", "content": "It is motion blur."},
    ],
    "question_type": "yes_no",
    "dimension": None,
    "mos": None,
}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


@pytest.fixture(scope="module")
def tiny(tokenizer):
    model, processor = build_model("tiny", TINY, tokenizer=tokenizer, seed=0)
    _randomise_score_head(model)
    return model.eval(), processor


def _randomise_score_head(model):
    # A freshly initialised head is nearly constant; larger weights make score comparisons meaningful.
    torch.manual_seed(1)
    for parameter in model.score_head.parameters():
        torch.nn.init.normal_(parameter, std=0.2)


def _frames(seed=0, count=20, height=48, width=64):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def _batch(processor, seeds=(0, 1)):
    rows = [SCORE_ROW, YESNO_ROW]
    return processor.collate([processor.encode_row(row, video=_frames(seed)) for row, seed in zip(rows, seeds)])


def test_forward_returns_lm_and_score_losses_and_their_weighted_sum(tokenizer):
    # The paper's score loss: L1 in raw score units, no quality probe (the tiny preset's MSE and
    # probe are tested in test_modeling_statistics).
    paper_loss = {**TINY, "model.score_loss": "l1", "model.quality_probe_weight": 0.0}
    model, processor = build_model("tiny", paper_loss, tokenizer=tokenizer, seed=0)
    _randomise_score_head(model)
    model.eval()
    batch = _batch(processor)
    out = model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape
    assert out.lm_loss > 0 and out.score_loss > 0
    torch.testing.assert_close(out.loss, out.lm_loss + model.config.score_loss_weight * out.score_loss)
    assert torch.isfinite(out.scores[0]) and torch.isnan(out.scores[1])  # the yes/no row has no score
    assert out.score_loss.item() == pytest.approx(abs(out.scores[0].item() - 31.5), rel=1e-5)
    doubled = model(**batch, score_loss_weight=2.0)
    torch.testing.assert_close(doubled.loss, out.lm_loss + 2.0 * out.score_loss)
    # The LM loss is cross-entropy over the answer tokens only.
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
    keep = labels != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(out.lm_loss, expected)
    # Per row: each row's answer tokens averaged, then the rows (the one-word yes/no answer weighs
    # as much as the longer score answer).
    model.config.lm_loss_reduction = "row"
    per_row = model(**batch).lm_loss
    rows = [torch.nn.functional.cross_entropy(logits[i][keep[i]], labels[i][keep[i]]) for i in range(len(keep))]
    assert keep[0].sum() != keep[1].sum()
    torch.testing.assert_close(per_row, torch.stack(rows).mean())
    assert abs(per_row.item() - out.lm_loss.item()) > 1e-4


@pytest.mark.slow
def test_training_step_lowers_the_loss(tokenizer):
    model, processor = build_model("tiny", TINY, tokenizer=tokenizer, seed=3)
    batch = _batch(processor)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = model(**batch).loss
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.8 * losses[0]


def test_lora_backward_reaches_only_lora_projectors_and_score_head(tokenizer):
    model, processor = build_model("tiny", TINY, tokenizer=tokenizer, seed=0)
    peft_model = apply_lora(model)
    config = peft_model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 16, 0.05)
    peft_model(**_batch(processor)).loss.backward()
    reached = {name for name, p in peft_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert reached and reached <= trainable
    for name in trainable:
        assert "lora_" in name or ".modules_to_save." in name, name
        if "lora_" in name:
            assert ".vision.tower." in name or ".language_model." in name, name
    groups = {part for part in ("vision.tower", "language_model", "vision.projector", "motion.projector", "score_head")
              if any(part in name for name in reached)}
    # lora_B starts at zero, so the first step reaches the LoRA B matrices of both towers.
    assert groups == {"vision.tower", "language_model", "vision.projector", "motion.projector", "score_head"}
    frozen = [name for name, p in peft_model.named_parameters() if "motion.encoder" in name or "embed_tokens" in name]
    assert frozen and not any(peft_model.get_parameter(name).requires_grad for name in frozen)


def _trained_lora_model(tokenizer):
    model, processor = build_model("tiny", TINY, tokenizer=tokenizer, seed=0)
    _randomise_score_head(model)
    peft_model = apply_lora(model)
    torch.manual_seed(2)
    for name, parameter in peft_model.named_parameters():
        if parameter.requires_grad:
            parameter.data.add_(0.05 * torch.randn_like(parameter))
    return peft_model.eval(), processor


def test_saved_model_reloads_with_identical_logits_and_scores(tiny, tmp_path):
    model, processor = tiny
    batch = _batch(processor)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= names
    loaded = FineVQForConditionalGeneration.from_pretrained(tmp_path).eval()
    loaded_processor = FineVQProcessor.from_pretrained(tmp_path)
    assert loaded_processor.settings == processor.settings
    assert loaded_processor.level_token_ids == processor.level_token_ids
    with torch.no_grad():
        before, after = model(**batch), loaded(**batch)
    assert torch.equal(before.logits, after.logits)
    assert torch.equal(before.scores.nan_to_num(), after.scores.nan_to_num())
    frames = _frames(5)
    first, second = score_dimensions(model, processor, frames), score_dimensions(loaded, loaded_processor, frames)
    for dimension in DIMENSIONS:
        assert first[dimension].score == pytest.approx(second[dimension].score, abs=1e-4)
        assert first[dimension].level_probabilities == pytest.approx(second[dimension].level_probabilities, abs=1e-6)


@pytest.mark.slow
def test_lora_checkpoint_loads_as_base_plus_adapter_and_merged(tokenizer, tmp_path):
    peft_model, processor = _trained_lora_model(tokenizer)
    batch = _batch(processor)
    with torch.no_grad():
        reference = peft_model(**batch)
    save_lora_checkpoint(peft_model, tmp_path / "lora", processor)
    adapter_files = {p.name for p in (tmp_path / "lora" / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= adapter_files
    adapter = load_file(tmp_path / "lora" / "adapter" / "adapter_model.safetensors")
    assert any("lora_A" in k for k in adapter) and any("score_head" in k for k in adapter)
    assert all(t.numel() > 0 for t in adapter.values())

    unmerged = FineVQForConditionalGeneration.from_pretrained(tmp_path / "lora", merge_adapter=False).eval()
    merged = FineVQForConditionalGeneration.from_pretrained(tmp_path / "lora").eval()
    assert isinstance(merged, FineVQForConditionalGeneration)
    with torch.no_grad():
        exact, close = unmerged(**batch), merged(**batch)
    assert torch.equal(exact.logits, reference.logits)
    assert torch.equal(exact.scores.nan_to_num(), reference.scores.nan_to_num())
    torch.testing.assert_close(close.logits, reference.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(close.scores, reference.scores, atol=1e-4, rtol=1e-5, equal_nan=True)

    # An adapter-only folder finds its base through adapter_config.json.
    peft_model.save_pretrained(tmp_path / "adapter_only")
    config_path = tmp_path / "adapter_only" / "adapter_config.json"
    settings = json.loads(config_path.read_text())
    settings["base_model_name_or_path"] = str(tmp_path / "lora")
    config_path.write_text(json.dumps(settings))
    from_adapter = FineVQForConditionalGeneration.from_pretrained(tmp_path / "adapter_only", merge_adapter=False)
    with torch.no_grad():
        assert torch.equal(from_adapter.eval()(**batch).logits, reference.logits)
    assert FineVQProcessor.from_pretrained(tmp_path / "adapter_only").settings == processor.settings

    # A merged folder reloads exactly as the merged model.
    merged_in_memory = merge_lora(peft_model)
    merged_in_memory.save_pretrained(tmp_path / "merged")
    reloaded = FineVQForConditionalGeneration.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, merged_in_memory(**batch).logits)
        torch.testing.assert_close(reloaded(**batch).logits, close.logits, atol=1e-6, rtol=1e-6)


def test_loading_rejects_nan_tensors_pickles_and_mismatched_folders(tiny, tmp_path):
    model, _ = tiny
    model.save_pretrained(tmp_path / "good")
    weights = load_file(tmp_path / "good" / "model.safetensors")
    name = next(k for k in weights if "score_head" in k)
    weights[name][0] = float("nan")
    (tmp_path / "nan").mkdir()
    (tmp_path / "nan" / "config.json").write_text((tmp_path / "good" / "config.json").read_text())
    save_file(weights, tmp_path / "nan" / "model.safetensors")
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        FineVQForConditionalGeneration.from_pretrained(tmp_path / "nan")

    weights[name][0] = float("inf")
    save_file(weights, tmp_path / "nan" / "model.safetensors")
    with pytest.raises(CheckpointError, match="NaN/Inf"):
        FineVQForConditionalGeneration.from_pretrained(tmp_path / "nan")

    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "config.json").write_text((tmp_path / "good" / "config.json").read_text())
    torch.save(model.state_dict(), tmp_path / "pickle" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        FineVQForConditionalGeneration.from_pretrained(tmp_path / "pickle")

    with pytest.raises(CheckpointError, match="does not exist"):
        FineVQForConditionalGeneration.from_pretrained(tmp_path / "missing")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        FineVQForConditionalGeneration.from_pretrained(tmp_path / "corrupt")

    del weights[name]
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text((tmp_path / "good" / "config.json").read_text())
    save_file(weights, tmp_path / "partial" / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing_keys"):
        FineVQForConditionalGeneration.from_pretrained(tmp_path / "partial")


def test_all_dimensions_in_one_batch_equal_one_by_one_scoring(tiny):
    model, processor = tiny
    frames = _frames(7)
    batched = score_dimensions(model, processor, frames)
    separate = score_dimensions(model, processor, frames, shared_prefix=False)
    assert list(batched) == list(DIMENSIONS)
    for dimension in DIMENSIONS:
        one, other = batched[dimension], separate[dimension]
        assert one.score == pytest.approx(other.score, abs=1e-4)  # 1e-6 of the 0-100 score range
        assert one.level_score == pytest.approx(other.level_score, abs=1e-5)
        assert one.level == other.level
        for level in LEVELS:
            assert one.level_probabilities[level] == pytest.approx(other.level_probabilities[level], abs=1e-5)
        assert sum(one.level_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        expected = qalign_score(torch.tensor(list(one.level_probabilities.values())), model.config.score_range)
        assert one.level_score == pytest.approx(float(expected), abs=1e-4)
    # Scores depend on the question: the six dimensions are not one number repeated.
    assert len({round(r.score, 4) for r in batched.values()}) > 1
    # A subset in a different order scores the same as in the full batch.
    subset = score_dimensions(model, processor, frames, dimensions=["Blur", "colour"])
    assert list(subset) == ["blur", "color"]
    assert subset["blur"].score == pytest.approx(batched["blur"].score, abs=1e-4)
    # A different video gets different scores.
    other_video = score_dimensions(model, processor, _frames(8))
    assert other_video["overall"].level_probabilities != batched["overall"].level_probabilities
    with pytest.raises(LabelError, match="sharpness"):
        score_dimensions(model, processor, frames, dimensions=["sharpness"])


def test_candidate_probabilities_match_the_logits_at_the_answer_position(tiny):
    model, processor = tiny
    frames = _frames(9)
    encoded = encode_video(model, processor, frames)
    assert encoded.count == 1 and not encoded.visual.frames.requires_grad
    questions = ["Is there any noise distortion in the video?", "Is there any blur distortion in the video?"]
    answers = candidate_probabilities(model, processor, encoded, questions, ["Yes", "No"])
    assert [sorted(a) for a in answers] == [["No", "Yes"], ["No", "Yes"]]
    for question, answer in zip(questions, answers):
        assert sum(answer.values()) == pytest.approx(1.0, abs=1e-6)
        prompt = processor.question_prompt(question)
        ids = torch.tensor([processor.prefix_ids + processor.suffix_ids(prompt)])
        with torch.no_grad():
            logits = model(input_ids=ids, **processor.video_inputs(frames)).logits[0, -1]
        yes, no = processor.answer_token_ids(("Yes", "No"), prompt)
        expected = torch.softmax(logits[[yes, no]], dim=-1)
        assert answer["Yes"] == pytest.approx(float(expected[0]), abs=1e-5)
    letters = candidate_probabilities(model, processor, encoded, ["Which one? A. x B. y C. z"], [["A", "B", "C"]])
    assert set(letters[0]) == {"A", "B", "C"}
    with pytest.raises(LabelError, match="start with the same token"):
        candidate_probabilities(model, processor, encoded, ["Rate it."], [" good", " goodness"], answer_prefix="It is")


def test_stream_chat_yields_text_pieces_that_join_to_the_greedy_answer(tiny):
    model, processor = tiny
    frames = _frames(3)
    messages = [
        {"role": "user", "content": "How would you rate the blur quality of this video?"},
        {"role": "assistant", "content": "The blur quality of this video is fair."},
        {"role": "user", "content": "Why?"},
    ]
    pieces = list(stream_chat(model, processor, frames, messages, max_new_tokens=12))
    assert len(pieces) >= 2 and all(pieces)
    # The streamed text is what a plain greedy loop over full forward passes produces.
    ids = processor.prefix_ids + processor.suffix_ids(processor.render(messages, add_generation_prompt=True))
    inputs = processor.video_inputs(frames)
    generated = []
    with torch.no_grad():
        for _ in range(12):
            token = int(model(input_ids=torch.tensor([ids + generated]), **inputs).logits[0, -1].argmax())
            if token == processor.tokenizer.eos_token_id:
                break
            generated.append(token)
    assert "".join(pieces) == processor.tokenizer.decode(generated, skip_special_tokens=True)
    sampled = "".join(stream_chat(model, processor, frames, messages, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=4))
    again = "".join(stream_chat(model, processor, frames, messages, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=4))
    assert sampled == again


def test_stream_chat_never_replies_with_a_video_placeholder_token(tiny):
    model, processor = tiny
    frames, messages = _frames(3), [{"role": "user", "content": "Why?"}]
    plain = "".join(stream_chat(model, processor, frames, messages, max_new_tokens=6))
    placeholders = [processor.frame_token_id, processor.motion_token_id]

    def favour_placeholders(module, inputs, logits):
        logits = logits.clone()
        logits[..., placeholders] += 1e4
        return logits

    handle = model.get_output_embeddings().register_forward_hook(favour_placeholders)
    try:
        # Without the mask the first token would be <|frame|>, and feeding it back fails (no frame to embed).
        assert "".join(stream_chat(model, processor, frames, messages, max_new_tokens=6)) == plain
    finally:
        handle.remove()


def test_level_words_yes_no_and_letters_are_single_tokens(tokenizer):
    for word in [f" {level}" for level in LEVELS] + ["Yes", "No", "A", "B", "C", "D", "E"]:
        assert len(tokenizer.encode(word, add_special_tokens=False)) == 1, word


def test_multi_token_level_words_use_their_distinct_first_tokens():
    # A tokenizer that learnt only the words' first syllables splits them into several tokens.
    small = train_tokenizer(["The quality is ex go fa po ba"] * 5, vocab_size=300)
    assert len(small.encode(" excellent", add_special_tokens=False)) > 1
    model, processor = build_model("tiny", TINY, tokenizer=small, seed=0)
    first_tokens = [small.encode(f" {level}", add_special_tokens=False)[0] for level in LEVELS]
    assert processor.level_token_ids == first_tokens and len(set(first_tokens)) == len(LEVELS)
    result = score_dimensions(model.eval(), processor, _frames(2), dimensions=["overall"])["overall"]
    assert sum(result.level_probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    # A tokenizer that knows no merges starts every level word with the same space token: refused.
    bytes_only = train_tokenizer(["ab"], vocab_size=260)
    with pytest.raises(CheckpointError, match="cannot score level words"):
        build_model("tiny", TINY, tokenizer=bytes_only)


def test_placeholder_mismatch_and_missing_fragments_are_clear_errors(tiny):
    model, processor = tiny
    batch = _batch(processor)
    ids = batch["input_ids"].clone()
    ids[0, (ids[0] == processor.frame_token_id).nonzero()[0]] = processor.motion_token_id
    with pytest.raises(ConfigError, match="placeholders per row"):
        model(input_ids=ids, pixel_values=batch["pixel_values"], motion_values=batch["motion_values"],
              fragment_values=batch["fragment_values"], frame_statistics=batch["frame_statistics"],
              clip_statistics=batch["clip_statistics"])
    with pytest.raises(ConfigError, match="fragment_values"):
        model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"], motion_values=batch["motion_values"])


def test_score_head_starts_inside_its_range_and_is_not_clamped(tokenizer):
    model, _ = build_model("tiny", {**TINY, "model.score_range": [-10.0, 30.0]}, tokenizer=tokenizer, seed=0)
    hidden = torch.zeros(2, model.config.text_config.hidden_size)
    assert all(-10.0 < score < 30.0 for score in model.score_head(hidden).tolist())
    with torch.no_grad():
        model.score_head.mlp[-1].bias.fill_(5.0)
    assert model.score_head(hidden)[0].item() > 30.0
    assert not math.isnan(model.score_head(hidden)[0].item())


def test_a_batch_of_videos_scores_like_each_video_alone(tiny):
    model, processor = tiny
    videos = [_frames(11), _frames(12, height=64, width=40), _frames(13)]
    together = score_videos(model, processor, videos, dimensions=["noise", "overall"])
    assert len(together) == 3
    for video, scores in zip(videos, together):
        alone = score_dimensions(model, processor, video, dimensions=["noise", "overall"])
        assert list(scores) == ["noise", "overall"]
        for dimension in alone:
            assert scores[dimension].score == pytest.approx(alone[dimension].score, abs=1e-4)
            assert scores[dimension].level_probabilities == pytest.approx(alone[dimension].level_probabilities, abs=1e-5)
    encoded = encode_videos(model, processor, videos[:2])
    answers = candidate_probabilities(model, processor, encoded, ["Is there any noise distortion in the video?"], ["Yes", "No"])
    assert len(answers) == 2 and answers[0] != answers[1]
    with pytest.raises(ConfigError, match="holds 2"):
        score_dimensions(model, processor, encoded)


def test_rows_without_answer_tokens_give_a_zero_lm_loss(tiny):
    model, processor = tiny
    batch = _batch(processor)
    batch["labels"][:] = -100
    for reduction in ("token", "row"):
        model.config.lm_loss_reduction = reduction
        out = model(**batch)
        assert out.lm_loss.item() == 0.0 and torch.isfinite(out.loss)
    model.config.lm_loss_reduction = "token"


def test_rows_sharing_a_video_encode_it_once_with_the_same_loss_and_gradients(tiny):
    model, processor = tiny
    rows = [SCORE_ROW, YESNO_ROW, SCORE_ROW]
    features = [{**processor.encode_row(row, video=_frames(seed)), "video": f"clip{seed}.mp4"}
                for row, seed in zip(rows, (0, 0, 1))]
    shared = processor.collate(features)
    apart = processor.collate([{k: v for k, v in f.items() if k != "video"} for f in features])
    assert shared["pixel_values"].shape[0] == 2 and apart["pixel_values"].shape[0] == 3
    assert shared["video_index"].tolist() == [0, 0, 1] and "video_index" not in apart
    gradients = []
    for batch in (shared, apart):
        model.zero_grad()
        out = model(**batch)
        out.loss.backward()
        gradients.append((out.loss.detach(), out.scores.detach(),
                          model.vision.projector.linear_1.weight.grad.clone()))
    model.zero_grad()
    torch.testing.assert_close(gradients[0][0], gradients[1][0])
    torch.testing.assert_close(gradients[0][1], gradients[1][1], equal_nan=True)
    torch.testing.assert_close(gradients[0][2], gradients[1][2])
    assert gradients[0][2].abs().sum() > 0
