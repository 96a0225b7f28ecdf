"""Paper exports of one analysis: heatmap figures (PDF, SVG, PNG), a LaTeX snippet, a
standalone HTML page, CSV and JSON.

Figures are drawn with matplotlib's object API (no pyplot, so exports are thread-safe in
the app). The response is typeset as text: each token is a box as wide as its glyphs,
wrapped to the chosen width in inches, one panel per signal. PDF embeds TrueType fonts
(fonttype 42, what most venues require) and SVG keeps text as text, so both stay
editable and searchable.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vepo_viz.render.colors import (
    CATEGORIES,
    CATEGORY_COLORS,
    CATEGORY_LABELS,
    DEFAULT_COLORMAP,
    check_colormap,
    hex_colors,
    rgba,
    text_colors,
)
from vepo_viz.render.data import (
    DEFAULT_SIGNALS,
    SELECTION_ROW,
    SIGNALS,
    display_token,
    scoring_of,
    signal_scale,
    summary,
    table,
    token_frame,
)

FIGURE_FORMATS: tuple[str, ...] = ("pdf", "svg", "png")
EXPORT_FORMATS: tuple[str, ...] = FIGURE_FORMATS + ("tex", "html", "csv", "json")

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
        if not _font_exists(self.font_family):
            raise ValueError(
                f"font {self.font_family!r} is not installed; choose one of {available_fonts()}"
            )


@dataclass
class _Panel:
    key: str
    title: str
    face: list[str]
    ink: list[str]
    vmin: float = 0.0
    vmax: float = 1.0
    continuous: bool = True
    legend: list[tuple[str, str]] = field(default_factory=list)


def _panel(analysis: Any, frame, key: str, cmap: str) -> _Panel:
    if key == SELECTION_ROW:
        face = [CATEGORY_COLORS[c] for c in frame["category"]]
        ink = text_colors(_hex_to_rgba(face))
        sc = scoring_of(analysis)
        return _Panel(
            key=key,
            title=f"Selected tokens (top {sc['ratio']:.0%}): VEPO vs entropy-only",
            face=face,
            ink=ink,
            continuous=False,
            legend=[(CATEGORY_COLORS[c], CATEGORY_LABELS[c]) for c in CATEGORIES],
        )
    label, unit, values, vmin, vmax = signal_scale(frame, key, analysis)
    colors = rgba(values, vmin, vmax, cmap)
    unit_text = "" if unit == "0-1" else f" ({unit})"
    return _Panel(
        key=key,
        title=f"{label[0].upper()}{label[1:]}{unit_text}",
        face=hex_colors(colors),
        ink=text_colors(colors),
        vmin=vmin,
        vmax=vmax,
    )


def _hex_to_rgba(colors: Sequence[str]) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] + [1.0] for c in colors])


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


def heatmap_figure(analysis: Any, options: FigureOptions | None = None):
    """A matplotlib Figure: one panel per signal, the response wrapped to options.width_in."""
    from matplotlib import colormaps
    from matplotlib.colorbar import ColorbarBase
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import Patch, Rectangle

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
    panels = [_panel(analysis, frame, key, options.cmap) for key in options.signals]
    panel_h = title_h + n_lines * line_h
    height_pt = 2 * margin + fig_title_h + len(panels) * panel_h + (len(panels) - 1) * panel_gap

    fig = Figure(figsize=(options.width_in, height_pt / 72), dpi=options.dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_pt)
    ax.set_ylim(height_pt, 0)
    ax.set_axis_off()
    text_kw = {"fontproperties": prop, "parse_math": False}
    small = FontProperties(family=options.font_family, size=0.85 * size)

    y = margin
    if options.title:
        ax.text(margin, y + 1.4 * size, options.title, fontproperties=prop, weight="bold")
        y += fig_title_h
    for panel in panels:
        if options.titles:
            ax.text(margin, y + 1.3 * size, panel.title, fontproperties=small, parse_math=False)
        if options.colorbar and panel.continuous:
            bar_w, bar_h = min(1.6 * 72, 0.3 * width_pt), 0.55 * size
            x0 = width_pt - margin - bar_w - 2.2 * size
            y0 = y + 0.35 * size
            cax = fig.add_axes(
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
            for pos, value, align in ((-0.03, panel.vmin, "right"), (1.03, panel.vmax, "left")):
                cax.text(
                    pos,
                    0.5,
                    f"{value:.2g}",
                    transform=cax.transAxes,
                    ha=align,
                    va="center",
                    fontproperties=tick_font,
                )
        if options.legend and not panel.continuous:
            handles = [
                Patch(facecolor=c, edgecolor="#999999", linewidth=0.4) for c, _ in panel.legend
            ]
            labels = [name for _, name in panel.legend]
            ax.legend(
                handles,
                labels,
                loc="upper right",
                bbox_to_anchor=(1 - margin / width_pt, 1 - (y - 0.15 * size) / height_pt),
                ncol=len(handles),
                prop=FontProperties(family=options.font_family, size=0.72 * size),
                frameon=False,
                handlelength=1.0,
                handletextpad=0.3,
                columnspacing=0.8,
                borderaxespad=0,
                borderpad=0,
            )
        top = y + title_h
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
        y += panel_h + panel_gap
    return fig


def save_heatmap(analysis: Any, path: str | Path, options: FigureOptions | None = None) -> Path:
    """Write the heatmap as PDF, SVG or PNG (chosen by the suffix of `path`)."""
    from matplotlib import rc_context

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {FIGURE_FORMATS}, got {path.name!r}")
    options = options or FigureOptions()
    with rc_context(
        {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "font.family": "sans-serif"}
    ):
        fig = heatmap_figure(analysis, options)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"Creator": "vepo-viz"} if fmt in ("pdf", "svg") else None
        fig.savefig(path, format=fmt, dpi=options.dpi, metadata=metadata)
    return path


# ---- LaTeX --------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    "'": r"\textquotesingle{}",
    "`": r"\textasciigrave{}",
    "-": r"-{}",
    "[": r"{[}",
    "]": r"{]}",
}
"""ASCII characters that LaTeX would interpret (or ligature: -- ``), with safe spellings."""

_LATEX_UNICODE = {
    "\u00d7": r"\ensuremath{\times}",
    "\u00f7": r"\ensuremath{\div}",
    "\u00b1": r"\ensuremath{\pm}",
    "\u2264": r"\ensuremath{\leq}",
    "\u2265": r"\ensuremath{\geq}",
    "\u2260": r"\ensuremath{\neq}",
    "\u2248": r"\ensuremath{\approx}",
    "\u2192": r"\ensuremath{\rightarrow}",
    "\u2190": r"\ensuremath{\leftarrow}",
    "\u221e": r"\ensuremath{\infty}",
    "\u03c0": r"\ensuremath{\pi}",
    "\u00b0": r"\ensuremath{^\circ}",
    "\u2026": r"\ldots{}",
    "\u2013": r"--",
    "\u2014": r"---",
    "\u2018": r"`",
    "\u2019": r"'",
    "\u201c": r"``",
    "\u201d": r"''",
    "\u00a0": r"~",
    "\u21b5": r"\ensuremath{\hookleftarrow}",
    "\u21e5": r"\ensuremath{\rightarrowtail}",
    "\u2423": r"\textvisiblespace{}",
}


def latex_escape(text: str) -> str:
    """`text` as LaTeX source that prints it verbatim under pdflatex (T1 fontenc).

    ASCII specials are escaped; Latin-1 letters pass through (utf8 input, T1 fonts);
    common symbols become math commands; any other character is written as [U+XXXX], so
    the snippet always compiles.
    """
    out = []
    for ch in text:
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ch in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[ch])
        elif ch == "\n":
            out.append(r"\ensuremath{\hookleftarrow}")
        elif ch == "\t" or ch == "\r":
            out.append(" ")
        elif 32 <= ord(ch) < 127 or 0xC0 <= ord(ch) <= 0xFF and ch not in "\u00d7\u00f7":
            out.append(ch)
        else:
            out.append(f"[U+{ord(ch):04X}]")
    return "".join(out)


def latex_snippet(
    analysis: Any,
    signal: str = "score",
    *,
    cmap: str = DEFAULT_COLORMAP,
    legend: bool = True,
    standalone: bool = False,
) -> str:
    """A LaTeX snippet: one `\\colorbox` per token, coloured by `signal` (or "selection").

    Needs `\\usepackage{xcolor}` (and `\\usepackage[T1]{fontenc}` for < > | "). With
    standalone=True, a complete document that compiles with pdflatex.
    """
    frame = token_frame(analysis)
    panel = _panel(analysis, frame, signal, check_colormap(cmap))
    lines = [
        f"% vepo-viz token heatmap: {latex_escape(panel.title).replace('%', '')}",
        f"% model: {latex_escape(str(getattr(analysis, 'model_id', '')))}",
        "% needs \\usepackage{xcolor} and \\usepackage[T1]{fontenc}",
        "\\begingroup\\setlength{\\fboxsep}{1pt}%",
    ]
    for i, token in enumerate(frame["token"]):
        body = token.lstrip(" ") if token.strip() else token
        shown = latex_escape(body if body.strip() else display_token(body))
        r, g, b = (int(panel.face[i][j : j + 2], 16) for j in (1, 3, 5))
        ink = "255,255,255" if panel.ink[i] == "#ffffff" else "0,0,0"
        sep = " " if token.startswith(" ") and i > 0 else ""
        lines.append(
            f"{sep}\\colorbox[RGB]{{{r},{g},{b}}}{{\\strut\\textcolor[RGB]{{{ink}}}{{{shown}}}}}%"
        )
        if "\n" in token:
            lines.append("\\par\\noindent%")
    lines.append("\\endgroup")
    if legend:
        lines.append("")
        lines.append("\\par\\smallskip{\\footnotesize\\setlength{\\fboxsep}{1pt}%")
        if panel.continuous:
            stops = np.linspace(panel.vmin, panel.vmax, 5)
            colors = hex_colors(rgba(stops, panel.vmin, panel.vmax, cmap))
            lines.append(f"{latex_escape(panel.title)}: %")
            for value, color in zip(stops, colors, strict=True):
                r, g, b = (int(color[j : j + 2], 16) for j in (1, 3, 5))
                ink = (
                    "255,255,255" if text_colors(_hex_to_rgba([color]))[0] == "#ffffff" else "0,0,0"
                )
                lines.append(
                    f"\\colorbox[RGB]{{{r},{g},{b}}}{{\\strut\\textcolor[RGB]{{{ink}}}"
                    f"{{{value:.2f}}}}}%"
                )
        else:
            for color, name in panel.legend:
                r, g, b = (int(color[j : j + 2], 16) for j in (1, 3, 5))
                lines.append(f"\\colorbox[RGB]{{{r},{g},{b}}}{{\\strut {latex_escape(name)}}} %")
        lines.append("}")
    snippet = "\n".join(lines) + "\n"
    if not standalone:
        return snippet
    return (
        "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage[T1]{fontenc}\n"
        "\\usepackage{textcomp}\n\\usepackage{xcolor}\n\\usepackage{amssymb}\n"
        "\\begin{document}\n\\noindent\n" + snippet + "\\end{document}\n"
    )


# ---- HTML ---------------------------------------------------------------------------

_HTML_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 60em; color: #222; line-height: 1.4; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.6em; }
.tokens { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; white-space: pre-wrap;
          line-height: 2.1; }
.tok { padding: 0.15em 0.05em; border-radius: 2px; }
.legend span { display: inline-block; padding: 0.1em 0.5em; margin-right: 0.5em;
               border-radius: 2px; border: 1px solid #ccc; }
.bar { display: inline-block; width: 12em; height: 0.8em; vertical-align: middle;
       border: 1px solid #999; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
td:nth-child(2) { text-align: left; font-family: monospace; white-space: pre; }
.meta { color: #555; font-size: 0.9em; }
"""


def _token_title(row) -> str:
    return (
        f"#{row['index']} {row['token']!r}\n"
        f"entropy H = {row['entropy']:.4f} nats\n"
        f"noisy entropy H' = {row['entropy_noisy']:.4f}\n"
        f"entropy gap = {row['entropy_gap']:+.4f}\n"
        f"JSD = {row['jsd']:.4f}\nKL = {row['kl']:.4f}\n"
        f"visual sensitivity = {row['visual_sensitivity']:.4f}\nscore = {row['score']:.4f}\n"
        f"selected: VEPO {'yes' if row['selected_vepo'] else 'no'}, "
        f"entropy {'yes' if row['selected_entropy'] else 'no'}"
    )


def html_document(
    analysis: Any,
    signals: Sequence[str] = DEFAULT_SIGNALS + (SELECTION_ROW,),
    *,
    cmap: str = DEFAULT_COLORMAP,
) -> str:
    """A self-contained HTML page (no scripts, no network): coloured tokens per signal with
    every number in each token's tooltip, the summary, the settings and the token table."""
    frame = token_frame(analysis)
    titles = [_token_title(row) for _, row in frame.iterrows()]
    sc = scoring_of(analysis)
    s = summary(analysis)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>vepo-viz token analysis</title>",
        f"<style>{_HTML_CSS}</style></head><body>",
        "<h1>vepo-viz: per-token analysis</h1>",
        f'<p class="meta">model <code>{html.escape(str(analysis.model_id))}</code>; '
        f"question: {html.escape(str(analysis.question))}<br>"
        f"score {html.escape(sc['score_type'])}, alpha {sc['alpha']:.2f}, top "
        f"{sc['ratio']:.0%} per {html.escape(sc['scope'])}; {s.n_tokens} tokens; VEPO picks "
        f"{s.n_vepo}, entropy picks {s.n_entropy}, both {s.n_both}; "
        f"{_fmt_pct(s.vepo_low_entropy)} of VEPO's picks have below-median entropy.</p>",
    ]
    for key in signals:
        panel = _panel(analysis, frame, key, check_colormap(cmap))
        parts.append(f"<h2>{html.escape(panel.title)}</h2>")
        if panel.continuous:
            stops = hex_colors(rgba(np.linspace(0, 1, 9), 0, 1, cmap))
            parts.append(
                f'<p class="legend">{panel.vmin:.2g} <span class="bar" style="background: '
                f'linear-gradient(to right, {", ".join(stops)});"></span> {panel.vmax:.2g}</p>'
            )
        else:
            parts.append(
                '<p class="legend">'
                + "".join(
                    f'<span style="background:{c}">{html.escape(n)}</span>' for c, n in panel.legend
                )
                + "</p>"
            )
        spans = []
        for i, token in enumerate(frame["token"]):
            shown = token if token.strip() else display_token(token)
            spans.append(
                f'<span class="tok" style="background:{panel.face[i]};color:{panel.ink[i]}" '
                f'title="{html.escape(titles[i])}">{html.escape(shown)}</span>'
            )
        parts.append(f'<div class="tokens">{"".join(spans)}</div>')
    parts.append("<h2>Per-token values</h2>")
    parts.append(table(analysis).to_html(index=False, escape=True, border=0))
    settings = getattr(analysis, "settings", {}) or {}
    parts.append("<h2>Settings</h2><pre>" + html.escape(_pretty(settings)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _pretty(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _fmt_pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"


# ---- files --------------------------------------------------------------------------


def export_analysis(
    analysis: Any,
    path: str | Path,
    options: FigureOptions | None = None,
    *,
    latex_signal: str = "score",
) -> Path:
    """Write `analysis` to `path` in the format of its suffix (EXPORT_FORMATS)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {EXPORT_FORMATS}, got {path.name!r}")
    options = options or FigureOptions()
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in FIGURE_FORMATS:
        return save_heatmap(analysis, path, options)
    if fmt == "tex":
        path.write_text(
            latex_snippet(analysis, latex_signal, cmap=options.cmap, legend=options.legend),
            encoding="utf-8",
        )
    elif fmt == "html":
        signals = tuple(options.signals)
        path.write_text(html_document(analysis, signals, cmap=options.cmap), encoding="utf-8")
    elif fmt == "csv":
        analysis.to_dataframe().to_csv(path, index=False)
    else:  # json
        analysis.save(path)
    return path
