"""A tiny random checkpoint in the official FineVQ layout (InternVL2 remote code: InternViT, InternLM2 with
packed wqkv, SlowFast-R50 blocks, mlpscore), with a sentencepiece tokenizer, written the way the release is."""

from __future__ import annotations

import json
from pathlib import Path

import sentencepiece
import torch
from safetensors.torch import save_file

VISION = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
          "image_size": 28, "patch_size": 7}
LLM = {"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2,
       "num_hidden_layers": 2}
SLOWFAST_WIDTH = 16
SCORE_DIMS = (32, 16, 8, 4)
INTERNVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]
_CORPUS = (
    "How would you rate the quality of this video? The quality of this video is good. "
    "Is there any noise distortion in this video? Yes No. Which kind of blur? A. None B. motion blur "
    "excellent good fair poor bad color noise artifact blur temporal overall Frame1: Motion Feature: "
    "A B C D E F G H I J A. B. C. D. E. F. G. H. I. J. "
)


def train_sentencepiece(path: Path, add_dummy_prefix: bool = True) -> Path:
    """A small BPE sentencepiece model with byte fallback and the chat tokens as user-defined pieces, as InternLM2's."""
    corpus = path.parent / "corpus.txt"
    corpus.write_text("\n".join([_CORPUS, _CORPUS.upper(), "0123456789 .,:;?!"] * 40))
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(path.with_suffix("")), vocab_size=700, model_type="bpe",
        byte_fallback=True, user_defined_symbols=CHAT_TOKENS, add_dummy_prefix=add_dummy_prefix,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2, hard_vocab_limit=False,
    )
    corpus.unlink()
    return path


def _slowfast_shapes(width: int) -> dict[str, tuple[int, ...]]:
    """pytorchvideo's SlowFast-R50 block names and shapes (stages of one residual block each), written out
    here independently of finevq's module so that a naming slip there fails the conversion test."""
    fast = width // 8
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(prefix: str, conv: str, norm: str, dim_in: int, dim_out: int, kernel: tuple[int, int, int]):
        shapes[f"{prefix}{conv}.weight"] = (dim_out, dim_in, *kernel)
        for buffer in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}{norm}.{buffer}"] = (dim_out,)
        shapes[f"{prefix}{norm}.num_batches_tracked"] = ()

    conv_bn("0.multipathway_blocks.0.", "conv", "norm", 3, width, (1, 7, 7))
    conv_bn("0.multipathway_blocks.1.", "conv", "norm", 3, fast, (5, 7, 7))
    conv_bn("0.multipathway_fusion.", "conv_fast_to_slow", "norm", fast, 2 * fast, (7, 1, 1))
    slow_in, fast_in = width + 2 * fast, fast
    for stage, slow_kernel in enumerate((1, 1, 3, 3)):
        inner = width * 2**stage
        for pathway, dim_in, dim_inner, kernel in ((0, slow_in, inner, slow_kernel), (1, fast_in, inner // 8, 3)):
            prefix = f"{stage + 1}.multipathway_blocks.{pathway}.res_blocks.0."
            conv_bn(prefix, "branch1_conv", "branch1_norm", dim_in, 4 * dim_inner, (1, 1, 1))
            conv_bn(prefix + "branch2.", "conv_a", "norm_a", dim_in, dim_inner, (kernel, 1, 1))
            conv_bn(prefix + "branch2.", "conv_b", "norm_b", dim_inner, dim_inner, (1, 3, 3))
            conv_bn(prefix + "branch2.", "conv_c", "norm_c", dim_inner, 4 * dim_inner, (1, 1, 1))
        if stage < 3:
            conv_bn(f"{stage + 1}.multipathway_fusion.", "conv_fast_to_slow", "norm", inner // 2, inner, (7, 1, 1))
        slow_in, fast_in = 4 * inner + inner, inner // 2
    return {f"slowfast_model.feature_extraction.{name}": shape for name, shape in shapes.items()}


def official_shapes(vocab_size: int) -> dict[str, tuple[int, ...]]:
    v, t = VISION, LLM
    c, grid = v["hidden_size"], v["image_size"] // v["patch_size"]
    shapes = {
        "vision_model.embeddings.class_embedding": (1, 1, c),
        "vision_model.embeddings.patch_embedding.weight": (c, 3, v["patch_size"], v["patch_size"]),
        "vision_model.embeddings.patch_embedding.bias": (c,),
        "vision_model.embeddings.position_embedding": (1, grid * grid + 1, c),
    }
    for i in range(v["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        shapes.update({
            p + "attn.qkv.weight": (3 * c, c), p + "attn.qkv.bias": (3 * c,),
            p + "attn.proj.weight": (c, c), p + "attn.proj.bias": (c,),
            p + "mlp.fc1.weight": (v["intermediate_size"], c), p + "mlp.fc1.bias": (v["intermediate_size"],),
            p + "mlp.fc2.weight": (c, v["intermediate_size"]), p + "mlp.fc2.bias": (c,),
            p + "norm1.weight": (c,), p + "norm1.bias": (c,), p + "norm2.weight": (c,), p + "norm2.bias": (c,),
            p + "ls1": (c,), p + "ls2": (c,),
        })
    h, heads, kv = t["hidden_size"], t["num_attention_heads"], t["num_key_value_heads"]
    head_dim = h // heads
    shapes.update({
        "mlp1.0.weight": (4 * c,), "mlp1.0.bias": (4 * c,), "mlp1.1.weight": (h, 4 * c), "mlp1.1.bias": (h,),
        "mlp1.3.weight": (h, h), "mlp1.3.bias": (h,),
        "language_model.model.tok_embeddings.weight": (vocab_size, h),
        "language_model.model.norm.weight": (h,),
        "language_model.output.weight": (vocab_size, h),
    })
    for i in range(t["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        shapes.update({
            p + "attention.wqkv.weight": ((heads + 2 * kv) * head_dim, h),
            p + "attention.wo.weight": (h, heads * head_dim),
            p + "feed_forward.w1.weight": (t["intermediate_size"], h),
            p + "feed_forward.w3.weight": (t["intermediate_size"], h),
            p + "feed_forward.w2.weight": (h, t["intermediate_size"]),
            p + "attention_norm.weight": (h,), p + "ffn_norm.weight": (h,),
        })
    motion = 36 * SLOWFAST_WIDTH
    shapes.update({"motion_mlp.0.weight": (motion,), "motion_mlp.0.bias": (motion,), "motion_mlp.1.weight": (h, motion),
                   "motion_mlp.1.bias": (h,), "motion_mlp.3.weight": (h, h), "motion_mlp.3.bias": (h,)})
    widths = (h, *SCORE_DIMS, 1)
    for layer in range(len(widths) - 1):
        shapes[f"mlpscore.fc{layer + 1}.weight"] = (widths[layer + 1], widths[layer])
        shapes[f"mlpscore.fc{layer + 1}.bias"] = (widths[layer + 1],)
    shapes["mlpscore.ln1.weight"] = (h,)  # present in the release, read by nothing
    shapes.update(_slowfast_shapes(SLOWFAST_WIDTH))
    return shapes


def random_state(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in official_shapes(vocab_size).items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7, dtype=torch.long)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=generator)
        elif name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "mlp1.0.weight", "motion_mlp.0.weight")) \
                or "norm_" in name and name.endswith(".weight") or name.endswith("ffn_norm.weight"):
            state[name] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif name.startswith("mlpscore.fc"):
            # Positive biases keep the ReLU head off zero, so scores differ between videos.
            state[name] = (0.3 * torch.randn(shape, generator=generator)).abs() if name.endswith("bias") \
                else 0.3 * torch.randn(shape, generator=generator)
        else:
            state[name] = 0.1 * torch.randn(shape, generator=generator)
    return state


def official_config(vocab_size: int) -> dict:
    return {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat",
        "auto_map": {"AutoModel": "modeling_internvl_chat.InternVLChatModel"},
        "downsample_ratio": 0.5, "select_layer": -1, "ps_version": "v2", "template": "internlm2-chat",
        "force_image_size": VISION["image_size"],
        "vision_config": {"model_type": "intern_vit_6b", "qkv_bias": True, "qk_normalization": False,
                          "layer_norm_eps": 1e-6, "norm_type": "layer_norm", "hidden_act": "gelu", **VISION},
        "llm_config": {"model_type": "internlm2", "architectures": ["InternLM2ForCausalLM"], "bias": False,
                       "rms_norm_eps": 1e-5, "rope_theta": 1000000, "rope_scaling": {"type": "dynamic", "factor": 2.0},
                       "max_position_embeddings": 4096, "vocab_size": vocab_size, "hidden_act": "silu",
                       "tie_word_embeddings": False, **LLM},
    }


def write_tokenizer(folder: Path) -> int:
    """The release's tokenizer files (sentencepiece model, remote-code config, InternVL's added tokens);
    returns the vocabulary size with the added tokens."""
    model = train_sentencepiece(folder / "tokenizer.model")
    base = sentencepiece.SentencePieceProcessor(model_file=str(model)).get_piece_size()
    chat_ids = {token: sentencepiece.SentencePieceProcessor(model_file=str(model)).piece_to_id(token) for token in CHAT_TOKENS}
    added = {str(i): {"content": tok, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
                      "single_word": False} for tok, i in chat_ids.items()}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "InternLM2Tokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>",
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added,
    }))
    (folder / "added_tokens.json").write_text(json.dumps({tok: base + i for i, tok in enumerate(INTERNVL_TOKENS)}))
    return base + len(INTERNVL_TOKENS)


def write_official_checkpoint(folder: Path, seed: int = 0, state_hook=None) -> Path:
    """Write the tiny official-layout checkpoint into `folder`; `state_hook(state)` may edit the
    tensors first (insert NaNs, unmerge LoRA, drop a tensor)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(folder)
    state = random_state(vocab, seed)
    if state_hook is not None:
        state_hook(state)
    (folder / "config.json").write_text(json.dumps(official_config(vocab)))
    names = sorted(state)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for filename, shard in shards.items():
        save_file({name: state[name].contiguous() for name in shard}, str(folder / filename), metadata={"format": "pt"})
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {name: f for f, shard in shards.items() for name in shard}}))
    return folder
