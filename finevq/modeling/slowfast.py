"""SlowFast-R50 in plain PyTorch: a clip into its slow- and fast-pathway feature maps, the official
FineVQ motion branch; module names follow pytorchvideo's blocks so Kinetics-trained weights load as they are."""

from __future__ import annotations

import torch
from torch import nn

BETA_INV = 8
"""The fast pathway has 1/8 of the slow pathway's channels."""
FUSION_RATIO = 2
"""Each fast-to-slow fusion doubles the fast channels it hands to the slow pathway."""
FUSION_KERNEL = 7
_SLOW_TEMPORAL_KERNELS = (1, 1, 3, 3)  # res2..res5 of the slow pathway; the fast one is always 3
_SPATIAL_STRIDES = (1, 2, 2, 2)
_BN_EPS = 1e-5


def _conv(dim_in: int, dim_out: int, kernel: tuple[int, int, int], stride=(1, 1, 1)) -> nn.Conv3d:
    return nn.Conv3d(dim_in, dim_out, kernel, stride=stride, padding=tuple(k // 2 for k in kernel), bias=False)


class Stem(nn.Module):
    """Conv -> BN -> ReLU -> spatial max-pool, one per pathway."""

    def __init__(self, dim_out: int, temporal_kernel: int):
        super().__init__()
        self.conv = _conv(3, dim_out, (temporal_kernel, 7, 7), stride=(1, 2, 2))
        self.norm = nn.BatchNorm3d(dim_out, eps=_BN_EPS)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.norm(self.conv(x))))


class Bottleneck(nn.Module):
    """1x1 (temporal kernel t) -> 3x3 (spatial stride) -> 1x1 convolutions, each with BN."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, temporal_kernel: int, stride: int):
        super().__init__()
        self.conv_a = _conv(dim_in, dim_inner, (temporal_kernel, 1, 1))
        self.norm_a = nn.BatchNorm3d(dim_inner, eps=_BN_EPS)
        self.act_a = nn.ReLU()
        self.conv_b = _conv(dim_inner, dim_inner, (1, 3, 3), stride=(1, stride, stride))
        self.norm_b = nn.BatchNorm3d(dim_inner, eps=_BN_EPS)
        self.act_b = nn.ReLU()
        self.conv_c = _conv(dim_inner, dim_out, (1, 1, 1))
        self.norm_c = nn.BatchNorm3d(dim_out, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class ResBlock(nn.Module):
    """A bottleneck with its shortcut (a strided 1x1 projection when the shape changes), then ReLU."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, temporal_kernel: int, stride: int):
        super().__init__()
        self.branch1_conv = self.branch1_norm = None
        if dim_in != dim_out or stride != 1:
            self.branch1_conv = _conv(dim_in, dim_out, (1, 1, 1), stride=(1, stride, stride))
            self.branch1_norm = nn.BatchNorm3d(dim_out, eps=_BN_EPS)
        self.branch2 = Bottleneck(dim_in, dim_inner, dim_out, temporal_kernel, stride)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(shortcut + self.branch2(x))


class ResStage(nn.Module):
    def __init__(self, depth: int, dim_in: int, dim_inner: int, dim_out: int, temporal_kernel: int, stride: int):
        super().__init__()
        self.res_blocks = nn.ModuleList(
            ResBlock(dim_in if index == 0 else dim_out, dim_inner, dim_out, temporal_kernel, stride if index == 0 else 1)
            for index in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class FastToSlowFusion(nn.Module):
    """A temporally strided convolution of the fast features, concatenated onto the slow ones."""

    def __init__(self, fast_dim: int, alpha: int):
        super().__init__()
        self.conv_fast_to_slow = nn.Conv3d(
            fast_dim, fast_dim * FUSION_RATIO, (FUSION_KERNEL, 1, 1), stride=(alpha, 1, 1),
            padding=(FUSION_KERNEL // 2, 0, 0), bias=False,
        )
        self.norm = nn.BatchNorm3d(fast_dim * FUSION_RATIO, eps=_BN_EPS)
        self.activation = nn.ReLU()

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, self.activation(self.norm(self.conv_fast_to_slow(fast)))], dim=1)


class PathwayBlock(nn.Module):
    """One block per pathway, then (but after the last stage) the fast-to-slow fusion."""

    def __init__(self, slow: nn.Module, fast: nn.Module, fusion: FastToSlowFusion | None):
        super().__init__()
        self.multipathway_blocks = nn.ModuleList([slow, fast])
        self.multipathway_fusion = fusion

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slow, fast = self.multipathway_blocks[0](slow), self.multipathway_blocks[1](fast)
        if self.multipathway_fusion is not None:
            slow = self.multipathway_fusion(slow, fast)
        return slow, fast


class SlowFastR50(nn.Module):
    """The stem and the four residual stages of SlowFast (ResNet-50 depths by default), without its
    classification head: clip (B, 3, T, H, W) -> slow (B, 32w, ceil(T/alpha), ...), fast (B, 4w, T, ...).

    The slow pathway sees every `alpha`-th frame; width w is the slow stem's channels (64 in R50).
    BatchNorm always uses its stored statistics: the encoder is frozen, and re-estimating them from
    a few training clips would change what it computes."""

    def __init__(self, width: int = 64, depths: tuple[int, ...] = (3, 4, 6, 3), alpha: int = 4):
        super().__init__()
        self.alpha = alpha
        fast_stem = width // BETA_INV
        blocks = [PathwayBlock(Stem(width, 1), Stem(fast_stem, 5), FastToSlowFusion(fast_stem, alpha))]
        slow_in, fast_in = width + fast_stem * FUSION_RATIO, fast_stem
        for stage, depth in enumerate(depths):
            inner = width * 2**stage
            slow_out, fast_out = 4 * inner, 4 * inner // BETA_INV
            stride = _SPATIAL_STRIDES[stage]
            last = stage == len(depths) - 1
            blocks.append(PathwayBlock(
                ResStage(depth, slow_in, inner, slow_out, _SLOW_TEMPORAL_KERNELS[stage], stride),
                ResStage(depth, fast_in, inner // BETA_INV, fast_out, 3, stride),
                None if last else FastToSlowFusion(fast_out, alpha),
            ))
            slow_in, fast_in = slow_out + fast_out * FUSION_RATIO, fast_out
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = slow_out + fast_out

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.eval()
        return self

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slow, fast = clip[:, :, :: self.alpha], clip
        for block in self.blocks:
            slow, fast = block(slow, fast)
        return slow, fast
