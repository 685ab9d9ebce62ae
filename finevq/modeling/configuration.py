"""The FineVQ model configuration: backbone, motion encoder, LLM, score head and LoRA settings.
A transformers `PreTrainedConfig`, saved as config.json next to the weights."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from finevq.errors import ConfigError
from finevq.taxonomy import COARSE_TYPES

BACKBONES = ("tiny", "internvl")
"""Visual backbones: `tiny` (a small ViT that also sees native-resolution fragments) and
`internvl` (the InternVL vision tower with its pixel-shuffle and projector)."""

MOTION_ENCODERS = ("tiny3d", "videomae", "slowfast")
"""Motion encoders: `tiny3d` (a small 3D CNN), `videomae` (transformers' VideoMAE) and `slowfast`
(SlowFast-R50, the official FineVQ's)."""
SCORE_HEAD_ACTIVATIONS = ("gelu", "relu")
SCORE_HEAD_OUTPUTS = ("centered", "relu_unit")
"""How the score head's last layer maps onto the score range: `centered` (0 is the middle, +-1 the
ends) or `relu_unit` (the official FineVQ's: ReLU, then 0..1 spans low..high)."""

_BACKBONE_TOWERS = {"tiny": "siglip_vision_model", "internvl": "internvl_vision"}

# Module names LoRA adapts by default, as in the paper: attention and MLP of the ViT and the LLM.
DEFAULT_LORA_VISION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "projection_layer", "fc1", "fc2")
DEFAULT_LORA_TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_TRAINED_MODULES = ("vision.projector", "motion.projector", "score_head")


@strict
class FineVQConfig(PreTrainedConfig):
    r"""Configuration of `FineVQForConditionalGeneration`.

    vision_config / text_config / motion_config: the sub-models' own configs (a SigLIP or InternVL
    vision tower, a Qwen2/Llama-style causal LM, a VideoMAE for `motion_encoder="videomae"`).
    score_range: the score scale the score head regresses (raw MOS units, e.g. [0, 100]).
    quality_statistics: add a token of measured low-level statistics to every keyframe slot and to
    the motion slot (`finevq.modeling.statistics`); the tiny model trained from scratch uses it.
    nss_statistics: with quality_statistics, also the natural-scene statistics of each keyframe's
    MSCN coefficients (as BRISQUE measures them).
    flicker_statistics: with quality_statistics, also the motion clip's lighting-change statistics
    (`finevq.modeling.statistics.flicker_statistics`: the frame-to-frame gain that moving content
    does not move, rolling bands, tint) in its statistics token.
    detector_tokens: > 0 (with quality_statistics) adds that many tokens to the motion slot, projected
    from the video's distortion detector statistics (`finevq.modeling.detectors`: measured near native
    resolution, aimed at each distortion family); 0 reads none.
    unclipped_noise_statistics: with detector_tokens, the detector statistics also hold the flattest
    cells' noise floors over the cells above the black and white clip levels (`finevq.modeling.detectors`):
    darkening crushes a noisy video's shadows to a clean black, which the all-cells floors read as clean.
    statistics_quantiles: > 0 (with quality_statistics) maps each statistic through its training
    distribution to a standard normal (that many quantile knots per statistic, fitted once on training
    videos by `FineVQForConditionalGeneration.fit_statistics_quantiles` and saved with the weights) before
    the projectors' batch norm: heavy tails and piled-up values (a log ratio of a flat video) then no
    longer squash what differs between typical videos; 0 standardises with the batch norm alone.
    statistics_quantiles_keep_raw: with statistics_quantiles, each projector reads every statistic twice,
    mapped and as measured (both through the batch norm): the mapping ranks typical videos apart, and the
    measured value keeps the plain standardised reading (and how far a value lies beyond the outermost knots).
    score_statistics_readout: with quality_statistics, add to each dimension's score a readout of the
    statistics tokens (the keyframes' averaged, the clip's and the detector tokens; each normalised,
    a linear map squashed by tanh to at most half the score range either way), trained with the score loss: a
    short path from the measured distortion statistics to the score, which a small LLM does not find
    on its own; zero at initialisation.
    slowfast_width / slowfast_depths / slowfast_alpha: SlowFast's slow stem channels (64), stage
    depths ((3, 4, 6, 3): R50) and frame ratio of the slow pathway, for motion_encoder="slowfast".
    score_head_activation / score_head_output: "gelu" / "centered" here, "relu" / "relu_unit" for
    converted official checkpoints (ReLU after every layer, the last included, on MOS / range).
    score_loss: "l1" (the paper's, in raw score units) or "mse" (on the score range scaled to [-1, 1]:
    from scratch, L1's constant-size gradients settle on the median before the video is read).
    quality_probe_weight: > 0 adds a training-only linear probe from the mean visual token to the six
    scores, whose loss (weighted, added to the score loss) makes the visual tokens carry quality from
    the first steps, before the LLM has learnt where to look; inference never reads the probe.
    lm_loss_reduction: how the LM loss averages its per-token cross-entropy: "token" (over all answer
    tokens of the batch, as transformers does) or "row" (over each row's answer tokens, then over the
    rows: a one-word yes/no or letter answer then weighs as much as a 60-token description).
    presence_probe_weight: > 0 (with one detector token per coarse distortion type) adds a
    training-only probe from detector token k to whether the video carries distortion type k (in
    COARSE_TYPES order), learnt by cross-entropy from each row's presence label (a yes/no answer, a
    subtype answer, a score row's severity) and added, weighted, to the score loss, so that each
    type's token holds its presence as one direction for the LLM's yes/no and subtype answers to read
    (tried once on the tiny model: the answers did not improve; see the README); inference never reads the probe.
    """

    model_type = "finevq"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="siglip_vision_model"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
        "motion_config": SubConfigSpec(config_class=AutoConfig, model_type="videomae", optional=True),
    }

    backbone: str = "tiny"
    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    motion_config: dict | PreTrainedConfig | None = None
    motion_encoder: str = "tiny3d"
    tiny3d_channels: list[int] | tuple[int, ...] = (16, 32)
    slowfast_width: int = 64
    slowfast_depths: list[int] | tuple[int, ...] = (3, 4, 6, 3)
    slowfast_alpha: int = 4
    num_motion_tokens: int = 1
    quality_statistics: bool = False
    nss_statistics: bool = False
    flicker_statistics: bool = False
    detector_tokens: int = 0
    unclipped_noise_statistics: bool = False
    statistics_quantiles: int = 0
    statistics_quantiles_keep_raw: bool = False
    statistics_hidden_size: int = 64
    score_statistics_readout: bool = False
    use_fragments: bool = True
    downsample_ratio: float = 0.5
    vision_feature_layer: int = -1
    vision_feature_select_strategy: str = "full"
    projector_hidden_act: str = "gelu"
    frame_token_id: int = 0
    motion_token_id: int = 1
    score_head_dims: list[int] | tuple[int, ...] = (1024, 256, 64, 16)
    score_head_activation: str = "gelu"
    score_head_output: str = "centered"
    score_range: list[float] | tuple[float, ...] = (0.0, 100.0)
    score_loss_weight: float = 1.0
    score_loss: str = "l1"
    lm_loss_reduction: str = "token"
    quality_probe_weight: float = 0.0
    presence_probe_weight: float = 0.0
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_vision_targets: list[str] | tuple[str, ...] = DEFAULT_LORA_VISION_TARGETS
    lora_text_targets: list[str] | tuple[str, ...] = DEFAULT_LORA_TEXT_TARGETS
    lora_trained_modules: list[str] | tuple[str, ...] = DEFAULT_TRAINED_MODULES
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.backbone not in BACKBONES:
            raise ConfigError(f"config key 'backbone': unknown backbone {self.backbone!r}; known: {BACKBONES}")
        tower = _BACKBONE_TOWERS[self.backbone]
        if self.vision_config.model_type != tower:
            raise ConfigError(
                f"config key 'vision_config': backbone {self.backbone!r} needs a {tower!r} vision config, "
                f"got {self.vision_config.model_type!r}"
            )
        if self.motion_encoder not in MOTION_ENCODERS:
            raise ConfigError(
                f"config key 'motion_encoder': unknown motion encoder {self.motion_encoder!r}; known: {MOTION_ENCODERS}"
            )
        if self.motion_encoder == "videomae" and self.motion_config is None:
            raise ConfigError("config key 'motion_config': motion_encoder 'videomae' needs a VideoMAE config")
        if self.motion_encoder == "slowfast" and (self.slowfast_width % 8 or len(self.slowfast_depths) != 4):
            raise ConfigError(
                "config keys 'slowfast_width' / 'slowfast_depths': SlowFast needs a width divisible by 8 "
                f"and four stage depths, got {self.slowfast_width} and {list(self.slowfast_depths)}"
            )
        if self.score_head_activation not in SCORE_HEAD_ACTIVATIONS:
            raise ConfigError(
                f"config key 'score_head_activation' must be one of {SCORE_HEAD_ACTIVATIONS}, got {self.score_head_activation!r}"
            )
        if self.score_head_output not in SCORE_HEAD_OUTPUTS:
            raise ConfigError(
                f"config key 'score_head_output' must be one of {SCORE_HEAD_OUTPUTS}, got {self.score_head_output!r}"
            )
        if self.backbone == "internvl" and self.use_fragments:
            raise ConfigError("config key 'use_fragments': only the 'tiny' backbone sees fragments")
        if self.score_loss not in ("l1", "mse"):
            raise ConfigError(f"config key 'score_loss' must be 'l1' or 'mse', got {self.score_loss!r}")
        if self.lm_loss_reduction not in ("token", "row"):
            raise ConfigError(f"config key 'lm_loss_reduction' must be 'token' or 'row', got {self.lm_loss_reduction!r}")
        if self.quality_probe_weight < 0:
            raise ConfigError(f"config key 'quality_probe_weight' must be >= 0, got {self.quality_probe_weight}")
        if self.presence_probe_weight < 0 or (self.presence_probe_weight and self.detector_tokens != len(COARSE_TYPES)):
            raise ConfigError(f"config key 'presence_probe_weight': >= 0, and > 0 only with detector_tokens "
                              f"{len(COARSE_TYPES)} (one per coarse distortion type), got {self.presence_probe_weight} "
                              f"with detector_tokens {self.detector_tokens}")
        if self.detector_tokens < 0 or (self.detector_tokens and not self.quality_statistics):
            raise ConfigError("config key 'detector_tokens': a count >= 0, and > 0 only with quality_statistics")
        if self.unclipped_noise_statistics and not self.detector_tokens:
            raise ConfigError("config key 'unclipped_noise_statistics': extends the detector statistics, "
                              "so it needs detector_tokens > 0")
        if self.statistics_quantiles != 0 and (self.statistics_quantiles < 2 or not self.quality_statistics):
            raise ConfigError(f"config key 'statistics_quantiles': 0, or a knot count >= 2 with quality_statistics; "
                              f"got {self.statistics_quantiles}")
        if self.statistics_quantiles_keep_raw and not self.statistics_quantiles:
            raise ConfigError("config key 'statistics_quantiles_keep_raw': keeps the measured statistics beside "
                              "the mapped ones, so it needs statistics_quantiles > 0")
        if self.score_statistics_readout and not self.quality_statistics:
            raise ConfigError("config key 'score_statistics_readout': reads the statistics tokens, "
                              "so it needs quality_statistics")
        if self.num_motion_tokens < 1:
            raise ConfigError(f"config key 'num_motion_tokens' must be >= 1, got {self.num_motion_tokens}")
        low, high = (float(x) for x in self.score_range)
        if not high > low:
            raise ConfigError(f"config key 'score_range' must be [low, high] with high > low, got {self.score_range}")
        scale = round(1 / self.downsample_ratio)
        if abs(scale * self.downsample_ratio - 1) > 1e-6:
            raise ConfigError(f"config key 'downsample_ratio' must be 1/n, got {self.downsample_ratio}")
        grid = self.patch_grid
        if grid % scale:
            raise ConfigError(
                f"config key 'downsample_ratio': the {grid}x{grid} patch grid does not divide by {scale}"
            )

    @property
    def image_size(self) -> int:
        size = self.vision_config.image_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def patch_grid(self) -> int:
        patch = self.vision_config.patch_size
        return self.image_size // int(patch[0] if isinstance(patch, (list, tuple)) else patch)

    @property
    def tokens_per_image(self) -> int:
        """Visual tokens of one image (whole frame or fragment mosaic) after pixel-shuffle."""
        scale = round(1 / self.downsample_ratio)
        return (self.patch_grid // scale) ** 2

    @property
    def tokens_per_frame(self) -> int:
        """Visual tokens of one keyframe slot: the whole frame, plus its fragments for `tiny`."""
        return self.tokens_per_image * (2 if self.use_fragments else 1) + int(self.quality_statistics)

    @property
    def motion_slot_tokens(self) -> int:
        """Tokens of the motion slot: the motion encoder's, plus the clip's statistics token and the
        detector tokens."""
        return self.num_motion_tokens + int(self.quality_statistics) + self.detector_tokens
