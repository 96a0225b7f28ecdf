"""The group view: one row of tokens per response, coloured by the signed credit A_i x w_t
one GRPO step applies (vepo_viz.group.GroupAnalysis.credit), two methods side by side.

Diverging colour map centred on 0 (PuOr: purple pushed up, orange pushed down, white
untouched; colour-blind safe), one scale for both methods so their colours compare;
responses sorted by reward, the reward and advantage beside each row; tokens whose credit
differs between the two methods outlined, misread tokens (suite samples) underlined.
HTML (the app, notebooks), matplotlib figures (PDF, SVG, PNG) and LaTeX read the same
`GroupView`; nothing here touches a model.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vepo_viz.render.data import display_token

DIVERGING_COLORMAP = "PuOr"
"""Negative credit orange, positive purple, zero white."""

DEFAULT_METHODS: tuple[str, str] = ("entropy", "vepo")
"""The comparison the group view opens with: entropy-only (80/20) vs VEPO."""

GROUP_FORMATS: tuple[str, ...] = ("pdf", "svg", "png")

LINE_CHARS = 72
"""Characters per line of a response row in the figure (longer responses wrap)."""


@dataclass(frozen=True)
class GroupView:
    """What every rendering of a group shows (from `group_view`)."""

    order: np.ndarray
    """(G,) response indices, highest reward first."""
    credits: tuple[Any, ...]
    """One group.GroupCredit per method."""
    methods: tuple[str, ...]
    vmax: float
    """Half-width of the colour scale: the largest |credit| of any method (> 0)."""
    differs: np.ndarray
    """(G, T) bool: the methods' credits differ (only with two methods)."""


def group_view(result: Any, methods: Sequence[str] = DEFAULT_METHODS, **credit_args) -> GroupView:
    methods = tuple(dict.fromkeys(methods)) or DEFAULT_METHODS[:1]
    credits = tuple(result.credit(m, **credit_args) for m in methods)
    vmax = max(float(np.abs(c.credit).max()) for c in credits)
    differs = np.zeros_like(credits[0].selected)
    if len(credits) == 2:
        differs = ~np.isclose(credits[0].credit, credits[1].credit, rtol=0, atol=1e-7)
    return GroupView(result.order, credits, methods, vmax if vmax > 0 else 1.0, differs)


def credit_rgba(values: np.ndarray, vmax: float) -> np.ndarray:
    """(N, 4) RGBA of credits on the diverging map, -vmax .. 0 (white) .. +vmax."""
    from matplotlib import colormaps

    unit = 0.5 + 0.5 * np.clip(np.asarray(values, dtype=np.float64) / vmax, -1.0, 1.0)
    return colormaps[DIVERGING_COLORMAP](unit)


def _hex(rgba_row) -> str:
    r, g, b = (int(round(float(x) * 255)) for x in rgba_row[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _ink(rgba_row) -> str:
    from vepo_viz.render.colors import text_colors

    return text_colors(np.asarray([rgba_row]))[0]


def _number(x: float, signed: bool = False) -> str:
    if not math.isfinite(float(x)):
        return "?"
    return f"{x:+.3f}" if signed else f"{x:.3g}"


def method_label(method: str) -> str:
    return {"entropy": "entropy-only", "vepo": "VEPO", "vppo": "VPPO", "all": "all tokens"}.get(
        method, method
    )


# ---- HTML ---------------------------------------------------------------------------


def group_html(result: Any, methods: Sequence[str] = DEFAULT_METHODS, **credit_args) -> str:
    """Self-contained HTML: the summary and one credit row per response and method."""
    view = group_view(result, methods, **credit_args)
    summary = result.summary(view.methods, **credit_args)
    head = "".join(f"<th>{html.escape(method_label(m))}</th>" for m in view.methods)
    rows = []
    for rank, i in enumerate(view.order):
        r = result.responses[i]
        cells = []
        for c in view.credits:
            spans = []
            row_rgba = credit_rgba(c.row(i), view.vmax)
            for t, token in enumerate(r.tokens):
                style = f"background:{_hex(row_rgba[t])};color:{_ink(row_rgba[t])};"
                classes = ["vv-tok"]
                if view.differs[i, t]:
                    classes.append("vv-diff")
                    style += "outline:2px solid #000;outline-offset:-2px;"
                if t in result.misread[i]:
                    classes.append("vv-misread")
                    style += "text-decoration:underline wavy #c00;"
                title = f"{token!r}: credit {c.credit[i, t]:+.4f} (w = {c.weights[i, t]:g})"
                spans.append(
                    f'<span class="{" ".join(classes)}" style="{style}" '
                    f'title="{html.escape(title)}">{html.escape(display_token(token))}</span>'
                )
            cells.append(
                f'<td class="vv-credit" data-method="{html.escape(c.method)}">{"".join(spans)}</td>'
            )
        verdict = (
            "" if not result.has_rewards else (" &#10003;" if result.correct[i] else " &#10007;")
        )
        rows.append(
            f'<tr class="vv-group-row" data-response="{int(i)}"><td>{rank + 1}</td>'
            f'<td class="vv-reward">{_number(result.rewards[i])}{verdict}</td>'
            f'<td class="vv-advantage">{_number(result.advantages[i], signed=True)}</td>'
            + "".join(cells)
            + "</tr>"
        )
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in summary.lines())
    scale = (
        f"colour: credit A x w, from {-view.vmax:+.3f} (orange, pushed down) through 0 "
        f"(white) to {view.vmax:+.3f} (purple, pushed up); outlined: the methods' credit "
        "differs; wavy underline: a misread token (suite annotation)"
    )
    return (
        '<div class="vv-group" id="vv-group-view" style="font-family:sans-serif">'
        f'<ul class="vv-group-summary">{lines}</ul>'
        '<table class="vv-group-table" style="border-collapse:collapse">'
        f"<tr><th>#</th><th>reward</th><th>advantage</th>{head}</tr>" + "".join(rows) + "</table>"
        f'<div style="color:#555;font-size:smaller">{html.escape(scale)}</div></div>'
    ).replace("<td", '<td style="padding:2px 6px;vertical-align:top;font-family:monospace"')


# ---- figures ------------------------------------------------------------------------


def _wrap(tokens: Sequence[str], line_chars: int) -> list[list[tuple[int, str]]]:
    lines: list[list[tuple[int, str]]] = [[]]
    used = 0
    for t, token in enumerate(tokens):
        shown = display_token(token)
        if used and used + len(shown) > line_chars:
            lines.append([])
            used = 0
        lines[-1].append((t, shown))
        used += len(shown)
    return lines


def group_figure(
    result: Any,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    line_chars: int = LINE_CHARS,
    font_size: float = 7.0,
    **credit_args,
):
    """A matplotlib Figure (object API, no pyplot): the credit rows of each method side by
    side, a colour bar below."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    view = group_view(result, methods, **credit_args)
    char_w = font_size * 0.6 / 72  # inches per character of DejaVu Sans Mono
    line_h = font_size * 1.9 / 72
    label_w = 1.25
    panel_w = label_w + line_chars * char_w + 0.15
    wrapped = [_wrap(result.responses[i].tokens, line_chars) for i in view.order]
    n_lines = sum(len(w) for w in wrapped) + 0.4 * len(wrapped)
    height = 0.5 + n_lines * line_h + 0.6
    width = panel_w * len(view.methods) + 0.2
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    mono = {"family": "DejaVu Sans Mono", "size": font_size}
    for m, c in enumerate(view.credits):
        x0 = 0.1 + m * panel_w
        ax.text(x0, 0.3, f"{method_label(c.method)} (ratio {c.ratio:g}, {c.loss_mode})",
                fontsize=font_size + 2, weight="bold", va="center")  # fmt: skip
        y = 0.5
        for i, lines in zip(view.order, wrapped, strict=True):
            label = f"r={_number(result.rewards[i])}  A={_number(result.advantages[i], True)}"
            ax.text(x0, y + line_h / 2, label, va="center", **mono)
            colors = credit_rgba(c.row(i), view.vmax)
            for line in lines:
                x = x0 + label_w
                for t, shown in line:
                    w = len(shown) * char_w
                    edge = "#000000" if view.differs[i, t] else "none"
                    ax.add_patch(Rectangle((x, y), w, line_h * 0.92, facecolor=colors[t],
                                           edgecolor=edge, linewidth=0.8))  # fmt: skip
                    ax.text(x, y + line_h * 0.46, shown, va="center", color=_ink(colors[t]), **mono)
                    if t in result.misread[i]:
                        ax.plot([x, x + w], [y + line_h * 0.95] * 2, color="#cc0000", linewidth=1.2)
                    x += w
                y += line_h
            y += 0.4 * line_h
    _colorbar(fig, ax, view.vmax, width, height, font_size)
    return fig


def _colorbar(fig, ax, vmax: float, width: float, height: float, font_size: float) -> None:
    from matplotlib.patches import Rectangle

    n, x0, w, y = 64, 0.1 + 1.25, min(3.0, width - 1.6), height - 0.45
    values = np.linspace(-vmax, vmax, n)
    for k, rgba_row in enumerate(credit_rgba(values, vmax)):
        ax.add_patch(Rectangle((x0 + k * w / n, y), w / n, 0.12, facecolor=rgba_row, linewidth=0))
    ax.text(x0 - 0.05, y + 0.06, f"{-vmax:+.3f} pushed down", ha="right", va="center",
            fontsize=font_size)  # fmt: skip
    ax.text(x0 + w + 0.05, y + 0.06, f"{vmax:+.3f} pushed up", va="center", fontsize=font_size)
    ax.text(x0 + w / 2, y + 0.28, "credit A x w (0: untouched); outlined: the methods differ",
            ha="center", va="center", fontsize=font_size)  # fmt: skip


def save_group_figure(
    result: Any, path: str | Path, methods: Sequence[str] = DEFAULT_METHODS, **credit_args
) -> Path:
    """Write the group figure as PDF, SVG or PNG (from the suffix) and return the path.
    PDF embeds TrueType fonts and SVG keeps text as text (as render.export's heatmaps)."""
    import logging

    from matplotlib import rc_context

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in GROUP_FORMATS:
        raise ValueError(f"figure format must be one of {GROUP_FORMATS}, got {path.name!r}")
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    with rc_context({"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}):
        fig = group_figure(result, methods, **credit_args)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"Creator": "vepo-viz"} if fmt in ("pdf", "svg") else None
        fig.savefig(path, format=fmt, dpi=200, metadata=metadata)
    return path


# ---- LaTeX --------------------------------------------------------------------------


def group_latex(
    result: Any,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    standalone: bool = False,
    **credit_args,
) -> str:
    """LaTeX: per method, one paragraph per response (reward, advantage, then one
    `\\colorbox` per token coloured by its credit). Needs xcolor (and T1 fontenc)."""
    from vepo_viz.render.export.latex import latex_escape, standalone_document

    view = group_view(result, methods, **credit_args)
    lines = [
        "% vepo-viz group credit: A x w per token, orange pushed down, purple pushed up",
        "% needs \\usepackage{xcolor} and \\usepackage[T1]{fontenc}",
        "\\begingroup\\setlength{\\fboxsep}{1pt}%",
    ]
    for c in view.credits:
        lines.append(
            f"\\par\\medskip\\noindent\\textbf{{{latex_escape(method_label(c.method))}}} "
            f"(ratio {c.ratio:g}, {c.loss_mode})\\par%"
        )
        for i in view.order:
            r = result.responses[i]
            lines.append(
                f"\\noindent{{\\small $r={_number(result.rewards[i])}$, "
                f"$A={_number(result.advantages[i], True)}$:}} %"
            )
            colors = credit_rgba(c.row(i), view.vmax)
            for t, token in enumerate(r.tokens):
                shown = latex_escape(display_token(token.lstrip(" ") or token))
                rr, gg, bb = (int(round(float(x) * 255)) for x in colors[t][:3])
                ink = "255,255,255" if _ink(colors[t]) == "#ffffff" else "0,0,0"
                box = f"\\colorbox[RGB]{{{rr},{gg},{bb}}}{{\\strut\\textcolor[RGB]{{{ink}}}{{{shown}}}}}"
                if view.differs[i, t]:
                    box = f"\\fbox{{{box}}}"
                sep = " " if token.startswith(" ") and t > 0 else ""
                lines.append(f"{sep}{box}%")
            lines.append("\\par%")
    lines.append("\\endgroup")
    snippet = "\n".join(lines) + "\n"
    return standalone_document(snippet) if standalone else snippet
