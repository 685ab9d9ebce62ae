"""The measured quality statistics: each responds to the distortion it is meant to see, the processor emits
them, the model turns them into tokens (optionally also read straight into scores), the training-only helpers work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as photos
from skimage.transform import resize

from finevq.errors import ConfigError
from finevq.modeling import (
    FineVQForConditionalGeneration,
    apply_lora,
    build_model,
    score_dimensions,
    score_videos,
)
from finevq.modeling.configuration import FineVQConfig
from finevq.modeling.statistics import (
    CLIP_STATISTICS,
    FLICKER_STATISTICS,
    FRAME_STATISTICS,
    NSS_STATISTICS,
    TILE_STATISTICS,
    _StatisticsProjector,
    _luma,
    _median3,
    clip_statistics,
    clip_statistics_size,
    finite_statistics,
    flicker_statistics,
    frame_statistics_size,
    gaussian_kernel,
    mosaic_statistics,
    mscn_statistics,
    rank_gaussian,
    selected_quantiles,
    separable_filter,
    tile_statistics,
)
from finevq.taxonomy import DIMENSIONS
from tiny_model import TINY
from videos import write_video

# Column indices of `tile_statistics` (see its list): the pooled vector is mean, max, min over tiles.
CHROMA_MEDIAN, SHARPNESS_X, NOISE_FLOOR, BLOCKINESS_X = 9, 11, 15, 20
DARK_SHARE, SATURATION_MEDIAN, FLAT_CELL_NOISE = 23, 25, 27
MIN = 2 * TILE_STATISTICS


def _photo(size: int = 64) -> torch.Tensor:
    image = resize(photos.astronaut(), (size, size), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(image).permute(2, 0, 1)[None]  # RGB in [0, 1]


def _box_blur(images: torch.Tensor, radius: int = 2) -> torch.Tensor:
    kernel = torch.ones(3, 1, 2 * radius + 1, 2 * radius + 1) / (2 * radius + 1) ** 2
    return torch.nn.functional.conv2d(torch.nn.functional.pad(images, (radius,) * 4, mode="replicate"), kernel, groups=3)


def test_each_statistic_moves_with_its_distortion():
    clean = _photo()
    generator = torch.Generator().manual_seed(0)
    noisy = (clean + 0.08 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    grey = clean.mean(1, keepdim=True).expand_as(clean)
    blocky = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(clean, 8), scale_factor=8, mode="nearest")
    stats = {name: mosaic_statistics(images, 16)[0] for name, images in
             {"clean": clean, "noisy": noisy, "blurred": _box_blur(clean), "grey": grey, "blocky": blocky,
              "dark": clean * 0.1}.items()}
    assert stats["clean"].shape == (3 * TILE_STATISTICS,)
    assert stats["noisy"][MIN + NOISE_FLOOR] > stats["clean"][MIN + NOISE_FLOOR] + 1.0
    assert stats["noisy"][MIN + FLAT_CELL_NOISE] > stats["clean"][MIN + FLAT_CELL_NOISE] + 1.0
    assert stats["blurred"][SHARPNESS_X] < stats["clean"][SHARPNESS_X] - 0.5
    assert stats["grey"][CHROMA_MEDIAN] < stats["clean"][CHROMA_MEDIAN] - 0.1
    assert stats["grey"][SATURATION_MEDIAN] < 0.01 < stats["clean"][SATURATION_MEDIAN] - 0.1
    assert stats["blocky"][BLOCKINESS_X] > stats["clean"][BLOCKINESS_X] + 0.5
    assert stats["dark"][DARK_SHARE] > stats["clean"][DARK_SHARE] + 0.15
    # A whole frame of any shape is measured as one tile.
    assert tile_statistics(_photo(96)[..., :80]).shape == (1, TILE_STATISTICS)


def test_mscn_statistics_see_noise_and_blur_as_brisque_does():
    clean = _photo(128)
    noisy = (clean + 0.08 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    stats = {name: mscn_statistics(_luma(images))[0] for name, images in
             {"clean": clean, "noisy": noisy, "blurred": _box_blur(clean)}.items()}
    variance, horizontal_product = 0, 3  # the first scale's MSCN variance and mean horizontal product
    assert stats["clean"].shape == (NSS_STATISTICS,) and torch.isfinite(stats["clean"]).all()
    assert stats["noisy"][variance] > 1.5 * stats["clean"][variance]
    assert stats["blurred"][variance] < 0.5 * stats["clean"][variance]
    assert stats["noisy"][horizontal_product] < stats["clean"][horizontal_product] - 0.05  # noise decorrelates
    half = stats["clean"][NSS_STATISTICS // 2:]
    assert not torch.allclose(half, stats["clean"][:NSS_STATISTICS // 2])  # the second scale differs


def test_mscn_statistics_of_float_frames_are_those_of_exact_arithmetic():
    # Flat areas dithered by one 8-bit step: their local variance is tiny, and a float E[x^2] - E[x]^2
    # would move the coefficients there by a few percent.
    rng = np.random.default_rng(0)
    levels = np.full((2, 96, 128), 180.0)
    levels[:, :, 64:] += rng.integers(0, 2, (2, 96, 64))
    levels[:, 48:, :32] = 40 + rng.integers(0, 2, (2, 48, 32))
    luma = torch.from_numpy(levels / 255).float()
    exact = mscn_statistics(luma.double())
    assert torch.allclose(mscn_statistics(luma).double(), exact, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("radius", [1, 3, 18])
@pytest.mark.parametrize("padding", ["replicate", "constant"])
def test_separable_filter_is_the_direct_convolution(radius, padding):
    images = torch.rand(3, 29, 41, dtype=torch.float64, generator=torch.Generator().manual_seed(radius))
    kernel = gaussian_kernel(radius / 3 + 0.3, radius)
    window = torch.outer(kernel, kernel).view(1, 1, 2 * radius + 1, 2 * radius + 1)
    direct = torch.nn.functional.conv2d(torch.nn.functional.pad(images[:, None], (radius,) * 4, mode=padding), window)
    filtered = separable_filter(images, kernel, padding)
    assert filtered.shape == images.shape and filtered.dtype == images.dtype
    assert torch.allclose(filtered, direct[:, 0], atol=1e-12)
    assert separable_filter(images.float(), kernel, padding).dtype == torch.float32


def test_selected_quantiles_are_torch_quantiles():
    values = torch.rand(4, 1001, generator=torch.Generator().manual_seed(0))
    values[:, :300] = 0.5  # ties
    for levels, dim in [((0.02, 0.5, 0.98), 1), ((0.1,), 0), (0.999, 1), ((0.05, 0.2, 0.5), None)]:
        expected = torch.quantile(values, torch.tensor(levels), dim=dim)
        picked = selected_quantiles(values, levels, dim=dim)
        assert picked.shape == expected.shape and picked.dtype == values.dtype
        assert torch.allclose(picked, expected, atol=1e-7)


def test_median_filter_matches_sorting_every_neighbourhood():
    values = torch.randint(0, 6, (3, 17, 23)).float()  # many ties
    patches = torch.nn.functional.unfold(torch.nn.functional.pad(values[:, None], (1, 1, 1, 1), mode="replicate"), 3)
    assert torch.equal(_median3(values), patches.median(dim=1).values.view_as(values))


def test_clip_statistics_see_frozen_frames_and_shaking():
    frame = _photo()[0]
    generator = torch.Generator().manual_seed(0)
    steady = torch.stack([torch.roll(frame, shifts=(0, t), dims=(1, 2)) for t in range(16)])
    frozen = torch.stack([steady[t - (t % 3 == 2)] for t in range(16)])  # every third frame a repeat
    offsets = torch.randint(-6, 7, (16, 2), generator=generator)
    shaking = torch.stack([torch.roll(frame, shifts=(int(dy), int(dx)), dims=(1, 2)) for dy, dx in offsets])
    stats = clip_statistics(torch.stack([steady, frozen, shaking]))
    assert stats.shape == (3, CLIP_STATISTICS)
    static_share, jerk = 3, 7
    assert stats[0, static_share] == 0 and stats[1, static_share] > 0.25
    assert stats[2, jerk] > stats[0, jerk] + 1.0


def test_flicker_statistics_follow_the_light_not_the_motion():
    frame = _photo()[0]
    panning = torch.stack([torch.roll(frame, shifts=(0, 2 * t), dims=(1, 2)) for t in range(16)])
    alternate = torch.tensor([(-1.0) ** t for t in range(16)]).view(16, 1, 1, 1)
    flickering = panning * (1 + 0.15 * alternate)
    rows = torch.arange(64).float().view(1, 64, 1) / 64
    rolling = torch.stack([panning[t] * (1 + 0.15 * torch.sin(2 * torch.pi * (rows / 0.5 - 0.3 * t))) for t in range(16)])
    tint = torch.tensor([1.2, 1.0, 0.8]).view(1, 3, 1, 1)
    tinted = panning * (1 + 0.15 * alternate * tint)
    stats = flicker_statistics(torch.stack([panning, flickering, rolling, tinted]).clamp(0, 1))
    assert stats.shape == (4, FLICKER_STATISTICS)
    gain_spread, autocorrelation, banding, tint_spread = stats[:, 0], stats[:, 3], stats[:, 4], stats[:, 5]
    # A pan moves the content but not the light; a 15 % flicker moves every pixel's luma alike.
    assert gain_spread[1] > gain_spread[0] + 3 and gain_spread[3] > gain_spread[0] + 3
    assert autocorrelation[1] < -0.9  # alternating frames
    assert banding[2] > banding[0] + 3 and banding[2] > banding[1] + 1  # the bands, not clipping, vary by row
    assert tint_spread[3] > tint_spread[1] + 2


def test_the_flicker_statistics_option_extends_the_clip_token(tmp_path):
    video = write_video(tmp_path / "clip.mp4", num_frames=12, width=96, height=64)
    model, processor = build_model("tiny", {**TINY, "model.flicker_statistics": True}, seed=0)
    plain = build_model("tiny", TINY, seed=0)[1]
    assert processor.settings.flicker_statistics and not plain.settings.flicker_statistics
    inputs, plain_inputs = processor.video_inputs(video), plain.video_inputs(video)
    assert inputs["clip_statistics"].shape == (1, clip_statistics_size(True)) == (1, CLIP_STATISTICS + FLICKER_STATISTICS)
    torch.testing.assert_close(inputs["clip_statistics"][:, :CLIP_STATISTICS], plain_inputs["clip_statistics"])
    assert model.statistics.clip_projector.norm.num_features == clip_statistics_size(True)
    assert model.encode_video(**inputs).motion.shape[1] == processor.settings.num_motion_tokens


def test_processor_measures_statistics_and_the_model_needs_them(tmp_path):
    model, processor = build_model("tiny", TINY, seed=0)  # the tiny preset measures MSCN statistics
    video = write_video(tmp_path / "clip.mp4", num_frames=12, width=96, height=64)
    inputs = processor.video_inputs(video)
    frames = processor.settings.num_frames
    assert processor.settings.nss_statistics  # the processor follows the model config
    assert inputs["frame_statistics"].shape == (1, frames, frame_statistics_size(True))
    assert frame_statistics_size(True) == FRAME_STATISTICS + NSS_STATISTICS
    without_nss, plain = build_model("tiny", {**TINY, "model.nss_statistics": False}, seed=0)
    plain_inputs = plain.video_inputs(video)
    assert plain_inputs["frame_statistics"].shape == (1, frames, FRAME_STATISTICS)
    torch.testing.assert_close(plain_inputs["frame_statistics"], inputs["frame_statistics"][..., :FRAME_STATISTICS],
                               equal_nan=True)
    assert without_nss.encode_video(**plain_inputs).frames.shape[1] == frames * without_nss.config.tokens_per_frame
    assert inputs["clip_statistics"].shape == (1, CLIP_STATISTICS)
    visual = model.encode_video(**inputs)
    assert visual.frames.shape[1] == frames * model.config.tokens_per_frame
    assert visual.motion.shape[1] == model.config.num_motion_tokens + 1 == processor.settings.num_motion_tokens
    without = {k: v for k, v in inputs.items() if k != "clip_statistics"}
    with pytest.raises(ConfigError, match="clip_statistics"):
        model.encode_video(**without)


def test_statistics_are_measured_before_the_resize_to_the_model_size(tmp_path):
    _, processor = build_model("tiny", TINY, seed=0)
    assert processor.settings.image_size == 32
    rng = np.random.default_rng(0)
    clean = (_photo(128)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    noisy = [np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    statistics = {}
    for name, frames in {"clean": [clean] * 8, "noisy": noisy}.items():
        video = write_video(tmp_path / f"{name}.mp4", frames=np.stack(frames), options={"crf": "12"})
        statistics[name] = processor.video_tensors(video)["frame_statistics"].mean(0)
    # Resized to 32 px, the noise would be averaged away; at native size it lifts the noise of the
    # whole frame's flattest cells and the noise floor of the fragments' flattest patch.
    for column in (FLAT_CELL_NOISE, TILE_STATISTICS + MIN + NOISE_FLOOR):
        assert statistics["noisy"][column] > statistics["clean"][column] + 1.0


def test_small_heads_keep_pytorch_initialisation():
    model, _ = build_model("tiny", TINY, seed=0)
    llm_layer = model.language_model.model.layers[0].mlp.up_proj.weight
    assert float(llm_layer.detach().std()) == pytest.approx(0.02, rel=0.2)
    # PyTorch's default for 8 inputs is U(-1/sqrt(8), 1/sqrt(8)): std 0.2, ten times the LLM's.
    assert float(model.score_head.mlp[-1].weight.detach().std()) > 0.1


def test_mse_score_loss_and_quality_probe(tmp_path):
    model, processor = build_model("tiny", TINY, seed=0)
    assert model.config.score_loss == "mse" and model.quality_probe is not None
    video = write_video(tmp_path / "clip.mp4", num_frames=12, width=96, height=64)
    row = {"video": str(video), "question_type": "score", "mos": 30.0, "dimension": "noise",
           "conversations": [{"role": "user", "content": "How would you rate the noise quality of this video?"},
                             {"role": "assistant", "content": "The noise quality of this video is poor."}]}
    batch = processor.collate([processor.encode_row(row)])
    assert batch["score_dimensions"].tolist() == [DIMENSIONS.index("noise")]
    without_probe = model(**{k: v for k, v in batch.items() if k != "score_dimensions"})
    expected = float(((without_probe.scores[0].detach() - 30.0) / 50.0) ** 2)
    assert float(without_probe.score_loss) == pytest.approx(expected, rel=1e-4)
    with_probe = model(**batch)
    assert float(with_probe.score_loss) > float(without_probe.score_loss)
    with_probe.score_loss.backward()
    assert model.quality_probe.weight.grad.abs().sum() > 0
    assert model.statistics.frame_projector.linear_1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("key, value, message", [("score_loss", "huber", "score_loss"),
                                                 ("quality_probe_weight", -1.0, "quality_probe_weight"),
                                                 ("lm_loss_reduction", "sum", "lm_loss_reduction")])
def test_config_refuses_unknown_loss_settings(key, value, message):
    with pytest.raises(ConfigError, match=message):
        FineVQConfig(**{key: value})


def _readout_model():
    return build_model("tiny", {**TINY, "model.score_statistics_readout": True}, seed=0)


def test_statistics_readout_adds_each_dimensions_own_reading_of_the_statistics_tokens(tmp_path):
    model, processor = _readout_model()
    model.eval()
    # The keyframes' statistics tokens averaged and the clip's statistics token.
    assert model.score_readout.in_features == 2 * model.config.text_config.hidden_size
    with_detectors, _ = build_model("tiny", {**TINY, "model.score_statistics_readout": True, "model.detector_tokens": 2})
    assert with_detectors.score_readout.in_features == 4 * model.config.text_config.hidden_size
    assert not model.score_readout.weight.any() and not model.score_readout.bias.any()  # no change at first
    video = write_video(tmp_path / "clip.mp4", num_frames=12, width=96, height=64)
    plain = {d: r.score for d, r in score_dimensions(model, processor, str(video)).items()}
    torch.manual_seed(3)
    torch.nn.init.normal_(model.score_readout.weight, std=0.1)
    read = {d: r.score for d, r in score_dimensions(model, processor, str(video)).items()}
    assert all(abs(read[d] - plain[d]) > 1e-3 for d in DIMENSIONS)
    # Each dimension reads its own row: silencing noise's row gives noise its head's score back, only.
    with torch.no_grad():
        model.score_readout.weight[DIMENSIONS.index("noise")] = 0
    silenced = {d: r.score for d, r in score_dimensions(model, processor, str(video)).items()}
    assert silenced["noise"] == pytest.approx(plain["noise"], abs=1e-4)
    assert all(silenced[d] == pytest.approx(read[d], abs=1e-4) for d in DIMENSIONS if d != "noise")
    # Encoded once and shared, prompt by prompt, and in a batch of videos: the same scores.
    reference = score_dimensions(model, processor, str(video), shared_prefix=False)
    batched = score_videos(model, processor, [str(video), str(video)])
    for dimension in DIMENSIONS:
        assert reference[dimension].score == pytest.approx(silenced[dimension], abs=1e-3)
        assert batched[1][dimension].score == pytest.approx(silenced[dimension], abs=1e-3)

    # However large its weights, the readout moves a score by at most half the range (50 points).
    with torch.no_grad():
        model.score_readout.weight.mul_(1e4)
    bounded = {d: r.score for d, r in score_dimensions(model, processor, str(video)).items()}
    assert all(abs(bounded[d] - plain[d]) <= 50 + 1e-3 for d in DIMENSIONS)
    assert max(abs(bounded[d] - plain[d]) for d in DIMENSIONS if d != "noise") > 40

    model.save_pretrained(tmp_path / "model")
    loaded = FineVQForConditionalGeneration.from_pretrained(tmp_path / "model").eval()
    assert loaded.config.score_statistics_readout
    assert torch.equal(loaded.score_readout.weight, model.score_readout.weight)


def test_statistics_readout_trains_with_the_score_loss_and_needs_the_rated_dimension(tmp_path):
    model, processor = _readout_model()
    video = write_video(tmp_path / "clip.mp4", num_frames=12, width=96, height=64)
    row = {"video": str(video), "question_type": "score", "mos": 30.0, "dimension": "blur",
           "conversations": [{"role": "user", "content": "How would you rate the blur quality of this video?"},
                             {"role": "assistant", "content": "The blur quality of this video is poor."}]}
    batch = processor.collate([processor.encode_row(row)])
    model(**batch).score_loss.backward()
    gradient_rows = model.score_readout.weight.grad.abs().sum(1)
    assert gradient_rows[DIMENSIONS.index("blur")] > 0
    assert not torch.cat([gradient_rows[:DIMENSIONS.index("blur")], gradient_rows[DIMENSIONS.index("blur") + 1:]]).any()
    with pytest.raises(ConfigError, match="score_dimensions"):
        model(**{k: v for k, v in batch.items() if k != "score_dimensions"})
    peft_model = apply_lora(model)
    assert any("score_readout.modules_to_save" in name for name, p in peft_model.named_parameters() if p.requires_grad)


def test_statistics_readout_needs_statistics():
    with pytest.raises(ConfigError, match="score_statistics_readout"):
        FineVQConfig(score_statistics_readout=True)


def test_rank_gaussian_maps_each_statistic_through_its_training_distribution():
    generator = torch.Generator().manual_seed(0)
    training = torch.randn(2000, 3, generator=generator) * torch.tensor([1.0, 100.0, 1.0])
    training[:, 2] = training[:, 2].exp() ** 3  # heavy-tailed
    knots = torch.quantile(training.double(), torch.linspace(0, 1, 128, dtype=torch.float64), dim=0).t().float()
    scores = rank_gaussian(training, knots)
    # Whatever each column's scale and tail, its training values come out close to standard normal...
    torch.testing.assert_close(scores.mean(0), torch.zeros(3), atol=0.02, rtol=0)
    assert ((scores.std(0) > 0.9) & (scores.std(0) < 1.05)).all()
    # ...in the same order: the map rises with the value.
    order = training[:, 2].argsort()
    assert (scores[order, 2].diff() >= 0).all() and scores[order[-1], 2] > scores[order[0], 2] + 4
    # Tied values sit in the middle of their run of knots; a value beyond every knot stops half a step out.
    ties = torch.quantile(torch.tensor([[0.0]] * 50 + [[1.0]] * 50, dtype=torch.float64),
                          torch.linspace(0, 1, 16, dtype=torch.float64), dim=0).t().float()
    mapped = rank_gaussian(torch.tensor([[0.0], [0.5], [1.0], [-50.0], [50.0]]), ties).flatten()
    assert mapped[0] < mapped[1] == 0 < mapped[2] and mapped[0] == pytest.approx(-mapped[2])
    assert mapped[3] < mapped[0] and mapped[4] == pytest.approx(-mapped[3]) and torch.isfinite(mapped).all()


def test_keeping_the_raw_statistics_tells_apart_values_the_mapping_saturates():
    torch.manual_seed(0)
    training = torch.rand(64, 3)
    beyond = torch.tensor([[5.0, 5.0, 5.0], [9.0, 9.0, 9.0]])   # both past the top knot
    tokens = {}
    for keep_raw in (False, True):
        projector = _StatisticsProjector(3, width=8, hidden=16, quantiles=16, keep_raw=keep_raw)
        projector.fit_quantiles(training)
        projector.train()(training)   # running statistics for eval
        tokens[keep_raw] = projector.eval()(beyond)
    torch.testing.assert_close(tokens[False][0], tokens[False][1])
    assert (tokens[True][0] - tokens[True][1]).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="statistics_quantiles_keep_raw"):
        FineVQConfig(statistics_quantiles_keep_raw=True)


def test_statistics_quantiles_are_fitted_on_training_videos_and_saved_with_the_weights(tmp_path):
    quantiles = {**TINY, "model.statistics_quantiles": 8}
    model, processor = build_model("tiny", quantiles, seed=0)
    videos = [processor.video_tensors(write_video(tmp_path / f"clip{i}.mp4", num_frames=12, width=96, height=64,
                                                  seed=i)) for i in range(3)]
    inputs = {name: tensor.unsqueeze(0) for name, tensor in videos[0].items()}
    assert not model.statistics_quantiles_fitted
    with pytest.raises(ConfigError, match="fit_statistics_quantiles"):
        model.encode_video(**inputs)
    model.fit_statistics_quantiles(videos)
    assert model.statistics_quantiles_fitted
    knots = model.statistics.clip_projector.quantile_knots
    assert knots.shape == (clip_statistics_size(False), 8)
    measured = torch.stack([finite_statistics(video["clip_statistics"]) for video in videos])
    torch.testing.assert_close(knots[:, 0], measured.min(0).values)
    torch.testing.assert_close(knots[:, -1], measured.max(0).values)
    model.eval()
    tokens = model.encode_video(**inputs).motion
    model.save_pretrained(tmp_path / "model")
    loaded = FineVQForConditionalGeneration.from_pretrained(tmp_path / "model").eval()
    torch.testing.assert_close(loaded.statistics.clip_projector.quantile_knots, knots)
    torch.testing.assert_close(loaded.encode_video(**inputs).motion, tokens)
    # A model without the option has no knots to fit, and a knot count needs statistics to map.
    plain = build_model("tiny", TINY, seed=0)[0]
    assert plain.statistics.clip_projector.quantile_knots is None and plain.statistics_quantiles_fitted
    with pytest.raises(ConfigError, match="statistics_quantiles"):
        FineVQConfig(statistics_quantiles=8)
