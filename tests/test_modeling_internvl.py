"""The `internvl` backbone and `videomae` motion encoder: the paper-scale preset built at tiny size,
and a model assembled from tiny local InternVL and VideoMAE checkpoints that keeps their weights."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLVisionModel,
    PreTrainedTokenizerFast,
    VideoMAEConfig,
    VideoMAEModel,
)

from finevq.errors import CheckpointError
from finevq.modeling import (
    FineVQConfig,
    FineVQForConditionalGeneration,
    FineVQProcessor,
    apply_lora,
    build_from_bases,
    build_model,
    load_preset,
    score_dimensions,
    train_tokenizer,
)
from finevq.modeling.tokenizer import FRAME_TOKEN, MOTION_TOKEN
from finevq.taxonomy import DIMENSIONS

# The paper's structure at tiny size: only widths, depths and pixel sizes are overridden.
PAPER_AT_TINY_SIZE = {
    "model.vision_config.hidden_size": 32,
    "model.vision_config.intermediate_size": 64,
    "model.vision_config.num_hidden_layers": 1,
    "model.vision_config.num_attention_heads": 2,
    "model.vision_config.image_size": 28,
    "model.vision_config.patch_size": 7,
    "model.text_config.hidden_size": 64,
    "model.text_config.intermediate_size": 128,
    "model.text_config.num_hidden_layers": 1,
    "model.text_config.num_attention_heads": 4,
    "model.text_config.num_key_value_heads": 2,
    "model.motion_config.hidden_size": 32,
    "model.motion_config.intermediate_size": 64,
    "model.motion_config.num_hidden_layers": 1,
    "model.motion_config.num_attention_heads": 2,
    "model.motion_config.image_size": 32,
    "model.motion_config.num_frames": 4,
    "model.score_head_dims": [32, 16, 8, 4],
}


def _frames(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (16, 40, 56, 3), dtype=np.uint8)


def test_paper_preset_has_the_papers_structure():
    preset = load_preset("internvl_8b")
    config = FineVQConfig(**preset["model"])
    assert config.backbone == "internvl" and config.motion_encoder == "videomae"
    assert config.tokens_per_frame == 256 and config.image_size == 448
    assert config.num_motion_tokens == 1 and not config.use_fragments
    assert (config.lora_rank, config.lora_alpha, config.lora_dropout) == (8, 16, 0.05)
    assert config.text_config.hidden_size == 3584 and config.vision_config.hidden_size == 1024
    assert list(config.score_head_dims) == [1024, 256, 64, 16]
    assert preset["processor"]["num_frames"] == 8


def test_paper_preset_builds_at_tiny_size_and_trains_lora_on_both_towers():
    model, processor = build_model("internvl_8b", PAPER_AT_TINY_SIZE, seed=0)
    assert isinstance(model.vision.tower, InternVLVisionModel)
    assert isinstance(model.motion.encoder, VideoMAEModel)
    assert processor.settings.num_frames == 8 and processor.settings.num_motion_frames == 4
    assert processor.settings.tokens_per_frame == 4  # (28 / 7)^2 patches, pixel-shuffled by 2x2
    assert processor.video_prompt.count("Motion Feature: ") == 1
    row = {
        "video": _frames(),
        "messages": [
            {"role": "user", "content": "How would you rate the overall quality of this video?"},
            {"role": "assistant", "content": "The overall quality of this video is bad."},
        ],
        "question_type": "score",
        "mos": 12.0,
    }
    batch = processor.collate([processor.encode_row(row)])
    peft_model = apply_lora(model)
    out = peft_model(**batch)
    assert out.lm_loss > 0 and out.score_loss > 0
    out.loss.backward()
    reached = [n for n, p in peft_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    vision_lora = {n.split(".")[-4] for n in reached if "lora_B" in n and ".vision.tower." in n}
    text_lora = {n.split(".")[-4] for n in reached if "lora_B" in n and ".language_model." in n}
    assert vision_lora == {"q_proj", "k_proj", "v_proj", "projection_layer", "fc1", "fc2"}
    assert text_lora == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("motion.encoder" in n and "modules_to_save" not in n for n in reached)


def _base_tokenizer():
    """A tokenizer like InternVL's: a chat template, but none of FineVQ's placeholder tokens."""
    data = json.loads(train_tokenizer()._tokenizer.to_str())
    for token in data["added_tokens"]:
        token["content"] = {FRAME_TOKEN: "<IMG_CONTEXT>", MOTION_TOKEN: "<video>"}.get(token["content"], token["content"])
    data["model"]["vocab"] = {
        {FRAME_TOKEN: "<IMG_CONTEXT>", MOTION_TOKEN: "<video>"}.get(k, k): v for k, v in data["model"]["vocab"].items()
    }
    from tokenizers import Tokenizer

    original = train_tokenizer()
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        pad_token=original.pad_token,
        eos_token=original.eos_token,
        chat_template=original.chat_template,
    )


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bases")
    tokenizer = _base_tokenizer()
    config = InternVLConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 28, "patch_size": 7},
        text_config={"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tokenizer)},
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=4,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    internvl = InternVLForConditionalGeneration(config).eval()
    internvl.save_pretrained(folder / "internvl")
    tokenizer.save_pretrained(folder / "internvl")
    videomae = VideoMAEModel(VideoMAEConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=16, num_frames=4, tubelet_size=2,
    )).eval()
    videomae.save_pretrained(folder / "videomae")
    return folder, internvl, videomae


def test_model_from_local_internvl_and_videomae_keeps_their_weights(bases):
    folder, internvl, videomae = bases
    model, processor = build_from_bases(folder / "internvl", folder / "videomae",
                                        overrides={"model.score_head_dims": [16], "processor.num_frames": 2})
    model.eval()
    images = torch.randn(3, 3, 28, 28)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    clip = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        # Vision tower + pixel-shuffle + projector give exactly InternVL's own image features.
        expected = internvl.model.get_image_features(pixel_values=images).pooler_output
        assert torch.equal(model.vision(images), expected)
        hidden = model.language_model.model(input_ids=ids).last_hidden_state
        assert torch.equal(hidden, internvl.model.language_model(input_ids=ids).last_hidden_state)
        base_vocab = internvl.config.text_config.vocab_size
        assert torch.equal(model.get_output_embeddings().weight[:base_vocab], internvl.lm_head.weight)
        assert torch.equal(
            model.motion.encoder(pixel_values=clip).last_hidden_state, videomae(pixel_values=clip).last_hidden_state
        )
    # The placeholder tokens were added to InternVL's tokenizer and the embeddings grew to fit them.
    assert processor.frame_token_id >= internvl.config.text_config.vocab_size
    assert model.get_input_embeddings().weight.shape[0] == len(processor.tokenizer)
    assert model.language_model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert processor.settings.tokens_per_frame == 4 and processor.settings.num_motion_frames == 4

    frames = _frames(1)
    batched = score_dimensions(model, processor, frames)
    separate = score_dimensions(model, processor, frames, shared_prefix=False)
    for dimension in DIMENSIONS:
        assert batched[dimension].score == pytest.approx(separate[dimension].score, abs=1e-5)
        assert batched[dimension].level_probabilities == pytest.approx(separate[dimension].level_probabilities, abs=1e-5)


def test_internvl_model_round_trips_through_a_folder(bases, tmp_path):
    folder, _, _ = bases
    model, processor = build_from_bases(folder / "internvl", folder / "videomae",
                                        overrides={"model.score_head_dims": [16], "processor.num_frames": 2})
    model.eval().save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = FineVQForConditionalGeneration.from_pretrained(tmp_path).eval()
    loaded_processor = FineVQProcessor.from_pretrained(tmp_path)
    row = {"messages": [{"role": "user", "content": "Is there any noise distortion in the video?"},
                        {"role": "assistant", "content": "Yes"}]}
    batch = processor.collate([processor.encode_row(row, video=_frames(2))])
    assert torch.equal(batch["input_ids"], loaded_processor.collate([loaded_processor.encode_row(row, _frames(2))])["input_ids"])
    with torch.no_grad():
        # VideoMAE recomputes its sinusoidal position table on load (a non-persistent buffer), which
        # moves the motion token by ~1e-9; everything saved is reproduced exactly.
        torch.testing.assert_close(model(**batch).logits, loaded(**batch).logits, atol=1e-5, rtol=1e-5)
    assert all(torch.equal(tensor, loaded.state_dict()[name]) for name, tensor in model.state_dict().items())


def test_bad_base_checkpoints_are_refused(bases, tmp_path):
    folder, _, _ = bases
    with pytest.raises(CheckpointError, match="not an InternVL"):
        build_from_bases(folder / "videomae")
    broken = tmp_path / "internvl"
    broken.mkdir()
    for path in (folder / "internvl").iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    weights = load_file(broken / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, broken / "model.safetensors")
    with pytest.raises(CheckpointError, match="NaN"):
        build_from_bases(broken)


def test_videomae_gives_one_token_per_temporal_segment():
    model, _ = build_model("internvl_8b", {**PAPER_AT_TINY_SIZE, "model.num_motion_tokens": 2}, seed=0)
    clip = torch.randn(2, 4, 3, 32, 32)
    tokens = model.motion(clip)
    assert tokens.shape == (2, 2, 64)
    assert not torch.allclose(tokens[:, 0], tokens[:, 1])
    assert not torch.allclose(tokens[0], tokens[1])


def test_unknown_presets_overrides_and_config_values_are_clear_errors():
    from finevq.errors import ConfigError

    with pytest.raises(ConfigError, match="shipped presets: internvl_8b, official, tiny"):
        load_preset("llava")
    with pytest.raises(ConfigError, match="no section 'vision'"):
        load_preset("tiny", {"model.vision.hidden_size": 8})
    with pytest.raises(ConfigError, match="'backbone'"):
        FineVQConfig(backbone="resnet")
    with pytest.raises(ConfigError, match="internvl_vision"):
        FineVQConfig(backbone="internvl")
    with pytest.raises(ConfigError, match="score_range"):
        FineVQConfig(score_range=[5.0, 5.0])
    with pytest.raises(ConfigError, match="motion_config"):
        FineVQConfig(motion_encoder="videomae")
