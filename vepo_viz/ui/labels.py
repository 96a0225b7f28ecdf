"""Texts of the Analyze tab that explain a setting or a view: the scope choices, the
score-type choices short enough for their dropdown, and the table's label.

Kept apart from the layout (analyze_tab.py, controls.py) so that wording changes are
one place, and tested.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

SCOPE_INFO = (
    "Which tokens compete for the top ratio. response: each response keeps its own top "
    "k (the reference); batch: one top k over all responses of a batch; quantile: keep "
    "scores >= the batch's (1 - ratio) quantile (ties all kept). On one response, "
    "response and batch are the same; quantile differs only at ties."
)
"""The scope dropdown's info line."""

TABLE_LABEL = "Per-token values (sort from a column's \u22ee menu; click a row to inspect)"
"""The token table's label: gradio's table sorts from the column menu, not a header click."""

MAX_CHOICE_CHARS = 32
"""Longest score-type label that fits the dropdown of the settings column at 800 px."""


def short_choice(name: str, description: str) -> str:
    """A dropdown label that fits: "D: VEPO (reference)", "entropy: entropy only"; the
    full description goes in the dropdown's info line (`score_type_info`)."""
    head = description.split(":")[0].strip() or name
    if head.startswith("ablation"):
        head = "ablation"
    label = f"{name}: {head}"
    if len(label) > MAX_CHOICE_CHARS:
        label = f"{name}: {head.split(' (')[0]}"
    return label if len(label) <= MAX_CHOICE_CHARS else name


def score_type_choices(registry: Any) -> list[tuple[str, str]]:
    """(short label, name) for every entry of a score-type registry."""
    return [(short_choice(n, registry[n].description), n) for _, n in registry.choices()]


def score_type_info(registry: Any, name: str) -> str:
    """The full description (formula) of score type `name`, for the info line."""
    entry = registry.get(name) if hasattr(registry, "get") else None
    return f"{name}: {entry.description}" if entry is not None else ""


def scope_note(analysis: TokenAnalysis) -> str:
    """One Markdown line: whether the three scopes pick the same tokens on this response
    (select_tokens on the stored scores: no model, no re-scoring)."""
    import torch

    from vepo_viz.scoring import SCOPES, select_tokens

    scores = torch.as_tensor(np.asarray(analysis.scores, dtype=np.float64))[None]  # (1, T)
    if scores.numel() == 0 or not bool(torch.isfinite(scores).all()):
        return ""
    mask = torch.ones_like(scores, dtype=torch.bool)
    ratio = analysis.settings.scoring.ratio
    picks = {s: select_tokens(scores, mask, ratio, s)[0].numpy() for s in SCOPES}
    names = ", ".join(SCOPES)
    first = next(iter(picks.values()))
    if all(np.array_equal(first, p) for p in picks.values()):
        return f"  \nScope: on this one response, {names} select the same tokens."
    counts = ", ".join(f"{s} {int(p.sum())}" for s, p in picks.items())
    return f"  \nScope: on this response the scopes differ (tokens picked: {counts})."
