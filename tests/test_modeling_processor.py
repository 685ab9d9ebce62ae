"""The processor: pixel tensors from real video files and frames, the prompt layout in the chat
template, training encodings (labels on answers only, the score position), collation, settings files."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from videos import write_video

from finevq.errors import CheckpointError, ConfigError, VideoError
from finevq.modeling import FineVQProcessor, ProcessorSettings, build_model, train_tokenizer
from finevq.modeling.processor import IGNORE_INDEX, frames_to_tensor
from finevq.video import open_video, probe

SETTINGS = ProcessorSettings(
    num_frames=3, image_size=32, use_fragments=True, fragment_grid=4, fragment_patch=8,
    num_motion_frames=6, motion_size=16, tokens_per_frame=5, num_motion_tokens=2, max_length=512,
)


@pytest.fixture(scope="module")
def processor():
    return FineVQProcessor(train_tokenizer(), SETTINGS)


def test_video_file_and_its_decoded_frames_give_the_same_tensors(processor, tmp_path):
    # Frames in memory are sampled at the exact segment centres and resized once: a file gives the
    # same tensors under the exact rule when its frames are no larger than the model's sizes.
    exact = FineVQProcessor(processor.tokenizer, dataclasses.replace(SETTINGS, seek="exact"))
    path = write_video(tmp_path / "clip.mp4", num_frames=30, width=24, height=16)
    from_path = exact.video_tensors(str(path))
    assert from_path["pixel_values"].shape == (3, 3, 32, 32)
    assert from_path["fragment_values"].shape == (3, 3, 32, 32)
    assert from_path["motion_values"].shape == (6, 3, 16, 16)
    with open_video(path, backend="pyav") as reader:
        frames = reader.read(list(range(probe(path).num_frames)))
    from_frames = exact.video_tensors(frames)
    for name, tensor in from_path.items():
        assert torch.equal(tensor, from_frames[name]), name
    # Different keyframes: the first and last slots hold different pictures.
    assert not torch.equal(from_path["pixel_values"][0], from_path["pixel_values"][-1])
    batched = processor.video_inputs(path)
    assert batched["pixel_values"].shape == (1, 3, 3, 32, 32)


def test_frames_are_resized_and_normalised_per_channel():
    frames = np.zeros((2, 10, 30, 3), dtype=np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 0, 128
    tensor = frames_to_tensor(frames, 8, [0.5, 0.5, 0.5], [0.25, 0.5, 1.0])
    assert tensor.shape == (2, 3, 8, 8)
    torch.testing.assert_close(tensor[:, 0], torch.full((2, 8, 8), 2.0))
    torch.testing.assert_close(tensor[:, 1], torch.full((2, 8, 8), -1.0))
    torch.testing.assert_close(tensor[:, 2], torch.full((2, 8, 8), 128 / 255 - 0.5))


def test_bad_videos_and_frames_raise_clear_errors(processor, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="broken.mp4"):
        processor.video_tensors(str(broken))
    with pytest.raises(ConfigError, match="uint8"):
        processor.video_tensors(np.zeros((4, 8, 8), dtype=np.float32))


def test_prompt_has_labelled_frame_slots_then_the_motion_slot_then_the_question(processor):
    text = processor.render([{"role": "user", "content": "How is the blur?"}], add_generation_prompt=True)
    frame, motion = SETTINGS.frame_token, SETTINGS.motion_token
    expected_user = (
        f"Frame1: {frame * 5}\nFrame2: {frame * 5}\nFrame3: {frame * 5}\nMotion Feature: {motion * 2}\nHow is the blur?"
    )
    assert text == f"<|im_start|>user\n{expected_user}<|im_end|>\n<|im_start|>assistant\n"
    ids = processor.prefix_ids + processor.suffix_ids(text)
    assert ids == processor.tokenizer.encode(text, add_special_tokens=False)
    assert ids.count(processor.frame_token_id) == 15 and ids.count(processor.motion_token_id) == 2
    # Only the first user turn carries the video.
    history = [
        {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
    ]
    assert processor.render(history).count("Frame1:") == 1
    score_prompt = processor.score_prompt("noise")
    assert score_prompt.endswith("assistant\nThe noise quality of this video is")
    assert "How would you rate the noise quality of this video?" in score_prompt


def test_training_encoding_labels_only_assistant_turns_and_finds_the_score_position(processor):
    messages = [
        {"role": "user", "content": "How would you rate the color quality of this video?"},
        {"role": "assistant", "content": "The color quality of this video is excellent."},
        {"role": "user", "content": "And is it good enough to share?"},
        {"role": "assistant", "content": "Its colour is good: yes."},
    ]
    encoded = processor.encode_conversation(messages, question_type="score", mos=88.0)
    ids, labels = encoded["input_ids"], encoded["labels"]
    decode = processor.tokenizer.decode
    labelled = decode(ids[labels != IGNORE_INDEX])
    assert labelled == "The color quality of this video is excellent.<|im_end|>\nIts colour is good: yes.<|im_end|>\n"
    assert torch.equal(labels[labels != IGNORE_INDEX], ids[labels != IGNORE_INDEX])
    # The score position predicts the level word of the last answer.
    position = encoded["score_position"]
    assert decode(ids[position + 1: position + 2]) == " good"
    assert encoded["mos"] == 88.0
    first_turn = processor.encode_conversation(messages[:2], question_type="score", mos=88.0)
    assert decode(first_turn["input_ids"][first_turn["score_position"] + 1:][:1]) == " excellent"
    # Non-score rows have no score position and no MOS, even when a MOS is present.
    other = processor.encode_conversation(messages[:2], question_type="describe", mos=12.0)
    assert other["score_position"] == -1 and np.isnan(other["mos"])
    with pytest.raises(ConfigError, match="no level word"):
        processor.encode_conversation(
            [{"role": "user", "content": "Rate it."}, {"role": "assistant", "content": "Hard to say."}], "score", 50.0
        )


def test_long_rows_are_cut_at_max_length_without_losing_the_video(processor):
    long_answer = "blur " * 600
    messages = [{"role": "user", "content": "Describe."}, {"role": "assistant", "content": long_answer}]
    encoded = processor.encode_conversation(messages)
    assert len(encoded["input_ids"]) == SETTINGS.max_length
    assert encoded["input_ids"].tolist()[: len(processor.prefix_ids)] == processor.prefix_ids
    tight = FineVQProcessor(processor.tokenizer, ProcessorSettings(**{**SETTINGS.__dict__, "max_length": 8}))
    with pytest.raises(ConfigError, match="max_length 8"):
        tight.encode_conversation(messages)


def test_rows_collate_into_a_padded_batch(tmp_path):
    model, processor = build_model(
        "tiny",
        {"model.vision_config.image_size": 32, "model.vision_config.patch_size": 8,
         "model.vision_config.num_hidden_layers": 1,
         "model.text_config.num_hidden_layers": 1, "processor.num_frames": 2, "processor.fragment_patch": 8,
         "processor.num_motion_frames": 4, "processor.motion_size": 16},
    )
    video = write_video(tmp_path / "row.mp4", num_frames=12, width=64, height=48)
    rows = [
        {"video": str(video), "question_type": "score", "dimension": "blur", "mos": 42.0, "messages": [
            {"role": "user", "content": "How would you rate the blur quality of this video?"},
            {"role": "assistant", "content": "The blur quality of this video is fair."}]},
        {"video": {"path": str(video), "bytes": None}, "question_type": "yes_no", "dimension": None, "mos": None,
         "conversations": [
            {"role": "user", "content": "Is there any noise distortion in the video?"},
            {"role": "assistant", "content": "No"}]},
    ]
    features = [processor.encode_row(row) for row in rows]
    batch = processor.collate(features)
    lengths = [len(f["input_ids"]) for f in features]
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    short = int(np.argmin(lengths))
    assert (batch["labels"][short, lengths[short]:] == IGNORE_INDEX).all()
    assert batch["score_positions"][0] > 0 and batch["score_positions"][1] == -1
    assert batch["mos"][0] == 42.0 and torch.isnan(batch["mos"][1])
    assert batch["pixel_values"].shape == (2, 2, 3, 32, 32) and batch["fragment_values"].shape == (2, 2, 3, 32, 32)
    out = model(**batch)
    assert torch.isfinite(out.loss) and out.scores.shape == (2,)


def test_settings_round_trip_and_reject_unknown_keys(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = FineVQProcessor.from_pretrained(tmp_path)
    assert loaded.settings == SETTINGS
    assert loaded.tokenizer.encode("The blur quality is fair.") == processor.tokenizer.encode("The blur quality is fair.")
    assert loaded.render([{"role": "user", "content": "x"}]) == processor.render([{"role": "user", "content": "x"}])
    values = json.loads((tmp_path / "processor_config.json").read_text())
    (tmp_path / "processor_config.json").write_text(json.dumps({**values, "frames_per_second": 2}))
    with pytest.raises(ConfigError, match="frames_per_second"):
        FineVQProcessor.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="processor_config.json"):
        FineVQProcessor.from_pretrained(tmp_path / "nowhere")


def test_inference_score_prompt_is_the_training_prefix_of_the_first_template(processor):
    from finevq.data import instructions

    for dimension in ("noise", "overall"):
        question = instructions.score_question(dimension, 0)
        answer = instructions.SCORE_ANSWERS[0].format(aspect=instructions.aspect(dimension), level="fair")
        assert processor.settings.score_question.format(dimension=dimension) == question
        encoded = processor.encode_conversation(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], "score", 50.0
        )
        position = encoded["score_position"]
        # The score head reads the same position in training and at inference.
        inference_ids = processor.prefix_ids + processor.suffix_ids(processor.score_prompt(dimension))
        assert encoded["input_ids"][: position + 1].tolist() == inference_ids
