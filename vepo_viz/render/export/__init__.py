"""Paper exports of one analysis, one module per format: heatmap figures (PDF, SVG, PNG:
figure.py), a LaTeX snippet (latex.py), a standalone HTML page (html_page.py); CSV and
JSON come from the result itself. `export_analysis` picks the format from the suffix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vepo_viz.render.export.figure import (
    FIGURE_FORMATS,
    FONT_CANDIDATES,
    FigureOptions,
    available_fonts,
    heatmap_figure,
    save_heatmap,
)
from vepo_viz.render.export.html_page import html_document
from vepo_viz.render.export.latex import latex_escape, latex_snippet

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

EXPORT_FORMATS: tuple[str, ...] = FIGURE_FORMATS + ("tex", "html", "csv", "json")

__all__ = [
    "EXPORT_FORMATS",
    "FIGURE_FORMATS",
    "FONT_CANDIDATES",
    "FigureOptions",
    "available_fonts",
    "export_analysis",
    "heatmap_figure",
    "html_document",
    "latex_escape",
    "latex_snippet",
    "save_heatmap",
]


def export_analysis(
    analysis: TokenAnalysis,
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
            latex_snippet(
                analysis,
                latex_signal,
                cmap=options.cmap,
                legend=options.legend,
                color_scale=options.color_scale,
            ),
            encoding="utf-8",
        )
    elif fmt == "html":
        signals = tuple(options.signals)
        page = html_document(analysis, signals, cmap=options.cmap, color_scale=options.color_scale)
        path.write_text(page, encoding="utf-8")
    elif fmt == "csv":
        analysis.to_dataframe().to_csv(path, index=False)
    else:  # json
        analysis.save(path)
    return path
