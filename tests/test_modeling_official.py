"""Converting the released FineVQ checkpoints: a tiny random checkpoint in the official layout is written
here (no hub), converted, and checked against direct computations with its packed weights, end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import sentencepiece
import torch
from official_checkpoint import (
    CHAT_TOKENS,
    LLM,
    SLOWFAST_WIDTH,
    VISION,
    _slowfast_shapes,
    write_official_checkpoint,
)
from safetensors.torch import load_file
from videos import write_video

from finevq.cli import main as cli_main
from finevq.errors import CheckpointError
from finevq.inference import FineVQ
from finevq.modeling import FineVQForConditionalGeneration, FineVQProcessor, score_dimensions, score_videos
from finevq.modeling.official import convert_official, official_tokenizer
from finevq.modeling.scoring import candidate_probabilities
from finevq.modeling.slowfast import SlowFastR50
from finevq.video import official_keyframe_indices


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return write_official_checkpoint(tmp_path_factory.mktemp("official") / "FineVQ_score")


@pytest.fixture(scope="module")
def converted(official, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "model"
    convert_official(official, out)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official_clips")
    return [write_video(folder / "a.mp4", num_frames=40, width=96, height=64),
            write_video(folder / "b.mp4", num_frames=20, width=64, height=96, pattern="noise", seed=3)]


def _official_tensor(folder: Path, name: str) -> torch.Tensor:
    for shard in sorted(folder.glob("*.safetensors")):
        tensors = load_file(str(shard))
        if name in tensors:
            return tensors[name]
    raise KeyError(name)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def internlm2_attention(x, wqkv, wo, heads, kv_heads, theta):
    """InternLM2's causal self-attention computed directly from the packed wqkv (per KV group: its
    query heads, then k, then v) with rotary embeddings, as its remote code does."""
    length, per_group = x.shape[1], heads // kv_heads
    head_dim = wqkv.shape[0] // (heads + 2 * kv_heads)
    qkv = (x @ wqkv.T).view(1, length, kv_heads, per_group + 2, head_dim)
    q = qkv[..., :per_group, :].reshape(1, length, heads, head_dim)
    k, v = qkv[..., per_group, :], qkv[..., per_group + 1, :]
    inverse = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.arange(length).float()[:, None] * inverse[None]
    cos, sin = torch.cat([angles, angles], -1).cos()[None, :, None], torch.cat([angles, angles], -1).sin()[None, :, None]
    q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
    k, v = k.repeat_interleave(per_group, dim=2), v.repeat_interleave(per_group, dim=2)
    scores = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)) / math.sqrt(head_dim)
    scores = scores.masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), float("-inf"))
    out = scores.softmax(-1) @ v.transpose(1, 2)
    return out.transpose(1, 2).reshape(1, length, heads * head_dim) @ wo.T


def test_packed_wqkv_split_gives_the_attention_of_the_packed_weights(official, converted):
    model = FineVQForConditionalGeneration.from_pretrained(converted).eval()
    wqkv = _official_tensor(official, "language_model.model.layers.1.attention.wqkv.weight")
    wo = _official_tensor(official, "language_model.model.layers.1.attention.wo.weight")
    x = torch.randn(1, 7, LLM["hidden_size"], generator=torch.Generator().manual_seed(0))
    expected = internlm2_attention(x, wqkv, wo, LLM["num_attention_heads"], LLM["num_key_value_heads"], 1e6)
    decoder = model.language_model.model
    position_embeddings = decoder.rotary_emb(x, torch.arange(7)[None])
    causal = torch.full((7, 7), float("-inf")).triu(1)[None, None]
    actual, _ = decoder.layers[1].self_attn(x, position_embeddings=position_embeddings, attention_mask=causal)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_vision_qkv_split_gives_the_attention_of_the_packed_weights(official, converted):
    model = FineVQForConditionalGeneration.from_pretrained(converted).eval()
    qkv_w = _official_tensor(official, "vision_model.encoder.layers.0.attn.qkv.weight")
    qkv_b = _official_tensor(official, "vision_model.encoder.layers.0.attn.qkv.bias")
    proj_w = _official_tensor(official, "vision_model.encoder.layers.0.attn.proj.weight")
    proj_b = _official_tensor(official, "vision_model.encoder.layers.0.attn.proj.bias")
    heads, width = VISION["num_attention_heads"], VISION["hidden_size"]
    x = torch.randn(2, 17, width, generator=torch.Generator().manual_seed(1))
    q, k, v = (x @ qkv_w.T + qkv_b).view(2, 17, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    attended = ((q @ k.transpose(-1, -2)) * (width // heads) ** -0.5).softmax(-1) @ v
    expected = attended.transpose(1, 2).reshape(2, 17, width) @ proj_w.T + proj_b
    actual = model.vision.tower.encoder.layer[0].attention(x)[0]
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_slowfast_has_pytorchvideo_names_and_r50_widths():
    tiny = SlowFastR50(SLOWFAST_WIDTH, (1, 1, 1, 1))
    ours = {f"slowfast_model.feature_extraction.{name[len('blocks.'):]}": tuple(t.shape)
            for name, t in tiny.state_dict().items()}
    assert ours == _slowfast_shapes(SLOWFAST_WIDTH)
    with torch.device("meta"):
        r50 = SlowFastR50()
    assert r50.out_channels == 2304  # 2048 slow + 256 fast, the official motion_mlp's LayerNorm width
    assert len(r50.blocks[4].multipathway_blocks[0].res_blocks) == 3
    slow, fast = tiny.eval()(torch.randn(1, 3, 32, 64, 64))
    assert slow.shape[:3] == (1, 32 * SLOWFAST_WIDTH, 8) and fast.shape[:3] == (1, 4 * SLOWFAST_WIDTH, 32)


def test_tokenizer_encodes_as_the_sentencepiece_model_with_the_official_chat_template(official):
    tokenizer = official_tokenizer(official, "SYSTEM")
    reference = sentencepiece.SentencePieceProcessor(model_file=str(official / "tokenizer.model"))
    for text in ("The quality of this video is good.", "Frame1: x\nMotion Feature: y\nHow ñ 字 ?", "  two  spaces"):
        assert tokenizer.encode(text, add_special_tokens=False) == reference.encode(text)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered == "<s><|im_start|>system\nSYSTEM<|im_end|><|im_start|>user\nHi<|im_end|><|im_start|>assistant\n"
    # The slow tokenizer the official code used splits at special tokens, then encodes each piece.
    pieces = ["<s>", "<|im_start|>", "system\nSYSTEM", "<|im_end|>", "<|im_start|>", "user\nHi", "<|im_end|>",
              "<|im_start|>", "assistant\n"]
    special = {"<s>": 1, **{token: reference.piece_to_id(token) for token in CHAT_TOKENS}}
    expected = [i for piece in pieces for i in ([special[piece]] if piece in special else reference.encode(piece))]
    assert tokenizer.encode(rendered, add_special_tokens=False) == expected
    context = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert tokenizer.encode("<img><IMG_CONTEXT></img>", add_special_tokens=False)[1] == context
    assert context == reference.get_piece_size() + 2 and tokenizer.eos_token == "<|im_end|>"


def test_converted_folder_reproduces_the_official_prompt_sampling_and_readout(converted, clips):
    processor = FineVQProcessor.from_pretrained(converted)
    s = processor.settings
    assert (s.seek, s.num_frames, s.num_motion_frames, s.resize_filter, s.image_size) == ("official", 8, 0, "bicubic", 28)
    prompt = processor.score_prompt("overall")
    frame_slot = "<img>" + "<IMG_CONTEXT>" * 4 + "</img>"
    assert "Frame1: " + frame_slot + "\nFrame2: " in prompt
    assert "Frame8: " + frame_slot + "\nMotion Feature: <img><IMG_CONTEXT></img>\nHow would you rate" in prompt
    assert prompt.endswith("<|im_start|>assistant\nThe quality of this video is good.<|im_end|>")
    tokens = processor.tokenizer.convert_ids_to_tokens(processor.tokenizer.encode(prompt, add_special_tokens=False))
    # Read 4 from the end: the position whose output predicts the level word.
    assert tokens[-4].endswith("is") and "".join(tokens[-3:-1]).replace("▁", "") == "good." and tokens[-1] == "<|im_end|>"
    assert official_keyframe_indices(8, 0, 40) == [2, 7, 12, 17, 22, 26, 31, 36]
    model = FineVQ.from_pretrained(converted)
    assessment = model.assess(str(clips[0]), diagnose=False)
    assert assessment.frames == [2, 7, 12, 17, 22, 26, 31, 36]
    assert assessment.motion_frames == list(range(40))  # every frame, as the official SlowFast reads them
    short = model.assess(str(clips[1]), diagnose=False)
    assert len(short.motion_frames) == 32 and sorted(set(short.motion_frames)) == list(range(20))


def test_converted_scores_and_qa_logits_are_finite_deterministic_and_video_dependent(converted, clips):
    first, second = (FineVQForConditionalGeneration.from_pretrained(converted).eval() for _ in range(2))
    processor = FineVQProcessor.from_pretrained(converted)
    scores = [[r["overall"].score for r in score_videos(m, processor, [str(c) for c in clips], ["overall"])]
              for m in (first, second)]
    assert scores[0] == scores[1] and all(math.isfinite(x) and 0 <= x <= 100 for x in scores[0])
    assert abs(scores[0][0] - scores[0][1]) > 1e-4  # the score reads the video
    alone = score_dimensions(first, processor, str(clips[1]), ["overall"], shared_prefix=False)["overall"].score
    assert alone == pytest.approx(scores[0][1], abs=1e-4)  # batched (different motion lengths) = one by one
    answers = [candidate_probabilities(m, processor, str(clips[0]), ["Is there any noise distortion in this video?"],
                                       ["Yes", "No"])[0] for m in (first, second)]
    assert answers[0] == answers[1] and sum(answers[0].values()) == pytest.approx(1.0)
    card = (converted / "README.md").read_text()
    assert "All 300 tensors are finite" in card and "`mlpscore.ln1.weight`" in card


def _with_nan(name: str, count: int = 3):
    def hook(state):
        state[name].view(-1)[:count] = float("nan")
    return hook


def test_nan_tensors_are_found_named_and_refused_unless_repaired(tmp_path, clips):
    source = write_official_checkpoint(tmp_path / "nan_unused", state_hook=_with_nan("mlpscore.ln1.weight"))
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match=r"mlpscore\.ln1\.weight: 3 of 64 values \(unused\).*Nothing was written"):
        convert_official(source, out)
    assert not out.exists()
    report = convert_official(source, out, repair="drop-unused")
    assert report.repaired == ["dropped mlpscore.ln1.weight"]
    assert "| `mlpscore.ln1.weight` | 3 / 64 | no |" in (out / "README.md").read_text()
    assert json.loads((out / "conversion.json").read_text())["non_finite"][0]["used"] is False

    used = "mlpscore.fc2.weight"
    source = write_official_checkpoint(tmp_path / "nan_used", state_hook=_with_nan(used, 5))
    with pytest.raises(CheckpointError, match=r"drop-unused cannot fix.*mlpscore\.fc2\.weight: 5 of \d+ values \(read by inference\)"):
        convert_official(source, tmp_path / "refused", repair="drop-unused")
    report = convert_official(source, tmp_path / "zeroed", repair="zero")
    assert report.repaired == [f"zeroed 5 value(s) of {used}"]
    score = FineVQ.from_pretrained(tmp_path / "zeroed").assess(str(clips[0]), ["overall"], diagnose=False)
    assert math.isfinite(score.ratings["overall"].score)


def _unmerge(names: list[str], seed: int = 5):
    """Store each named weight W as PEFT does before merging: base W - 2 B A, lora_A = A, lora_B = B."""
    def hook(state):
        generator = torch.Generator().manual_seed(seed)
        for name in names:
            weight = state.pop(name)
            a = torch.randn(4, weight.shape[1], generator=generator) * 0.1
            b = torch.randn(weight.shape[0], 4, generator=generator) * 0.1
            module = name.removesuffix(".weight")
            top, rest = module.split(".", 1)
            wrapped = f"{top}.base_model.model.{rest}"
            state[f"{wrapped}.base_layer.weight"] = weight - 2.0 * b @ a
            state[f"{wrapped}.lora_A.default.weight"] = a
            state[f"{wrapped}.lora_B.default.weight"] = b
        for name in [n for n in state if n.startswith(("language_model.", "vision_model.")) and "base_model" not in n]:
            top, rest = name.split(".", 1)
            state[f"{top}.base_model.model.{rest}"] = state.pop(name)
    return hook


def test_an_unmerged_lora_merges_to_the_same_outputs(tmp_path, official, converted, clips):
    names = ["language_model.model.layers.0.attention.wqkv.weight", "language_model.model.layers.1.feed_forward.w2.weight",
             "vision_model.encoder.layers.1.attn.qkv.weight"]
    source = write_official_checkpoint(tmp_path / "lora", state_hook=_unmerge(names))
    report = convert_official(source, tmp_path / "merged")
    assert report.lora_pairs_merged == 3
    expected = FineVQ.from_pretrained(converted).assess(str(clips[0]), diagnose=False).ratings["overall"].score
    actual = FineVQ.from_pretrained(tmp_path / "merged").assess(str(clips[0]), diagnose=False).ratings["overall"].score
    assert actual == pytest.approx(expected, abs=1e-3)


def test_wrong_or_truncated_checkpoints_get_clear_errors(tmp_path, official):
    def drop(state):
        del state["language_model.model.layers.1.feed_forward.w2.weight"]

    source = write_official_checkpoint(tmp_path / "dropped", state_hook=drop)
    with pytest.raises(CheckpointError, match=r"does not fit its config\.json.*1 missing.*layers\.1\.mlp\.down_proj\.weight"):
        convert_official(source, tmp_path / "x")
    shard = sorted(source.glob("*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])
    with pytest.raises(CheckpointError, match=r"model-00001-of-00002\.safetensors.* not a readable safetensors file"):
        convert_official(source, tmp_path / "x")
    shard.unlink()
    with pytest.raises(CheckpointError, match=r"incomplete: missing shards .*model-00001-of-00002"):
        convert_official(source, tmp_path / "x")
    config = json.loads((official / "config.json").read_text())
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for name in ("tokenizer.model", "tokenizer_config.json", "added_tokens.json"):
        (wrong / name).write_bytes((official / name).read_bytes())
    (wrong / "config.json").write_text(json.dumps({**config, "llm_config": {**config["llm_config"], "model_type": "qwen2"}}))
    with pytest.raises(CheckpointError, match="the official LLM is 'qwen2'"):
        convert_official(wrong, tmp_path / "x")
    (wrong / "config.json").write_text(json.dumps({**config, "vision_config": {"model_type": "intern_vit_6b"}}))
    with pytest.raises(CheckpointError, match="lacks the key 'image_size' of its towers"):
        convert_official(wrong, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_converts_with_a_motion_budget_and_scores(tmp_path, official, clips, capsys):
    out = tmp_path / "budget"
    assert cli_main(["convert-official", str(official), "--out", str(out), "--motion-frames", "16", "--dtype", "bfloat16"]) == 0
    assert f"wrote {out} (bfloat16)" in capsys.readouterr().out
    assert "budget of 16 frames" in (out / "README.md").read_text()
    assert cli_main(["score", str(clips[0]), "--model", str(out), "--no-diagnosis", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["model"] == "budget" and math.isfinite(row["scores"]["overall"])
    assert FineVQProcessor.from_pretrained(out).settings.num_motion_frames == 16
    assert {t.dtype for t in load_file(str(out / "model.safetensors")).values() if t.is_floating_point()} == {torch.bfloat16}
    assert cli_main(["convert-official", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert "is not a folder (nor a hub id)" in capsys.readouterr().err


def test_a_hub_id_is_converted_once_and_cached(tmp_path, official, clips, monkeypatch):
    import finevq.inference.assessor as assessor
    import finevq.modeling.checkpoint as checkpoint
    import finevq.modeling.official as official_module

    downloads, conversions = [], []
    monkeypatch.setattr(checkpoint, "download_model", lambda repo, patterns: downloads.append(repo) or official)
    real_convert = official_module.convert_official
    monkeypatch.setattr(assessor, "convert_official", lambda *a, **k: conversions.append(a) or real_convert(*a, **k))
    monkeypatch.setenv("FINEVQ_CACHE", str(tmp_path / "cache"))
    for _ in range(2):
        model = FineVQ.from_pretrained("IntMeGroup/FineVQ_score")
        assert model.name == "IntMeGroup/FineVQ_score"
    assert downloads == ["IntMeGroup/FineVQ_score"] * 2 and len(conversions) == 1
    cached = list((tmp_path / "cache" / "converted").iterdir())
    assert len(cached) == 1 and (cached[0] / "conversion.json").is_file()
    assert math.isfinite(model.assess(str(clips[0]), ["overall"], diagnose=False).ratings["overall"].score)
