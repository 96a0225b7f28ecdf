"""LaTeX export: one `\\colorbox` per token, a snippet for a paper or a standalone document
that compiles with pdflatex (every character escaped or spelled out)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vepo_viz.render.colors import DEFAULT_COLORMAP, check_colormap, hex_colors, rgba, text_colors
from vepo_viz.render.data import display_token, token_frame
from vepo_viz.render.export.panels import hex_to_rgba, make_panel
from vepo_viz.render.labels import model_label
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

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
    analysis: TokenAnalysis,
    signal: str = "score",
    *,
    cmap: str = DEFAULT_COLORMAP,
    legend: bool = True,
    standalone: bool = False,
    color_scale: str = DEFAULT_COLOR_SCALE,
) -> str:
    """A LaTeX snippet: one `\\colorbox` per token, coloured by `signal` (or "selection").

    Needs `\\usepackage{xcolor}` (and `\\usepackage[T1]{fontenc}` for < > | "). With
    standalone=True, a complete document that compiles with pdflatex. `color_scale` is one
    of render.scales.COLOR_SCALES (per response by default, so the boxes use the whole map).
    """
    frame = token_frame(analysis)
    panel = make_panel(analysis, frame, signal, check_colormap(cmap), color_scale)
    lines = [
        f"% vepo-viz token heatmap: {latex_escape(panel.title).replace('%', '')}",
        f"% model: {latex_escape(model_label(analysis.model_id))}",
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
            texts = [f"{v:.2g}" for v in stops]
            if panel.rank:
                texts = ["lowest", "", "", "", "highest"]
            for value, color in zip(texts, colors, strict=True):
                r, g, b = (int(color[j : j + 2], 16) for j in (1, 3, 5))
                ink = (
                    "255,255,255" if text_colors(hex_to_rgba([color]))[0] == "#ffffff" else "0,0,0"
                )
                lines.append(
                    f"\\colorbox[RGB]{{{r},{g},{b}}}{{\\strut\\textcolor[RGB]{{{ink}}}"
                    f"{{{value or '~'}}}}}%"
                )
        else:
            for color, name in panel.legend:
                r, g, b = (int(color[j : j + 2], 16) for j in (1, 3, 5))
                lines.append(f"\\colorbox[RGB]{{{r},{g},{b}}}{{\\strut {latex_escape(name)}}} %")
        lines.append("}")
    snippet = "\n".join(lines) + "\n"
    return standalone_document(snippet) if standalone else snippet


def standalone_document(snippet: str) -> str:
    """A complete pdflatex document around a snippet of coloured token boxes."""
    return (
        "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage[T1]{fontenc}\n"
        "\\usepackage{textcomp}\n\\usepackage{xcolor}\n\\usepackage{amssymb}\n"
        "\\begin{document}\n\\noindent\n" + snippet + "\\end{document}\n"
    )
