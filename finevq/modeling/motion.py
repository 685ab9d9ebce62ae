"""The motion encoder: a clip into a few LLM-width motion tokens, through a small 3D CNN (`tiny3d`),
transformers' VideoMAE (`videomae`) or SlowFast-R50 (`slowfast`), then the paper's LayerNorm-Linear-GELU-Linear projector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import VideoMAEModel

from finevq.modeling.configuration import FineVQConfig
from finevq.modeling.slowfast import SlowFastR50
from finevq.modeling.vision import Projector


class Tiny3DEncoder(nn.Module):
    """A few strided 3D convolutions: clip (B, 3, T, H, W) -> features (B, C, T', H', W')."""

    def __init__(self, channels: list[int] | tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for index, out_channels in enumerate(channels):
            # The first layer keeps the temporal resolution so fast motion is still visible.
            stride = (1, 2, 2) if index == 0 else (2, 2, 2)
            layers += [nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1), nn.GELU()]
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.layers(clip)


class MotionEncoder(nn.Module):
    """Motion clip (B, T, 3, h, w) -> `num_motion_tokens` tokens (B, K, text width).

    The clip's features are pooled over space and into K equal temporal segments, one token each;
    SlowFast's two pathways are pooled apart and concatenated (slow channels first), as the paper does."""

    def __init__(self, config: FineVQConfig):
        super().__init__()
        self.kind = config.motion_encoder
        self.num_tokens = config.num_motion_tokens
        if self.kind == "videomae":
            self.encoder = VideoMAEModel(config.motion_config)
            feature_width = config.motion_config.hidden_size
        elif self.kind == "slowfast":
            self.encoder = SlowFastR50(config.slowfast_width, tuple(config.slowfast_depths), config.slowfast_alpha)
            feature_width = self.encoder.out_channels
        else:
            self.encoder = Tiny3DEncoder(config.tiny3d_channels)
            feature_width = self.encoder.out_channels
        self.projector = Projector(feature_width, config.text_config.hidden_size, config.projector_hidden_act)

    def _segment_features(self, clip: torch.Tensor) -> torch.Tensor:
        if self.kind == "videomae":
            tokens = self.encoder(pixel_values=clip, return_dict=True).last_hidden_state
            motion_config = self.encoder.config
            steps = clip.shape[1] // motion_config.tubelet_size
            tokens = tokens.reshape(tokens.shape[0], steps, -1, tokens.shape[-1]).mean(dim=2)  # (B, T', C)
            return F.adaptive_avg_pool1d(tokens.transpose(1, 2), self.num_tokens).transpose(1, 2)
        if self.kind == "slowfast":
            pathways = self.encoder(clip.transpose(1, 2))
            pooled = [F.adaptive_avg_pool3d(features, (self.num_tokens, 1, 1)).flatten(2) for features in pathways]
            return torch.cat(pooled, dim=1).transpose(1, 2)
        features = self.encoder(clip.transpose(1, 2))
        pooled = F.adaptive_avg_pool3d(features, (self.num_tokens, 1, 1))
        return pooled.flatten(2).transpose(1, 2)

    def forward(self, motion_values: torch.Tensor) -> torch.Tensor:
        motion_values = motion_values.to(self.projector.linear_1.weight.dtype)
        return self.projector(self._segment_features(motion_values))
