"""Distortion detector statistics: one vector per video of measurements aimed at each distortion family
(clipping and haze for colour, flat-cell noise floors and impulses for noise, block grids and mosaics for
artifacts, edge sharpness and spectral fall-off for blur, sub-pixel camera jitter, freezes and flicker
for temporal), measured on keyframes near native resolution and on a motion clip of about 256 px.

The frame statistics of `finevq.modeling.statistics` are measured after a resize to 256 px and on a
64-px motion clip, where mild noise, small mosaics and a few pixels of shaking no longer show; these
are what a classic indicator would measure at the size the distortion lives at."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from finevq.modeling.statistics import (
    _luma,
    _median3,
    gaussian_kernel,
    selected_quantiles,
    separable_filter,
    unit_pixels,
)

_EPS = 1e-5
DETECTOR_KEYFRAMES = 4
"""Keyframes measured (evenly spread over the sample's): the spatial measurements vary little between frames."""
_NOISE_CELL = 16
_CLIP_LEVEL = 4 / 255
"""Luma within this of 0 or 1 counts as clipped: decoded studio-range black and white land there."""
_MIN_UNCLIPPED_CELLS = 8
"""Fewer unclipped cells than this (a video mostly black or white) and all cells are measured."""
_SPECTRUM_BANDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.71)


def _log(value) -> torch.Tensor:
    return torch.log(torch.as_tensor(value, dtype=torch.float32) + _EPS)


def _quantiles(values: torch.Tensor, levels: tuple[float, ...], stride: int = 5) -> torch.Tensor:
    """Per-row quantiles of (N, ...) values over a strided subset of each row, averaged over rows."""
    rows = values.flatten(1)[:, ::stride]
    return selected_quantiles(rows, levels, dim=1).T.mean(0)


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    return separable_filter(images, gaussian_kernel(sigma, radius=int(3 * sigma)))


def _running_max(values: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Max over the odd `size` values centred on each position along `dim`, the same shape (the ends see
    only what exists). By doubling spans, a few elementwise maxima: exact, and ten times faster on CPU
    than max pooling a full frame."""
    edge = list(values.shape)
    edge[dim] = size // 2
    fill = values.new_full(edge, float("-inf"))
    spans = torch.cat([fill, values, fill], dim)
    span = 1
    while span < size:
        step = min(span, size - span)
        length = spans.shape[dim] - step
        spans = torch.maximum(spans.narrow(dim, 0, length), spans.narrow(dim, step, length))
        span += step
    return spans


def _box_min_max(channel: torch.Tensor, size: int, largest: bool) -> torch.Tensor:
    """Running max (or min) over size x size windows of (N, H, W)."""
    sign = 1.0 if largest else -1.0
    return sign * _running_max(_running_max(sign * channel, size, 2), size, 1)


def _colour(rgb: torch.Tensor, luma: torch.Tensor) -> list[torch.Tensor]:
    """Exposure, contrast, clipping, saturation and haze: what colour distortions move."""
    brightest, darkest = rgb.max(1).values, rgb.min(1).values
    saturation = (brightest - darkest) / (brightest + 1e-3)
    blue_diff, red_diff = (rgb[:, 2] - luma) * 0.564, (rgb[:, 0] - luma) * 0.713
    chroma = torch.sqrt(blue_diff**2 + red_diff**2)
    levels = _quantiles(luma, (0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995), stride=7)
    red_green = rgb[:, 0] - rgb[:, 1]
    yellow_blue = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    colourfulness = (torch.sqrt(red_green.std((1, 2)) ** 2 + yellow_blue.std((1, 2)) ** 2)
                     + 0.3 * torch.sqrt(red_green.mean((1, 2)) ** 2 + yellow_blue.mean((1, 2)) ** 2)).mean()
    histogram = torch.stack([torch.histc(frame, 64, 0, 1) for frame in luma]).mean(0)
    share = histogram[histogram > 0] / histogram.sum()
    dark_channel = _box_min_max(darkest, 15, largest=False)
    bright_channel = _box_min_max(brightest, 15, largest=True)
    clipped_high, clipped_low = brightest > 0.985, darkest < 0.015
    return [
        *levels, levels[-1] - levels[0], levels[4] - levels[2], luma.mean(), luma.std((1, 2)).mean(),
        (luma < 0.02).float().mean(), (luma > 0.98).float().mean(),
        clipped_high.float().mean(), clipped_low.float().mean(),
        ((clipped_high | clipped_low) & (saturation > 0.5)).float().mean(),
        *_quantiles(saturation, (0.1, 0.5, 0.9, 0.99), stride=7),
        *_quantiles(chroma, (0.5, 0.9, 0.99), stride=7),
        colourfulness, blue_diff.mean(), red_diff.mean(),
        -(share * share.log()).sum(),
        _quantiles(dark_channel, (0.1,)).squeeze(0), dark_channel.mean(),
        _quantiles(bright_channel, (0.9,)).squeeze(0), (bright_channel - dark_channel).mean(),
    ]


def _second_difference(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """x[i+2] - 2 x[i+1] + x[i] along `dim` (two shorter)."""
    length = values.shape[dim] - 2
    return values.narrow(dim, 2, length) - 2 * values.narrow(dim, 1, length) + values.narrow(dim, 0, length)


def _laplacian_difference(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, H-2, W-2): the 3 x 3 kernel [[1, -2, 1], [-2, 4, -2], [1, -2, 1]], which is the
    second difference along each axis in turn (as slices, several times faster than a convolution)."""
    return _second_difference(_second_difference(images, -1), -2)


def _ycbcr_noise_responses(rgb: torch.Tensor, luma: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Immerkaer's per-pixel noise response (absolute 3 x 3 Laplacian-difference, scaled so its mean
    is the noise's standard deviation) of luma and both colour differences, (N, H-2, W-2) each, with
    its mean over each cell of `_noise_cells`, (N, rows, columns)."""
    responses = [_laplacian_difference(channel).abs() * math.sqrt(math.pi / 2) / 6
                 for channel in (luma, (rgb[:, 2] - luma) * 0.564, (rgb[:, 0] - luma) * 0.713)]
    return [(response, _noise_cells(response).mean((3, 4))) for response in responses]


def _noise_cells(values: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, rows, columns, cell, cell): the _NOISE_CELL-px cells of each frame."""
    cell = min(_NOISE_CELL, *values.shape[1:])  # frames under 18 px make one cell
    rows, columns = values.shape[1] // cell, values.shape[2] // cell
    return values[:, :rows * cell, :columns * cell].reshape(len(values), rows, cell, columns, cell).transpose(2, 3)


def _noise(rgb: torch.Tensor, luma: torch.Tensor,
           noise_responses: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """Noise floors (Immerkaer's estimator over the whole frame and its flattest cells, per YCbCr
    channel, from `_ycbcr_noise_responses`), impulses (outliers of a 3 x 3 median) and stripes (row
    and column means of the detail)."""
    features = []
    for response, cells in noise_responses:
        features += [_log(response.mean()), *_log(_quantiles(cells, (0.05, 0.2, 0.5), stride=1))]
    residual = (luma - _median3(luma)).abs()
    channel_residual = torch.stack([(rgb[:, c] - _median3(rgb[:, c])).abs() for c in range(3)]).max(0).values
    features += [(residual > 0.2).float().mean(), (residual > 0.4).float().mean(),
                 (channel_residual > 0.4).float().mean()]
    for detail in (luma - _gaussian_blur(luma, 2.0), _gaussian_blur(luma, 1.0) - _gaussian_blur(luma, 6.0)):
        spread = detail.std((1, 2)).mean() + _EPS
        features += [_log(detail.mean(2).std(1).mean() / spread), _log(detail.mean(1).std(1).mean() / spread)]
    return features


def _unclipped_noise(luma: torch.Tensor,
                     noise_responses: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """The flattest cells' noise floors per YCbCr channel over the cells that are not clipped (a quarter
    or more of their pixels at the black or white clip level), and the share of clipped cells. Shadows
    crushed to black keep no noise (the clipping flattens it and the encoder keeps nothing), so over all
    cells a noisy, darkened video's flattest cells look clean; its noise still shows in the others.
    Noise itself clips a few pixels of dark and bright areas, hence a quarter rather than any."""
    inner = _noise_cells(luma[:, 1:-1, 1:-1])
    at_clip_level = ((inner <= _CLIP_LEVEL) | (inner >= 1 - _CLIP_LEVEL)).float().mean((3, 4))
    unclipped = (at_clip_level < 0.25).flatten()
    features = []
    for _, cells in noise_responses:
        cells = cells.flatten()
        kept = cells[unclipped] if int(unclipped.sum()) >= _MIN_UNCLIPPED_CELLS else cells
        features.extend(_log(selected_quantiles(kept, (0.05, 0.2, 0.5))))
    return features + [1 - unclipped.float().mean()]


def _gradient_energy(luma: torch.Tensor) -> torch.Tensor:
    return (luma[..., :, 1:] - luma[..., :, :-1]).abs().mean() + (luma[..., 1:, :] - luma[..., :-1, :]).abs().mean()


def _sharpness(luma: torch.Tensor) -> list[torch.Tensor]:
    """Gradient energy across three scales, the strongest edges, local contrast and the radial power
    spectrum of a central crop (relative to its lowest band), its axis energy and peaks."""
    half = F.avg_pool2d(luma[:, None], 2)[:, 0]
    quarter = F.avg_pool2d(half[:, None], 2)[:, 0]
    fine, middle, coarse = _gradient_energy(luma), _gradient_energy(half), _gradient_energy(quarter)
    magnitude = torch.sqrt((luma[:, 1:, 1:] - luma[:, :-1, 1:]) ** 2 + (luma[:, 1:, 1:] - luma[:, 1:, :-1]) ** 2)
    edges = _log(_quantiles(magnitude, (0.9, 0.99, 0.999)))
    local_mean = F.avg_pool2d(F.pad(luma[:, None], (3,) * 4, mode="replicate"), 7, 1)[:, 0]
    local_square = F.avg_pool2d(F.pad(luma[:, None] ** 2, (3,) * 4, mode="replicate"), 7, 1)[:, 0]
    local_std = (local_square - local_mean**2).clamp(min=0).sqrt()
    local_p90 = _quantiles(local_std, (0.9,)).squeeze(0)
    side = min(luma.shape[-2:] + (256,))
    top, left = (luma.shape[-2] - side) // 2, (luma.shape[-1] - side) // 2
    crop = luma[:, top:top + side, left:left + side]
    window = torch.hann_window(side)[:, None] * torch.hann_window(side)[None]
    power = torch.fft.fft2((crop - crop.mean((1, 2), keepdim=True)) * window).abs().pow(2).mean(0)
    rows, columns = torch.fft.fftfreq(side).abs()[:, None], torch.fft.fftfreq(side).abs()[None]
    radius = torch.sqrt(rows**2 + columns**2)
    bands = [power[(radius >= low) & (radius < high)].mean() for low, high in zip(_SPECTRUM_BANDS[:-1], _SPECTRUM_BANDS[1:])]
    axes = power[(columns.expand(side, side) < 1.5 / side) | (rows.expand(side, side) < 1.5 / side)].mean()
    high = power[radius > 0.1]
    return [
        _log(fine), _log(middle / fine), _log(coarse / middle), *edges, edges[1] - _log(local_p90),
        local_std.mean(), local_p90, local_std.mean() / (luma.std((1, 2)).mean() + 1e-3),
        *(_log(band) - _log(bands[0]) for band in bands[1:]),
        _log(axes / power.mean()), _log(high.max() / high.median()),
        _log(selected_quantiles(high, 0.999) / high.median()),
    ]


def _periodicity(profile: torch.Tensor, shortest: int = 4, longest: int = 33) -> torch.Tensor:
    """Log of the strongest Fourier magnitude of (..., N) profiles at periods shortest..longest px over
    the median one: a grid of blocks of any size puts its gradient energy at one period."""
    spectrum = torch.fft.rfft(profile - profile.mean(-1, keepdim=True), dim=-1).abs()
    frequencies = torch.fft.rfftfreq(profile.shape[-1])
    band = spectrum[..., (frequencies >= 1 / longest) & (frequencies <= 1 / shortest)]
    return torch.log(band.max(-1).values / (band.median(-1).values + 1e-6))


def _whitened_peaks(channel: torch.Tensor, low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The strongest (and 99.9th-percentile) spectral power between radii low and high (cycles/px) over
    the mean power at its radius, median over frames (logs): natural images fall off smoothly with
    frequency, while gratings, moire and block grids stand out of their ring."""
    side = min(channel.shape[-2:] + (256,))
    top, left = (channel.shape[-2] - side) // 2, (channel.shape[-1] - side) // 2
    crop = channel[:, top:top + side, left:left + side]
    window = torch.hann_window(side)[:, None] * torch.hann_window(side)[None]
    power = torch.fft.fft2((crop - crop.mean((1, 2), keepdim=True)) * window).abs().pow(2)
    frequencies = torch.fft.fftfreq(side).abs()
    radius = torch.sqrt(frequencies[:, None] ** 2 + frequencies[None] ** 2)
    ring = torch.clamp((radius * side).round().long(), max=side).flatten()
    totals = torch.zeros(len(power), side + 1).index_add_(1, ring, power.flatten(1))
    counts = torch.zeros(side + 1).index_add_(0, ring, torch.ones(len(ring)))
    whitened = power.flatten(1) / (totals / counts.clamp(min=1))[:, ring].clamp(min=1e-12)
    values = whitened[:, ((radius > low) & (radius < high)).flatten()]
    return torch.log(values.max(1).values).median(), torch.log(selected_quantiles(values, 0.999, dim=1)).median()


def _patterns(rgb: torch.Tensor, luma: torch.Tensor) -> list[torch.Tensor]:
    """Block grids of any size (periodicity of the column and row gradient profiles), gratings and
    moire (whitened spectral peaks of luma at low and high frequencies and of the red-blue difference),
    flat runs (near-zero horizontal steps) and ringing (sign flips of the second derivative beside edges)."""
    across = (luma[..., 1:] - luma[..., :-1]).abs()
    columns, rows = across.mean(1), (luma[:, 1:] - luma[:, :-1]).abs().mean(2)
    low_peak, low_peak_999 = _whitened_peaks(luma, 0.015, 0.16)
    high_peak, high_peak_999 = _whitened_peaks(luma, 0.16, 0.5)
    chroma_peak, chroma_peak_999 = _whitened_peaks(rgb[:, 0] - rgb[:, 2], 0.015, 0.3)
    curvature = _second_difference(luma)
    flips = ((curvature[..., 1:] * curvature[..., :-1] < 0)
             & (curvature[..., 1:].abs() > 0.01) & (curvature[..., :-1].abs() > 0.01))
    edges = (across[..., 1:] > 0.1).float()
    beside_edge = (_running_max(edges, 9, 2) > 0)[..., 1:]
    return [
        _periodicity(columns.mean(0)), _periodicity(rows.mean(0)),
        _periodicity(columns).median(), _periodicity(rows).median(),
        low_peak, low_peak_999, high_peak, high_peak_999, chroma_peak, chroma_peak_999,
        (across < 1 / 255).float().mean(),
        flips[beside_edge].float().mean() if bool(beside_edge.any()) else torch.tensor(0.0),
        flips[~beside_edge].float().mean() if bool((~beside_edge).any()) else torch.tensor(0.0),
    ]


def _blocks(luma: torch.Tensor) -> list[torch.Tensor]:
    """Coding and mosaic blocks: the strongest phase of horizontal gradients on 4-, 8- and 16-px grids
    and of vertical ones on 8 px, and the share of near-flat 8 x 8 cells."""
    count, height, width = luma.shape
    across = (luma[..., 1:] - luma[..., :-1]).abs()
    down = (luma[:, 1:] - luma[:, :-1]).abs().transpose(1, 2)
    features = []
    for gradient, block in ((across, 4), (across, 8), (across, 16), (down, 8)):
        span = gradient.shape[-1] - gradient.shape[-1] % block
        phases = gradient[..., :span].reshape(*gradient.shape[:-1], span // block, block).mean((0, 1, 2))
        features.append(_log(phases.max() / (phases.mean() + 1e-6)))
    height, width = height - height % 8, width - width % 8
    cell_std = luma[:, :height, :width].reshape(count, height // 8, 8, width // 8, 8).std((2, 4))
    return features + [(cell_std < 0.004).float().mean(), (cell_std < 0.01).float().mean()]


def _camera_shifts(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel translation between consecutive frames of (T, H, W) by windowed phase correlation
    with a parabola through the peak -> shifts (T-1, 2) in pixels and peak heights (T-1,)."""
    window = torch.hann_window(luma.shape[-2])[:, None] * torch.hann_window(luma.shape[-1])[None]
    spectra = torch.fft.fft2((luma - luma.mean((-2, -1), keepdim=True)) * window)
    cross = spectra[:-1].conj() * spectra[1:]
    correlation = torch.fft.ifft2(cross / (cross.abs() + 1e-6)).real
    height, width = correlation.shape[-2:]
    peak = correlation.flatten(1).argmax(1)
    rows, columns = peak // width, peak % width
    pairs = torch.arange(len(peak))

    def refine(before: torch.Tensor, at: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        curvature = before - 2 * at + after
        return torch.where(curvature.abs() > 1e-9, 0.5 * (before - after) / curvature, torch.zeros_like(at))

    at = correlation[pairs, rows, columns]
    row_shift = rows + refine(correlation[pairs, (rows - 1) % height, columns], at,
                              correlation[pairs, (rows + 1) % height, columns])
    column_shift = columns + refine(correlation[pairs, rows, (columns - 1) % width], at,
                                    correlation[pairs, rows, (columns + 1) % width])
    row_shift = torch.where(row_shift > height / 2, row_shift - height, row_shift)
    column_shift = torch.where(column_shift > width / 2, column_shift - width, column_shift)
    return torch.stack([row_shift, column_shift], -1), at


def _temporal(clip: torch.Tensor, native_scale: float) -> list[torch.Tensor]:
    """Camera speed and its changes (shaking), repeated frames (lagging), brightness and tint
    changes over the frame and in horizontal bands (flickering), from a clip (T, 3, H, W)."""
    luma = _luma(clip)
    shifts, peaks = _camera_shifts(luma)
    velocity = shifts * native_scale
    acceleration = (velocity[1:] - velocity[:-1]).norm(dim=-1)
    change = (luma[1:] - luma[:-1]).abs().mean((1, 2))
    median_change = change.median() + _EPS
    brightness = luma.mean((1, 2))
    rows = luma.shape[1] - luma.shape[1] % 8
    bands = luma[:, :rows].reshape(len(luma), 8, -1).mean(2)
    bands = bands - bands.mean(1, keepdim=True)
    tint = clip.mean((2, 3))
    tint = tint / (tint.sum(1, keepdim=True) + _EPS)
    return [
        velocity.norm(dim=-1).mean(), velocity.std(0).sum(),
        torch.log1p(acceleration.mean()), torch.log1p(acceleration.max()), torch.log1p(acceleration.median()),
        peaks.min(), peaks.mean(),
        (change < 0.003).float().mean(), (change < 0.2 * median_change).float().mean(),
        change.std() / (change.mean() + _EPS), change.max() / median_change, change.min() / median_change,
        _log(_second_difference(brightness).abs().mean()), _log(brightness.std()),
        _log((bands[1:] - bands[:-1]).abs().mean()), _log((tint[1:] - tint[:-1]).abs().mean()),
    ]


def detector_statistics(keyframes: np.ndarray, motion: np.ndarray, native_short_side: int,
                        unclipped_noise: bool = False) -> torch.Tensor:
    """keyframes (F, H, W, 3) and the motion clip (T, h, w, 3), uint8 as decoded (keyframes near native
    size, the clip at about 256 px), and the video's native short side -> (detector_statistics_size(
    unclipped_noise),) float: DETECTOR_NAMES, then with `unclipped_noise` UNCLIPPED_NOISE_NAMES."""
    chosen = np.linspace(0, len(keyframes) - 1, min(DETECTOR_KEYFRAMES, len(keyframes))).round().astype(int)
    rgb = unit_pixels(keyframes[chosen])
    luma = _luma(rgb)
    clip = unit_pixels(motion)
    native_scale = native_short_side / min(clip.shape[-2:])
    noise_responses = _ycbcr_noise_responses(rgb, luma)
    values = [*_colour(rgb, luma), *_noise(rgb, luma, noise_responses), *_sharpness(luma), *_blocks(luma),
              *_patterns(rgb, luma),
              *_temporal(clip, native_scale), _log(native_short_side)]
    if unclipped_noise:
        values += _unclipped_noise(luma, noise_responses)
    return torch.stack([torch.as_tensor(v, dtype=torch.float32).reshape(()) for v in values])


_NOISE_NAMES = tuple(f"{channel}_{name}" for channel in ("luma", "blue_diff", "red_diff")
                     for name in ("noise", "noise_cell_p5", "noise_cell_p20", "noise_cell_p50"))
DETECTOR_NAMES: tuple[str, ...] = (
    "luma_p0.5", "luma_p5", "luma_p25", "luma_p50", "luma_p75", "luma_p95", "luma_p99.5", "luma_range", "luma_iqr",
    "luma_mean", "luma_std", "black_share", "white_share", "channel_clip_high", "channel_clip_low", "chroma_clip",
    "saturation_p10", "saturation_p50", "saturation_p90", "saturation_p99", "chroma_p50", "chroma_p90", "chroma_p99",
    "colourfulness", "blue_diff_mean", "red_diff_mean", "luma_entropy", "dark_channel_p10", "dark_channel_mean",
    "bright_channel_p90", "local_range",
    *_NOISE_NAMES, "impulse_0.2", "impulse_0.4", "channel_impulse_0.4",
    "stripe_rows_fine", "stripe_columns_fine", "stripe_rows_coarse", "stripe_columns_coarse",
    "gradient_fine", "gradient_half_ratio", "gradient_quarter_ratio", "edge_p90", "edge_p99", "edge_p99.9",
    "edge_over_contrast", "local_std_mean", "local_std_p90", "local_std_relative",
    *(f"spectrum_band_{band}" for band in range(1, len(_SPECTRUM_BANDS) - 1)),
    "spectrum_axes", "spectrum_peak_high", "spectrum_peak_high_p99.9",
    "block4_x", "block8_x", "block16_x", "block8_y", "flat_cells_0.004", "flat_cells_0.01",
    "grid_period_x", "grid_period_y", "grid_period_x_frames", "grid_period_y_frames", "peak_low", "peak_low_p99.9",
    "peak_high", "peak_high_p99.9", "peak_chroma", "peak_chroma_p99.9", "flat_steps", "ringing_at_edges",
    "ringing_elsewhere",
    "camera_speed", "camera_speed_spread", "shake_mean", "shake_max", "shake_median", "match_min", "match_mean",
    "frozen_share", "still_share", "change_variation", "change_max_ratio", "change_min_ratio",
    "flicker_curvature", "brightness_spread", "band_flicker", "tint_flicker",
    "log_short_side",
)
"""What each value of `detector_statistics` is, in order."""
DETECTOR_STATISTICS = len(DETECTOR_NAMES)
UNCLIPPED_NOISE_NAMES: tuple[str, ...] = (
    *(f"{channel}_unclipped_noise_cell_{level}" for channel in ("luma", "blue_diff", "red_diff")
      for level in ("p5", "p20", "p50")),
    "clipped_cells",
)
"""What `detector_statistics(..., unclipped_noise=True)` appends, in order."""


def detector_statistics_size(unclipped_noise: bool = False) -> int:
    """Values per video of `detector_statistics` with and without `unclipped_noise`."""
    return DETECTOR_STATISTICS + (len(UNCLIPPED_NOISE_NAMES) if unclipped_noise else 0)
