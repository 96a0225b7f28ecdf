"""What a result says about its own trustworthiness, as text: input warnings, the noise
floor verdict and the selection stability. The app (a warning block above the summary),
the CLI and the notebook show the same sentences. Reads the result only."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

WARNING_STYLE = "background:#fff3cd;border-left:4px solid #e69f00;padding:6px 10px;color:#5a3b00"
"""Inline style of the warning block (the Markdown keeps it; no CSS file needed)."""

STABILITY_UNKNOWN = (
    "Selection stability: unknown with one counterfactual draw (set K > 1 draws to see how "
    "often each token is selected)."
)


def warnings(result: TokenAnalysis) -> list[str]:
    """Warnings to say before the result: the floor verdict, then each input warning."""
    verdict = result.floor_verdict
    return ([verdict] if verdict else []) + list(result.input_warnings)


def floor_line(result: TokenAnalysis) -> str:
    """How many tokens lie at the noise floor, and the floor itself (every result has
    one: the float floor at least, vepo_viz.floor)."""
    mask, level = result.at_floor, result.noise_floor
    how = "null pass + float floor" if level.method == "null_pass" else "float floor"
    return (
        f"Noise floor ({how}: JSD {level.jsd:.1e}, |dH| {level.abs_entropy_gap:.1e} nats): "
        f"**{int(mask.sum())} of {len(mask)} tokens at the floor** (no visual signal)."
    )


def stability_line(result: TokenAnalysis) -> str:
    """Mean Jaccard between draws and how many tokens every draw selects, or 'unknown'."""
    share, jaccard = result.selection_share, result.draw_jaccard
    if share is None:
        return STABILITY_UNKNOWN
    k = result.n_draws
    jac = "n/a" if jaccard is None or math.isnan(jaccard) else f"{jaccard:.2f}"
    always = int((share >= 1.0).sum())
    sometimes = int(((share > 0) & (share < 1.0)).sum())
    return (
        f"Selection stability over K={k} draws: Jaccard between draws {jac}; "
        f"{always} tokens selected in every draw, {sometimes} in some."
    )


def warnings_html(result: TokenAnalysis) -> str:
    """The warnings as a visible block (class "vv-warning"), or "" when there are none."""
    items = warnings(result)
    if not items:
        return ""
    body = "<br>".join(f"\u26a0 {html.escape(w)}" for w in items)
    return f'<div class="vv-warning" style="{WARNING_STYLE}"><strong>Warning:</strong> {body}</div>\n\n'


def text_lines(result: TokenAnalysis) -> list[str]:
    """Plain lines for the CLI: WARNING lines first, then the floor and stability lines."""
    lines = [f"WARNING: {w}" for w in warnings(result)]
    lines.append(floor_line(result).replace("**", ""))
    lines.append(stability_line(result))
    return lines
