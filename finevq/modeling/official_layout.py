"""The official FineVQ checkpoint layout (InternVL2 remote code) against ours: its config translated to a
`FineVQConfig`, unmerged LoRA folded in, and its tensors renamed and split (packed qkv) into our modules."""

from __future__ import annotations

import copy
import re

import torch

from finevq.errors import CheckpointError

OFFICIAL_MODEL_TYPE = "internvl_chat"
IMAGE_CONTEXT_TOKEN = "<IMG_CONTEXT>"
IMAGE_TOKENS = ("<img>", "</img>", IMAGE_CONTEXT_TOKEN)
DEFAULT_LORA_SCALE = 2.0
"""InternVL wraps both towers with lora_alpha = 2 * rank, so each update is added twice over."""

_LORA = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[^.]+)?\.weight$")

# Official name (after "base_model.model." is removed) -> ours; \g<n> keeps the layer index.
_RENAMES = (
    (r"^vision_model\.embeddings\.class_embedding$", "vision.tower.embeddings.cls_token"),
    (r"^vision_model\.embeddings\.patch_embedding\.(weight|bias)$", r"vision.tower.embeddings.patch_embeddings.projection.\1"),
    (r"^vision_model\.embeddings\.position_embedding$", "vision.tower.embeddings.position_embeddings"),
    (r"^vision_model\.encoder\.layers\.(\d+)\.attn\.proj\.(weight|bias)$", r"vision.tower.encoder.layer.\1.attention.projection_layer.\2"),
    (r"^vision_model\.encoder\.layers\.(\d+)\.attn\.(q_norm|k_norm)\.(weight|bias)$", r"vision.tower.encoder.layer.\1.attention.\2.\3"),
    (r"^vision_model\.encoder\.layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)$", r"vision.tower.encoder.layer.\1.mlp.\2.\3"),
    (r"^vision_model\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)$", r"vision.tower.encoder.layer.\1.layernorm_before.\2"),
    (r"^vision_model\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)$", r"vision.tower.encoder.layer.\1.layernorm_after.\2"),
    (r"^vision_model\.encoder\.layers\.(\d+)\.ls1$", r"vision.tower.encoder.layer.\1.lambda_1"),
    (r"^vision_model\.encoder\.layers\.(\d+)\.ls2$", r"vision.tower.encoder.layer.\1.lambda_2"),
    (r"^mlp1\.0\.(weight|bias)$", r"vision.projector.layer_norm.\1"),
    (r"^mlp1\.1\.(weight|bias)$", r"vision.projector.linear_1.\1"),
    (r"^mlp1\.3\.(weight|bias)$", r"vision.projector.linear_2.\1"),
    (r"^motion_mlp\.0\.(weight|bias)$", r"motion.projector.layer_norm.\1"),
    (r"^motion_mlp\.1\.(weight|bias)$", r"motion.projector.linear_1.\1"),
    (r"^motion_mlp\.3\.(weight|bias)$", r"motion.projector.linear_2.\1"),
    (r"^slowfast_model\.feature_extraction\.(.+)$", r"motion.encoder.blocks.\1"),
    (r"^language_model\.model\.tok_embeddings\.weight$", "language_model.model.embed_tokens.weight"),
    (r"^language_model\.model\.norm\.weight$", "language_model.model.norm.weight"),
    (r"^language_model\.output\.weight$", "language_model.lm_head.weight"),
    (r"^language_model\.model\.layers\.(\d+)\.attention\.wo\.(weight|bias)$", r"language_model.model.layers.\1.self_attn.o_proj.\2"),
    (r"^language_model\.model\.layers\.(\d+)\.feed_forward\.w1\.weight$", r"language_model.model.layers.\1.mlp.gate_proj.weight"),
    (r"^language_model\.model\.layers\.(\d+)\.feed_forward\.w3\.weight$", r"language_model.model.layers.\1.mlp.up_proj.weight"),
    (r"^language_model\.model\.layers\.(\d+)\.feed_forward\.w2\.weight$", r"language_model.model.layers.\1.mlp.down_proj.weight"),
    (r"^language_model\.model\.layers\.(\d+)\.attention_norm\.weight$", r"language_model.model.layers.\1.input_layernorm.weight"),
    (r"^language_model\.model\.layers\.(\d+)\.ffn_norm\.weight$", r"language_model.model.layers.\1.post_attention_layernorm.weight"),
)
_VISION_QKV = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.attn\.qkv\.(weight|bias)$")
_TEXT_QKV = re.compile(r"^language_model\.model\.layers\.(\d+)\.attention\.wqkv\.(weight|bias)$")
_SCORE = re.compile(r"^mlpscore\.fc(\d+)\.(weight|bias)$")


def plain_name(name: str) -> str:
    """A tensor's name without PEFT's wrapping (`base_model.model.`, `.base_layer`)."""
    return name.replace("base_model.model.", "").replace(".base_layer.", ".")


def is_used(name: str) -> bool:
    """Whether inference reads the tensor `name` of an official checkpoint (a LoRA factor counts:
    it is merged into a weight that is read)."""
    name = plain_name(name)
    lora = _LORA.match(name)
    if lora:
        name = f"{lora['module']}.weight"
    if _VISION_QKV.match(name) or _TEXT_QKV.match(name) or _SCORE.match(name):
        return True
    return any(re.match(pattern, name) for pattern, _ in _RENAMES)


def merge_lora(state: dict[str, torch.Tensor], scale: float = DEFAULT_LORA_SCALE) -> tuple[dict[str, torch.Tensor], int]:
    """The state with PEFT's wrapping removed and each unmerged LoRA pair folded into its weight:
    W + scale * B @ A (computed in float32). Returns the new state and the number of pairs merged."""
    plain: dict[str, torch.Tensor] = {}
    factors: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in state.items():
        name = plain_name(name)
        lora = _LORA.match(name)
        if lora:
            factors.setdefault(lora["module"], {})[lora["part"]] = tensor
        else:
            plain[name] = tensor
    for module, pair in factors.items():
        weight_name = f"{module}.weight"
        if set(pair) != {"A", "B"} or weight_name not in plain:
            raise CheckpointError(f"LoRA of {module!r} is incomplete: it needs lora_A, lora_B and the base weight")
        base = plain[weight_name]
        update = pair["B"].float() @ pair["A"].float()
        if update.shape != base.shape:
            raise CheckpointError(f"LoRA of {module!r} is {tuple(update.shape)}, its weight {tuple(base.shape)}")
        plain[weight_name] = (base.float() + scale * update).to(base.dtype)
    return plain, len(factors)


def split_packed_wqkv(weight: torch.Tensor, num_heads: int, num_kv_heads: int) -> tuple[torch.Tensor, ...]:
    """InternLM2's packed `wqkv` (rows: per KV group, its query heads, then its key, then its value)
    -> Llama's q_proj, k_proj, v_proj weights (or biases)."""
    if num_heads % num_kv_heads:
        raise CheckpointError(f"{num_heads} attention heads do not divide into {num_kv_heads} KV groups")
    per_group = num_heads // num_kv_heads
    rows = weight.shape[0]
    head_dim = rows // (num_heads + 2 * num_kv_heads)
    if head_dim * (num_heads + 2 * num_kv_heads) != rows:
        raise CheckpointError(f"packed wqkv has {rows} rows, not a multiple of {num_heads} + 2 x {num_kv_heads} heads")
    grouped = weight.reshape(num_kv_heads, per_group + 2, head_dim, *weight.shape[1:])
    query = grouped[:, :per_group].reshape(num_heads * head_dim, *weight.shape[1:])
    key = grouped[:, per_group].reshape(num_kv_heads * head_dim, *weight.shape[1:])
    value = grouped[:, per_group + 1].reshape(num_kv_heads * head_dim, *weight.shape[1:])
    return query.contiguous(), key.contiguous(), value.contiguous()


def convert_state(state: dict[str, torch.Tensor], llm_config: dict) -> dict[str, torch.Tensor]:
    """Merged official tensors -> our names (unused tensors such as `mlpscore.ln1` are left out)."""
    heads, kv_heads = llm_config["num_attention_heads"], llm_config.get("num_key_value_heads") or llm_config["num_attention_heads"]
    converted: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if match := _VISION_QKV.match(name):
            layer, kind = match.groups()
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                converted[f"vision.tower.encoder.layer.{layer}.attention.{part}.{kind}"] = chunk.contiguous()
        elif match := _TEXT_QKV.match(name):
            layer, kind = match.groups()
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), split_packed_wqkv(tensor, heads, kv_heads)):
                converted[f"language_model.model.layers.{layer}.self_attn.{part}.{kind}"] = chunk
        elif match := _SCORE.match(name):
            layer, kind = match.groups()
            converted[f"score_head.mlp.{2 * (int(layer) - 1)}.{kind}"] = tensor
        else:
            for pattern, replacement in _RENAMES:
                if re.match(pattern, name):
                    converted[re.sub(pattern, replacement, name)] = tensor
                    break
    if "vision.tower.embeddings.cls_token" in converted:
        converted["vision.tower.embeddings.cls_token"] = converted["vision.tower.embeddings.cls_token"].reshape(1, 1, -1)
    return converted


def vision_config(official: dict) -> dict:
    """InternViT's config -> transformers' `internvl_vision` (the `-hf` vision tower)."""
    size, patch = official["image_size"], official["patch_size"]
    return {
        "model_type": "internvl_vision",
        "hidden_size": official["hidden_size"],
        "intermediate_size": official["intermediate_size"],
        "num_hidden_layers": official["num_hidden_layers"],
        "num_attention_heads": official["num_attention_heads"],
        "image_size": [size, size],
        "patch_size": [patch, patch],
        "attention_bias": bool(official.get("qkv_bias", True)),
        "use_qk_norm": bool(official.get("qk_normalization", False)),
        "layer_norm_eps": official.get("layer_norm_eps", 1e-6),
        "norm_type": official.get("norm_type", "layer_norm"),
        "hidden_act": official.get("hidden_act", "gelu"),
        "use_mean_pooling": True,
        "use_absolute_position_embeddings": True,
    }


def text_config(official: dict) -> dict:
    """InternLM2's config -> a Llama config (the same network, unpacked attention)."""
    heads = official["num_attention_heads"]
    values = {
        "model_type": "llama",
        "hidden_size": official["hidden_size"],
        "intermediate_size": official["intermediate_size"],
        "num_hidden_layers": official["num_hidden_layers"],
        "num_attention_heads": heads,
        "num_key_value_heads": official.get("num_key_value_heads") or heads,
        "head_dim": official["hidden_size"] // heads,
        "hidden_act": official.get("hidden_act", "silu"),
        "max_position_embeddings": official.get("max_position_embeddings", 32768),
        "rms_norm_eps": official.get("rms_norm_eps", 1e-5),
        "vocab_size": official["vocab_size"],
        "attention_bias": bool(official.get("bias", False)),
        "tie_word_embeddings": bool(official.get("tie_word_embeddings", False)),
    }
    rope = {"rope_type": "default", "rope_theta": float(official.get("rope_theta", 1e6))}
    scaling = official.get("rope_scaling")
    if scaling:
        kind = scaling.get("type") or scaling.get("rope_type")
        if kind not in ("dynamic", "linear"):
            raise CheckpointError(f"rope_scaling type {kind!r} of the official LLM is not supported")
        rope.update(rope_type=kind, factor=float(scaling["factor"]))
    values["rope_parameters"] = rope
    return values


def sizes_from_weights(state: dict[str, torch.Tensor]) -> dict:
    """What config.json does not say, read off the tensors: SlowFast's width and stage depths, the
    score head's layer widths."""
    stem = "slowfast_model.feature_extraction.0.multipathway_blocks.0.conv.weight"
    if stem not in state:
        raise CheckpointError(f"the checkpoint has no SlowFast motion branch (no {stem!r})")
    depths = []
    for stage in range(1, 5):
        prefix = f"slowfast_model.feature_extraction.{stage}.multipathway_blocks.0.res_blocks."
        depths.append(len({name[len(prefix):].split(".")[0] for name in state if name.startswith(prefix)}))
    if not all(depths):
        raise CheckpointError(f"the SlowFast motion branch is incomplete: residual blocks per stage {depths}")
    score_layers = sorted((int(m[1]), state[name].shape[0]) for name in state if (m := _SCORE.match(name)) and m[2] == "weight")
    values = {"slowfast_width": int(state[stem].shape[0]), "slowfast_depths": depths}
    if score_layers:
        values["score_head_dims"] = [int(width) for _, width in score_layers[:-1]]
    return values


def tower_configs(official: dict) -> dict:
    """The vision and text configs of an official config.json, checked: an InternVL chat model with an
    InternLM2 LLM and pixel-shuffle v2, every size given; CheckpointError names what is wrong."""
    if official.get("model_type") != OFFICIAL_MODEL_TYPE:
        raise CheckpointError(f"not an official FineVQ config: model_type is {official.get('model_type')!r}, "
                              f"expected {OFFICIAL_MODEL_TYPE!r}")
    for key in ("vision_config", "llm_config"):
        if not isinstance(official.get(key), dict):
            raise CheckpointError(f"the official config.json has no {key!r} section")
    llm_type = official["llm_config"].get("model_type")
    if llm_type != "internlm2":
        raise CheckpointError(f"the official LLM is {llm_type!r}; only InternLM2 (InternVL2-8B) checkpoints convert")
    if official.get("ps_version", "v2") != "v2":
        raise CheckpointError(f"pixel-shuffle version {official.get('ps_version')!r} is not supported (only 'v2')")
    try:
        return {"vision_config": vision_config(official["vision_config"]), "text_config": text_config(official["llm_config"])}
    except KeyError as error:
        raise CheckpointError(f"the official config.json lacks the key {error.args[0]!r} of its towers") from None


def finevq_config_values(official: dict, preset_model: dict, image_context_id: int, sizes: dict) -> dict:
    """Keyword arguments of `FineVQConfig` for an official config.json, on the `official` preset, with
    the `sizes_from_weights` of its tensors."""
    values = copy.deepcopy(preset_model)
    values.update(
        **tower_configs(official),
        downsample_ratio=float(official.get("downsample_ratio", 0.5)),
        vision_feature_layer=int(official.get("select_layer", -1)),
        frame_token_id=image_context_id,
        motion_token_id=image_context_id,
        **sizes,
    )
    return values
