"""The embedded tiny VLM: a small Qwen2-VL trained by this project on its task suite.

`DEFAULT_MODEL` is the folder of the committed weights; it loads with
`AutoModelForImageTextToText.from_pretrained(DEFAULT_MODEL)` and the project's processor
(`vepo_viz.models.processors.Qwen2VLProcessorNoVideo`), fully offline.
"""

from pathlib import Path

DEFAULT_MODEL: str = str(Path(__file__).parent / "model")

__all__ = ["DEFAULT_MODEL"]
