"""The FineVQ model: configuration, visual and motion encoders, LLM, heads, processor and LoRA.
Importing this package is cheap; each name loads its module (and torch) on first use."""

from finevq.lazy import lazy_exports

_EXPORTS = {
    "FineVQConfig": "configuration",
    "FineVQForConditionalGeneration": "modeling",
    "FineVQOutput": "modeling",
    "VisualTokens": "modeling",
    "FineVQProcessor": "processor",
    "ProcessorSettings": "processor",
    "train_tokenizer": "tokenizer",
    "candidate_token_ids": "tokenizer",
    "build_model": "presets",
    "build_from_bases": "presets",
    "load_preset": "presets",
    "EncodedVideo": "scoring",
    "DimensionScore": "scoring",
    "encode_video": "scoring",
    "encode_videos": "scoring",
    "score_videos": "scoring",
    "score_dimensions": "scoring",
    "candidate_probabilities": "scoring",
    "stream_chat": "generation",
    "apply_lora": "lora",
    "load_adapter": "lora",
    "merge_lora": "lora",
    "save_lora_checkpoint": "lora",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
