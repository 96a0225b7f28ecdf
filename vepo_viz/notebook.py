"""Jupyter display of a `TokenAnalysis`: the response as coloured tokens with hover titles.

`TokenAnalysis._repr_html_` and `.show()` call this. The HTML is self-contained (inline
styles, no script, no server, no external file), so it also survives nbconvert and
GitHub's notebook viewer. Tokens are shaded by the VEPO score relative to the response's
highest score (scores rarely exceed 0.1, so a fixed 0-1 scale would be blank); VEPO
picks are underlined and bold, entropy picks overlined, tokens at the noise floor grey.
Reads the result's attributes only (no import of vepo_viz.results, render or torch).
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

SHADE_RGB = (230, 159, 0)
"""Colour of the highest score (Okabe-Ito orange); lower scores fade to white."""

FLOOR_TEXT = "#999999"
"""Text colour of tokens at the noise floor (no visual signal)."""


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def _title(result: Any, t: int) -> str:
    parts = [
        f"#{t} {result.tokens[t]!r}",
        f"H = {_fmt(float(result.entropy[t]))} nats",
        f"JSD = {_fmt(float(result.jsd[t]))}",
        f"|dH| = {_fmt(abs(float(result.entropy_gap[t])))}",
        f"v = {_fmt(float(result.visual_sensitivity[t]))}",
        f"s = {_fmt(float(result.scores[t]))}",
        f"VEPO {'yes' if result.selected_vepo[t] else 'no'}, "
        f"entropy {'yes' if result.selected_entropy[t] else 'no'}",
    ]
    if result.at_floor[t]:
        parts.append("at the noise floor: no visual signal")
    share = result.selection_share
    if share is not None:
        parts.append(f"selected in {100 * float(share[t]):.0f}% of draws")
    return "\n".join(parts)


def _token_span(result: Any, t: int, top: float) -> str:
    weight = float(result.scores[t]) / top if top > 0 else 0.0
    r, g, b = (round(255 - (255 - c) * min(max(weight, 0.0), 1.0)) for c in SHADE_RGB)
    style = [f"background:rgb({r},{g},{b})", "padding:1px 0", "white-space:pre-wrap"]
    decorations = []
    if result.selected_vepo[t]:
        decorations.append("underline")
        style.append("font-weight:bold")
    if result.selected_entropy[t]:
        decorations.append("overline")
    if decorations:
        style.append(f"text-decoration:{' '.join(decorations)}")
    if result.at_floor[t]:
        style.append(f"color:{FLOOR_TEXT}")
    text = html.escape(str(result.tokens[t]).replace("\n", "\u21b5\n"))
    return (
        f'<span class="vv-token{" vv-floor" if result.at_floor[t] else ""}" '
        f'style="{";".join(style)}" title="{html.escape(_title(result, t))}">{text}</span>'
    )


def analysis_html(result: Any) -> str:
    """Self-contained HTML of one analysis: notices, coloured tokens, a one-line legend."""
    scores = np.asarray(result.scores, dtype=np.float64)
    top = float(scores.max()) if scores.size and np.isfinite(scores).all() else 0.0
    notices = list(result.input_warnings)
    if result.floor_verdict:
        notices.insert(0, result.floor_verdict)
    notice_html = "".join(
        f'<div class="vv-notice" style="color:#8a4b00;font-weight:bold">'
        f"Warning: {html.escape(n)}</div>"
        for n in notices
    )
    tokens = "".join(_token_span(result, t, top) for t in range(len(result.tokens)))
    legend = (
        f"{len(result.tokens)} tokens; shade = score / max score ({_fmt(top)}); "
        "<u>underlined</u> = VEPO pick, overlined = entropy pick, "
        f'<span style="color:{FLOOR_TEXT}">grey</span> = at the noise floor. '
        "Hover a token for its numbers."
    )
    question = html.escape(result.question)
    return (
        '<div class="vv-analysis" style="font-family:sans-serif;line-height:1.8">'
        f"{notice_html}"
        f'<div style="color:#555">Q: {question}</div>'
        f'<div style="font-family:monospace">{tokens}</div>'
        f'<div style="color:#555;font-size:smaller">{legend}</div></div>'
    )


def show(result: Any) -> str | None:
    """Display `analysis_html(result)` through IPython.display; without IPython, return
    the HTML (None once displayed)."""
    markup = analysis_html(result)
    try:
        from IPython.display import HTML, display
    except ImportError:
        return markup
    display(HTML(markup))
    return None
