"""The FineVQ model: frame and motion tokens spliced into a causal LLM, with the LM head, the
score head, and a shared-prefix path that encodes a video once and answers many questions on it."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from finevq.errors import CheckpointError, ConfigError
from finevq.modeling.checkpoint import check_weights_folder
from finevq.modeling.configuration import FineVQConfig
from finevq.modeling.heads import ScoreHead, keep_default_init
from finevq.modeling.motion import MotionEncoder
from finevq.modeling.statistics import QualityStatistics
from finevq.modeling.vision import VisionBackbone
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS

IGNORE_INDEX = -100
ADAPTER_SUBFOLDER = "adapter"
"""Where a checkpoint folder keeps its PEFT adapter, next to the base model it applies to."""


@dataclass
class VisualTokens:
    """A batch of videos encoded once: frame tokens (B, frames * tokens, width), motion tokens (B, K, width)."""

    frames: torch.Tensor
    motion: torch.Tensor


@dataclass
class FineVQOutput(ModelOutput):
    """loss = lm_loss + score_loss_weight * score_loss (the score head's error plus the training-only
    probes' weighted losses); scores: the score head at `score_positions` (NaN for rows without one);
    cache: the KV cache when `use_cache=True`."""

    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    score_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    cache: Cache | None = None


class FineVQPreTrainedModel(PreTrainedModel):
    config: FineVQConfig
    config_class = FineVQConfig
    base_model_prefix = "finevq"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True

    def _init_weights(self, module):
        if getattr(module, "_zero_init", False):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
        elif getattr(module, "_keep_default_init", False):
            module.reset_parameters()
        else:
            super()._init_weights(module)


class FineVQForConditionalGeneration(FineVQPreTrainedModel):
    """Video (keyframes + motion clip) and text in, next-token logits and quality scores out."""

    def __init__(self, config: FineVQConfig):
        super().__init__(config)
        self.vision = VisionBackbone(config)
        self.motion = MotionEncoder(config)
        self.statistics = QualityStatistics(config) if config.quality_statistics else None
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.score_head = ScoreHead(
            config.text_config.hidden_size, config.score_head_dims, config.score_range,
            config.score_head_activation, config.score_head_output,
        )
        self.quality_probe = None
        if config.quality_probe_weight > 0:
            self.quality_probe = torch.nn.Linear(config.text_config.hidden_size, len(DIMENSIONS))
            keep_default_init(self.quality_probe)
        self.presence_probe = None
        if config.presence_probe_weight > 0:
            self.presence_probe = torch.nn.Linear(config.text_config.hidden_size, len(COARSE_TYPES))
            keep_default_init(self.presence_probe)
        self.score_readout = None
        if config.score_statistics_readout:
            statistics_tokens = 1 + config.motion_slot_tokens - config.num_motion_tokens
            self.score_readout = torch.nn.Linear(config.text_config.hidden_size * statistics_tokens, len(DIMENSIONS))
            # Zero: the readout starts as no change to the score head and grows only as far as it helps.
            self.score_readout._zero_init = True
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def encode_video(
        self,
        pixel_values: torch.Tensor,
        motion_values: torch.Tensor,
        fragment_values: torch.Tensor | None = None,
        frame_statistics: torch.Tensor | None = None,
        clip_statistics: torch.Tensor | None = None,
        detector_statistics: torch.Tensor | None = None,
    ) -> VisualTokens:
        """Keyframes (B, F, 3, S, S), motion clips (B, T, 3, s, s) [, fragments] [, the processor's
        statistics (B, F, D), (B, D') and detector statistics (B, D'')] -> `VisualTokens`."""
        if self.config.use_fragments and fragment_values is None:
            raise ConfigError("this model's backbone sees fragments: the inputs need 'fragment_values'")
        if self.statistics is not None and (frame_statistics is None or clip_statistics is None):
            raise ConfigError("this model reads quality statistics: the inputs need 'frame_statistics' and "
                              "'clip_statistics' (a processor with quality_statistics set makes them)")
        if self.config.detector_tokens and detector_statistics is None:
            raise ConfigError("this model reads distortion detector statistics: the inputs need 'detector_statistics' "
                              "(a processor with detector_statistics set makes them)")
        fragment_values = fragment_values if self.config.use_fragments else None
        frames, motion = self.vision.encode_frames(pixel_values, fragment_values), self.motion(motion_values)
        if self.statistics is not None:
            frame_tokens, clip_tokens = self.statistics(frame_statistics, clip_statistics, detector_statistics)
            frames = torch.cat([frames, frame_tokens.to(frames.dtype)], 2)
            motion = torch.cat([motion, clip_tokens.to(motion.dtype)], 1)
        return VisualTokens(frames=frames.flatten(1, 2), motion=motion)

    @property
    def statistics_quantiles_fitted(self) -> bool:
        """False only for a model with `statistics_quantiles` whose knots were never fitted."""
        return self.statistics is None or all(p.quantiles_fitted for _, p in self.statistics.projectors())

    def fit_statistics_quantiles(self, videos: Sequence[dict[str, torch.Tensor]]) -> None:
        """Fit the statistics projectors' quantile knots (`config.statistics_quantiles`) to training
        videos' tensors (the processor's `video_tensors`); nothing to do for a model without them."""
        if self.statistics is None or not self.config.statistics_quantiles:
            return
        if not videos:
            raise ConfigError("fit_statistics_quantiles needs at least one training video")
        for name, projector in self.statistics.projectors():
            rows = [video[name].float().reshape(-1, video[name].shape[-1]) for video in videos]
            projector.fit_quantiles(torch.cat(rows).to(projector.quantile_knots.device))

    def encode_batch(self, videos: list[dict[str, torch.Tensor]]) -> VisualTokens:
        """Encode unbatched per-video tensors (the processor's `video_tensors`) as one batch; videos
        whose motion clips differ in length (every frame read) are encoded one by one."""
        device, dtype = self.device, self.dtype
        groups = [videos] if len({tuple(v["motion_values"].shape) for v in videos}) == 1 else [[v] for v in videos]
        encoded = [
            self.encode_video(**{name: torch.stack([v[name] for v in group]).to(device, dtype) for name in group[0]})
            for group in groups
        ]
        return VisualTokens(frames=torch.cat([e.frames for e in encoded]), motion=torch.cat([e.motion for e in encoded]))

    def embed_inputs(self, input_ids: torch.Tensor, visual: VisualTokens | None) -> torch.Tensor:
        """Token embeddings with each row's frame and motion placeholders replaced by its visual tokens.

        When frames and motion share one placeholder token (the official InternVL layout: every slot
        is `<IMG_CONTEXT>`), its positions take the frame tokens, then the motion tokens, in order."""
        embeds = self.get_input_embeddings()(input_ids)
        frames = visual.frames if visual is not None else None
        motion = visual.motion if visual is not None else None
        if self.config.frame_token_id == self.config.motion_token_id:
            shared = torch.cat([frames, motion], dim=1) if visual is not None else None
            slots = ((self.config.frame_token_id, "frame and motion", shared),)
        else:
            slots = (
                (self.config.frame_token_id, "frame", frames),
                (self.config.motion_token_id, "motion", motion),
            )
        for token_id, name, tokens in slots:
            mask = input_ids == token_id
            wanted = tokens.shape[1] if tokens is not None else 0
            counts = mask.sum(dim=1).tolist()
            if any(count != wanted for count in counts):
                raise ConfigError(
                    f"{name} placeholders per row {counts} do not match the {wanted} {name} tokens per video; "
                    "the processor settings and the model config disagree"
                )
            if wanted:
                embeds = embeds.masked_scatter(mask.unsqueeze(-1), tokens.to(embeds.dtype))
        return embeds

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        motion_values: torch.Tensor | None = None,
        fragment_values: torch.Tensor | None = None,
        frame_statistics: torch.Tensor | None = None,
        clip_statistics: torch.Tensor | None = None,
        detector_statistics: torch.Tensor | None = None,
        visual: VisualTokens | None = None,
        video_index: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        score_positions: torch.LongTensor | None = None,
        mos: torch.Tensor | None = None,
        score_dimensions: torch.LongTensor | None = None,
        presence_types: torch.LongTensor | None = None,
        present: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool = False,
        score_loss_weight: float | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> FineVQOutput:
        """Teacher-forced forward. With `labels` the LM loss is cross-entropy on labelled (answer)
        tokens; with `score_positions` and `mos` the score loss is the score head's error against the
        MOS (`config.score_loss`), plus, with a quality probe and `score_dimensions` (each row's index in
        DIMENSIONS), the weighted probe error on the same dimension; with a presence probe,
        `presence_types` (each row's index in COARSE_TYPES, -1: none) and `present` (1.0 / 0.0), plus
        its weighted cross-entropy.
        video_index: row i reads video `video_index[i]` of the video tensors (the collate's form when
        rows share videos: each is encoded once); default one video per row.
        logits_to_keep: compute the LM logits of only the last N positions (0: all; needs no labels)."""
        if visual is None and pixel_values is not None:
            visual = self.encode_video(pixel_values, motion_values, fragment_values, frame_statistics, clip_statistics,
                                       detector_statistics)
        if visual is not None and video_index is not None:
            visual = VisualTokens(frames=visual.frames[video_index], motion=visual.motion[video_index])
        outputs = self.language_model.get_decoder()(
            inputs_embeds=self.embed_inputs(input_ids, visual),
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        logits = self.get_output_embeddings()(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
        lm_loss = score_loss = loss = scores = None
        if labels is not None:
            lm_loss = loss = self._lm_loss(logits, labels)
        if score_positions is not None:
            has_score = score_positions >= 0
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            # The head runs on every row (masked afterwards) so it is always part of the graph.
            head = self.dimension_scores(hidden[rows, score_positions.clamp(min=0)], visual, score_dimensions)
            scores = torch.where(has_score, head, torch.full_like(head, float("nan")))
            if mos is not None:
                mos = mos.to(head.device, head.dtype)
                valid = has_score & torch.isfinite(mos)
                score_loss = self._score_error(head, mos, valid)
                if self.quality_probe is not None and visual is not None and score_dimensions is not None:
                    score_loss = score_loss + self.config.quality_probe_weight * self._probe_loss(
                        visual, score_dimensions, mos, valid)
        if self.presence_probe is not None and visual is not None and present is not None:
            presence_loss = self.config.presence_probe_weight * self._presence_loss(visual, presence_types, present)
            score_loss = presence_loss if score_loss is None else score_loss + presence_loss
        if score_loss is not None:
            weight = self.config.score_loss_weight if score_loss_weight is None else score_loss_weight
            loss = weight * score_loss if loss is None else loss + weight * score_loss
        return FineVQOutput(
            loss=loss,
            lm_loss=lm_loss,
            score_loss=score_loss,
            logits=logits,
            scores=scores,
            last_hidden_state=hidden,
            cache=outputs.cache if use_cache else None,
        )

    def _lm_loss(self, logits: torch.Tensor, labels: torch.LongTensor) -> torch.Tensor:
        """Cross-entropy of the next-token predictions on labelled tokens, averaged over the tokens
        (`config.lm_loss_reduction` "token") or over each row's tokens, then the rows ("row"); a batch
        whose answers were all cut by max_length contributes zero, not NaN."""
        targets = labels[:, 1:]
        errors = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                                 reduction="none").view_as(targets)
        labelled = (targets != IGNORE_INDEX).sum(1)
        if self.config.lm_loss_reduction == "row":
            return (errors.sum(1) / labelled.clamp(min=1)).sum() / (labelled > 0).sum().clamp(min=1)
        return errors.sum() / labelled.sum().clamp(min=1)

    def dimension_scores(self, hidden: torch.Tensor, visual: VisualTokens | None, dimensions: torch.LongTensor | None,
                         video_index: torch.LongTensor | None = None) -> torch.Tensor:
        """Scores (N,) of hidden states (N, width) read at score positions: the score head, plus, with
        `score_statistics_readout`, each row's bounded readout for its dimension (an index into
        DIMENSIONS; -1: none) of the statistics tokens of its video (`visual`: one video per row, or
        video `video_index[i]` for row i)."""
        scores = self.score_head(hidden)
        if self.score_readout is None:
            return scores
        if visual is None or dimensions is None:
            raise ConfigError("this model reads each dimension's score from its statistics tokens too: scoring "
                              "needs the video's visual tokens and 'score_dimensions'")
        # Each token normalised and the reading squashed: statistics of unseen content that fall outside
        # their training range move a score by at most half the scale (a linear readout sent them off it).
        tokens = self._statistics_tokens(visual).float()
        tokens = torch.nn.functional.layer_norm(tokens, tokens.shape[-1:]).flatten(1)
        readout = torch.tanh(self.score_readout(tokens.to(self.score_readout.weight.dtype)).float())
        if video_index is not None:
            readout = readout[video_index]
        dimensions = dimensions.to(readout.device)
        chosen = readout[torch.arange(len(dimensions), device=readout.device), dimensions.clamp(min=0)]
        return scores + self.score_head.half_width * torch.where(dimensions >= 0, chosen, torch.zeros_like(chosen))

    def _statistics_tokens(self, visual: VisualTokens) -> torch.Tensor:
        """(B, 2 + detector_tokens, width): the keyframes' statistics tokens (the last of each keyframe
        slot) averaged, then the motion slot's statistics and detector tokens."""
        keyframes = visual.frames.unflatten(1, (-1, self.config.tokens_per_frame))[:, :, -1].mean(1)
        return torch.cat([keyframes[:, None], visual.motion[:, self.config.num_motion_tokens:]], 1)

    def _score_error(self, predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean `config.score_loss` error over the `valid` rows (zero, with a gradient, when none is)."""
        difference = predicted - torch.where(valid, target, predicted.detach())
        if self.config.score_loss == "l1":
            errors = difference.abs()
        else:
            errors = (difference / self.score_head.half_width) ** 2
        return errors.sum() / valid.sum().clamp(min=1)

    def _probe_loss(self, visual: VisualTokens, dimensions: torch.Tensor, mos: torch.Tensor, valid: torch.Tensor):
        """The quality probe's error on each row's rated dimension, from the mean of its visual tokens."""
        pooled = torch.cat([visual.frames, visual.motion], dim=1).mean(1)
        predicted = self.score_head.center + self.score_head.half_width * self.quality_probe(pooled).float()
        rows = torch.arange(len(dimensions), device=predicted.device)
        chosen = predicted[rows, dimensions.clamp(min=0)]
        return self._score_error(chosen, mos, valid & (dimensions >= 0))

    def _presence_loss(self, visual: VisualTokens, types: torch.LongTensor, present: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the presence probe over rows with a label: detector token k's logit
        for type k, against whether the row's video carries the type it names (zero, with a gradient,
        when no row has a label)."""
        detectors = visual.motion[:, self.config.num_motion_tokens + 1:]
        logits = self.presence_probe(detectors.to(self.presence_probe.weight.dtype)).diagonal(dim1=1, dim2=2).float()
        types, present = types.to(logits.device), present.to(logits.device, logits.dtype)
        labelled = (types >= 0) & torch.isfinite(present)
        chosen = logits[torch.arange(len(types), device=logits.device), types.clamp(min=0)]
        errors = F.binary_cross_entropy_with_logits(chosen, torch.where(labelled, present, torch.zeros_like(present)),
                                                    reduction="none")
        return (errors * labelled).sum() / labelled.sum().clamp(min=1)

    @torch.no_grad()
    def prefill(self, prefix_ids: torch.LongTensor, visual: VisualTokens) -> Cache:
        """Run the shared prompt prefix (B, L) of B videos once; its KV cache serves any number of questions."""
        return self(input_ids=prefix_ids, visual=visual, use_cache=True, logits_to_keep=1).cache

    @torch.no_grad()
    def continue_from(
        self, cache: Cache, suffixes: list[list[int]], rows: int = 1, copy_cache: bool = True, read_from_end: int = 1
    ) -> tuple[torch.Tensor, Cache]:
        """Run the same token suffixes after each of the `rows` rows (videos) of a cache (a copy of it
        unless `copy_cache=False`, which extends it in place, as decoding does).

        Suffixes are right-padded (causal attention keeps padding out of every real position);
        returns the hidden state at each suffix's `read_from_end`-th token from its end (1: the last),
        (B * N, width) video-major, and the extended cache."""
        if not suffixes or any(len(s) < read_from_end for s in suffixes) or read_from_end < 1:
            raise ConfigError(f"every question suffix needs at least {max(read_from_end, 1)} token(s)")
        if copy_cache:
            cache = copy.deepcopy(cache)
        if len(suffixes) > 1:
            cache.batch_repeat_interleave(len(suffixes))
        width = max(len(s) for s in suffixes)
        device = self.get_input_embeddings().weight.device
        ids = torch.tensor([s + [s[-1]] * (width - len(s)) for s in suffixes] * rows, device=device)
        outputs = self(input_ids=ids, visual=None, cache=cache, use_cache=True, logits_to_keep=1)
        last = torch.tensor([len(s) - read_from_end for s in suffixes] * rows, device=device)
        return outputs.last_hidden_state[torch.arange(len(last), device=device), last], outputs.cache

    @classmethod
    def from_base_checkpoint(cls, folder: str | Path, config: FineVQConfig, key_mapping: dict[str, str], **kwargs):
        """A model of `config` holding the weights of another architecture's checkpoint, renamed by
        `key_mapping` (regex -> replacement); modules it lacks keep their fresh initialisation.
        Returns (model, loading info); built on the meta device, so an 8B base loads without a copy."""
        model, info = super().from_pretrained(
            str(folder), config=config, key_mapping=key_mapping, use_safetensors=True, output_loading_info=True, **kwargs
        )
        # transformers remembers the renaming to undo it on save; this model saves under its own names.
        model._weight_conversions = None
        return model, info

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, merge_adapter: bool = True, **kwargs):
        """Load a merged folder, a base folder with its PEFT adapter in the `adapter/` subfolder, or an
        adapter-only folder whose adapter_config.json names its base folder.

        Weights are checked first: pickle-format files and NaN/Inf tensors raise `CheckpointError`.
        With an adapter, `merge_adapter=False` returns the trainable PEFT model instead of merging."""
        folder = Path(pretrained_model_name_or_path)
        check_weights_folder(folder)
        adapter_folder, base_folder = _checkpoint_layout(folder)
        if adapter_folder is not None:
            check_weights_folder(adapter_folder)
        if base_folder != folder:
            check_weights_folder(base_folder)
        model, info = super().from_pretrained(
            str(base_folder), *model_args, use_safetensors=True, output_loading_info=True, **kwargs
        )
        problems = {key: info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(key)}
        if problems:
            raise CheckpointError(f"checkpoint {str(base_folder)!r} does not match its config: {problems}")
        if adapter_folder is None:
            return model
        from finevq.modeling.lora import load_adapter, merge_lora

        peft_model = load_adapter(model, adapter_folder, trainable=not merge_adapter)
        return merge_lora(peft_model) if merge_adapter else peft_model


def _checkpoint_layout(folder: Path) -> tuple[Path | None, Path]:
    """(adapter folder or None, base model folder) of a checkpoint folder."""
    has_config = (folder / "config.json").is_file()
    if (folder / "adapter_config.json").is_file():
        if has_config:
            raise CheckpointError(
                f"model folder {str(folder)!r} mixes a model and an adapter at its top level; keep the adapter "
                f"in {str(folder / ADAPTER_SUBFOLDER)!r} (as save_lora_checkpoint does) or in its own folder"
            )
        return folder, adapter_base_folder(folder)
    if not has_config:
        raise CheckpointError(f"model folder {str(folder)!r} has no config.json (nor adapter_config.json)")
    if (folder / ADAPTER_SUBFOLDER / "adapter_config.json").is_file():
        return folder / ADAPTER_SUBFOLDER, folder
    return None, folder


def adapter_base_folder(folder: Path) -> Path:
    """The base model folder an adapter-only folder's adapter_config.json names (absolute, or
    relative to the adapter folder or the working directory)."""
    try:
        base = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{str(folder / 'adapter_config.json')!r} names no readable base model: {error}") from None
    candidates = [Path(base)] if Path(base).is_absolute() else [folder / base, Path(base)]
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate.resolve()
    raise CheckpointError(f"the base model {base!r} of adapter folder {str(folder)!r} is not a model folder")


AutoConfig.register(FineVQConfig.model_type, FineVQConfig, exist_ok=True)
AutoModel.register(FineVQConfig, FineVQForConditionalGeneration, exist_ok=True)
