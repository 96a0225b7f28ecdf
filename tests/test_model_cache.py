"""The shared model cache: least recently used out first, by count and by memory; an
evicted model is freed (and on an accelerator its blocks go back to the device)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from vepo_viz.limits import CacheSettings
from vepo_viz.models.cache import GIB, ModelCache, model_bytes


class Stub:
    """A stand-in model: `nbytes` of float32 weights on `device`."""

    def __init__(self, nbytes: int = 0, device: str = "cpu"):
        self.model = torch.nn.Linear(max(1, nbytes // 4), 1, bias=False)
        self.device = torch.device(device)


def load(log: list, name: str, nbytes: int = 400, device: str = "cpu"):
    def make():
        log.append(name)
        return Stub(nbytes, device) if device == "cpu" else _cuda_stub(nbytes)

    return make


def _cuda_stub(nbytes):
    stub = Stub(nbytes)
    stub.device = torch.device("cuda")  # only the cache's bookkeeping reads it
    return stub


def test_lru_by_count():
    cache, loads = ModelCache(CacheSettings(max_models=2)), []
    a = cache.get_or_load("a", load(loads, "a"))
    cache.get_or_load("b", load(loads, "b"))
    assert cache.get_or_load("a", load(loads, "a")) is a  # a is now the most recent
    cache.get_or_load("c", load(loads, "c"))  # evicts b, the least recently used
    assert cache.keys() == ["a", "c"]
    assert loads == ["a", "b", "c"]
    cache.get_or_load("b", load(loads, "b"))
    assert loads[-1] == "b" and cache.keys() == ["c", "b"] and cache.n_evicted == 2


def test_lru_by_memory_keeps_the_newest_even_alone():
    cache, loads = ModelCache(CacheSettings(max_models=10, max_gb=1000 / GIB)), []
    cache.get_or_load("a", load(loads, "a", 400))
    cache.get_or_load("b", load(loads, "b", 400))
    assert cache.keys() == ["a", "b"] and cache.n_bytes() == 800
    cache.get_or_load("c", load(loads, "c", 400))  # 1200 bytes > 1000: a goes
    assert cache.keys() == ["b", "c"]
    cache.get_or_load("big", load(loads, "big", 4000))  # alone over the bound: it stays
    assert cache.keys() == ["big"]


def test_configure_shrinks_at_once():
    cache, loads = ModelCache(), []
    for name in "abc":
        cache.get_or_load(name, load(loads, name))
    cache.configure(CacheSettings(max_models=1))
    assert cache.keys() == ["c"]


def test_eviction_frees_the_model():
    cache = ModelCache(CacheSettings(max_models=1))
    first = cache.get_or_load("a", load([], "a", 4000))
    alive = weakref.ref(first)
    del first
    cache.get_or_load("b", load([], "b"))
    gc.collect()
    assert alive() is None  # nothing else held it: its memory is back


def test_eviction_on_gpu_empties_the_cuda_cache(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    cache = ModelCache(CacheSettings(max_models=1, max_gb=1.0))
    cache.get_or_load("gpu", load([], "gpu", device="cuda"))
    cache.get_or_load("cpu", load([], "cpu"))
    assert calls == [1]  # the cuda model's eviction returned its blocks
    cache.get_or_load("cpu2", load([], "cpu2"))
    assert calls == [1]  # a cpu model's does not


def test_model_bytes_counts_weights_and_buffers():
    stub = Stub(400)
    stub.model.register_buffer("extra", torch.zeros(10, dtype=torch.float16))
    assert model_bytes(stub) == 400 + 20
    assert model_bytes(object()) == 0


@pytest.mark.slow
def test_load_model_uses_the_bounded_cache(tiny_model_dir, monkeypatch):
    from vepo_viz.models import loading

    monkeypatch.setattr(loading, "CACHE", ModelCache())  # the suite's shared one stays
    loading.configure_cache(CacheSettings(max_models=1))
    one = loading.load_model(tiny_model_dir("qwen2_vl", seed=1), device="cpu")
    assert loading.load_model(tiny_model_dir("qwen2_vl", seed=1), device="cpu") is one
    other = loading.load_model(tiny_model_dir("qwen2_vl", merges=False), device="cpu")
    assert len(loading.CACHE.keys()) == 1 and other is not one
    again = loading.load_model(tiny_model_dir("qwen2_vl", seed=1), device="cpu")
    assert again is not one  # it was evicted, so it is loaded anew
