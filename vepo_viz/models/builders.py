"""Constructors of new (untrained) transformers objects, for recipes that build a model
from scratch (the embedded tiny model's, `vepo_viz.tiny.build`): models/ stays the only
package that imports transformers."""

from __future__ import annotations

from typing import Any


def fast_tokenizer(tokenizer_object, *, chat_template: str, **special_tokens: Any):
    """A `tokenizers.Tokenizer` wrapped as a transformers fast tokenizer with a chat template."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer_object, **special_tokens)
    fast.chat_template = chat_template
    return fast


def qwen2_vl_image_processor(**settings: Any):
    """Qwen2-VL's PIL image processor (no torchvision) with the given settings."""
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(**settings)


def qwen2_vl_model(text_config: dict, vision_config: dict, **config: Any):
    """A randomly initialised Qwen2VLForConditionalGeneration (seed the global RNG first:
    transformers initialises from it)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    cfg = Qwen2VLConfig(text_config=text_config, vision_config=vision_config, **config)
    return Qwen2VLForConditionalGeneration(cfg)
