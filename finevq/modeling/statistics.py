"""Low-level quality statistics as tokens: colour, exposure, contrast, sharpness, noise, blockiness and
periodic patterns of each keyframe and its native fragments; change, flicker and jitter of the motion clip.

A model trained from scratch on a few thousand clips learns these slowly from pixels; measured
directly and projected to one token per keyframe and one for the clip, they give the small model
a fast start, while its ViT and 3D CNN learn the rest. The processor measures them on the decoded
frames before any resize to the model's size (once per video, cached with its tensors in training):
noise, blocks and fine detail survive only at native resolution. Every statistic is scale-normalised
(logs of energies, ratios, shares) so none dominates."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finevq.errors import ConfigError
from finevq.modeling.configuration import FineVQConfig
from finevq.modeling.heads import keep_default_init

_LUMA = (0.299, 0.587, 0.114)
_EPS = 1e-4
BLOCK = 8
"""Coding block size whose boundaries blockiness looks for (H.264's 8x8 transform, JPEG, mosaics)."""


def _luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, H, W)."""
    weights = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(1)


def _log_mean(values: torch.Tensor, dims) -> torch.Tensor:
    return torch.log(values.mean(dims) + _EPS)


def _middle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def _median3(luma: torch.Tensor) -> torch.Tensor:
    """3 x 3 median filter (N, H, W), edges replicated. Exact by the sorted-columns rule: the median
    of the nine is the middle of (largest column minimum, middle column median, smallest column
    maximum); six times faster than sorting unfolded patches."""
    height, width = luma.shape[-2:]
    padded = F.pad(luma.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    above, centre, below = (padded[..., row:row + height, :] for row in range(3))
    low = torch.minimum(torch.minimum(above, centre), below)
    high = torch.maximum(torch.maximum(above, centre), below)
    middle = _middle(above, centre, below)

    def left_centre_right(columns: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(columns[..., shift:shift + width] for shift in range(3))

    lows, middles, highs = left_centre_right(low), left_centre_right(middle), left_centre_right(high)
    return _middle(
        torch.maximum(torch.maximum(lows[0], lows[1]), lows[2]),
        _middle(*middles),
        torch.minimum(torch.minimum(highs[0], highs[1]), highs[2]),
    )


def selected_quantiles(values: torch.Tensor, levels, dim: int | None = None) -> torch.Tensor:
    """`torch.quantile(values, levels, dim=dim)` (linear interpolation; levels a float or a sequence)
    through NumPy's selection: equal within float rounding, and four to five times faster on CPU, as a
    partial sort finds a few levels where torch sorts every row in full."""
    picked = np.quantile(values.detach().cpu().numpy(), levels, axis=dim)
    return torch.as_tensor(picked, dtype=values.dtype, device=values.device)


def _cell_std(values: torch.Tensor, cell: int = BLOCK) -> torch.Tensor:
    """Standard deviation of each `cell` x `cell` cell of (N, H, W) -> (N, cells)."""
    count, height, width = values.shape
    height, width = height - height % cell, width - width % cell
    cells = values[:, :height, :width].reshape(count, height // cell, cell, width // cell, cell)
    return cells.permute(0, 1, 3, 2, 4).reshape(count, -1, cell * cell).std(-1)


def _blockiness(gradient: torch.Tensor) -> torch.Tensor:
    """Largest share of gradient energy on one of the 8 phases of an 8-px grid, over the mean share
    (1 for no grid); phase-free, so crops at any offset show their blocks. gradient: (N, H, W), along W."""
    width = gradient.shape[-1] - gradient.shape[-1] % BLOCK
    phases = gradient[..., :width].reshape(*gradient.shape[:-1], width // BLOCK, BLOCK).mean((1, 2))
    return torch.log(phases.max(-1).values / (phases.mean(-1) + _EPS) + _EPS)


def _spectral_peakiness(luma: torch.Tensor) -> torch.Tensor:
    """Log of the strongest high-frequency Fourier magnitude over the median one: gratings, moire
    and ringing put energy in a few frequencies, noise spreads it."""
    spectrum = torch.fft.rfft2(luma - luma.mean((-2, -1), keepdim=True)).abs()
    height, width = spectrum.shape[-2:]
    rows = torch.fft.fftfreq(luma.shape[-2], device=luma.device).abs().view(-1, 1)
    columns = torch.fft.rfftfreq(luma.shape[-1], device=luma.device).view(1, -1)
    high = ((rows**2 + columns**2).sqrt() > 0.15).expand(height, width)
    values = spectrum[:, high]
    return torch.log(values.max(-1).values / (values.median(-1).values + _EPS) + _EPS)


def _tiles(images: torch.Tensor, tile: int) -> torch.Tensor:
    """(N, C, H, W) -> (N * tiles, C, tile, tile), row-major tiles of each image."""
    count, channels, height, width = images.shape
    tiles = images.reshape(count, channels, height // tile, tile, width // tile, tile)
    return tiles.permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, tile, tile)


def tile_statistics(images: torch.Tensor) -> torch.Tensor:
    """Statistics of RGB images in [0, 1] (N, 3, H, W), H and W at least BLOCK -> (N, TILE_STATISTICS)."""
    luma = _luma(images)
    chroma = (images - luma.unsqueeze(1)).norm(dim=1).flatten(1)
    dx, dy = (luma[..., :, 1:] - luma[..., :, :-1]).abs(), (luma[..., 1:, :] - luma[..., :-1, :]).abs()
    half = F.avg_pool2d(luma.unsqueeze(1), 2).squeeze(1)
    neighbours = luma[..., :-2, 1:-1] + luma[..., 2:, 1:-1] + luma[..., 1:-1, :-2] + luma[..., 1:-1, 2:]
    laplacian = luma[..., 1:-1, 1:-1] * 4 - neighbours
    signed_residual = luma - _median3(luma)
    residual = signed_residual.abs()
    levels, low_levels = (0.02, 0.5, 0.98), (0.1, 0.5)
    brightest, darkest = images.max(1).values, images.min(1).values
    saturation = ((brightest - darkest) / (brightest + 0.05)).flatten(1)
    edge_energy = laplacian.abs().mean((1, 2)) + _EPS
    columns = [
        images.mean((2, 3)),
        torch.log(images.std((2, 3)) + _EPS),
        selected_quantiles(luma.flatten(1), levels, dim=1).T,
        selected_quantiles(chroma, levels[1:], dim=1).T,
        _log_mean(dx, (1, 2)).unsqueeze(1),
        _log_mean(dy, (1, 2)).unsqueeze(1),
        _log_mean((half[..., :, 1:] - half[..., :, :-1]).abs(), (1, 2)).unsqueeze(1),
        torch.log(edge_energy).unsqueeze(1),
        # The median of |laplacian| follows the noise floor: edges are too few to move it.
        torch.log(laplacian.abs().flatten(1).median(1).values + _EPS).unsqueeze(1),
        _log_mean(residual, (1, 2)).unsqueeze(1),
        (residual > 4 * residual.mean((1, 2), keepdim=True) + 0.02).float().mean((1, 2)).unsqueeze(1),
        torch.log(laplacian.mean(-1).std(-1) / edge_energy + _EPS).unsqueeze(1),
        torch.log(laplacian.mean(-2).std(-1) / edge_energy + _EPS).unsqueeze(1),
        _blockiness(dx).unsqueeze(1),
        _blockiness(dy.transpose(-1, -2)).unsqueeze(1),
        _spectral_peakiness(luma).unsqueeze(1),
        (luma < 0.03).float().mean((1, 2)).unsqueeze(1),
        (luma > 0.97).float().mean((1, 2)).unsqueeze(1),
        selected_quantiles(saturation, levels[1:], dim=1).T,
        # In the flattest 8-px cells only noise is left: the low quantiles of the cells' spread of
        # the median residual and of luma itself measure it apart from texture.
        torch.log(selected_quantiles(_cell_std(signed_residual), low_levels, dim=1).T + _EPS),
        torch.log(selected_quantiles(_cell_std(luma), low_levels, dim=1).T + _EPS),
        torch.log(luma.std((1, 2)) + _EPS).unsqueeze(1),
    ]
    return torch.cat(columns, dim=1)


TILE_STATISTICS = 32


def mosaic_statistics(mosaics: torch.Tensor, tile: int) -> torch.Tensor:
    """Statistics of fragment mosaics (N, 3, H, W) in [0, 1], per `tile`-px patch, pooled over the
    patches by mean, max and min -> (N, 3 * TILE_STATISTICS).

    Per patch keeps the seams of the mosaic out of every statistic; max and min over patches give the
    sharpest and the flattest region, which say more about blur and noise than the content does."""
    per_tile = tile_statistics(_tiles(mosaics.float(), tile)).view(mosaics.shape[0], -1, TILE_STATISTICS)
    return torch.cat([per_tile.mean(1), per_tile.max(1).values, per_tile.min(1).values], dim=1)


FRAME_STATISTICS = 4 * TILE_STATISTICS
"""Per keyframe: the whole frame's statistics and its fragment patches' mean, max and min."""


def gaussian_kernel(sigma: float, radius: int) -> torch.Tensor:
    """The normalised 1-D Gaussian of `sigma` over -radius..radius, in double precision: taps that sum
    to one only within float rounding bias a local variance E[x^2] - E[x]^2 of flat areas."""
    axis = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(axis**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def separable_filter(images: torch.Tensor, kernel: torch.Tensor, padding: str = "replicate") -> torch.Tensor:
    """(N, H, W) filtered along both axes by a symmetric 1-D kernel, edges padded by `padding`
    ("replicate", or "constant" for zeros) -> (N, H, W). Through the FFT of the padded images (the
    padding keeps the circular product from wrapping around), in the images' dtype: it matches a
    direct convolution within that dtype's rounding, and on CPU is four to six times faster (float)
    than two single-channel convolutions of a frame."""
    radius = len(kernel) // 2
    padded = F.pad(images[:, None], (radius, radius, radius, radius), mode=padding)[:, 0]
    height, width = padded.shape[-2:]

    def taps(length: int) -> torch.Tensor:
        centred = torch.zeros(length, dtype=padded.dtype, device=padded.device)
        centred[:len(kernel)] = kernel.to(centred)
        return torch.roll(centred, -radius)

    response = torch.fft.fft(taps(height))[:, None] * torch.fft.rfft(taps(width))[None]
    filtered = torch.fft.irfft2(torch.fft.rfft2(padded) * response, s=(height, width))
    return filtered[:, radius:height - radius, radius:width - radius]


def mscn_statistics(luma: torch.Tensor) -> torch.Tensor:
    """Per image (N, H, W) luma in [0, 1], at full and half scale: the MSCN coefficients' variance,
    kurtosis and mean |x|/std ratio (the generalised-Gaussian shape BRISQUE fits), and for the four
    neighbour products (horizontal, vertical, both diagonals) their mean, variance and left/right
    variance ratio (the asymmetry BRISQUE's AGGD fit reads) -> (N, NSS_STATISTICS).

    Natural images have near-Gaussian MSCN coefficients whatever they show; noise, blur and blocks
    each bend that shape their own way, which is why these transfer across content."""
    window = gaussian_kernel(7 / 6, radius=3)
    features = []
    # Double precision up to the coefficients: the local variance E[x^2] - E[x]^2 of a flat area
    # cancels to almost nothing, and float rounding would otherwise decide its coefficients.
    image = luma.double()
    for _ in range(2):
        mean = separable_filter(image, window, padding="constant")
        deviation = (separable_filter(image * image, window, padding="constant") - mean * mean).clamp(min=0).sqrt()
        mscn = ((image - mean) / (deviation + 1 / 255))[:, 4:-4, 4:-4].to(luma.dtype)
        flat = mscn.flatten(1)
        variance = flat.var(1)
        features += [variance, ((flat - flat.mean(1, keepdim=True)) ** 4).mean(1) / (variance**2 + 1e-8),
                     flat.abs().mean(1) / (flat.std(1) + 1e-8)]
        for product in (mscn[:, :, 1:] * mscn[:, :, :-1], mscn[:, 1:] * mscn[:, :-1],
                        mscn[:, 1:, 1:] * mscn[:, :-1, :-1], mscn[:, 1:, :-1] * mscn[:, :-1, 1:]):
            values = product.flatten(1)
            left, right = values.clamp(max=0), values.clamp(min=0)
            features += [values.mean(1), values.var(1), (left**2).mean(1) / ((right**2).mean(1) + 1e-8)]
        image = F.avg_pool2d(image[:, None], 2)[:, 0]
    return torch.stack(features, dim=1)


NSS_STATISTICS = 30
"""Per keyframe with `nss_statistics`: `mscn_statistics` of the whole frame, 15 values at each of two scales."""


def frame_statistics_size(nss: bool) -> int:
    """Statistics per keyframe: FRAME_STATISTICS, plus NSS_STATISTICS with `nss`."""
    return FRAME_STATISTICS + (NSS_STATISTICS if nss else 0)


def _shift(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Global translation (N, 2) between luma frames by phase correlation (whole pixels)."""
    cross = torch.fft.rfft2(previous).conj() * torch.fft.rfft2(current)
    correlation = torch.fft.irfft2(cross / (cross.abs() + _EPS), s=previous.shape[-2:])
    height, width = previous.shape[-2:]
    peak = correlation.flatten(1).argmax(-1)
    rows, columns = peak // width, peak % width
    rows = torch.where(rows > height // 2, rows - height, rows)
    columns = torch.where(columns > width // 2, columns - width, columns)
    return torch.stack([rows, columns], -1).float()


def _clip_luma(clip: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B, T, H, W)."""
    return _luma(clip.flatten(0, 1)).view(clip.shape[0], clip.shape[1], *clip.shape[-2:])


def clip_statistics(clip: torch.Tensor, flicker: bool = False) -> torch.Tensor:
    """Temporal statistics of clips (B, T, 3, H, W) in [0, 1] -> (B, clip_statistics_size(flicker)):
    change, brightness, shift, jerk and sharpness, then with `flicker` the `flicker_statistics`."""
    clip = clip.float()
    luma = _clip_luma(clip)
    change = (luma[:, 1:] - luma[:, :-1]).abs().mean((2, 3))
    brightness = luma.mean((2, 3))
    shifts = _shift(luma[:, :-1].flatten(0, 1), luma[:, 1:].flatten(0, 1)).view(clip.shape[0], -1, 2)
    shift_size = shifts.norm(dim=-1)
    jerk = (shifts[:, 1:] - shifts[:, :-1]).norm(dim=-1)
    sharpness = (luma[..., :, 1:] - luma[..., :, :-1]).abs().mean((2, 3))
    features = [
        torch.log(change.mean(1) + _EPS),
        torch.log(change.std(1) + _EPS),
        torch.log(change.max(1).values / (change.mean(1) + _EPS) + _EPS),
        (change < 0.25 * change.median(1, keepdim=True).values).float().mean(1),
        torch.log(brightness.std(1) + _EPS),
        torch.log((brightness[:, 1:] - brightness[:, :-1]).abs().mean(1) + _EPS),
        torch.log1p(shift_size.mean(1)),
        torch.log1p(jerk.mean(1)),
        torch.log1p(jerk.max(1).values),
        torch.log(sharpness.mean(1) + _EPS),
        torch.log(sharpness.std(1) / (sharpness.mean(1) + _EPS) + _EPS),
    ]
    statistics = torch.stack(features, dim=1)
    return torch.cat([statistics, _lighting_changes(clip, luma)], dim=1) if flicker else statistics


CLIP_STATISTICS = 11


def flicker_statistics(clip: torch.Tensor) -> torch.Tensor:
    """Lighting-change statistics of clips (B, T, 3, H, W) in [0, 1] -> (B, FLICKER_STATISTICS).

    Each consecutive pair's gain is the median over pixels of the log luma ratio: moving content
    changes a few pixels a lot, a lighting change moves every pixel by one factor, so the median
    follows the light, not the motion. From it: the gains' spread, mean and largest size and their
    lag-1 autocorrelation (flicker alternates, a fade drifts one way); the spread of the rows'
    mean ratios about their median (rolling-shutter bands roll down the frame) and of the colour
    channels' changes about their mean (tinted light)."""
    clip = clip.float()
    return _lighting_changes(clip, _clip_luma(clip))


def _lighting_changes(clip: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    """`flicker_statistics` of float clips (B, T, 3, H, W) and their luma (B, T, H, W)."""
    ratios = torch.log((luma[:, 1:] + 0.02) / (luma[:, :-1] + 0.02))
    gains = ratios.flatten(2).median(-1).values
    autocorrelation = (gains[:, 1:] * gains[:, :-1]).mean(1) / (gains.pow(2).mean(1) + _EPS)
    rows = ratios.mean(-1)
    banding = (rows - rows.median(-1, keepdim=True).values).std(-1).mean(1)
    channels = torch.log(clip.mean((-2, -1)) + 0.02)
    channel_changes = channels[:, 1:] - channels[:, :-1]
    tint = (channel_changes - channel_changes.mean(-1, keepdim=True)).abs().mean((1, 2))
    return torch.stack([
        torch.log(gains.std(1) + _EPS),
        torch.log(gains.abs().mean(1) + _EPS),
        torch.log(gains.abs().max(1).values + _EPS),
        autocorrelation,
        torch.log(banding + _EPS),
        torch.log(tint + _EPS),
    ], dim=1)


FLICKER_STATISTICS = 6


def clip_statistics_size(flicker: bool) -> int:
    """Statistics per motion clip: CLIP_STATISTICS, plus FLICKER_STATISTICS with `flicker`."""
    return CLIP_STATISTICS + (FLICKER_STATISTICS if flicker else 0)


def unit_pixels(frames) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def video_statistics(keyframes, fragments, motion: torch.Tensor, fragment_patch: int, nss: bool = False,
                     flicker: bool = False) -> dict[str, torch.Tensor]:
    """The statistics of one video's sample: keyframes (F, H, W, 3) and their native fragment mosaics
    (F, S, S, 3), uint8 as decoded, and its motion clip (T, 3, s, s) in [0, 1] -> frame_statistics
    (F, frame_statistics_size(nss)) and clip_statistics (clip_statistics_size(flicker),)."""
    pixels = unit_pixels(keyframes)
    parts = [tile_statistics(pixels), mosaic_statistics(unit_pixels(fragments), fragment_patch)]
    if nss:
        parts.append(mscn_statistics(_luma(pixels)))
    frames = torch.cat(parts, dim=1)
    return {"frame_statistics": frames, "clip_statistics": clip_statistics(motion[None], flicker)[0]}


def finite_statistics(statistics: torch.Tensor) -> torch.Tensor:
    """Measured statistics as the projectors read them: NaN as 0, everything (infinities too) within +-20."""
    return torch.nan_to_num(statistics.float(), nan=0.0, posinf=20.0, neginf=-20.0).clamp(-20, 20)


def rank_gaussian(rows: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """(N, D) values -> (N, D) standard normal scores through each column's sorted quantile knots (D, K):
    a value's position among the knots (linear between neighbours, the middle of a run of equal knots,
    at most half a step beyond the outermost), as a probability, through the inverse normal CDF."""
    count = knots.shape[1]
    values = rows.t().contiguous()
    below = torch.searchsorted(knots, values, right=False)
    through = torch.searchsorted(knots, values, right=True)
    lower = knots.gather(1, (below - 1).clamp(min=0))
    upper = knots.gather(1, below.clamp(max=count - 1))
    between = (below - 1) + ((values - lower) / (upper - lower).clamp(min=1e-12)).clamp(0, 1)
    position = torch.where(through > below, (below + through - 1) / 2, between).clamp(-0.5, count - 0.5)
    return torch.special.ndtri((position + 1) / (count + 1)).t()


class _StatisticsProjector(nn.Module):
    """Statistics (..., D) -> one LLM-width token each: [rank-gaussian]-BatchNorm-Linear-GELU-Linear.

    The batch norm standardises each statistic over the training videos (its running mean and
    variance are saved with the weights): what differs between videos is small next to what every
    video shares (a log energy of -3 +- 0.2), and the token must carry the difference. With
    `quantiles` knots, each statistic first goes through its training distribution (`rank_gaussian`;
    knots fitted by `fit_quantiles`, saved with the weights); with `keep_raw` too, the mapped statistics
    are followed by the measured ones."""

    def __init__(self, in_features: int, width: int, hidden: int, quantiles: int = 0, keep_raw: bool = False):
        super().__init__()
        self.keep_raw = keep_raw
        read = in_features * (2 if keep_raw else 1)
        self.norm = nn.BatchNorm1d(read)
        self.linear_1 = nn.Linear(read, hidden)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(hidden, width)
        self.quantile_knots: torch.Tensor | None
        self.register_buffer("quantile_knots", torch.full((in_features, quantiles), float("nan")) if quantiles else None)

    @property
    def quantiles_fitted(self) -> bool:
        return self.quantile_knots is None or not bool(torch.isnan(self.quantile_knots).any())

    def fit_quantiles(self, statistics: torch.Tensor) -> None:
        """Set the knots to the quantiles, evenly spaced from minimum to maximum, of each statistic over
        the rows of `statistics` (..., D): the training videos' (or keyframes') measurements."""
        rows = finite_statistics(statistics).reshape(-1, statistics.shape[-1]).double()
        levels = torch.linspace(0, 1, self.quantile_knots.shape[1], dtype=torch.float64)
        self.quantile_knots.copy_(torch.quantile(rows, levels, dim=0).t())

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        statistics = finite_statistics(statistics)
        rows = statistics.reshape(-1, statistics.shape[-1])
        if self.quantile_knots is not None:
            if not self.quantiles_fitted:
                raise ConfigError("this model maps its statistics through quantiles of its training videos "
                                  "(config statistics_quantiles), and they were never fitted: call "
                                  "fit_statistics_quantiles on training videos before training")
            mapped = rank_gaussian(rows, self.quantile_knots.float())
            rows = torch.cat([mapped, rows], 1) if self.keep_raw else mapped
        rows = rows.to(self.linear_1.weight.dtype)
        norm = self.norm
        # One row has no batch variance: it is standardised by the running statistics, as in eval.
        rows = F.batch_norm(rows, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                            training=self.training and len(rows) > 1, momentum=norm.momentum, eps=norm.eps)
        return self.linear_2(self.act(self.linear_1(rows))).reshape(*statistics.shape[:-1], -1)


class QualityStatistics(nn.Module):
    """Projects measured statistics to tokens: one per keyframe (the frame's and its fragments'
    statistics), one per motion clip and, with `detector_tokens`, that many from the video's
    distortion detector statistics."""

    def __init__(self, config: FineVQConfig):
        super().__init__()
        from finevq.modeling.detectors import detector_statistics_size

        width = config.text_config.hidden_size
        quantiles, keep_raw = config.statistics_quantiles, config.statistics_quantiles_keep_raw
        self.frame_projector = _StatisticsProjector(frame_statistics_size(config.nss_statistics), width,
                                                    config.statistics_hidden_size, quantiles, keep_raw)
        self.clip_projector = _StatisticsProjector(clip_statistics_size(config.flicker_statistics), width,
                                                   config.statistics_hidden_size, quantiles, keep_raw)
        self.detector_tokens = config.detector_tokens
        self.detector_projector = None
        if self.detector_tokens:
            self.detector_projector = _StatisticsProjector(detector_statistics_size(config.unclipped_noise_statistics),
                                                           width * self.detector_tokens,
                                                           config.statistics_hidden_size * self.detector_tokens,
                                                           quantiles, keep_raw)
        keep_default_init(self)

    def projectors(self) -> list[tuple[str, _StatisticsProjector]]:
        """(the processor tensor it reads, projector) of each statistics projector."""
        pairs = [("frame_statistics", self.frame_projector), ("clip_statistics", self.clip_projector)]
        return pairs + ([("detector_statistics", self.detector_projector)] if self.detector_projector is not None else [])

    def forward(self, frame_statistics: torch.Tensor, clip_statistics: torch.Tensor,
                detector_statistics: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, D), (B, D') [and (B, D'')] -> frame tokens (B, F, 1, width) and the clip's tokens
        (B, 1 + detector_tokens, width): its statistics token, then the detector tokens."""
        clip = self.clip_projector(clip_statistics).unsqueeze(1)
        if self.detector_projector is not None:
            detector = self.detector_projector(detector_statistics).view(len(clip), self.detector_tokens, -1)
            clip = torch.cat([clip, detector], 1)
        return self.frame_projector(frame_statistics).unsqueeze(2), clip
