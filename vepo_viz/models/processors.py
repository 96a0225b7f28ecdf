"""Processors without a video part, so VLM processors build where torchvision is absent.

transformers' Qwen2-VL-family and SmolVLM processors own a video processor, and every
video processor needs torchvision. These subclasses keep the model's own image processor
(the PIL one), tokenizer and chat template, drop the video processor, and are registered
with `AutoProcessor` so `AutoProcessor.from_pretrained` on a saved folder returns them.
`NO_VIDEO_PROCESSORS` maps a config `model_type` to its no-video class.
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
    """Answers the video hooks of a processor with 'no video'."""

    def _process_videos(self, videos, **kwargs):  # pragma: no cover - never reached without videos
        raise ValueError("this processor was built without a video processor (no torchvision)")


def _qwen_no_video(base: type[ProcessorMixin], name: str) -> type[ProcessorMixin]:
    """A subclass of a Qwen-VL processor class whose attributes are image_processor + tokenizer."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        _image_token_setup(self, tokenizer, "<|image_pad|>")
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        # Qwen3-VL also names the vision start/end tokens (used by its video path only).
        for which in ("start", "end"):
            token = getattr(tokenizer, f"vision_{which}_token", None) or f"<|vision_{which}|>"
            setattr(self, f"vision_{which}_token", token)
            setattr(self, f"vision_{which}_token_id", tokenizer.convert_tokens_to_ids(token))

    cls = type(name, (_NoVideoMixin, base), {"__init__": __init__, "__module__": __name__})
    return cls


def _smolvlm_no_video(base: type[ProcessorMixin], name: str) -> type[ProcessorMixin]:
    """SmolVLM's processor with image_processor + tokenizer only."""

    def __init__(
        self, image_processor=None, tokenizer=None, image_seq_len=169, chat_template=None, **kwargs
    ):
        self.fake_image_token = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
        _image_token_setup(self, tokenizer, "<image>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.end_of_utterance_token = getattr(
            tokenizer, "end_of_utterance_token", "<end_of_utterance>"
        )
        self.global_image_token = getattr(tokenizer, "global_image_token", "<global-img>")
        self.image_seq_len = image_seq_len
        self.video_token = getattr(tokenizer, "video_token", "<video>")
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    def apply_chat_template(self, conversation, chat_template=None, **kwargs):
        # SmolVLM's own override reads video sampling defaults from the video processor.
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)

    attrs = {"__init__": __init__, "apply_chat_template": apply_chat_template}
    cls = type(name, (_NoVideoMixin, base), {**attrs, "__module__": __name__})
    return cls


from transformers import (  # noqa: E402
    Qwen2_5_VLProcessor,
    Qwen2VLProcessor,
    Qwen3VLProcessor,
    SmolVLMProcessor,
)

Qwen2VLProcessorNoVideo = _qwen_no_video(Qwen2VLProcessor, "Qwen2VLProcessorNoVideo")
Qwen2_5_VLProcessorNoVideo = _qwen_no_video(Qwen2_5_VLProcessor, "Qwen2_5_VLProcessorNoVideo")
Qwen3VLProcessorNoVideo = _qwen_no_video(Qwen3VLProcessor, "Qwen3VLProcessorNoVideo")
SmolVLMProcessorNoVideo = _smolvlm_no_video(SmolVLMProcessor, "SmolVLMProcessorNoVideo")

_NO_VIDEO: dict[str, tuple[type[ProcessorMixin], str]] = {
    "qwen2_vl": (Qwen2VLProcessorNoVideo, "Qwen2VLConfig"),
    "qwen2_5_vl": (Qwen2_5_VLProcessorNoVideo, "Qwen2_5_VLConfig"),
    "qwen3_vl": (Qwen3VLProcessorNoVideo, "Qwen3VLConfig"),
    "smolvlm": (SmolVLMProcessorNoVideo, "SmolVLMConfig"),
}
"""model_type -> (its no-video processor class, the name of its transformers config class)."""

NO_VIDEO_PROCESSORS: dict[str, type[ProcessorMixin]] = {k: v[0] for k, v in _NO_VIDEO.items()}


def no_video(model_type: str) -> type[ProcessorMixin]:
    """The no-video processor class of `model_type`, registered with AutoProcessor so that
    `AutoProcessor.from_pretrained` on a saved folder returns it too."""
    import transformers

    cls, config_name = _NO_VIDEO[model_type]
    AutoProcessor.register(getattr(transformers, config_name), cls, exist_ok=True)
    return cls


def register_processors() -> None:
    """Register every no-video processor with AutoProcessor."""
    for model_type in _NO_VIDEO:
        no_video(model_type)
