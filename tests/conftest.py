"""Shared fixtures: tiny random VLMs of every family (built once per session, offline),
test images, and synthetic TokenAnalysis objects that need no model."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.fake import draw_scene


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Factory: tiny_model_dir(family, **spec) -> folder of a tiny random model (cached)."""
    from tests.tiny_random import TinySpec, build_tiny_vlm

    built: dict[tuple, object] = {}

    def make(family: str = "qwen2_vl", **spec):
        key = (family, tuple(sorted(spec.items())))
        if key not in built:
            name = f"{family}-" + "-".join(f"{k}{v}" for k, v in sorted(spec.items()))
            folder = tmp_path_factory.mktemp(name.strip("-"))
            built[key] = build_tiny_vlm(family, folder, TinySpec(**spec))
        return built[key]

    return make


@pytest.fixture(scope="session")
def tiny_vlm(tiny_model_dir):
    """Factory: tiny_vlm(family, **spec) -> a loaded VLM (cached by load_model)."""
    from vepo_viz.models import load_model

    def make(family: str = "qwen2_vl", **spec):
        return load_model(tiny_model_dir(family, **spec), device="cpu")

    return make


@pytest.fixture(scope="session")
def qwen(tiny_vlm):
    """The tiny Qwen2-VL most pipeline tests use."""
    return tiny_vlm("qwen2_vl")


@pytest.fixture
def scene() -> Image.Image:
    return draw_scene()


@pytest.fixture(scope="session", autouse=True)
def _roomy_model_cache():
    """The suite loads a dozen tiny models and its fixtures expect the same instance
    back: a model cache that holds them all (tests/test_model_cache.py tests the bound)."""
    from vepo_viz.limits import CacheSettings
    from vepo_viz.models.loading import configure_cache

    configure_cache(CacheSettings(max_models=64))
