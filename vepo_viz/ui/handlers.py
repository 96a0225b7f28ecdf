"""The Analyze tab's handlers as plain functions (no gradio components in here).

Each handler takes the values of its input components and returns the values of its
outputs; `vepo_viz.ui.analyze_tab` wires them to components. Model work goes through a
`Backend` (a fake one in the tests); everything else reads `TokenAnalysis` objects and
calls vepo_viz.render. An analysis is scored once: with the settings it was made with,
re-scored only when the selection controls ask for something else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vepo_viz.render import export as rexport
from vepo_viz.render import figures as rfig
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE, check_color_scale
from vepo_viz.ui.backend import Backend
from vepo_viz.ui.controls import (
    ControlValues,
    number,
    rescore_args,
    scoring_args,
    whole_number,
)
from vepo_viz.ui.errors import UserFacingError
from vepo_viz.ui.session import Session, file_stem, out_dir, require, run_key, save_session
from vepo_viz.ui.views import View, image_views, render_view

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

log = logging.getLogger("vepo_viz.ui")

MAX_BATCH_ROWS = 1000
"""Most examples one batch run in the app scores (the CLI has no limit)."""

__all__ = ["MAX_BATCH_ROWS", "UserFacingError", "analyze", "detail", "export_file", "rescore"]


def rescored(analysis: TokenAnalysis, scoring: dict[str, Any]) -> TokenAnalysis:
    """`analysis` with the selection `scoring` (itself when it was scored so)."""
    if analysis.scoring_args == scoring:
        return analysis
    return analysis.rescore(**scoring)


def check_inputs(image_path: str | None, question: str | None) -> None:
    """A readable error for a missing image or an empty question."""
    if not image_path:
        raise UserFacingError("no image: upload one or click a sample first")
    if not question or not question.strip():
        raise UserFacingError("the question is empty: ask something about the image")


def analyze(
    backend: Backend,
    session: Session | None,
    image_path: str | None,
    question: str | None,
    response: str | None,
    model: str | None,
    controls: ControlValues,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[Session, View, tuple]:
    """Run (or reuse) the model analysis of the inputs; returns (session, view, images)."""
    from vepo_viz.models.images import load_image

    check_inputs(image_path, question)
    settings = controls.settings()  # the selection settings included: scored once
    scoring = rescore_args(settings.scoring)
    pasted = response if response and response.strip() else None
    image = load_image(image_path)  # readable errors for broken or huge files
    key = run_key(model, image_path, question, pasted, settings)
    if session is not None and session.key == key and session.base is not None:
        base = session.base  # same inputs: no model run, only re-score
    else:
        started = time.perf_counter()
        base = backend.analyze(model, image, question, pasted, settings, progress)
        log.info("analysed %d tokens in %.2fs", len(base.tokens), time.perf_counter() - started)
    current = rescored(base, scoring)
    if progress:
        progress(0.9, "rendering")
    scale = session.color_scale if session is not None else DEFAULT_COLOR_SCALE
    new = Session(base=base, current=current, key=key, image=base.image, color_scale=scale)
    return new, render_view(current, color_scale=scale), image_views(current)


def rescore(
    session: Session | None, ratio, alpha, score_type, scope, token=None
) -> tuple[Session, View]:
    """Re-score the stored analysis with new selection settings (no model)."""
    session = require(session)
    args = scoring_args(ratio, alpha, score_type, scope)
    if session.current.scoring_args != args:
        current = rescored(session.base, args)  # exactly the stored numbers if it matches
        session = replace(session, current=current)
    return session, render_view(session.current, token, color_scale=session.color_scale)


def recolor(session: Session | None, color_scale: str) -> tuple[Session, Any]:
    """The session with a new colour scale (render.scales) and its heatmap (None before
    any analysis): a display option, nothing is re-scored."""
    check_color_scale(color_scale)
    if session is None or session.current is None:
        return Session(color_scale=color_scale), None
    session = replace(session, color_scale=color_scale)
    return session, rfig.token_heatmap(session.current, color_scale=color_scale)


def detail(session: Session | None, token) -> Any:
    """Top candidates of one token under the clean and the perturbed image."""
    session = require(session)
    if token is None or token == "":
        return None
    return rfig.token_detail(
        session.current, whole_number("token", token, 0, len(session.current.tokens) - 1)
    )


def token_from_table(session: Session | None, row_value: list | None) -> int | None:
    """The token index of a clicked table row (its first column), or None."""
    if session is None or session.current is None or not row_value:
        return None
    try:
        return int(row_value[0])
    except (TypeError, ValueError):
        return None


def export_file(
    session: Session | None,
    fmt: str,
    *,
    signals: list[str] | None = None,
    width_in: Any = 6.5,
    font_family: str = "DejaVu Sans",
    font_size: Any = 9,
    dpi: Any = 300,
    cmap: str = "cividis",
    legend: bool = True,
    colorbar: bool = True,
    latex_signal: str = "score",
) -> str:
    """Write the current analysis as `fmt` (pdf, svg, png, tex, html, csv, json)."""
    session = require(session)
    fmt = (fmt or "").lower().strip(". ")
    if fmt not in rexport.EXPORT_FORMATS:
        raise UserFacingError(
            f"unknown export format {fmt!r}; choose one of {rexport.EXPORT_FORMATS}"
        )
    if fmt == "json":
        return save_session(session)
    options = rexport.FigureOptions(
        signals=tuple(signals) if signals else rexport.FigureOptions().signals,
        width_in=number("width", width_in),
        font_family=font_family,
        font_size=number("font size", font_size),
        dpi=whole_number("dpi", dpi, 30, 1200),
        cmap=cmap,
        legend=bool(legend),
        colorbar=bool(colorbar),
        color_scale=session.color_scale,
    )
    path = out_dir() / f"{file_stem(session.current)}.{fmt}"
    return str(rexport.export_analysis(session.current, path, options, latex_signal=latex_signal))
