"""Each FineVD-Synth distortion measurably changes real rendered frames in the expected direction,
for every randomised implementation: colour statistics, high-frequency energy, blockiness, ringing
overshoot, periodic patterns and frame-difference patterns."""

from fractions import Fraction

import numpy as np
import pytest

from finevq.data.synth.content import Clip, SceneOptions, render, sample_scene
from finevq.data.synth.distortions import DISTORTIONS, ClipContext, apply_distortions, lag_indices
from finevq.taxonomy import SPECIFIC_SUBTYPES

SEEDS = range(4)


@pytest.fixture(scope="module")
def clip() -> Clip:
    options = SceneOptions(min_side=96, max_side=120, min_fps=30, max_fps=30, max_frames=10, procedural_share=0.0)
    scene = sample_scene(np.random.default_rng(11), "train", options, moving=True)
    scene.objects = []
    return render(scene)


@pytest.fixture(scope="module")
def still_clip(clip) -> Clip:
    frames = np.repeat(clip.frames[:1], len(clip.frames), axis=0)
    return Clip(frames, clip.fps, np.zeros_like(clip.motion))


def distort(clip: Clip, subtype: str, seed: int, severity: float = 0.8, **overrides) -> np.ndarray:
    params = {**DISTORTIONS[subtype].sample(severity, np.random.default_rng(seed)), **overrides}
    return apply_distortions(clip.frames, [(subtype, params)], ClipContext(clip.fps, clip.motion))


def luma(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def saturation(frames: np.ndarray) -> float:
    return float((frames.max(axis=-1).astype(float) - frames.min(axis=-1)).mean())


def high_frequency(frames: np.ndarray) -> float:
    y = luma(frames)
    laplacian = 4 * y[:, 1:-1, 1:-1] - y[:, :-2, 1:-1] - y[:, 2:, 1:-1] - y[:, 1:-1, :-2] - y[:, 1:-1, 2:]
    return float((laplacian**2).mean())


def blockiness(frames: np.ndarray, block: int = 8, offset: int = 0) -> float:
    """Mean horizontal step across block boundaries over the mean step elsewhere."""
    steps = np.abs(np.diff(luma(frames), axis=2))
    columns = np.arange(steps.shape[2])
    at_boundary = (columns + 1 - offset) % block == 0
    return float(steps[..., at_boundary].mean() / max(steps[..., ~at_boundary].mean(), 1e-6))


def frame_steps(frames: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))


def test_every_subtype_changes_the_frames_and_keeps_their_shape(clip):
    for subtype in SPECIFIC_SUBTYPES:
        out = distort(clip, subtype, 0)
        assert out.shape == clip.frames.shape and out.dtype == np.uint8, subtype
        assert np.abs(out.astype(int) - clip.frames).mean() > 1.0, subtype


@pytest.mark.parametrize("seed", SEEDS)
def test_colour_distortions_move_their_statistic(clip, seed):
    frames = clip.frames
    assert saturation(distort(clip, "low saturation", seed)) < 0.6 * saturation(frames)
    assert saturation(distort(clip, "high saturation", seed)) > 1.3 * saturation(frames)
    assert luma(distort(clip, "over dark", seed)).mean() < luma(frames).mean() - 15
    assert luma(distort(clip, "over bright", seed)).mean() > luma(frames).mean() + 15
    assert luma(distort(clip, "low contrast", seed)).std() < 0.7 * luma(frames).std()
    assert luma(distort(clip, "high contrast", seed)).std() > 1.2 * luma(frames).std()


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_distortions(clip, still_clip, seed):
    noisy = distort(clip, "gaussian noise", seed)
    assert high_frequency(noisy) > 1.05 * high_frequency(clip.frames)
    assert (noisy.astype(float) - clip.frames).std() > 5.0
    pulses = np.abs(distort(clip, "pulse noise", seed).astype(int) - clip.frames).max(axis=-1) > 60
    assert 0.002 < pulses.mean() < 0.2
    stripes = distort(clip, "stripe noise", seed).astype(float) - clip.frames
    axis = 2 if DISTORTIONS["stripe noise"].sample(0.8, np.random.default_rng(seed))["axis"] == "rows" else 1
    line_means = stripes.mean(axis=(axis, 3))
    assert line_means.std() > 2.0, "stripes are whole rows or columns shifted together"
    # Per-frame noise changes from frame to frame even on a still scene.
    noisy_still = distort(still_clip, "gaussian noise", seed, static=False)
    assert frame_steps(noisy_still).mean() > 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_blur_distortions_remove_high_frequencies(clip, seed):
    sharp = high_frequency(clip.frames)
    for subtype in ("resolution blur", "shooting-system blur", "gaussian blur", "compression blur", "motion blur",
                    "exposure blur"):
        assert high_frequency(distort(clip, subtype, seed)) < 0.75 * sharp, (subtype, seed)


def test_motion_blur_follows_the_motion_direction(clip):
    horizontal = Clip(clip.frames, clip.fps, np.tile([[6.0, 0.0]], (len(clip.frames), 1)))
    out = distort(horizontal, "motion blur", 0, length=15.0)
    along = np.abs(np.diff(luma(out), axis=2)).mean() / np.abs(np.diff(luma(clip.frames), axis=2)).mean()
    across = np.abs(np.diff(luma(out), axis=1)).mean() / np.abs(np.diff(luma(clip.frames), axis=1)).mean()
    assert along < 0.7 * across


@pytest.mark.parametrize("method", ["mosaic", "dct"])
def test_square_artifact_is_blocky_at_its_block_grid(clip, method):
    out = distort(clip, "square artifact", 0, method=method, block=8, coverage=1.0, offset=[0, 0], quant=150.0)
    assert blockiness(out, 8) > 1.3 * blockiness(clip.frames, 8)


def test_compression_artifact_makes_8x8_blocks_and_loses_detail(clip):
    out = distort(clip, "compression artifact", 0, codec="mpeg4", options={"qmin": "31", "qmax": "31"})
    assert blockiness(out[:1], 8) > 1.5 * blockiness(clip.frames[:1], 8), "the intra frame shows its 8x8 DCT blocks"
    for seed in SEEDS:
        error = np.abs(distort(clip, "compression artifact", seed, severity=1.0).astype(float) - clip.frames).mean()
        assert error > 3.0, seed


@pytest.mark.parametrize("subtype", ["compression artifact", "compression blur"])
def test_every_codec_the_samplers_draw_encodes_and_degrades_more_when_severe(clip, subtype):
    drawn: dict[str, dict[float, float]] = {}
    for seed in range(40):
        for severity in (0.2, 1.0):
            params = DISTORTIONS[subtype].sample(severity, np.random.default_rng(seed))
            if severity in drawn.get(params["codec"], {}):
                continue
            out = apply_distortions(clip.frames, [(subtype, params)], ClipContext(clip.fps, clip.motion))
            error = float(np.abs(out.astype(float) - clip.frames).mean())
            drawn.setdefault(params["codec"], {})[severity] = error
    expected = ({"libx264", "libx265", "mpeg4", "mpeg2video", "libvpx-vp9"} if subtype == "compression artifact"
                else {"libx264", "libx265", "libvpx-vp9"})
    assert set(drawn) == expected
    for codec, errors in drawn.items():
        assert errors[1.0] > errors[0.2] > 0.5, (codec, errors)


def overshoot(out: np.ndarray, clean: np.ndarray) -> float:
    """How far pixels go beyond the clean local range (ringing and halos overshoot it)."""
    from scipy import ndimage

    y, reference = luma(out), luma(clean)
    high = ndimage.maximum_filter(reference, size=(1, 5, 5))
    low = ndimage.minimum_filter(reference, size=(1, 5, 5))
    return float((np.clip(y - high, 0, None) + np.clip(low - y, 0, None)).mean())


@pytest.mark.parametrize("method", ["unsharp", "lowpass"])
def test_ring_artifact_overshoots_edges(clip, method):
    out = distort(clip, "ring artifact", 0, method=method)
    assert overshoot(out, clip.frames) > 0.5
    assert overshoot(out, clip.frames) > 3 * overshoot(distort(clip, "gaussian blur", 0), clip.frames)


@pytest.mark.parametrize("seed", SEEDS)
def test_moire_adds_a_periodic_pattern(clip, seed):
    difference = luma(distort(clip, "moire pattern", seed, coverage=1.0)[0]) - luma(clip.frames[:1])[0]
    spectrum = np.abs(np.fft.fft2(difference - difference.mean()))
    assert spectrum.max() > 8 * spectrum.mean()


@pytest.mark.parametrize("seed", SEEDS)
def test_temporal_distortions_in_the_frame_sequence(clip, still_clip, seed):
    shaken = distort(still_clip, "shaking", seed)
    assert frame_steps(shaken).mean() > 3.0 and frame_steps(still_clip.frames).max() == 0
    lagged = distort(clip, "lagging", seed)
    assert (frame_steps(lagged) == 0).any() and (frame_steps(clip.frames) > 0).all()
    flicker = distort(still_clip, "flickering", seed)
    assert luma(flicker).mean(axis=(1, 2)).std() > 2.0 or np.abs(np.diff(luma(flicker), axis=0)).mean() > 2.0
    assert np.diff(luma(flicker).mean(axis=(1, 2))).std() > 0 and luma(still_clip.frames).mean(axis=(1, 2)).std() == 0


def test_lag_indices_repeat_and_drop_frames():
    for method in ("freeze", "low_fps", "irregular"):
        for seed in SEEDS:
            indices = lag_indices(30, {"method": method, "severity": 0.8, "hold": 4, "step": 3, "seed": seed})
            steps = np.diff(indices)
            assert (steps >= 0).all() and (steps == 0).any() and indices[0] == 0, (method, seed)
            assert (steps > 1).any() or method == "freeze" and steps.max() >= 1


def test_exposure_blur_smears_moving_content_over_time(clip):
    out = distort(clip, "exposure blur", 0, bloom=0.0, frames=5, decay=0.0)
    mean_of_last_five = clip.frames[-5:].astype(float).mean(axis=0)
    assert np.abs(out[-1] - mean_of_last_five).mean() < 1.0


def test_distortions_combine_in_pipeline_order(clip):
    context = ClipContext(Fraction(30), clip.motion)
    noise = DISTORTIONS["gaussian noise"].sample(0.6, np.random.default_rng(0))
    blur = DISTORTIONS["gaussian blur"].sample(0.6, np.random.default_rng(0))
    one_way = apply_distortions(clip.frames, [("gaussian noise", noise), ("gaussian blur", blur)], context)
    other_way = apply_distortions(clip.frames, [("gaussian blur", blur), ("gaussian noise", noise)], context)
    assert np.array_equal(one_way, other_way), "the order is the pipeline's, not the list's"
    listed = apply_distortions(clip.frames, [("gaussian noise", noise), ("gaussian blur", blur)], context,
                               in_listed_order=True)
    assert high_frequency(listed) < 0.8 * high_frequency(one_way), "a blur after the noise smooths it too"
    assert high_frequency(one_way) > high_frequency(distort(clip, "gaussian blur", 0, severity=0.6))
