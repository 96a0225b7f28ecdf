"""Small pieces every tab's event wiring shares: the model queue, progress, view outputs."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from vepo_viz.ui.views import View

MODEL_QUEUE = "model"
"""concurrency_id shared by every event that runs a model."""


def view_updates(view: View) -> tuple:
    """The values of `AnalyzeTab.view_outputs()` for `view`."""
    return (
        view.summary,
        view.heatmap,
        view.scatter,
        view.table,
        gr.update(choices=view.token_choices, value=view.token),
        view.detail,
    )


def progress_adapter(progress: gr.Progress) -> Callable[[float, str], None]:
    """A handler's `progress(fraction, desc)` callback that reports to gradio."""

    def report(fraction: float, desc: str) -> None:
        progress(fraction, desc=desc)

    return report
