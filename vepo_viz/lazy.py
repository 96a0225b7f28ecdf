"""A module imported on first use, so `vepo-viz --help` (argparse built from the config
dataclasses and registries) starts without loading torch (about 1.5 s).

    from vepo_viz.lazy import torch      # a stand-in; torch loads at the first attribute

Every attribute is looked up on the real module (one extra call, ~0.1 us), so a test that
monkeypatches `torch.x` is seen through the stand-in too. Annotations stay free because
every module using it has `from __future__ import annotations`.
"""

from __future__ import annotations

import functools
import importlib
import types
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class LazyModule(types.ModuleType):
    """Stands for the module `name` and imports it at the first attribute access."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_module"] = None

    def __getattr__(self, attr: str) -> Any:
        # Called for every name not in the stand-in's own __dict__: ask the real module.
        module = self.__dict__["_lazy_module"]
        if module is None:
            module = self.__dict__["_lazy_module"] = importlib.import_module(self.__name__)
        return getattr(module, attr)


torch: Any = LazyModule("torch")


def no_grad(fn: Callable[..., T]) -> Callable[..., T]:
    """`@torch.no_grad()` for a module that imports torch lazily (the decorator form
    would load torch when the module is imported)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper
