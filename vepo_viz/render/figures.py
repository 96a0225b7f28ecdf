"""Interactive plotly figures of one analysis (or two, or a batch), for the app.

The token heatmap draws the response as text: each token is a box as wide as its text,
coloured by a signal, wrapped over lines like a paragraph; every wrapped line shows one
row per signal and a row with the two selections, so a token's cells line up vertically.
Hovering any cell shows all numbers of that token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from vepo_viz.render.colors import (
    CATEGORIES,
    CATEGORY_COLORS,
    CATEGORY_LABELS,
    DEFAULT_COLORMAP,
    category_text_color,
    plotly_colorscale,
    rgba,
    text_colors,
)
from vepo_viz.render.data import (
    DEFAULT_SIGNALS,
    SIGNALS,
    candidates_table,
    scoring_of,
    selection_difference,
    signal_scale,
    token_frame,
)

ROW_HEIGHT_PX = 30
"""Height of one heatmap row; a wrapped line is n_rows rows plus a gap."""
LINE_GAP = 0.7
"""Vertical gap between wrapped lines, in rows."""
TOKEN_GAP = 0.3
"""Horizontal gap between token boxes, in characters."""
TOKEN_PAD = 0.9
"""Box width beyond the token's characters (plotly pads text inside a bar by a few px)."""
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"

DIFF_COLORS = {
    "both": "#009E73",
    "a_only": "#E69F00",
    "b_only": "#56B4E9",
    "neither": "#EEEEEE",
}


class _Builder:
    """Collects traces and layout as plain dicts and builds the go.Figure once, without
    plotly's per-property validation (10x faster: re-scoring must stay well under 1 s).
    Traces and layout keys here are fixed and covered by the tests."""

    def __init__(self) -> None:
        self.data: list[dict] = []
        self.layout: dict = {}

    def add_trace(self, trace: dict) -> None:
        self.data.append(trace)

    def update_layout(self, updates: dict | None = None, **kwargs: Any) -> None:
        for key, value in {**(updates or {}), **kwargs}.items():
            if isinstance(value, dict) and isinstance(self.layout.get(key), dict):
                self.layout[key] = {**self.layout[key], **value}
            else:
                self.layout[key] = value

    def build(self) -> go.Figure:
        return go.Figure(data=self.data, layout=self.layout, _validate=False)


def wrap_lines(
    displays: Sequence[str], tokens: Sequence[str], chars_per_line: int
) -> list[list[int]]:
    """Token indices per wrapped line: break before a token that would pass chars_per_line
    and after any token that contains a newline."""
    if chars_per_line < 8:
        raise ValueError(f"chars_per_line must be >= 8, got {chars_per_line}")
    lines: list[list[int]] = [[]]
    used = 0.0
    for i, (shown, raw) in enumerate(zip(displays, tokens, strict=True)):
        width = len(shown) + TOKEN_PAD + TOKEN_GAP
        if lines[-1] and used + width > chars_per_line:
            lines.append([])
            used = 0.0
        lines[-1].append(i)
        used += width
        if "\n" in raw:
            lines.append([])
            used = 0.0
    return [line for line in lines if line] or [[]]


@dataclass
class Row:
    """One row of a token-row figure: a continuous signal or a categorical one."""

    label: str
    values: np.ndarray | None = None
    """(T,) floats for a continuous row."""
    categories: np.ndarray | None = None
    """(T,) category names for a categorical row."""
    colorbar: str = ""
    vmin: float = 0.0
    vmax: float = 1.0
    colors: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


def _hover(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """customdata (T, 12) and the hover template that shows every number of a token."""
    n = len(frame)
    top1 = frame["top1"] if "top1" in frame else pd.Series([""] * n)
    top1_p = frame["top1_p"] if "top1_p" in frame else pd.Series([math.nan] * n)
    data = np.empty((n, 12), dtype=object)
    data[:, 0] = frame["index"].to_numpy()
    data[:, 1] = [repr(t) for t in frame["token"]]
    for j, col in enumerate(
        ["entropy", "entropy_noisy", "entropy_gap", "jsd", "kl", "visual_sensitivity", "score"],
        start=2,
    ):
        data[:, j] = frame[col].to_numpy()
    data[:, 9] = np.where(frame["selected_vepo"], "yes", "no")
    data[:, 10] = np.where(frame["selected_entropy"], "yes", "no")
    data[:, 11] = [
        f"{t!r} ({p:.3f})" if isinstance(t, str) and t and not math.isnan(p) else "-"
        for t, p in zip(top1, top1_p, strict=True)
    ]
    template = (
        "<b>#%{customdata[0]}</b> %{customdata[1]}<br>"
        "entropy H = %{customdata[2]:.4f} nats<br>"
        "noisy entropy H' = %{customdata[3]:.4f}<br>"
        "entropy gap H'-H = %{customdata[4]:+.4f}<br>"
        "JSD = %{customdata[5]:.4f} (max ln2 = 0.6931)<br>"
        "KL(p||q) = %{customdata[6]:.4f}<br>"
        "visual sensitivity v = %{customdata[7]:.4f}<br>"
        "score s = %{customdata[8]:.4f}<br>"
        "selected: VEPO %{customdata[9]}, entropy %{customdata[10]}<br>"
        "top candidate: %{customdata[11]}<extra></extra>"
    )
    return data, template


def token_rows_figure(
    frame: pd.DataFrame,
    rows: Sequence[Row],
    *,
    chars_per_line: int = 72,
    cmap: str = DEFAULT_COLORMAP,
    title: str | None = None,
) -> go.Figure:
    """The response as coloured tokens, wrapped, with one row per entry of `rows`."""
    displays = list(frame["display"])
    lines = wrap_lines(displays, list(frame["token"]), chars_per_line)
    n_rows = len(rows)
    customdata, hovertemplate = _hover(frame)

    # Position of each token: (line, x0, width); row r of line l sits at y = l*(n+gap) + r.
    x0 = np.zeros(len(frame))
    width = np.zeros(len(frame))
    line_of = np.zeros(len(frame), dtype=int)
    for li, line in enumerate(lines):
        pos = 0.0
        for i in line:
            x0[i], width[i], line_of[i] = pos, len(displays[i]) + TOKEN_PAD, li
            pos += width[i] + TOKEN_GAP
    stride = n_rows + LINE_GAP

    continuous = [r for r in rows if r.values is not None]
    bottom = 100 if continuous else 10
    plot_px = ROW_HEIGHT_PX * stride * len(lines)
    height = int(50 + bottom + plot_px + (40 if title else 0))
    fig = _Builder()
    n_bars = max(len(continuous), 1)
    n_axes = 0
    legend_seen: set[str] = set()
    for ri, row in enumerate(rows):
        y = line_of * stride + ri
        if row.values is not None:
            n_axes += 1
            axis = "coloraxis" if n_axes == 1 else f"coloraxis{n_axes}"
            values = np.asarray(row.values, dtype=np.float64)
            colors = rgba(values, row.vmin, row.vmax, cmap)
            fig.add_trace(
                dict(
                    type="bar",
                    orientation="h",
                    y=y,
                    base=x0,
                    x=width,
                    width=0.86,
                    marker={"color": values, "coloraxis": axis, "line": {"width": 0}},
                    text=displays,
                    textposition="inside",
                    insidetextanchor="middle",
                    textangle=0,
                    textfont={"color": text_colors(colors), "family": FONT, "size": 13},
                    customdata=customdata,
                    hovertemplate=hovertemplate,
                    name=row.label,
                    showlegend=False,
                )
            )
            fig.update_layout(
                {
                    axis: {
                        "colorscale": plotly_colorscale(cmap),
                        "cmin": row.vmin,
                        "cmax": row.vmax,
                        "colorbar": {
                            "title": {"text": row.colorbar or row.label, "side": "top"},
                            "orientation": "h",
                            "len": 0.9 / n_bars,
                            "lenmode": "fraction",
                            "x": (n_axes - 0.5) / n_bars,
                            "xanchor": "center",
                            "y": -24 / plot_px,
                            "yanchor": "top",
                            "ypad": 6,
                            "thickness": 10,
                        },
                    }
                }
            )
        else:
            cats = np.asarray(row.categories, dtype=object)
            for cat, color in row.colors.items():
                idx = np.flatnonzero(cats == cat)
                name = row.names.get(cat, cat)
                fig.add_trace(
                    dict(
                        type="bar",
                        orientation="h",
                        y=y[idx],
                        base=x0[idx],
                        x=width[idx],
                        width=0.86,
                        marker={
                            "color": color,
                            "line": {"width": 1 if cat == "neither" else 0, "color": "#bbbbbb"},
                        },
                        text=[displays[i] for i in idx],
                        textposition="inside",
                        insidetextanchor="middle",
                        textangle=0,
                        textfont={
                            "color": category_text_color_any(color),
                            "family": FONT,
                            "size": 13,
                        },
                        customdata=customdata[idx] if len(idx) else None,
                        hovertemplate=hovertemplate,
                        name=name,
                        legendgroup=f"{row.label}:{cat}",
                        showlegend=name not in legend_seen,
                    )
                )
                legend_seen.add(name)

    tickvals = [li * stride + ri for li in range(len(lines)) for ri in range(n_rows)]
    ticktext = [row.label for _ in lines for row in rows]
    fig.update_layout(
        barmode="overlay",
        bargap=0,
        height=max(height, 220),
        margin={"l": 10, "r": 10, "t": 70 if title else 40, "b": bottom},
        plot_bgcolor="white",
        paper_bgcolor="white",
        title={"text": title, "x": 0.01} if title else None,
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0.0},
        hoverlabel={"font": {"family": FONT}},
        xaxis={
            "visible": False,
            "range": [-0.5, chars_per_line + 0.5],
            "fixedrange": True,
        },
        yaxis={
            "tickvals": tickvals,
            "ticktext": ticktext,
            "range": [(len(lines) - 1) * stride + n_rows - 0.5, -0.5],
            "showgrid": False,
            "zeroline": False,
            "fixedrange": True,
            "ticks": "",
        },
    )
    return fig.build()


def category_text_color_any(color: str) -> str:
    """Readable text colour on a '#rrggbb' background."""
    for cat, c in CATEGORY_COLORS.items():
        if c == color:
            return category_text_color(cat)
    rgb = np.array([[int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)] + [1.0]])
    return text_colors(rgb)[0]


def _signal_row(frame: pd.DataFrame, signal: str, analysis: Any) -> Row:
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; choose from {tuple(SIGNALS)}")
    label, unit, values, vmin, vmax = signal_scale(frame, signal, analysis)
    short = label.split(" ")[0] if signal != "score" else "score"
    short = {"visual": "visual sens."}.get(short, short)
    return Row(
        label=short,
        values=values,
        colorbar=f"{label} ({unit})",
        vmin=vmin,
        vmax=vmax,
    )


def selection_row(frame: pd.DataFrame, label: str = "selection") -> Row:
    """The categorical row: both / VEPO only / entropy only / neither."""
    return Row(
        label=label,
        categories=frame["category"].to_numpy(),
        colors={c: CATEGORY_COLORS[c] for c in CATEGORIES},
        names=dict(CATEGORY_LABELS),
    )


def token_heatmap(
    analysis: Any,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    *,
    selection: bool = True,
    chars_per_line: int = 72,
    cmap: str = DEFAULT_COLORMAP,
    title: str | None = None,
    frame: pd.DataFrame | None = None,
) -> go.Figure:
    """The response as coloured tokens: one row per signal, then the two selections.
    `frame` (data.token_frame(analysis)) may be passed to save recomputing it."""
    frame = token_frame(analysis) if frame is None else frame
    rows = [_signal_row(frame, s, analysis) for s in signals]
    if selection:
        rows.append(selection_row(frame))
    if title is None:
        sc = scoring_of(analysis)
        title = (
            f"top {sc['ratio']:.0%} per {sc['scope']}, score {sc['score_type']}, "
            f"alpha {sc['alpha']:.2f}"
        )
    return token_rows_figure(frame, rows, chars_per_line=chars_per_line, cmap=cmap, title=title)


def entropy_scatter(analysis: Any, frame: pd.DataFrame | None = None) -> go.Figure:
    """Entropy against visual sensitivity, one point per token, coloured by selection."""
    frame = token_frame(analysis) if frame is None else frame
    customdata, hovertemplate = _hover(frame)
    fig = _Builder()
    symbols = {
        "both": "star",
        "vepo_only": "diamond",
        "entropy_only": "square",
        "neither": "circle",
    }
    for cat in CATEGORIES:
        idx = np.flatnonzero(frame["category"].to_numpy() == cat)
        fig.add_trace(
            dict(
                type="scatter",
                x=frame["entropy"].to_numpy()[idx],
                y=frame["visual_sensitivity"].to_numpy()[idx],
                mode="markers",
                marker={
                    "color": CATEGORY_COLORS[cat],
                    "size": 11 if cat != "neither" else 8,
                    "symbol": symbols[cat],
                    "line": {"width": 1, "color": "#555555"},
                },
                name=CATEGORY_LABELS[cat],
                customdata=customdata[idx] if len(idx) else None,
                hovertemplate=hovertemplate,
            )
        )
    if len(frame):
        median = float(np.median(frame["entropy"]))
        fig.update_layout(
            shapes=[
                {
                    "type": "line",
                    "x0": median,
                    "x1": median,
                    "xref": "x",
                    "y0": 0,
                    "y1": 1,
                    "yref": "paper",
                    "line": {"dash": "dash", "color": "#777777", "width": 1},
                }
            ],
            annotations=[
                {
                    "x": median,
                    "xref": "x",
                    "y": 1,
                    "yref": "paper",
                    "text": "median H",
                    "showarrow": False,
                    "yanchor": "bottom",
                }
            ],
        )
    fig.update_layout(
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        plot_bgcolor="white",
        xaxis={"title": {"text": "entropy H (nats)"}, "gridcolor": "#eeeeee", "zeroline": False},
        yaxis={"title": {"text": "visual sensitivity v"}, "gridcolor": "#eeeeee"},
        # below the axis title: four entries wrap in a narrow column without hiding any
        legend={"orientation": "h", "y": -0.2, "yanchor": "top", "x": 0},
    )
    return fig.build()


def token_detail(analysis: Any, index: int, frame: pd.DataFrame | None = None) -> go.Figure:
    """Top candidates of token `index` under the clean and the perturbed image."""
    frame = token_frame(analysis) if frame is None else frame
    if not 0 <= index < len(frame):
        raise ValueError(f"token index {index} out of range 0..{len(frame) - 1}")
    row = frame.iloc[index]
    title = (
        f"#{index} {row['token']!r}: H={row['entropy']:.3f}, H'={row['entropy_noisy']:.3f}, "
        f"JSD={row['jsd']:.3f}, v={row['visual_sensitivity']:.3f}, s={row['score']:.3f}"
    )
    fig = _Builder()
    table = candidates_table(analysis, index)
    if table is None or not table[0]:
        fig.update_layout(
            annotations=[
                {
                    "text": "this analysis stores no candidate tokens",
                    "showarrow": False,
                    "x": 0.5,
                    "y": 0.5,
                    "xref": "paper",
                    "yref": "paper",
                }
            ]
        )
    else:
        cands = table[0]
        labels = [f"{i + 1}. {tok!r}" for i, (tok, _, _) in enumerate(cands)]
        for name, j, color in (
            ("clean image p", 1, "#0072B2"),
            ("perturbed image q", 2, "#D55E00"),
        ):
            values = [c[j] for c in cands]
            fig.add_trace(
                dict(
                    type="bar",
                    orientation="h",
                    y=labels,
                    x=values,
                    name=name,
                    marker={"color": color},
                    text=[f"{v:.3f}" for v in values],
                    textposition="outside",
                    hovertemplate="%{y}: %{x:.4f}<extra>" + name + "</extra>",
                )
            )
    fig.update_layout(
        barmode="group",
        height=300,
        title={"text": title, "x": 0.01, "font": {"size": 13}},
        margin={"l": 10, "r": 30, "t": 50, "b": 10},
        plot_bgcolor="white",
        xaxis={"title": {"text": "probability"}, "range": [0, 1.12], "gridcolor": "#eeeeee"},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig.build()


def compare_figure(a: Any, b: Any, label_a: str = "A", label_b: str = "B") -> go.Figure:
    """Two analyses of the same response: both scores and the VEPO selection difference.

    When the two responses are tokenised differently, each side's selection row is shown
    on its own (a figure per side is then the clearer view: see `token_heatmap`).
    """
    diff = selection_difference(a, b)
    if diff is None:
        raise ValueError(
            "the two analyses have different tokens; compare them side by side instead"
        )
    fa, fb = token_frame(a), token_frame(b)
    rows = [
        Row(label=f"{label_a} score", values=fa["score"].to_numpy(), colorbar=f"{label_a} score"),
        Row(label=f"{label_b} score", values=fb["score"].to_numpy(), colorbar=f"{label_b} score"),
        Row(
            label="difference",
            categories=diff,
            colors=dict(DIFF_COLORS),
            names={
                "both": "selected by both",
                "a_only": f"{label_a} only",
                "b_only": f"{label_b} only",
                "neither": "neither",
            },
        ),
    ]
    for row in rows[:2]:
        finite = row.values[np.isfinite(row.values)]
        row.vmax = max(1.0, float(finite.max()) if finite.size else 1.0)
    return token_rows_figure(fa, rows, title=f"VEPO selections: {label_a} vs {label_b}")


BATCH_TOKEN_COLUMNS = ("entropy", "visual_sensitivity", "selected_vepo", "selected_entropy")
"""Columns a per-token batch frame needs for `batch_figures` (plus optional example/family)."""


def batch_figures(
    tokens: pd.DataFrame, max_points: int = 4000, seed: int = 0
) -> dict[str, go.Figure]:
    """Aggregate plots of a scored dataset (one row per token).

    - "scatter": entropy vs visual sensitivity of all tokens (a seeded sample of at most
      max_points), coloured by selection category;
    - "low_entropy": per family, the share of each selection's tokens whose entropy is
      below their response's median: the low-entropy tokens entropy-only misses.
    """
    missing = [c for c in BATCH_TOKEN_COLUMNS if c not in tokens]
    if missing:
        raise ValueError(f"batch token table lacks columns {missing}")
    frame = tokens.copy()
    if "family" not in frame:
        frame["family"] = "all"
    example = "example" if "example" in frame else None
    frame["category"] = _categories_of(frame)
    if example:
        median = frame.groupby(example)["entropy"].transform("median")
    else:
        median = pd.Series(np.median(frame["entropy"]), index=frame.index)
    frame["low_entropy"] = frame["entropy"] < median

    sample = frame
    if len(frame) > max_points:
        sample = frame.sample(n=max_points, random_state=seed)
    scatter = _Builder()
    for cat in CATEGORIES:
        part = sample[sample["category"] == cat]
        scatter.add_trace(
            dict(
                type="scatter",
                x=part["entropy"],
                y=part["visual_sensitivity"],
                mode="markers",
                name=CATEGORY_LABELS[cat],
                marker={
                    # light grey "neither" would vanish on white without a border
                    "color": "#c4c4c4" if cat == "neither" else CATEGORY_COLORS[cat],
                    "size": 6,
                    "opacity": 0.7,
                },
                hovertemplate="H=%{x:.3f}, v=%{y:.3f}<extra>" + CATEGORY_LABELS[cat] + "</extra>",
            )
        )
    scatter.update_layout(
        title={"text": f"all tokens ({len(frame)}; {len(sample)} shown)", "x": 0.01},
        height=400,
        plot_bgcolor="white",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"title": {"text": "entropy H (nats)"}, "gridcolor": "#eeeeee"},
        yaxis={"title": {"text": "visual sensitivity v"}, "gridcolor": "#eeeeee"},
        legend={"orientation": "h", "y": -0.2},
    )

    shares = low_entropy_shares(frame)
    bars = _Builder()
    for col, name, color in (
        ("vepo", "VEPO picks", CATEGORY_COLORS["vepo_only"]),
        ("entropy", "entropy picks", CATEGORY_COLORS["entropy_only"]),
        ("all", "all tokens", "#999999"),
    ):
        bars.add_trace(
            dict(
                type="bar",
                x=shares["family"],
                y=shares[col],
                name=name,
                marker={"color": color},
                text=[f"{v:.0%}" for v in shares[col]],
                textposition="outside",
            )
        )
    bars.update_layout(
        barmode="group",
        title={"text": "share of tokens with below-median entropy", "x": 0.01},
        height=400,
        plot_bgcolor="white",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        yaxis={"range": [0, 1.1], "tickformat": ".0%", "gridcolor": "#eeeeee"},
        legend={"orientation": "h", "y": -0.2},
    )
    return {"scatter": scatter.build(), "low_entropy": bars.build()}


def _categories_of(frame: pd.DataFrame) -> np.ndarray:
    v = frame["selected_vepo"].to_numpy(dtype=bool)
    e = frame["selected_entropy"].to_numpy(dtype=bool)
    return np.select([v & e, v & ~e, ~v & e], ["both", "vepo_only", "entropy_only"], "neither")


def low_entropy_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Per family (and "all"): share of below-median-entropy tokens among VEPO picks,
    entropy picks and all tokens. `frame` needs a boolean low_entropy column."""

    def shares(part: pd.DataFrame) -> dict[str, float]:
        low = part["low_entropy"].to_numpy(dtype=bool)
        v = part["selected_vepo"].to_numpy(dtype=bool)
        e = part["selected_entropy"].to_numpy(dtype=bool)
        return {
            "vepo": float(low[v].mean()) if v.any() else math.nan,
            "entropy": float(low[e].mean()) if e.any() else math.nan,
            "all": float(low.mean()) if len(low) else math.nan,
            "n_tokens": len(part),
        }

    rows = [{"family": fam, **shares(part)} for fam, part in frame.groupby("family", sort=True)]
    if len(rows) != 1 or rows[0]["family"] != "all":
        rows.append({"family": "all", **shares(frame)})
    return pd.DataFrame(rows)
