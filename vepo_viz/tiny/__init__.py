"""The embedded tiny VLM: a small Qwen2-VL trained by this project on its task suite.

`DEFAULT_MODEL` is the folder of the committed weights; it loads with
`AutoModelForImageTextToText.from_pretrained(DEFAULT_MODEL)` and the project's processor
(`vepo_viz.models.processors.Qwen2VLProcessorNoVideo`), fully offline. The path itself is `vepo_viz.models.EMBEDDED_MODEL` (models/ must
not import tiny/).
"""

from vepo_viz.models import EMBEDDED_MODEL

DEFAULT_MODEL: str = EMBEDDED_MODEL

__all__ = ["DEFAULT_MODEL"]
