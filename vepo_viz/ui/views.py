"""What the Analyze tab shows of one analysis: summary, heatmap, scatter, table, details.

`render_view` turns a TokenAnalysis into a `View` (plain values, no gradio components);
`image_views` makes the clean image / counterfactual preview pair. Both only read the
analysis and call vepo_viz.render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from vepo_viz.render import data as rdata
from vepo_viz.render import figures as rfig
from vepo_viz.render import notices
from vepo_viz.render.images import grid_caption, views_of
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE
from vepo_viz.ui.backend import EMBEDDED
from vepo_viz.ui.labels import scope_note

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis


@dataclass
class View:
    """The outputs of the Analyze tab for one analysis."""

    summary: str
    heatmap: Any
    scatter: Any
    table: pd.DataFrame
    token_choices: list[tuple[str, int]]
    token: int | None
    detail: Any


def token_choices(
    analysis: TokenAnalysis, frame: pd.DataFrame | None = None
) -> list[tuple[str, int]]:
    frame = rdata.token_frame(analysis) if frame is None else frame
    marks = {"both": "B", "vepo_only": "V", "entropy_only": "E", "neither": " "}
    return [
        (f"{i:>3} [{marks[c]}] {d}", int(i))
        for i, d, c in zip(
            frame["index"].tolist(),
            frame["display"].tolist(),
            frame["category"].tolist(),
            strict=True,
        )
    ]


def default_token(analysis: TokenAnalysis, frame: pd.DataFrame | None = None) -> int | None:
    """The most interesting token: the best-scored VEPO-only pick, else the best score."""
    frame = rdata.token_frame(analysis) if frame is None else frame
    if frame.empty:
        return None
    scores = frame["score"].to_numpy()
    vepo_only = (frame["category"] == "vepo_only").to_numpy()
    pool = np.flatnonzero(vepo_only) if vepo_only.any() else np.arange(len(frame))
    return int(pool[np.argmax(scores[pool])])


def render_view(
    analysis: TokenAnalysis,
    token: int | None = None,
    chars_per_line: int = 72,
    color_scale: str = DEFAULT_COLOR_SCALE,
) -> View:
    """Every Analyze view of `analysis` (well under a second for a few hundred tokens);
    `color_scale` (render.scales) colours the heatmap."""
    frame = rdata.token_frame(analysis)
    n = len(frame)
    if token is None or not (0 <= int(token) < n):
        token = default_token(analysis, frame)
    return View(
        summary=notices.warnings_html(analysis)
        + _header(analysis)
        + rdata.summary_markdown(analysis, frame)
        + scope_note(analysis)
        + f"  \n{notices.floor_line(analysis)}  \n{notices.stability_line(analysis)}",
        heatmap=rfig.token_heatmap(
            analysis, chars_per_line=chars_per_line, frame=frame, color_scale=color_scale
        ),
        scatter=rfig.entropy_scatter(analysis, frame),
        table=rdata.table(analysis, frame=frame),
        token_choices=token_choices(analysis, frame),
        token=token,
        detail=rfig.token_detail(analysis, token, frame) if token is not None else None,
    )


def _header(analysis: TokenAnalysis) -> str:
    how = "generated" if analysis.generated else "pasted/loaded"
    trunc = " (stopped at max new tokens)" if analysis.truncated else ""
    total = analysis.timing.get("total")
    took = f", {total:.2f} s" if isinstance(total, int | float) else ""
    cf = analysis.settings.perturb
    return (
        f"Model `{_model_name(analysis.model_id)}`; response {how}{trunc}{took}; counterfactual "
        f"{cf.mode} (sigma {cf.sigma:g}, K={cf.n_draws}).  \n"
    )


def _model_name(model_id: str) -> str:
    """'embedded' for the embedded tiny model's folder, else the id as loaded."""
    from vepo_viz.tiny import DEFAULT_MODEL

    if model_id and Path(model_id).resolve() == Path(DEFAULT_MODEL).resolve():
        return EMBEDDED
    return model_id or "?"


def image_views(analysis: TokenAnalysis) -> tuple[Image.Image | None, Image.Image | None, str]:
    """(clean image, counterfactual preview, caption), as the analysis stores them; the
    caption ends with the resolution and patch grid the processor really used."""
    clean, view, caption = views_of(analysis)
    grid = grid_caption(analysis)
    return clean, view, f"{caption} {grid}" if grid and clean is not None else caption


def percent(x: float) -> str:
    """A share as "42%" ("n/a" for NaN)."""
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{100 * x:.0f}%"
