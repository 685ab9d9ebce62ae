"""The quality heads: the score-head MLP that regresses the MOS from a hidden state, and the
probabilities over candidate answer tokens (level words, Yes/No, letters) with the Q-Align score."""

from __future__ import annotations

import torch
from torch import nn

from finevq.taxonomy import LEVEL_WEIGHTS


class ScoreHead(nn.Module):
    """MLP hidden -> dims... -> 1, mapped affinely onto the score range [low, high].

    output="centered": the MLP's output 0 is the middle of the range and +-1 its ends, so a fresh
    head starts inside the scale; the result is in raw score units and is not clamped (MOS may leave
    the range). output="relu_unit" (the official FineVQ head): a ReLU on the last layer too, and
    0..1 spans low..high. activation: between layers, "gelu" or "relu" (the official)."""

    def __init__(
        self, hidden_size: int, dims: list[int] | tuple[int, ...], score_range: tuple[float, float],
        activation: str = "gelu", output: str = "centered",
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = hidden_size
        for dim in dims:
            layers += [nn.Linear(width, dim), nn.ReLU() if activation == "relu" else nn.GELU()]
            width = dim
        layers.append(nn.Linear(width, 1))
        if output == "relu_unit":
            layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)
        keep_default_init(self)
        low, high = (float(x) for x in score_range)
        self.low = low if output == "relu_unit" else (low + high) / 2
        self.scale = high - low if output == "relu_unit" else (high - low) / 2
        self.center = (low + high) / 2
        self.half_width = (high - low) / 2

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        raw = self.mlp(hidden.to(self.mlp[0].weight.dtype)).squeeze(-1)
        return self.low + self.scale * raw.float()


def keep_default_init(module: nn.Module) -> None:
    """Mark the Linear layers of `module` to keep PyTorch's default initialisation: the LLM-style
    N(0, 0.02) of `post_init` shrinks a small MLP's output a hundredfold and it learns nothing."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer._keep_default_init = True


def restricted_softmax(logits: torch.Tensor, candidate_ids: list[int]) -> torch.Tensor:
    """Softmax of the LM logits (..., vocab) restricted to the candidate token ids -> (..., K)."""
    index = torch.as_tensor(candidate_ids, device=logits.device)
    return torch.softmax(logits.float().index_select(-1, index), dim=-1)


def qalign_score(level_probabilities: torch.Tensor, score_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Q-Align score of level probabilities (..., 5), best first: in [0, 1], or on `score_range`."""
    weights = torch.tensor(LEVEL_WEIGHTS, dtype=level_probabilities.dtype, device=level_probabilities.device)
    score = (level_probabilities * weights).sum(-1)
    if score_range is None:
        return score
    low, high = (float(x) for x in score_range)
    return low + (high - low) * score
