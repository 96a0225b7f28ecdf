"""Naive reference of shared/PAPER.md for tests: full tensors, float64, loops, no cleverness.

Written straight from the definitions, independently of vepo_viz.scoring, so the fast
implementation can be checked against it.
"""

from __future__ import annotations

import math

import torch

EPS = 1e-8


def stats(logits_clean, logits_noisy, temperature=1.0):
    """(H, H', JSD, KL(p||q)) as float64 (B, T) tensors."""
    p = torch.softmax(logits_clean.double() / temperature, dim=-1)
    q = torch.softmax(logits_noisy.double() / temperature, dim=-1)
    m = 0.5 * (p + q)

    def plogp_over(a, b):  # sum a log(a / b) with 0 log 0 = 0
        return torch.where(a > 0, a * (torch.log(a) - torch.log(b)), 0.0).sum(-1)

    entropy = -torch.where(p > 0, p * torch.log(p), 0.0).sum(-1)
    entropy_noisy = -torch.where(q > 0, q * torch.log(q), 0.0).sum(-1)
    jsd = 0.5 * plogp_over(p, m) + 0.5 * plogp_over(q, m)
    kl = plogp_over(p, q)
    return entropy, entropy_noisy, jsd, kl


def norm(x, mask):
    """Per-row min-max over valid tokens, clamp [0, 1], 0 on padding (row by row)."""
    out = torch.zeros_like(x, dtype=torch.float64)
    for b in range(x.shape[0]):
        valid = mask[b]
        if not valid.any():
            continue
        xv = x[b][valid].double()
        lo, hi = xv.min(), xv.max()
        out[b][valid] = ((xv - lo) / max(float(hi - lo), EPS)).clamp(0, 1)
    return out


def score(entropy, entropy_noisy, jsd, kl, mask, score_type, alpha=0.7):
    gap = entropy_noisy - entropy
    j, h, d = norm(jsd, mask), norm(entropy, mask), norm(gap.abs(), mask)
    dp = norm(gap.clamp(min=0), mask)
    k = norm(kl, mask)
    a = alpha
    formulas = {
        "D": (1 - (1 - j) ** a * (1 - d) ** (1 - a)) * h,
        "A": 1 - (1 - j) * (1 - h) * (1 - dp),
        "B": (1 - (1 - j) * (1 - h)) * dp,
        "C": (1 - (1 - j) ** a * (1 - dp) ** (1 - a)) * h,
        "E": 1 - (1 - j) ** a * (1 - d) ** (1 - a),
        "F": (a * j + (1 - a) * d) * h,
        "G": j * d * h,
        "H": (1 - (1 - k) ** a * (1 - d) ** (1 - a)) * h,
        "entropy": entropy.double(),
        "jsd": jsd.double(),
        "entropy_gap": gap.abs().double(),
    }
    return torch.where(mask, formulas[score_type], 0.0)


def select_response(scores, mask, ratio):
    """Per row: sort positions by (-score, position), keep the first max(1, ceil(r n))."""
    out = torch.zeros_like(mask)
    for b in range(scores.shape[0]):
        positions = [t for t in range(scores.shape[1]) if mask[b, t]]
        if not positions:
            continue
        k = max(1, math.ceil(ratio * len(positions)))
        ranked = sorted(positions, key=lambda t: (-float(scores[b, t]), t))
        for t in ranked[:k]:
            out[b, t] = True
    return out


def select_batch(scores, mask, ratio):
    items = [(b, t) for b in range(scores.shape[0]) for t in range(scores.shape[1]) if mask[b, t]]
    out = torch.zeros_like(mask)
    if not items:
        return out
    k = max(1, math.ceil(ratio * len(items)))
    ranked = sorted(items, key=lambda bt: (-float(scores[bt]), bt))
    for bt in ranked[:k]:
        out[bt] = True
    return out


def select_quantile(scores, mask, ratio):
    valid = scores[mask]
    if valid.numel() == 0:
        return torch.zeros_like(mask)
    return mask & (scores >= torch.quantile(valid, 1 - ratio))
