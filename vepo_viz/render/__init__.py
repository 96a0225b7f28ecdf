"""Views of analysis results: plotly figures for the app and exports for papers.

Reads `TokenAnalysis` objects only (never tensors or models, no torch import); the
images beside the heatmap come from the result too (`views_of`):

    from vepo_viz.render import token_heatmap, save_heatmap, latex_snippet
    token_heatmap(result).show()                   # plotly, interactive
    save_heatmap(result, "fig.pdf", FigureOptions(width_in=3.3, font_size=8))
    print(latex_snippet(result, "score"))          # \\colorbox per token
"""

from vepo_viz.render.data import summary, summary_markdown, table, token_frame
from vepo_viz.render.export import (
    EXPORT_FORMATS,
    FigureOptions,
    export_analysis,
    heatmap_figure,
    html_document,
    latex_escape,
    latex_snippet,
    save_heatmap,
)
from vepo_viz.render.figures import (
    batch_figures,
    compare_figure,
    entropy_scatter,
    token_detail,
    token_heatmap,
)
from vepo_viz.render.images import views_of

__all__ = [
    "EXPORT_FORMATS",
    "FigureOptions",
    "batch_figures",
    "compare_figure",
    "entropy_scatter",
    "export_analysis",
    "heatmap_figure",
    "html_document",
    "latex_escape",
    "latex_snippet",
    "save_heatmap",
    "summary",
    "summary_markdown",
    "table",
    "token_detail",
    "token_frame",
    "token_heatmap",
    "views_of",
]
