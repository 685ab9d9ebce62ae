"""The distortion detector statistics: each family's measurement responds to its distortion at the size
it lives at, the processor emits them near native resolution, and the model reads them as tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as photos
from skimage.transform import resize

from finevq.errors import ConfigError
from finevq.modeling import build_model
from finevq.modeling.configuration import FineVQConfig
from finevq.modeling.detectors import (
    DETECTOR_NAMES,
    DETECTOR_STATISTICS,
    UNCLIPPED_NOISE_NAMES,
    detector_statistics,
    detector_statistics_size,
)
from finevq.taxonomy import COARSE_TYPES
from tiny_model import TINY
from videos import write_video

DETECTORS = {**TINY, "model.detector_tokens": 3}


def _column(name: str) -> int:
    return DETECTOR_NAMES.index(name)


def _scene(height: int = 240, width: int = 320) -> np.ndarray:
    """A photo larger than the frame, for a camera to pan over."""
    return (resize(photos.astronaut(), (height + 64, width + 64), anti_aliasing=True) * 255).astype(np.uint8)


def _pan(offsets: np.ndarray, height: int = 240, width: int = 320) -> np.ndarray:
    """Frames (T, H, W, 3) of the scene seen from camera positions (T, 2) in pixels."""
    scene = _scene(height, width)
    return np.stack([scene[32 + dy:32 + dy + height, 32 + dx:32 + dx + width] for dy, dx in offsets.astype(int)])


def _steady() -> np.ndarray:
    return _pan(np.stack([np.zeros(16), np.arange(16)], 1))


def _measure(clip: np.ndarray) -> torch.Tensor:
    return detector_statistics(clip[::2], clip, min(clip.shape[1:3]))


def test_each_family_responds_to_its_distortion():
    rng = np.random.default_rng(0)
    clean = _steady()
    noisy = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
    mosaic = np.repeat(np.repeat(clean[:, ::12, ::12], 12, 1), 12, 2)[:, :240, :320]
    grey = np.repeat(clean.mean(-1, keepdims=True), 3, -1).astype(np.uint8)
    shaking = _pan(np.stack([rng.integers(-8, 9, 16), np.arange(16) + rng.integers(-8, 9, 16)], 1))
    frozen = clean[[t - (t % 3 == 2) for t in range(16)]]
    flickering = np.clip(clean * (1 + 0.3 * np.sin(np.arange(16) * 2.1))[:, None, None, None], 0, 255).astype(np.uint8)
    stats = {name: _measure(clip) for name, clip in {
        "clean": clean, "noisy": noisy, "mosaic": mosaic, "grey": grey, "shaking": shaking, "frozen": frozen,
        "flickering": flickering}.items()}
    clean_stats = stats["clean"]
    assert clean_stats.shape == (DETECTOR_STATISTICS,) and torch.isfinite(clean_stats).all()
    assert stats["noisy"][_column("luma_noise_cell_p5")] > clean_stats[_column("luma_noise_cell_p5")] + 1.0
    assert stats["mosaic"][_column("grid_period_x")] > clean_stats[_column("grid_period_x")] + 1.0
    assert stats["mosaic"][_column("flat_steps")] > clean_stats[_column("flat_steps")] + 0.3
    assert stats["grey"][_column("saturation_p50")] < 0.02 < clean_stats[_column("saturation_p50")] - 0.1
    assert stats["shaking"][_column("shake_mean")] > clean_stats[_column("shake_mean")] + 1.0
    assert stats["frozen"][_column("frozen_share")] > 0.25 > clean_stats[_column("frozen_share")]
    assert stats["flickering"][_column("flicker_curvature")] > clean_stats[_column("flicker_curvature")] + 1.0


def test_unclipped_noise_floors_see_the_noise_that_crushed_shadows_hide():
    rng = np.random.default_rng(0)
    clean = _steady()
    noisy = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
    for frames in (clean, noisy):
        frames[:, :, :160] = 0  # the left half darkened to a clipped black, as a strong darkening does
    stats = {name: detector_statistics(frames[::2], frames, 240, unclipped_noise=True)
             for name, frames in {"clean": clean, "noisy": noisy}.items()}
    assert stats["clean"].shape == (detector_statistics_size(True),) == (DETECTOR_STATISTICS + len(UNCLIPPED_NOISE_NAMES),)
    torch.testing.assert_close(stats["clean"][:DETECTOR_STATISTICS], _measure(clean))

    def value(name: str, statistic: str) -> float:
        return float(stats[name][DETECTOR_STATISTICS + UNCLIPPED_NOISE_NAMES.index(statistic)] if statistic in
                     UNCLIPPED_NOISE_NAMES else stats[name][_column(statistic)])

    # Over all cells the flattest are black in both, so the noisy video looks as clean as the clean one;
    # over the cells above the clip level its noise shows.
    assert abs(value("noisy", "luma_noise_cell_p5") - value("clean", "luma_noise_cell_p5")) < 0.5
    assert value("noisy", "luma_unclipped_noise_cell_p5") > value("clean", "luma_unclipped_noise_cell_p5") + 1.0
    # Half the frame and the photo's own black backdrop are clipped; noise does not clip a cell.
    assert value("noisy", "clipped_cells") == pytest.approx(value("clean", "clipped_cells"), abs=0.05)
    assert value("clean", "clipped_cells") > 0.5


def test_the_unclipped_noise_option_extends_the_detector_statistics(tmp_path):
    model, processor = build_model("tiny", {**DETECTORS, "model.unclipped_noise_statistics": True}, seed=0)
    assert processor.settings.unclipped_noise_statistics
    inputs = processor.video_inputs(write_video(tmp_path / "clip.mp4", num_frames=12, width=96, height=64))
    assert inputs["detector_statistics"].shape == (1, detector_statistics_size(True))
    assert model.encode_video(**inputs).motion.shape[1] == processor.settings.num_motion_tokens
    with pytest.raises(ConfigError, match="unclipped_noise_statistics"):
        FineVQConfig(quality_statistics=True, unclipped_noise_statistics=True)


def test_camera_shifts_are_measured_below_a_pixel_and_in_native_pixels():
    scene = _scene(480, 640)
    frames = []
    for offset in np.arange(16) * 0.5:  # half a native pixel a frame
        whole, fraction = int(offset), offset % 1
        left = scene[32:32 + 480, 32 + whole:32 + whole + 640].astype(np.float32)
        right = scene[32:32 + 480, 33 + whole:33 + whole + 640].astype(np.float32)
        frames.append(((1 - fraction) * left + fraction * right).astype(np.uint8))
    frames = np.stack(frames)
    native = detector_statistics(frames[::4], frames, native_short_side=480)
    assert native[_column("camera_speed")] == pytest.approx(0.5, abs=0.02)
    assert native[_column("shake_mean")] < 0.02  # steady: the speed does not change
    # Measured on a half-size clip, the shift is still stated in native pixels (a whole-pixel estimate
    # would read 0 there).
    half = np.stack([resize(frame, (240, 320), anti_aliasing=True, preserve_range=True) for frame in frames])
    halved = detector_statistics(frames[::4], half.astype(np.uint8), native_short_side=480)
    assert 0.2 < halved[_column("camera_speed")] < 0.7


def test_processor_measures_near_native_size_and_the_model_reads_the_tokens(tmp_path):
    model, processor = build_model("tiny", DETECTORS, seed=0)
    settings = processor.settings
    assert settings.detector_statistics  # the processor follows the model config
    kwargs = settings.sampling_kwargs()
    assert kwargs["min_short_side"] == settings.detector_size and kwargs["motion_min_short_side"] == settings.detector_motion_size
    rng = np.random.default_rng(0)
    clean = _steady()
    noisy = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
    measured = {}
    for name, frames in {"clean": clean, "noisy": noisy}.items():
        inputs = processor.video_inputs(write_video(tmp_path / f"{name}.mp4", frames=frames, options={"crf": "10"}))
        measured[name] = inputs["detector_statistics"][0]
    assert inputs["detector_statistics"].shape == (1, DETECTOR_STATISTICS)
    # At 240 px native (kept: under detector_size) the noise shows in the flattest cells; the frame
    # statistics still get their usual size.
    column = _column("luma_noise_cell_p5")
    assert measured["noisy"][column] > measured["clean"][column] + 1.0
    assert measured["clean"][_column("log_short_side")] == pytest.approx(np.log(240), abs=1e-3)
    visual = model.encode_video(**inputs)
    assert visual.motion.shape[1] == model.config.num_motion_tokens + 1 + 3 == settings.num_motion_tokens
    other = dict(inputs, detector_statistics=inputs["detector_statistics"] + 5.0)
    model.eval()
    assert not torch.allclose(model.encode_video(**other).motion[:, -3:], visual.motion[:, -3:])
    torch.testing.assert_close(model.encode_video(**other).motion[:, :-3], visual.motion[:, :-3])
    with pytest.raises(ConfigError, match="detector_statistics"):
        model.encode_video(**{k: v for k, v in inputs.items() if k != "detector_statistics"})


def test_plain_processor_is_unchanged_and_detectors_need_statistics(tmp_path):
    _, processor = build_model("tiny", TINY, seed=0)
    assert not processor.settings.detector_statistics
    assert processor.settings.sampling_kwargs()["motion_min_short_side"] == processor.settings.motion_size
    video = write_video(tmp_path / "clip.mp4", num_frames=12, width=96, height=64)
    assert "detector_statistics" not in processor.video_tensors(video)
    with pytest.raises(ConfigError, match="detector_tokens"):
        FineVQConfig(quality_statistics=False, detector_tokens=2)


def test_presence_probe_reads_each_types_own_detector_token(tmp_path):
    model, processor = build_model("tiny", {**TINY, "model.detector_tokens": 5, "model.presence_probe_weight": 2.0}, seed=0)
    video = str(write_video(tmp_path / "clip.mp4", num_frames=12, width=96, height=64))

    def row(question_type, answer, label, **fields):
        return {"video": video, "question_type": question_type, "label": label, **fields,
                "conversations": [{"role": "user", "content": "Question?"}, {"role": "assistant", "content": answer}]}

    rows = [row("yes_no", "Yes", "yes", coarse_type="noise"),
            row("which_subtype", "A", "none", coarse_type="color"),
            row("score", "The blur quality of this video is good.", "good", dimension="blur", mos=70.0, severity=0.0),
            row("which_dimension", "B", "blur")]
    batch = processor.collate([processor.encode_row(r) for r in rows])
    assert batch["presence_types"].tolist() == [COARSE_TYPES.index("noise"), 0, COARSE_TYPES.index("blur"), -1]
    assert batch["present"][:3].tolist() == [1.0, 0.0, 0.0] and batch["present"][3].isnan()
    without_labels = model(**{k: v for k, v in batch.items() if k != "present"})
    with_labels = model(**batch)
    # Row i's logit is type k's weights on detector token k of its video: its own token, not the others'.
    detectors = model.encode_video(**{k: batch[k] for k in ("pixel_values", "motion_values", "fragment_values",
                                                            "frame_statistics", "clip_statistics",
                                                            "detector_statistics")}).motion[0, -5:]
    types = batch["presence_types"][:3]
    logits = (detectors[types] * model.presence_probe.weight[types]).sum(-1) + model.presence_probe.bias[types]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["present"][:3]).detach()
    added = (with_labels.score_loss - without_labels.score_loss).detach()
    assert float(added) == pytest.approx(2.0 * float(expected), rel=1e-4)
    assert float((with_labels.loss - without_labels.loss).detach()) == pytest.approx(float(added), rel=1e-4)
    with_labels.loss.backward()
    assert model.presence_probe.weight.grad[types].abs().sum(-1).gt(0).all()
    assert model.statistics.detector_projector.linear_1.weight.grad.abs().sum() > 0
    unlabelled = model(**{**batch, "presence_types": torch.full_like(batch["presence_types"], -1)})
    assert float(unlabelled.score_loss.detach()) == pytest.approx(float(without_labels.score_loss.detach()), rel=1e-5)


def test_presence_probe_needs_one_detector_token_per_type():
    with pytest.raises(ConfigError, match="presence_probe_weight"):
        FineVQConfig(quality_statistics=True, detector_tokens=3, presence_probe_weight=1.0)
    with pytest.raises(ConfigError, match="presence_probe_weight"):
        FineVQConfig(presence_probe_weight=-1.0)
