"""Which tokens a GRPO step trains on, for each rule, through the app's own scoring functions.

Pure: per-token signals of the rollout batch in, a `Selection` out. The scores and the
top-ratio cut are `scoring.score_tokens` and `scoring.select_tokens` (VPPO: the
`scoring.vppo_*` functions), exactly what the Analyze tab shows for the same response.

Shapes: N sequences, T response positions.
"""

from __future__ import annotations

import torch

from vepo_viz.scoring import visual_sensitivity
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.rules import RULES, Selection, TokenSignals

__all__ = [
    "RULES",
    "Selection",
    "TokenSignals",
    "select_for_step",
    "selection_metrics",
    "kind_metrics",
]


def select_for_step(
    cfg: TrainConfig, signals: TokenSignals, generator: torch.Generator
) -> Selection:
    """Apply the rule cfg.selection (an entry of RULES) to the rollout batch's signals.

    `generator` drives the "random" rule only (seeded per step by the trainer).
    """
    return RULES[cfg.selection].select(cfg, signals, generator)


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
