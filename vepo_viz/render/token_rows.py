"""The token-row figure: the response drawn as text in plotly, one row per signal.

Each token is a box as wide as its text, coloured by a signal, wrapped over lines like a
paragraph; every wrapped line shows one row per entry of `rows` (continuous signals on a
colour scale, categorical rows such as the selections), so a token's cells line up
vertically. Hovering any cell shows all numbers of that token. `FigureBuilder` is the
fast plain-dict figure builder every plotly view of render/ uses.
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
    CATEGORY_COLORS,
    DEFAULT_COLORMAP,
    category_text_color,
    plotly_colorscale,
    rgba,
    text_colors,
)
from vepo_viz.render.hover import raw_signals
from vepo_viz.render.labels import D3_FORMAT

ROW_HEIGHT_PX = 30
"""Height of one heatmap row; a wrapped line is n_rows rows plus a gap."""
LINE_GAP = 0.7
"""Vertical gap between wrapped lines, in rows."""
TOKEN_GAP = 0.3
"""Horizontal gap between token boxes, in characters."""
TOKEN_PAD = 0.9
"""Box width beyond the token's characters (plotly pads text inside a bar by a few px)."""
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
COLORBAR_FONT_PX = 11
"""Font size of a colour bar's title (three fit side by side at 800 px)."""


class FigureBuilder:
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
    rank: bool = False
    """`values` are ranks in [0, 1]: the colour bar says lowest / highest."""


def hover_data(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
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
    g = D3_FORMAT
    template = (
        "<b>#%{customdata[0]}</b> %{customdata[1]}<br>"
        f"entropy H = %{{customdata[2]:{g}}} nats<br>"
        f"noisy entropy H' = %{{customdata[3]:{g}}}<br>"
        f"entropy gap H'-H = %{{customdata[4]:+{g}}}<br>"
        f"JSD = %{{customdata[5]:{g}}} (max ln2 = 0.693)<br>"
        f"KL(p||q) = %{{customdata[6]:{g}}}<br>"
        f"visual sensitivity v = %{{customdata[7]:{g}}} <i>(%{{hovertext}})</i><br>"
        f"score s = %{{customdata[8]:{g}}}<br>"
        "selected: VEPO %{customdata[9]}, entropy %{customdata[10]}<br>"
        "top candidate: %{customdata[11]}<extra></extra>"
    )
    return data, template


@dataclass(frozen=True)
class _Cells:
    """Where each token's boxes go and what they show (shared by every row's traces)."""

    displays: list[str]
    x0: np.ndarray
    """(T,) left edge of each token's box, in characters."""
    width: np.ndarray
    """(T,) box widths."""
    line_of: np.ndarray
    """(T,) wrapped line of each token."""
    customdata: np.ndarray
    hovertemplate: str
    hovertext: list[str] = field(default_factory=list)
    """(T,) the raw signals beside the normalised ones (render.hover.raw_signals)."""


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
    customdata, hovertemplate = hover_data(frame)

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
    cells = _Cells(displays, x0, width, line_of, customdata, hovertemplate, raw_signals(frame))

    continuous = [r for r in rows if r.values is not None]
    bottom = 100 if continuous else 10
    plot_px = ROW_HEIGHT_PX * stride * len(lines)
    height = int(50 + bottom + plot_px + (40 if title else 0))
    fig = FigureBuilder()
    n_bars = max(len(continuous), 1)
    n_axes = 0
    legend_seen: set[str] = set()
    for ri, row in enumerate(rows):
        y = line_of * stride + ri
        if row.values is not None:
            n_axes += 1
            _continuous_row(fig, row, y, cells, cmap, n_axes, (n_bars, plot_px))
        else:
            _categorical_row(fig, row, y, cells, legend_seen)

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


def _continuous_row(
    fig: FigureBuilder,
    row: Row,
    y: np.ndarray,
    cells: _Cells,
    cmap: str,
    n_axes: int,
    bars: tuple[int, float],
) -> None:
    """One bar per token coloured on the row's scale, and the row's colour bar (the
    n_axes-th of n_bars, side by side below a plot of plot_px pixels)."""
    n_bars, plot_px = bars
    axis = "coloraxis" if n_axes == 1 else f"coloraxis{n_axes}"
    values = np.asarray(row.values, dtype=np.float64)
    colors = rgba(values, row.vmin, row.vmax, cmap)
    fig.add_trace(
        dict(
            type="bar",
            orientation="h",
            y=y,
            base=cells.x0,
            x=cells.width,
            width=0.86,
            marker={"color": values, "coloraxis": axis, "line": {"width": 0}},
            text=cells.displays,
            textposition="inside",
            insidetextanchor="middle",
            textangle=0,
            textfont={"color": text_colors(colors), "family": FONT, "size": 13},
            customdata=cells.customdata,
            hovertemplate=cells.hovertemplate,
            hovertext=cells.hovertext,
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
                    "title": {
                        "text": row.colorbar or row.label,
                        "side": "top",
                        "font": {"size": COLORBAR_FONT_PX},
                    },
                    "orientation": "h",
                    "len": 0.9 / n_bars,
                    "lenmode": "fraction",
                    "x": (n_axes - 0.5) / n_bars,
                    "xanchor": "center",
                    "y": -24 / plot_px,
                    "yanchor": "top",
                    "ypad": 6,
                    "thickness": 10,
                    **colorbar_text(row),
                },
            }
        }
    )


def colorbar_text(row: Row) -> dict:
    """Tick settings of a row's colour bar: lowest/highest for ranks, 3 significant
    digits for values (tiny scores would otherwise read 0 at every tick)."""
    if row.rank:
        return {"tickvals": [0, 1], "ticktext": ["lowest", "highest"]}
    return {"tickformat": D3_FORMAT, "nticks": 4}


def _categorical_row(
    fig: FigureBuilder, row: Row, y: np.ndarray, cells: _Cells, legend_seen: set[str]
) -> None:
    """One trace per category of the row (a legend entry each, the first time seen)."""
    cats = np.asarray(row.categories, dtype=object)
    for cat, color in row.colors.items():
        idx = np.flatnonzero(cats == cat)
        name = row.names.get(cat, cat)
        fig.add_trace(
            dict(
                type="bar",
                orientation="h",
                y=y[idx],
                base=cells.x0[idx],
                x=cells.width[idx],
                width=0.86,
                marker={
                    "color": color,
                    "line": {"width": 1 if cat == "neither" else 0, "color": "#bbbbbb"},
                },
                text=[cells.displays[i] for i in idx],
                textposition="inside",
                insidetextanchor="middle",
                textangle=0,
                textfont={
                    "color": category_text_color_any(color),
                    "family": FONT,
                    "size": 13,
                },
                customdata=cells.customdata[idx] if len(idx) else None,
                hovertemplate=f"<b>{name}</b><br>{cells.hovertemplate}",
                hovertext=[cells.hovertext[i] for i in idx],
                name=name,
                legendgroup=f"{row.label}:{cat}",
                showlegend=name not in legend_seen,
            )
        )
        legend_seen.add(name)


def category_text_color_any(color: str) -> str:
    """Readable text colour on a '#rrggbb' background."""
    for cat, c in CATEGORY_COLORS.items():
        if c == color:
            return category_text_color(cat)
    rgb = np.array([[int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)] + [1.0]])
    return text_colors(rgb)[0]
