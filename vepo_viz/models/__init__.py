"""Transformers vision-language models behind one adapter (the only code that imports
transformers). `load_model(id or folder)` returns a `VLM`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
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
