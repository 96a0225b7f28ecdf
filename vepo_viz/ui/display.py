"""Display-only events of the Analyze tab: the colour scale of the heatmap (and of the
exports), and the score type's full formula under its dropdown. Nothing here runs the
model or re-scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from vepo_viz.scoring import SCORE_TYPES
from vepo_viz.ui import handlers as h
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.labels import score_type_info

if TYPE_CHECKING:
    from vepo_viz.ui.analyze_tab import AnalyzeTab

VIEWS_MIN_WIDTH_PX = 700
"""Narrowest the views column may get beside the inputs: below it (an 800 px window) the
columns stack, and the heatmap keeps readable text instead of shrinking it to ~5 px."""


PANEL_MIN_WIDTH_PX = 360
"""Narrowest the scatter and the image pair may get side by side; below it they stack, so
the "clean image" / "counterfactual" titles are never cut off."""


IMAGE_BUTTONS = ["download", "fullscreen"]
"""Buttons of the clean / counterfactual images (no share button: with three, they cover
the "counterfactual" title at 1440 px)."""


def wire_display(tab: AnalyzeTab) -> None:
    """The colour-scale and score-type-info events (private: not part of the API)."""

    @user_errors
    def on_color_scale(state, scale):
        new, heatmap = h.recolor(state, scale)
        return new, heatmap if heatmap is not None else gr.skip()

    tab.color_scale.change(
        on_color_scale,
        [tab.session, tab.color_scale],
        [tab.session, tab.heatmap],
        api_visibility="private",
        trigger_mode="always_last",
        concurrency_limit=None,
    )

    def on_score_type(name):
        return gr.update(info=score_type_info(SCORE_TYPES, name))

    tab.controls.score_type.change(
        on_score_type,
        tab.controls.score_type,
        tab.controls.score_type,
        api_visibility="private",
        concurrency_limit=None,
        queue=False,
    )
