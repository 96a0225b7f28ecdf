"""Interactive plotly figures of one analysis (or two), for the app: the token heatmap,
the entropy / visual-sensitivity scatter, one token's candidates, and a comparison.

The heatmap is a token-row figure (render/token_rows.py) with one row per signal and a
row for the two selections; batch plots live in render/batch_figures.py (re-exported).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from vepo_viz.render.batch_figures import BATCH_TOKEN_COLUMNS, batch_figures, low_entropy_shares
from vepo_viz.render.colors import (
    CATEGORIES,
    CATEGORY_COLORS,
    CATEGORY_LABELS,
    DEFAULT_COLORMAP,
)
from vepo_viz.render.data import (
    DEFAULT_SIGNALS,
    SIGNALS,
    candidates_table,
    selection_difference,
    signal_scale,
    token_frame,
)
from vepo_viz.render.hover import raw_signals
from vepo_viz.render.labels import fmt
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE, scale_note, scaled
from vepo_viz.render.token_rows import (
    FONT,
    LINE_GAP,
    ROW_HEIGHT_PX,
    TOKEN_GAP,
    TOKEN_PAD,
    FigureBuilder,
    Row,
    category_text_color_any,
    hover_data,
    token_rows_figure,
    wrap_lines,
)

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

__all__ = [
    "BATCH_TOKEN_COLUMNS",
    "DIFF_COLORS",
    "FONT",
    "LINE_GAP",
    "ROW_HEIGHT_PX",
    "TOKEN_GAP",
    "TOKEN_PAD",
    "Row",
    "batch_figures",
    "category_text_color_any",
    "compare_figure",
    "entropy_scatter",
    "low_entropy_shares",
    "selection_row",
    "token_detail",
    "token_heatmap",
    "token_rows_figure",
    "wrap_lines",
]

DIFF_COLORS = {
    "both": "#009E73",
    "a_only": "#E69F00",
    "b_only": "#56B4E9",
    "neither": "#EEEEEE",
}


def _signal_row(
    frame: pd.DataFrame,
    signal: str,
    analysis: TokenAnalysis,
    color_scale: str = DEFAULT_COLOR_SCALE,
) -> Row:
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; choose from {tuple(SIGNALS)}")
    label, unit, values, vmin, vmax = signal_scale(frame, signal, analysis, color_scale)
    short = label.split(" ")[0] if signal != "score" else "score"
    short = {"visual": "visual sens."}.get(short, short)
    note = scale_note(color_scale)
    return Row(
        label=short,
        values=values,
        colorbar=f"{label} ({unit}{', ' + note if note else ''})",
        vmin=vmin,
        vmax=vmax,
        rank=color_scale == "rank",
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
    analysis: TokenAnalysis,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    *,
    selection: bool = True,
    chars_per_line: int = 72,
    cmap: str = DEFAULT_COLORMAP,
    title: str | None = None,
    frame: pd.DataFrame | None = None,
    color_scale: str = DEFAULT_COLOR_SCALE,
) -> go.Figure:
    """The response as coloured tokens: one row per signal, then the two selections.
    `frame` (data.token_frame(analysis)) may be passed to save recomputing it;
    `color_scale` is one of render.scales.COLOR_SCALES (the hover numbers never change)."""
    frame = token_frame(analysis) if frame is None else frame
    rows = [_signal_row(frame, s, analysis, color_scale) for s in signals]
    if selection:
        rows.append(selection_row(frame))
    if title is None:
        sc = analysis.settings.scoring
        title = f"top {sc.ratio:.0%} per {sc.scope}, score {sc.score_type}, alpha {sc.alpha:.2f}"
    return token_rows_figure(frame, rows, chars_per_line=chars_per_line, cmap=cmap, title=title)


def entropy_scatter(analysis: TokenAnalysis, frame: pd.DataFrame | None = None) -> go.Figure:
    """Entropy against visual sensitivity, one point per token, coloured by selection."""
    frame = token_frame(analysis) if frame is None else frame
    customdata, hovertemplate = hover_data(frame)
    raw = raw_signals(frame)
    fig = FigureBuilder()
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
                hovertext=[raw[i] for i in idx],
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


def token_detail(
    analysis: TokenAnalysis, index: int, frame: pd.DataFrame | None = None
) -> go.Figure:
    """Top candidates of token `index` under the clean and the perturbed image."""
    frame = token_frame(analysis) if frame is None else frame
    if not 0 <= index < len(frame):
        raise ValueError(f"token index {index} out of range 0..{len(frame) - 1}")
    row = frame.iloc[index]
    title = (
        f"#{index} {row['token']!r}: H={fmt(row['entropy'])}, H'={fmt(row['entropy_noisy'])}, "
        f"JSD={fmt(row['jsd'])}, |dH|={fmt(row['abs_entropy_gap'])}, "
        f"v={fmt(row['visual_sensitivity'])}, s={fmt(row['score'])}"
    )
    fig = FigureBuilder()
    table = candidates_table(analysis, index)
    if not table[0]:
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


def compare_figure(
    a: TokenAnalysis,
    b: TokenAnalysis,
    label_a: str = "A",
    label_b: str = "B",
    color_scale: str = DEFAULT_COLOR_SCALE,
) -> go.Figure:
    """Two analyses of the same response: both scores and the VEPO selection difference.

    The two score rows share one colour scale (render.scales) so that colours compare.

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
    both, vmin, vmax = scaled(
        np.concatenate([r.values for r in rows[:2]]), "score", "0-1", color_scale
    )
    for k, row in enumerate(rows[:2]):
        row.values = both[k * len(fa) : (k + 1) * len(fa)]
        row.vmin, row.vmax, row.rank = vmin, vmax, color_scale == "rank"
    return token_rows_figure(fa, rows, title=f"VEPO selections: {label_a} vs {label_b}")
