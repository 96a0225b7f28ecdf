"""Which tokens a GRPO step trains on, for each rule, through the app's own scoring functions.

Pure: per-token signals of the rollout batch in, a `Selection` out. The scores and the
top-ratio cut are `scoring.score_tokens` and `scoring.select_tokens` (VPPO: the
`scoring.vppo_*` functions), exactly what the Analyze tab shows for the same response.

Shapes: N sequences, T response positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vepo_viz.scoring import (
    TokenStats,
    score_tokens,
    select_tokens,
    visual_sensitivity,
    vppo_advantage_scale,
    vppo_token_dependency,
)
from vepo_viz.train.config import TrainConfig


@dataclass(frozen=True, eq=False)
class TokenSignals:
    """Per-token quantities of the rollout policy over the sampled responses (no grad)."""

    mask: torch.Tensor
    """(N, T) bool, valid response tokens."""
    logp_old: torch.Tensor
    """(N, T) float32 log-probs of the sampled tokens under the rollout policy (clean image)."""
    entropy: torch.Tensor
    """(N, T) float32 entropy of the clean next-token distribution."""
    stats: TokenStats | None = None
    """Clean-vs-counterfactual statistics (None when no counterfactual pass ran)."""
    logp_noisy: torch.Tensor | None = None
    """(N, T) log-probs of the sampled tokens with the counterfactual image (VPPO)."""


@dataclass(frozen=True, eq=False)
class Selection:
    """The tokens a step trains on and, for VPPO, the per-response advantage scale."""

    selected: torch.Tensor
    """(N, T) bool, a subset of the mask."""
    scores: torch.Tensor | None
    """(N, T) float32 scores the top-ratio cut was taken on (None for "all")."""
    advantage_scale: torch.Tensor | None = None
    """(N,) float32 multiplier of each response's advantage (VPPO), else None."""


def _entropy_only_stats(entropy: torch.Tensor) -> TokenStats:
    """TokenStats carrying only the entropy (what the entropy and random scores read)."""
    zeros = torch.zeros_like(entropy)
    return TokenStats(entropy=entropy, entropy_noisy=entropy, jsd=zeros, kl=zeros)


def select_for_step(
    cfg: TrainConfig, signals: TokenSignals, generator: torch.Generator
) -> Selection:
    """Apply cfg.selection to the rollout batch's signals.

    `generator` drives the "random" rule only (seeded per step by the trainer).
    """
    mask = signals.mask
    rule = cfg.selection
    if rule == "all":
        return Selection(selected=mask.clone(), scores=None)
    if rule in ("entropy", "random"):
        stats = signals.stats or _entropy_only_stats(signals.entropy)
        scores = score_tokens(stats, mask, rule, generator=generator)
    elif rule == "vepo":
        if signals.stats is None:
            raise ValueError("the vepo rule needs the counterfactual statistics (signals.stats)")
        scores = score_tokens(signals.stats, mask, cfg.score_type, cfg.alpha)
    elif rule == "vppo":
        if signals.logp_noisy is None:
            raise ValueError(
                "the vppo rule needs the counterfactual log-probs (signals.logp_noisy)"
            )
        scores = vppo_token_dependency(signals.logp_old, signals.logp_noisy, mask)
        scale = vppo_advantage_scale(scores, mask) if cfg.vppo_rescale else None
        selected = select_tokens(scores, mask, cfg.ratio, cfg.scope)
        return Selection(selected=selected, scores=scores, advantage_scale=scale)
    else:  # pragma: no cover - the config rejects other rules
        raise ValueError(f"unknown selection rule {rule!r}")
    return Selection(selected=select_tokens(scores, mask, cfg.ratio, cfg.scope), scores=scores)


def selection_metrics(
    signals: TokenSignals, selection: Selection, alpha: float
) -> dict[str, float]:
    """Mean entropy (and, with a counterfactual pass, JSD and visual sensitivity) of the
    selected tokens vs all valid tokens: what the Train tab's curves compare across rules."""
    mask, selected = signals.mask, selection.selected

    def mean(x: torch.Tensor, where: torch.Tensor) -> float:
        n = int(where.sum())
        return float(torch.where(where, x, 0.0).sum()) / n if n else float("nan")

    out = {
        "entropy_selected": mean(signals.entropy, selected),
        "entropy_all": mean(signals.entropy, mask),
    }
    if signals.stats is not None:
        vis = visual_sensitivity(signals.stats, mask, alpha)  # (N, T) in [0, 1]
        out.update(
            jsd_selected=mean(signals.stats.jsd, selected),
            jsd_all=mean(signals.stats.jsd, mask),
            vis_selected=mean(vis, selected),
            vis_all=mean(vis, mask),
        )
    return out


def kind_metrics(
    kinds: list[tuple[str, ...] | None], selected: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """Which kinds of tokens a rule trains on (suite responses that follow the template).

    kinds: per row, the kind of each response token (None: unknown row, skipped);
    selected, mask: (N, T) bool. Returns share_<kind> (share of the selected tokens of
    that kind), recall_visual (share of "visual" tokens selected) and kinds_rows (rows
    counted).
    """
    from vepo_viz.tasks import KINDS

    counts = {k: 0 for k in KINDS}
    n_visual = n_visual_selected = n_rows = 0
    for row, row_kinds in enumerate(kinds):
        if row_kinds is None:
            continue
        n = int(mask[row].sum())
        if n != len(row_kinds):
            continue  # a response cut differently from its annotation: skip it
        n_rows += 1
        chosen = selected[row, :n].tolist()
        for kind, is_selected in zip(row_kinds, chosen, strict=True):
            if is_selected:
                counts[kind] += 1
            if kind == "visual":
                n_visual += 1
                n_visual_selected += int(is_selected)
    total = sum(counts.values())
    out = {f"share_{k}": counts[k] / total if total else float("nan") for k in KINDS}
    out["recall_visual"] = n_visual_selected / n_visual if n_visual else float("nan")
    out["kinds_rows"] = float(n_rows)
    return out
