"""Seeded sampling inside `model.generate`, without touching the global RNG.

transformers samples with the global torch RNG. `SeededSampler` is a logits processor that
draws the next token itself, from softmax(scores / temperature) restricted to the top-p
nucleus, with an explicit torch.Generator, and returns scores that are -inf everywhere
except at the drawn token; generation then runs in greedy mode and picks exactly that
token. Same seed, same model, same device: same response.
"""

from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor

from vepo_viz.errors import NumericsError


class SeededSampler(LogitsProcessor):
    """Draws each next token from softmax(scores / temperature) within the top-p nucleus."""

    def __init__(self, temperature: float, top_p: float, seed: int) -> None:
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
        if not (0.0 < top_p <= 1.0):
            raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = int(seed)
        self._generator: torch.Generator | None = None

    def _gen(self, device: torch.device) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        z = scores.float() / self.temperature  # (B, V)
        if not bool(torch.isfinite(z).any(dim=-1).all()) or bool(torch.isnan(z).any()):
            raise NumericsError(
                "the model produced NaN/inf logits while generating; with float16 weights "
                "try dtype='bfloat16' or 'float32'"
            )
        probs = torch.softmax(z, dim=-1)  # (B, V)
        if self.top_p < 1.0:
            probs = _nucleus(probs, self.top_p)
        token = torch.multinomial(probs, 1, generator=self._gen(probs.device))  # (B, 1)
        out = torch.full_like(scores, -math.inf)  # (B, V)
        return out.scatter_(1, token, 0.0)


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero all but the smallest set of most likely tokens whose mass reaches top_p."""
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)  # (B, V)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs  # (B, V)
    keep_sorted = mass_before < top_p  # the first token is always kept
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)  # (B, V)
    return torch.where(keep, probs, 0.0)
