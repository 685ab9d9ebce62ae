"""The visual backbone: keyframes (and, for `tiny`, their native-resolution fragments) into LLM-width
tokens through a vision tower, InternVL's pixel-shuffle and a LayerNorm-Linear-GELU-Linear projector."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel
from transformers.activations import ACT2FN

from finevq.modeling.configuration import FineVQConfig


class Projector(nn.Module):
    """LayerNorm -> Linear -> activation -> Linear, the paper's projector for frames and motion.

    Attribute names follow InternVL's multi-modal projector so its checkpoints load unchanged."""

    def __init__(self, in_features: int, out_features: int, act: str = "gelu"):
        super().__init__()
        self.layer_norm = nn.LayerNorm(in_features)
        self.linear_1 = nn.Linear(in_features, out_features)
        self.act = ACT2FN[act]
        self.linear_2 = nn.Linear(out_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(self.layer_norm(features))))


def pixel_shuffle(features: torch.Tensor, ratio: float) -> torch.Tensor:
    """Space-to-depth of a (N, W, H, C) patch grid by `ratio` (0.5 halves each side, quadruples C).

    The channel order is InternVL's, so an InternVL projector reads its own layout."""
    batch, width, height, channels = features.shape
    features = features.reshape(batch, width, int(height * ratio), int(channels / ratio))
    features = features.permute(0, 2, 1, 3).reshape(
        batch, int(height * ratio), int(width * ratio), int(channels / (ratio * ratio))
    )
    return features.permute(0, 2, 1, 3).contiguous()


class VisionBackbone(nn.Module):
    """Vision tower + pixel-shuffle + projector: images (N, 3, S, S) -> tokens (N, tokens, text width)."""

    def __init__(self, config: FineVQConfig):
        super().__init__()
        self.feature_layer = config.vision_feature_layer
        self.drop_cls = config.vision_feature_select_strategy == "default"
        self.downsample_ratio = config.downsample_ratio
        self.tower = AutoModel.from_config(config.vision_config)
        shuffled_width = config.vision_config.hidden_size * round(1 / config.downsample_ratio) ** 2
        self.projector = Projector(shuffled_width, config.text_config.hidden_size, config.projector_hidden_act)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.projector.linear_1.weight.dtype)
        wants_hidden_states = self.feature_layer != -1
        outputs = self.tower(pixel_values=images, output_hidden_states=wants_hidden_states, return_dict=True)
        features = outputs.hidden_states[self.feature_layer] if wants_hidden_states else outputs.last_hidden_state
        if self.drop_cls:
            features = features[:, 1:, :]
        side = int(round(features.shape[1] ** 0.5))
        features = features.reshape(features.shape[0], side, side, -1)
        features = pixel_shuffle(features, self.downsample_ratio)
        return self.projector(features.reshape(features.shape[0], -1, features.shape[-1]))

    def encode_frames(self, pixel_values: torch.Tensor, fragment_values: torch.Tensor | None = None) -> torch.Tensor:
        """Keyframes (B, F, 3, S, S) [+ fragments (B, F, 3, S, S)] -> frame tokens (B, F, tokens, width).

        With fragments, each frame's slot holds the whole-frame tokens followed by the fragment tokens."""
        batch, frames = pixel_values.shape[:2]
        images = pixel_values.flatten(0, 1)
        if fragment_values is not None:
            images = torch.cat([images, fragment_values.flatten(0, 1)], dim=0)
        tokens = self(images)
        if fragment_values is not None:
            whole, fragments = tokens.chunk(2, dim=0)
            tokens = torch.cat([whole, fragments], dim=1)
        return tokens.reshape(batch, frames, tokens.shape[1], tokens.shape[2])
