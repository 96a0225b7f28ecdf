"""What the app asks of a model: analyse one input, describe the image normalisation.

`ModelBackend` is the real one (vepo_viz.analysis + vepo_viz.models); handler tests pass
a fake with the same two methods. The model cache is read-only once a model is loaded
(models are never mutated) and a per-model lock runs one analysis at a time per model,
whatever the UI's queue does (the Train tab and a second browser tab included). Every
analysis is bounded by the backend's `RequestLimits` (vepo_viz.limits).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from PIL import Image

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.limits import RequestLimits
    from vepo_viz.results import TokenAnalysis

EMBEDDED = "embedded"
"""What the model box shows for the embedded tiny model (load_model(None))."""

ProgressFn = Callable[[float, str], None]


def model_key(name: str | None) -> str | None:
    """None for the embedded model ("", "embedded", "default"), else the stripped name."""
    name = (name or "").strip()
    return None if name.lower() in ("", EMBEDDED, "default") else name


class Backend(Protocol):
    """The model side of the app."""

    def analyze(
        self,
        model_name: str | None,
        image: Image.Image | str | Path,
        question: str,
        response: str | None,
        settings: AnalysisSettings,
        progress: ProgressFn | None = None,
    ) -> TokenAnalysis:
        """A TokenAnalysis of (image or its path, question, response) under `settings`."""
        ...


class ModelBackend:
    """Loads models on first use (vepo_viz.models.load_model caches them) and analyses."""

    def __init__(
        self, device: str = "auto", dtype: str | None = None, limits: RequestLimits | None = None
    ) -> None:
        from vepo_viz.limits import RequestLimits

        self.device = device
        self.dtype = dtype
        self.limits = limits if limits is not None else RequestLimits()
        self._locks: dict[str | None, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str | None) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def model(self, model_name: str | None):
        from vepo_viz.models import load_model

        return load_model(model_key(model_name), device=self.device, dtype=self.dtype)

    def analyze(
        self,
        model_name: str | None,
        image: Image.Image | str | Path,
        question: str,
        response: str | None,
        settings: AnalysisSettings,
        progress: ProgressFn | None = None,
    ) -> TokenAnalysis:
        from vepo_viz.analysis import analyze_checked, check_request
        from vepo_viz.models.images import load_image

        key = model_key(model_name)
        # Refused before waiting for the model: a too-large request costs nothing.
        settings, limits = check_request(question, response, settings, self.limits)
        rgb = load_image(image)  # a path is decoded here, an RGB image passes as it is
        with self._lock(key):
            if progress:
                progress(0.05, f"loading model {key or EMBEDDED}")
            vlm = self.model(key)
            if progress:
                progress(0.3, "running the clean and counterfactual passes")
            return analyze_checked(vlm, rgb, question, response, settings, limits)

    def analyze_group(self, model_name, image, question, progress=None, **kwargs):
        """vepo_viz.group.analyze_group under this backend's limits and model lock."""
        from vepo_viz.group import analyze_group
        from vepo_viz.models.images import load_image

        key = model_key(model_name)
        rgb = load_image(image)
        with self._lock(key):
            if progress:
                progress(0.02, f"loading model {key or EMBEDDED}")
            vlm = self.model(key)
            return analyze_group(
                vlm, rgb, question, limits=self.limits, progress=progress, **kwargs
            )
