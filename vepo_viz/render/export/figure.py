"""Heatmap figures (PDF, SVG, PNG) of one analysis, drawn with matplotlib's object API.

No pyplot, so exports are thread-safe in the app. The response is typeset as text: each
token is a box as wide as its glyphs, wrapped to the chosen width in inches, one panel
per signal. PDF embeds TrueType fonts (fonttype 42, what most venues require) and SVG
keeps text as text, so both stay editable and searchable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vepo_viz.render.colors import DEFAULT_COLORMAP, check_colormap
from vepo_viz.render.data import DEFAULT_SIGNALS, SELECTION_ROW, SIGNALS, display_token, token_frame
from vepo_viz.render.export.panels import make_panel
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE, check_color_scale

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

FIGURE_FORMATS: tuple[str, ...] = ("pdf", "svg", "png")

FONT_LOGGER = "fontTools"
"""matplotlib's PDF backend subsets fonts with fontTools, which logs dozens of INFO lines
per export: `save_heatmap` raises this logger to WARNING."""

FONT_CANDIDATES: tuple[str, ...] = (
    "DejaVu Sans",
    "DejaVu Serif",
    "DejaVu Sans Mono",
    "Liberation Sans",
    "Liberation Serif",
    "Liberation Mono",
    "Latin Modern Roman",
    "Times New Roman",
    "Arial",
    "Helvetica",
    "serif",
    "sans-serif",
    "monospace",
)


def available_fonts() -> list[str]:
    """Font families of FONT_CANDIDATES that matplotlib finds on this machine."""
    return [f for f in FONT_CANDIDATES if _font_exists(f)]


def _font_exists(family: str) -> bool:
    from matplotlib import font_manager

    if family in ("serif", "sans-serif", "monospace", "cursive", "fantasy"):
        return True
    try:
        font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class FigureOptions:
    """How a paper heatmap looks; the defaults fit one column of a two-column paper."""

    signals: tuple[str, ...] = DEFAULT_SIGNALS + (SELECTION_ROW,)
    """Panels, top to bottom: any of SIGNALS' keys and "selection"."""
    width_in: float = 6.5
    """Figure width in inches; the response wraps to it."""
    font_family: str = "DejaVu Sans"
    """A font family matplotlib can find (see `available_fonts`)."""
    font_size: float = 9.0
    """Token font size in points."""
    dpi: int = 300
    """Resolution of PNG output (vector formats ignore it)."""
    cmap: str = DEFAULT_COLORMAP
    """Colour-blind-safe colour map of the continuous panels (colors.COLORMAPS)."""
    color_scale: str = DEFAULT_COLOR_SCALE
    """How values become colours (render.scales.COLOR_SCALES): per response (default, so
    the score row uses the whole map), absolute or rank."""
    colorbar: bool = True
    """Draw a colour bar beside each continuous panel's title."""
    legend: bool = True
    """Draw the category legend of the selection panel."""
    titles: bool = True
    """Write a title above each panel."""
    title: str | None = None
    """Optional figure title."""

    def __post_init__(self) -> None:
        if not self.signals:
            raise ValueError("choose at least one panel (signal) to draw")
        for s in self.signals:
            if s not in SIGNALS and s != SELECTION_ROW:
                raise ValueError(
                    f"unknown panel {s!r}; choose from {tuple(SIGNALS) + (SELECTION_ROW,)}"
                )
        if not (math.isfinite(self.width_in) and 1.0 <= self.width_in <= 40.0):
            raise ValueError(f"width must be between 1 and 40 inches, got {self.width_in}")
        if not (math.isfinite(self.font_size) and 3.0 <= self.font_size <= 72.0):
            raise ValueError(f"font size must be between 3 and 72 pt, got {self.font_size}")
        if isinstance(self.dpi, bool) or not isinstance(self.dpi, int):
            raise ValueError(f"dpi must be an integer, got {self.dpi!r}")
        if not 30 <= self.dpi <= 1200:
            raise ValueError(f"dpi must be between 30 and 1200, got {self.dpi}")
        check_colormap(self.cmap)
        check_color_scale(self.color_scale)
        if not _font_exists(self.font_family):
            raise ValueError(
                f"font {self.font_family!r} is not installed; choose one of {available_fonts()}"
            )


def _layout(
    tokens: Sequence[str], width_pt: float, prop
) -> tuple[list[tuple[int, float, float, int]], int]:
    """Wrap tokens to width_pt: (index, x, box width, line) per token, and the line count.

    A token with a leading space starts after a word gap; a newline in a token ends the line.
    """
    from matplotlib.textpath import TextToPath

    ttp = TextToPath()
    size = prop.get_size_in_points()
    pad = 0.18 * size
    space = (
        ttp.get_text_width_height_descent("a a", prop, ismath=False)[0]
        - (ttp.get_text_width_height_descent("aa", prop, ismath=False)[0])
    )
    placed: list[tuple[int, float, float, int]] = []
    x, line = 0.0, 0
    for i, token in enumerate(tokens):
        shown = display_token(token.lstrip(" ") if token.strip() else token)
        text_w = ttp.get_text_width_height_descent(shown, prop, ismath=False)[0]
        box_w = text_w + 2 * pad
        gap = space if token.startswith(" ") else 0.6
        if x > 0 and x + gap + box_w > width_pt:
            x, line = 0.0, line + 1
        elif x > 0:
            x += gap
        placed.append((i, x, box_w, line))
        x += box_w
        if "\n" in token:
            x, line = 0.0, line + 1
    n_lines = (max(p[3] for p in placed) + 1) if placed else 1
    if tokens and "\n" in tokens[-1]:
        n_lines = max(n_lines, placed[-1][3] + 1)
    return placed, n_lines


def heatmap_figure(analysis: TokenAnalysis, options: FigureOptions | None = None):
    """A matplotlib Figure: one panel per signal, the response wrapped to options.width_in."""
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    options = options or FigureOptions()
    frame = token_frame(analysis)
    prop = FontProperties(family=options.font_family, size=options.font_size)
    size = options.font_size
    margin = 0.06 * 72  # points
    width_pt = options.width_in * 72
    text_width = width_pt - 2 * margin
    placed, n_lines = _layout(list(frame["token"]), text_width, prop)
    line_h = 1.55 * size
    title_h = 1.9 * size if options.titles else 0.4 * size
    panel_gap = 0.7 * size
    fig_title_h = 2.0 * size if options.title else 0.0
    panels = [
        make_panel(analysis, frame, key, options.cmap, options.color_scale)
        for key in options.signals
    ]
    panel_h = title_h + n_lines * line_h
    height_pt = 2 * margin + fig_title_h + len(panels) * panel_h + (len(panels) - 1) * panel_gap

    fig = Figure(figsize=(options.width_in, height_pt / 72), dpi=options.dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_pt)
    ax.set_ylim(height_pt, 0)
    ax.set_axis_off()
    small = FontProperties(family=options.font_family, size=0.85 * size)
    box = _Box(fig, ax, options, margin, width_pt, height_pt)

    y = margin
    if options.title:
        ax.text(margin, y + 1.4 * size, options.title, fontproperties=prop, weight="bold")
        y += fig_title_h
    for panel in panels:
        if options.titles:
            ax.text(margin, y + 1.3 * size, panel.title, fontproperties=small, parse_math=False)
        if options.colorbar and panel.continuous:
            _draw_colorbar(box, panel, y)
        if options.legend and not panel.continuous:
            _draw_legend(box, panel, y)
        _draw_tokens(box, frame, panel, placed, y + title_h, line_h, prop)
        y += panel_h + panel_gap
    return fig


@dataclass(frozen=True)
class _Box:
    """A figure being drawn and its frame: axes in points, y downwards."""

    fig: Any
    ax: Any
    options: FigureOptions
    margin: float
    width_pt: float
    height_pt: float


def _draw_colorbar(box: _Box, panel, y: float) -> None:
    """A small horizontal colour bar with its two end values, right of the panel title."""
    from matplotlib import colormaps
    from matplotlib.colorbar import ColorbarBase
    from matplotlib.colors import Normalize
    from matplotlib.font_manager import FontProperties

    options, width_pt, height_pt = box.options, box.width_pt, box.height_pt
    size = options.font_size
    bar_w, bar_h = min(1.6 * 72, 0.3 * width_pt), 0.55 * size
    x0 = width_pt - box.margin - bar_w - 2.2 * size
    y0 = y + 0.35 * size
    cax = box.fig.add_axes(
        (x0 / width_pt, 1 - (y0 + bar_h) / height_pt, bar_w / width_pt, bar_h / height_pt)
    )
    cb = ColorbarBase(
        cax,
        cmap=colormaps[options.cmap],
        norm=Normalize(panel.vmin, panel.vmax),
        orientation="horizontal",
    )
    cb.outline.set_linewidth(0.4)
    cax.set_xticks([])
    tick_font = FontProperties(family=options.font_family, size=0.7 * size)
    low, high = panel.end_labels()
    for pos, text, align in ((-0.03, low, "right"), (1.03, high, "left")):
        cax.text(
            pos,
            0.5,
            text,
            transform=cax.transAxes,
            ha=align,
            va="center",
            fontproperties=tick_font,
        )


def _draw_legend(box: _Box, panel, y: float) -> None:
    """The category legend of the selection panel, right of its title."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import Patch

    options, size = box.options, box.options.font_size
    handles = [Patch(facecolor=c, edgecolor="#999999", linewidth=0.4) for c, _ in panel.legend]
    labels = [name for _, name in panel.legend]
    box.ax.legend(
        handles,
        labels,
        loc="upper right",
        bbox_to_anchor=(1 - box.margin / box.width_pt, 1 - (y - 0.15 * size) / box.height_pt),
        ncol=len(handles),
        prop=FontProperties(family=options.font_family, size=0.72 * size),
        frameon=False,
        handlelength=1.0,
        handletextpad=0.3,
        columnspacing=0.8,
        borderaxespad=0,
        borderpad=0,
    )


def _draw_tokens(box: _Box, frame, panel, placed, top: float, line_h: float, prop) -> None:
    """Each token as a coloured box with its text, at the places `_layout` found."""
    from matplotlib.patches import Rectangle

    size, margin, ax = box.options.font_size, box.margin, box.ax
    text_kw = {"fontproperties": prop, "parse_math": False}
    for i, x, box_w, line in placed:
        token = frame["token"].iloc[i]
        shown = display_token(token.lstrip(" ") if token.strip() else token)
        y_box = top + line * line_h
        ax.add_patch(
            Rectangle(
                (margin + x, y_box + 0.1 * size),
                box_w,
                line_h - 0.2 * size,
                facecolor=panel.face[i],
                edgecolor="#bbbbbb" if panel.face[i].lower() == "#eeeeee" else "none",
                linewidth=0.3,
            )
        )
        ax.text(
            margin + x + box_w / 2,
            y_box + line_h / 2,
            shown,
            ha="center",
            va="center_baseline",
            color=panel.ink[i],
            **text_kw,
        )


def save_heatmap(
    analysis: TokenAnalysis, path: str | Path, options: FigureOptions | None = None
) -> Path:
    """Write the heatmap as PDF, SVG or PNG (chosen by the suffix of `path`)."""
    from matplotlib import rc_context

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {FIGURE_FORMATS}, got {path.name!r}")
    options = options or FigureOptions()
    logging.getLogger(FONT_LOGGER).setLevel(logging.WARNING)
    with rc_context(
        {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "font.family": "sans-serif"}
    ):
        fig = heatmap_figure(analysis, options)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"Creator": "vepo-viz"} if fmt in ("pdf", "svg") else None
        fig.savefig(path, format=fmt, dpi=options.dpi, metadata=metadata)
    return path
