"""`finevq convert-official`: a released FineVQ checkpoint (InternVL2 remote-code layout, local or on the hub)
scanned for NaN/Inf, merged, converted and written as our safetensors model folder with a processor and a card."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from finevq.errors import CheckpointError
from finevq.modeling.checkpoint import MODEL_FILE_PATTERNS, local_folder
from finevq.modeling.configuration import FineVQConfig
from finevq.modeling.modeling import FineVQForConditionalGeneration
from finevq.modeling.official_layout import (
    DEFAULT_LORA_SCALE,
    IMAGE_CONTEXT_TOKEN,
    IMAGE_TOKENS,
    OFFICIAL_MODEL_TYPE,
    convert_state,
    finevq_config_values,
    is_used,
    merge_lora,
    sizes_from_weights,
    tower_configs,
)
from finevq.modeling.presets import load_preset
from finevq.modeling.processor import FineVQProcessor, settings_for_model

log = logging.getLogger(__name__)

OFFICIAL_MODELS = (
    "IntMeGroup/FineVQ_score", "IntMeGroup/FineVQ_QA_yn", "IntMeGroup/FineVQ_QA_which",
    "IntMeGroup/FineVQ_KoNViD", "IntMeGroup/FineVQ_LIVE-VQC", "IntMeGroup/FineVQ_LSVQ",
    "IntMeGroup/FineVQ_LIVE-YT-Gaming", "IntMeGroup/FineVQ_YouTubeUGC",
)
"""The released checkpoints on the Hugging Face hub."""
REPAIRS = ("zero", "drop-unused")
"""--repair: `zero` sets every NaN/Inf value to 0 (the tensor is still read); `drop-unused` leaves
out non-finite tensors that inference never reads and refuses if a read one is non-finite."""
REPORT_FILE = "conversion.json"
OFFICIAL_DOWNLOAD_PATTERNS = [*MODEL_FILE_PATTERNS, "*.bin"]
"""What a hub download takes: our model files, and the .bin weights some releases have."""
_SHARD_BYTES = 4 * 1024**3
_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set messages = messages[1:] %}{% else %}{% set system = default_system %}{% endif %}"
    "<|im_start|>system\n{{ system }}<|im_end|>"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class NonFiniteTensor:
    name: str
    bad_values: int
    total_values: int
    used: bool


@dataclass
class ConversionReport:
    """What a conversion read, changed and wrote; saved as conversion.json and summarised in the card."""

    source: str
    tensors_read: int
    non_finite: list[NonFiniteTensor] = field(default_factory=list)
    repair: str | None = None
    repaired: list[str] = field(default_factory=list)
    lora_pairs_merged: int = 0
    lora_scale: float = DEFAULT_LORA_SCALE
    unused_tensors: list[str] = field(default_factory=list)
    score_head: str = "converted"
    motion_frames: str = "every frame (official)"
    dtype: str = ""


def is_official_folder(folder: str | os.PathLike) -> bool:
    """Whether a folder holds an official FineVQ checkpoint (its config.json is InternVL's chat model)."""
    try:
        return json.loads((Path(folder) / "config.json").read_text()).get("model_type") == OFFICIAL_MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def read_official_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of an official folder's safetensors (or, as released by older tools, PyTorch .bin
    files, read with weights_only so no code runs); a missing shard or unreadable file is a CheckpointError."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{str(index)!r} is not a readable weights index: {error}") from None
        files = [folder / name for name in names]
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise CheckpointError(f"official checkpoint {str(folder)!r} is incomplete: missing shards {missing}")
    else:
        files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise CheckpointError(f"official checkpoint {str(folder)!r} holds no weights (.safetensors or .bin)")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        if path.suffix == ".bin":
            try:
                state.update(torch.load(str(path), map_location="cpu", weights_only=True))
            except Exception as error:  # torch raises many types for a truncated or foreign file
                raise CheckpointError(f"official weights {str(path)!r} are not a readable PyTorch state dict: {error}") from None
            continue
        try:
            with safe_open(str(path), framework="pt") as weights:
                state.update({name: weights.get_tensor(name) for name in weights.keys()})
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"official weights {str(path)!r} are not a readable safetensors file: {error}") from None
    return state


def scan_non_finite(state: dict[str, torch.Tensor]) -> list[NonFiniteTensor]:
    """Every floating tensor holding NaN or Inf, with its count and whether inference reads it."""
    found = []
    for name, tensor in state.items():
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                found.append(NonFiniteTensor(name, bad, tensor.numel(), is_used(name)))
    return found


def _repaired(state: dict[str, torch.Tensor], problems: list[NonFiniteTensor], repair: str | None) -> list[str]:
    """Apply `repair` to the non-finite tensors in place; returns what it changed. Refuses (raises)
    when there is nothing to repair with, naming every tensor."""
    listing = "; ".join(
        f"{p.name}: {p.bad_values} of {p.total_values} values ({'read by inference' if p.used else 'unused'})" for p in problems
    )
    used = [p.name for p in problems if p.used]
    if repair is None:
        raise CheckpointError(
            f"the checkpoint holds NaN/Inf tensors: {listing}. Nothing was written. Pass --repair drop-unused "
            "(leaves out tensors inference never reads" + ("; refused here, read ones are affected" if used else "")
            + ") or --repair zero (sets the bad values to 0)"
        )
    if repair == "drop-unused":
        if used:
            raise CheckpointError(f"--repair drop-unused cannot fix tensors inference reads: {listing}; use --repair zero")
        for problem in problems:
            del state[problem.name]
        return [f"dropped {p.name}" for p in problems]
    for problem in problems:
        state[problem.name] = torch.nan_to_num(state[problem.name], nan=0.0, posinf=0.0, neginf=0.0)
    return [f"zeroed {p.bad_values} value(s) of {p.name}" for p in problems]


def _read_json(path: Path) -> dict:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {str(path)!r}: {error}") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{str(path)!r} is not a JSON object")
    return values


def official_tokenizer(folder: Path, system_message: str):
    """The official sentencepiece tokenizer rebuilt as a fast tokenizer that encodes as it does
    (its added tokens, InternVL's image tokens), with the internlm2-chat template and its system prompt."""
    from transformers import TokenizersBackend

    model_file = folder / "tokenizer.model"
    if not model_file.is_file():
        raise CheckpointError(f"official checkpoint {str(folder)!r} has no tokenizer.model")
    settings = _read_json(folder / "tokenizer_config.json")
    added = dict(settings.get("added_tokens_decoder") or {})
    extra_file = folder / "added_tokens.json"
    if extra_file.is_file():
        known = {value["content"] for value in added.values()}
        for token, token_id in _read_json(extra_file).items():
            if token not in known:
                added[str(token_id)] = {"content": token, "special": True, "lstrip": False, "rstrip": False,
                                        "normalized": False, "single_word": False}
    settings = {key: value for key, value in settings.items() if key not in ("auto_map", "tokenizer_class")}
    settings.update(tokenizer_class="TokenizersBackend", added_tokens_decoder=added)
    with tempfile.TemporaryDirectory() as staging:
        shutil.copy(model_file, Path(staging) / "tokenizer.model")
        (Path(staging) / "tokenizer_config.json").write_text(json.dumps(settings))
        try:
            tokenizer = TokenizersBackend.from_pretrained(staging, vocab_file=str(Path(staging) / "tokenizer.model"))
        except Exception as error:  # sentencepiece/protobuf parse errors have no common type
            raise CheckpointError(f"cannot read the official tokenizer {str(model_file)!r}: {error}") from None
    vocab = tokenizer.get_vocab()
    missing = [token for token in (*IMAGE_TOKENS, "<|im_start|>", "<|im_end|>") if token not in vocab]
    if missing:
        raise CheckpointError(f"the official tokenizer of {str(folder)!r} lacks {missing}")
    tokenizer.eos_token = "<|im_end|>"  # a chat turn ends there; generation stops on it
    tokenizer.chat_template = _CHAT_TEMPLATE.replace("default_system", json.dumps(system_message, ensure_ascii=False))
    return tokenizer


def convert_official(
    source: str | os.PathLike,
    out: str | os.PathLike,
    repair: str | None = None,
    motion_frames: int = 0,
    lora_scale: float = DEFAULT_LORA_SCALE,
    dtype: torch.dtype | None = None,
) -> ConversionReport:
    """Convert an official checkpoint (a local folder or a hub id) into `out`, which
    `FineVQForConditionalGeneration.from_pretrained` and `FineVQ.from_pretrained` load.

    Every tensor is scanned before anything is written; NaN/Inf refuse the conversion unless
    `repair` (see REPAIRS). motion_frames: 0 reads every frame for SlowFast as the official does;
    N > 0 spreads a budget of N frames instead (bounded memory on long videos). dtype: of the
    written weights (default: the source's)."""
    if repair not in (None, *REPAIRS):
        raise CheckpointError(f"unknown repair {repair!r}; choose one of {', '.join(REPAIRS)}")
    if motion_frames < 0:
        raise CheckpointError(f"motion frames must be 0 (every frame) or a positive budget, got {motion_frames}")
    folder = local_folder(source, OFFICIAL_DOWNLOAD_PATTERNS, what="official checkpoint")
    official = _read_json(folder / "config.json")
    tower_configs(official)  # a wrong config fails before any weight is read
    preset = load_preset("official")
    tokenizer = official_tokenizer(folder, preset["system_message"])
    state = read_official_weights(folder)
    report = ConversionReport(source=str(source), tensors_read=len(state), repair=repair, lora_scale=lora_scale)
    report.non_finite = scan_non_finite(state)
    if report.non_finite:
        report.repaired = _repaired(state, report.non_finite, repair)
    merged, report.lora_pairs_merged = merge_lora(state, lora_scale)
    config = FineVQConfig(**finevq_config_values(
        official, preset["model"], tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT_TOKEN), sizes_from_weights(merged)
    ))
    if len(tokenizer) > config.text_config.vocab_size:
        raise CheckpointError(
            f"the tokenizer has {len(tokenizer)} tokens but the LLM only {config.text_config.vocab_size} embeddings"
        )
    converted = convert_state(merged, official["llm_config"])
    report.unused_tensors = sorted(name for name in merged if not is_used(name))
    expected = _expected_tensors(config)
    if not any(name.startswith("score_head.") for name in converted):
        converted.update({name: torch.zeros(shape) for name, shape in expected.items() if name.startswith("score_head.")})
        report.score_head = "absent from the checkpoint (a QA model): zero weights, so every score is the scale's low end"
    _check_complete(converted, expected, folder)
    dtype = dtype or next(t.dtype for t in converted.values() if t.is_floating_point())
    report.dtype = str(dtype).replace("torch.", "")
    converted = {name: (t.to(dtype) if t.is_floating_point() else t).contiguous() for name, t in converted.items()}

    settings = settings_for_model(
        config, **{**preset["processor"], "num_motion_frames": motion_frames, "motion_size": config.image_size}
    )
    if motion_frames:
        report.motion_frames = f"a budget of {motion_frames} frames spread over the video (not the official every frame)"
    processor = FineVQProcessor(tokenizer, settings)
    out = Path(out)
    _write_folder(out, config, converted, processor, report, dtype)
    return report


def _expected_tensors(config: FineVQConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        model = FineVQForConditionalGeneration(config)
    return {name: tensor.shape for name, tensor in model.state_dict().items()}


def _check_complete(converted: dict[str, torch.Tensor], expected: dict[str, torch.Size], folder: Path) -> None:
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = sorted(f"{name} {tuple(converted[name].shape)} vs {tuple(shape)}" for name, shape in expected.items()
                   if name in converted and converted[name].shape != shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"official checkpoint {str(folder)!r} does not fit its config.json (truncated or another model?): "
            f"{len(missing)} missing, e.g. {missing[:4]}; {len(unexpected)} unexpected, e.g. {unexpected[:4]}; "
            f"{len(wrong)} of the wrong shape, e.g. {wrong[:3]}. Nothing was written."
        )


def _write_folder(out: Path, config, tensors, processor, report: ConversionReport, dtype: torch.dtype) -> None:
    """Write into a temporary sibling, then move it into place: an interrupted run leaves no half folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        config.dtype = str(dtype).replace("torch.", "")
        config.architectures = [FineVQForConditionalGeneration.__name__]
        config.save_pretrained(str(staging))
        _save_shards(tensors, staging)
        processor.save_pretrained(staging)
        (staging / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n")
        (staging / "README.md").write_text(model_card(report))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _save_shards(tensors: dict[str, torch.Tensor], folder: Path) -> None:
    from huggingface_hub import split_torch_state_dict_into_shards

    split = split_torch_state_dict_into_shards(tensors, max_shard_size=_SHARD_BYTES)
    for filename, names in split.filename_to_tensors.items():
        save_file({name: tensors[name] for name in names}, str(folder / filename), metadata={"format": "pt"})
    if split.is_sharded:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
                 "weight_map": split.tensor_to_filename}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def model_card(report: ConversionReport) -> str:
    """The converted folder's README: where it came from, what changed, and how it differs from the official code."""
    if report.non_finite:
        rows = "\n".join(f"| `{p.name}` | {p.bad_values} / {p.total_values} | {'yes' if p.used else 'no'} |"
                         for p in report.non_finite)
        scan = (f"{len(report.non_finite)} tensor(s) held NaN/Inf values:\n\n| tensor | non-finite values | read by "
                f"inference |\n|---|---|---|\n{rows}\n\nRepair `{report.repair}`: " + "; ".join(report.repaired) + ".")
    else:
        scan = f"All {report.tensors_read} tensors are finite."
    unused = ", ".join(f"`{name}`" for name in report.unused_tensors[:10]) or "none"
    return f"""---
library_name: finevq
tags: [video-quality-assessment, finevq, converted]
---
# {report.source}, converted for finevq

The released FineVQ checkpoint `{report.source}` (InternVL2 remote-code layout) rewritten by
`finevq convert-official` into finevq's model format: the InternViT vision tower as transformers'
`internvl_vision`, the InternLM2 LLM as a Llama model (packed `wqkv` split into q/k/v), SlowFast-R50 in
plain PyTorch, the ReLU score head on MOS / 100. Weights: {report.dtype}. It runs on current transformers
without remote code: `finevq score VIDEO --model THIS_FOLDER`, or `FineVQ.from_pretrained(THIS_FOLDER)`.

## Weight scan
{scan}

## Conversion
- tensors read: {report.tensors_read}; LoRA pairs merged (scale alpha / rank = {report.lora_scale:g}): {report.lora_pairs_merged};
- left out, never read by inference: {unused};
- score head: {report.score_head}.

## Inference, as the official code does it
- 8 frames at indices int(s/2 + round(s*i)), s = (N - 1) / 8, resized to 448 x 448 (aspect not kept;
  antialiased bicubic in PyTorch where the official uses PIL's bicubic, so pixels differ slightly),
  ImageNet mean and std, 256 tokens per frame;
- motion: {report.motion_frames}. The official SlowFast reads every frame at 448 px (at least 32;
  the slow pathway every 4th), which runs out of memory on long videos; convert with
  `--motion-frames N` for a bounded budget, which the official model never saw in training;
- prompt: `Frame1: <img><IMG_CONTEXT> x 256</img>` ... `Frame8: ...`, `Motion Feature: <img><IMG_CONTEXT></img>`,
  then the question, in the internlm2-chat template with InternVL2's system message; the tokenizer
  is rebuilt from `tokenizer.model` and encodes as sentencepiece does;
- score: the score head on the final-norm hidden state 4 tokens from the end of the teacher-forced
  answer `The quality of this video is good.` + `<|im_end|>`, times 100. The released score models rate
  one quality, so every dimension's question reads the same number; the question text is
  `score_question` in processor_config.json. QA models are read by teacher forcing as well.
"""
