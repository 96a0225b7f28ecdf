"""The shared model cache of `load_model`: least recently used first out, by count and
by memory.

A served app opens whatever model folders its users name; without a bound every one of
them stayed loaded (gigabytes each for a 3B model). The cache keeps at most
`CacheSettings.max_models` models and at most `max_gb` of their weights; the newest
model always stays, even alone over the bound. Evicting drops the cache's reference,
collects it and, for an accelerator, returns the freed blocks to the device
(`torch.cuda.empty_cache`); an analysis still running on it keeps it alive until done.
"""

from __future__ import annotations

import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch

from vepo_viz.limits import CacheSettings

GIB = 1024**3

__all__ = ["CacheSettings", "ModelCache", "device_bytes", "model_bytes"]


def model_bytes(vlm: Any) -> int:
    """Bytes of a VLM's weights and buffers."""
    module = getattr(vlm, "model", None)
    if module is None:
        return 0
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def device_bytes(device: torch.device) -> int:
    """Total memory of `device` (the machine's RAM for CPU and MPS)."""
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 16 * GIB


class ModelCache:
    """{key: model}, bounded by `CacheSettings`; thread-safe (the app loads from many
    request threads). `get_or_load` loads at most once per key."""

    def __init__(self, settings: CacheSettings | None = None) -> None:
        self.settings = settings or CacheSettings()
        self._models: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.RLock()
        self._loading: dict[Hashable, threading.Lock] = {}
        self.n_evicted = 0

    def configure(self, settings: CacheSettings) -> None:
        """New bounds (applied at once)."""
        with self._lock:
            self.settings = settings
            self._shrink(keep=None)

    def get_or_load(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The cached model of `key` (now the most recent), else `load()`, cached. One
        load per key at a time; other keys stay served meanwhile."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key][0]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:  # loaded by another thread while this one waited
                    self._models.move_to_end(key)
                    return self._models[key][0]
            model = load()
            with self._lock:
                self._models[key] = (model, model_bytes(model))
                self._loading.pop(key, None)
                self._shrink(keep=key)
            return model

    def keys(self) -> list[Hashable]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._models)

    def n_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._models.values())

    def clear(self) -> None:
        """Evict every model."""
        with self._lock:
            while self._models:
                self._evict(next(iter(self._models)))

    def _limit_bytes(self) -> int:
        if self.settings.max_gb is not None:
            return int(self.settings.max_gb * GIB)
        devices = {_device_of(model) for model, _ in self._models.values()}
        return min((device_bytes(d) // 2 for d in devices), default=0)

    def _shrink(self, keep: Hashable | None) -> None:
        while len(self._models) > self.settings.max_models or (
            len(self._models) > 1 and self.n_bytes() > self._limit_bytes()
        ):
            oldest = next(k for k in self._models if k != keep)
            self._evict(oldest)

    def _evict(self, key: Hashable) -> None:
        model, _ = self._models.pop(key)
        device = _device_of(model)
        del model
        self.n_evicted += 1
        gc.collect()
        if device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _device_of(model: Any) -> torch.device:
    return torch.device(getattr(model, "device", "cpu"))
