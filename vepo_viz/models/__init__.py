"""Transformers vision-language models behind one adapter (the only code that imports
transformers). `load_model(id or folder)` returns a `VLM`.

`EMBEDDED_MODEL` is the folder of the embedded tiny model's committed weights (package
data under vepo_viz/tiny/model); `load_model()` with no name loads it. It is a plain path
here so that models/ never imports tiny/ (tiny/ builds and evaluates that model through
this package).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

EMBEDDED_MODEL: str = str(Path(__file__).parent.parent / "tiny" / "model")
"""Folder of the embedded tiny model (vepo_viz.tiny.DEFAULT_MODEL is this path)."""

__all__ = [
    "EMBEDDED_MODEL",
    "load_model",
    "quiet",
    "versions",
    "VLM",
    "Prompt",
    "Generation",
    "FAMILIES",
    "family_of",
]

_LAZY = {
    "load_model": "vepo_viz.models.loading",
    "quiet": "vepo_viz.models.loading",
    "versions": "vepo_viz.models.loading",
    "VLM": "vepo_viz.models.adapter",
    "Prompt": "vepo_viz.models.adapter",
    "Generation": "vepo_viz.models.adapter",
    "FAMILIES": "vepo_viz.models.families",
    "family_of": "vepo_viz.models.families",
}

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.models.adapter import VLM, Generation, Prompt
    from vepo_viz.models.families import FAMILIES, family_of
    from vepo_viz.models.loading import load_model, quiet, versions


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vepo_viz.models' has no attribute {name!r}")
