"""Finds and checks a model folder before anything is loaded from it: hub downloads, safetensors only,
no NaN or Inf tensor. A published FineVQ checkpoint shipped NaNs; pickled weights can run code when loaded."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from finevq.errors import CheckpointError

PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.md", "*.jinja"]
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def is_hub_id(name: str) -> bool:
    """Whether `name` reads as a Hugging Face hub repository id (owner/name)."""
    return bool(_HUB_ID.match(name))


def local_folder(source: str | Path, patterns: list[str] | None = None, what: str = "model folder") -> Path:
    """The local folder of `source`: an existing folder, or the snapshot of a hub id (owner/name)
    that is not a local path; otherwise CheckpointError naming `what` was given."""
    folder = Path(source)
    if not folder.exists() and is_hub_id(str(source)):
        return download_model(str(source), patterns)
    if not folder.is_dir():
        raise CheckpointError(f"{what} {str(source)!r} does not exist or is not a folder (nor a hub id)")
    return folder


def download_model(repo_id: str, patterns: list[str] | None = None) -> Path:
    """The local snapshot of a hub repository (downloaded once, then from the hub cache)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns or MODEL_FILE_PATTERNS))
    except Exception as error:  # offline mode, unknown repo, network: all mean "cannot get it"
        raise CheckpointError(f"cannot download model {repo_id!r} from the Hugging Face hub: {error}") from None


def check_weights_folder(folder: str | Path) -> list[Path]:
    """Validate every weights file in `folder`; return its safetensors files.

    Raises `CheckpointError` naming the folder, file or tensor when the folder is missing, holds
    pickle-format weights, holds no safetensors, or a tensor is unreadable or not finite."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder {str(folder)!r} does not exist or is not a folder")
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_WEIGHT_SUFFIXES)
    if pickled:
        raise CheckpointError(
            f"model folder {str(folder)!r} holds pickle-format weights {pickled}; only safetensors are "
            "loaded (convert them with safetensors, or remove them)"
        )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise CheckpointError(f"model folder {str(folder)!r} holds no .safetensors weights")
    for path in weights:
        check_finite_tensors(path)
    return weights


def check_finite_tensors(path: Path) -> None:
    """Raise `CheckpointError` naming the first tensor of a safetensors file holding NaN or Inf."""
    try:
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    bad = int((~torch.isfinite(tensor)).sum())
                    raise CheckpointError(
                        f"checkpoint {str(path)!r}: tensor {name!r} holds {bad} NaN/Inf value(s) of {tensor.numel()}"
                    )
    except SafetensorError as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a readable safetensors file: {error}") from None
