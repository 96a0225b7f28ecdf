"""vepo-viz: which tokens of a VLM's answer look at the image, and which ones RL trains on.

The public API is curated here. Heavy modules (transformers, the models) are imported
lazily, so `import vepo_viz.scoring` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "load_model",
    "analyze",
    "analyze_group",
    "TokenAnalysis",
    "GroupAnalysis",
    "AnalysisSettings",
    "__version__",
]

_LAZY = {
    "load_model": "vepo_viz.models",
    "analyze": "vepo_viz.analysis",
    "analyze_group": "vepo_viz.group",
    "GroupAnalysis": "vepo_viz.group",
    "AnalysisSettings": "vepo_viz.analysis_settings",
    "TokenAnalysis": "vepo_viz.results",
}

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.analysis import analyze
    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.group import GroupAnalysis, analyze_group
    from vepo_viz.models import load_model
    from vepo_viz.results import TokenAnalysis


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vepo_viz' has no attribute {name!r}")
