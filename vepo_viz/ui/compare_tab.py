"""The Compare tab: two analyses of the Analyze tab's inputs that differ in one thing.

The A/B choices come from the registries of what is compared (score types,
counterfactual modes) when the app is built; the handler is vepo_viz.ui.compare.compare.
"""

from __future__ import annotations

import gradio as gr

from vepo_viz.perturb import MODES
from vepo_viz.scoring import SCORE_TYPES
from vepo_viz.ui.analyze_tab import AnalyzeTab
from vepo_viz.ui.backend import EMBEDDED, Backend
from vepo_viz.ui.compare import COMPARE_MODES, compare
from vepo_viz.ui.controls import ControlValues
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.events import MODEL_QUEUE, progress_adapter

CONTRASTS = {"score type": "entropy", "counterfactual mode": "no_image"}
"""B's first value per comparison (A starts at the reference): the usual baseline."""


def ab_choices(what: str) -> tuple[dict, dict]:
    """gr.update()s of the A and B dropdowns for comparing `what`."""
    registry = {"score type": SCORE_TYPES, "counterfactual mode": MODES}.get(what)
    if registry is None:  # models: any name the model box takes
        return gr.update(choices=[EMBEDDED], value=EMBEDDED), gr.update(
            choices=[EMBEDDED], value=EMBEDDED
        )
    b = CONTRASTS[what] if CONTRASTS[what] in registry else registry.reference
    return (
        gr.update(choices=registry.choices(), value=registry.reference),
        gr.update(choices=registry.choices(), value=b),
    )


def build_compare_tab(analyze: AnalyzeTab, backend: Backend) -> None:
    """Lay out the Compare tab (inside the enclosing gr.Tab) and wire it."""
    gr.Markdown(
        "Two analyses of the same image and question (inputs and settings of the "
        "Analyze tab) that differ in one thing. Score types re-score the current "
        "analysis; counterfactual modes and models run the model twice on the same "
        "response, so the selections line up token by token."
    )
    with gr.Row():
        what = gr.Radio(list(COMPARE_MODES), value="score type", label="compare")
        a = gr.Dropdown(
            SCORE_TYPES.choices(),
            value=SCORE_TYPES.reference,
            label="A",
            allow_custom_value=True,
        )
        b = gr.Dropdown(
            SCORE_TYPES.choices(),
            value=CONTRASTS["score type"],
            label="B",
            allow_custom_value=True,
        )
        button = gr.Button("Compare", variant="primary", elem_id="vv-compare")
    summary = gr.Markdown()
    plot = gr.Plot(label="Selection difference", elem_id="vv-compare-diff")
    with gr.Row():
        a_plot = gr.Plot(label="A")
        b_plot = gr.Plot(label="B")

    what.change(ab_choices, what, [a, b], api_visibility="private")

    @user_errors
    def on_compare(
        state,
        what,
        a,
        b,
        image_path,
        question_text,
        response_text,
        model_name,
        progress=gr.Progress(),  # noqa: B008
        **settings,
    ):
        return compare(
            backend,
            state,
            what,
            a,
            b,
            image_path,
            question_text,
            response_text,
            model_name,
            ControlValues.from_api(settings),
            progress_adapter(progress),
        )

    button.click(
        on_compare,
        [
            analyze.session,
            what,
            a,
            b,
            analyze.image,
            analyze.question,
            analyze.response,
            analyze.model,
        ],
        [summary, plot, a_plot, b_plot],
        inputs_kwargs=analyze.controls.api_inputs(),
        api_name="compare",
        concurrency_limit=1,
        concurrency_id=MODEL_QUEUE,
    )
