"""Processors without a video part, so VLM processors build where torchvision is absent.

transformers' Qwen2-VL-family processors own a video processor, and every video processor
needs torchvision. These subclasses keep the model's own image processor (the PIL one),
tokenizer and chat template, drop the video processor, and are registered with
`AutoProcessor` so `AutoProcessor.from_pretrained` on a saved folder returns them.
"""

from __future__ import annotations

from transformers import AutoProcessor
from transformers.processing_utils import ProcessorMixin


def _image_token_setup(processor: ProcessorMixin, tokenizer, default_token: str) -> None:
    processor.image_token = getattr(tokenizer, "image_token", None) or default_token
    processor.image_token_id = getattr(
        tokenizer, "image_token_id", None
    ) or tokenizer.convert_tokens_to_ids(processor.image_token)


class _NoVideoMixin:
    """Answers the video hooks of a Qwen-style processor with 'no video'."""

    def _process_videos(self, videos, **kwargs):  # pragma: no cover - never reached without videos
        raise ValueError("this processor was built without a video processor (no torchvision)")


def _qwen_no_video(base: type[ProcessorMixin], name: str) -> type[ProcessorMixin]:
    """A subclass of a Qwen-VL processor class whose attributes are image_processor + tokenizer."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        _image_token_setup(self, tokenizer, "<|image_pad|>")
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    cls = type(name, (_NoVideoMixin, base), {"__init__": __init__, "__module__": __name__})
    return cls


from transformers import Qwen2VLProcessor  # noqa: E402

Qwen2VLProcessorNoVideo = _qwen_no_video(Qwen2VLProcessor, "Qwen2VLProcessorNoVideo")


def register_processors() -> None:
    """Make `AutoProcessor.from_pretrained` return these classes for saved folders."""
    from transformers import Qwen2VLConfig

    AutoProcessor.register(Qwen2VLConfig, Qwen2VLProcessorNoVideo, exist_ok=True)
