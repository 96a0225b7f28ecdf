"""The Analyze tab: inputs and settings on the left, the views of one analysis on the right.

`build_analyze_tab` lays out the components (the settings through `build_controls`, the
export accordion through `vepo_viz.ui.export_panel`) and wires them to the plain handlers
of vepo_viz.ui.handlers. Model runs share one queue slot (events.MODEL_QUEUE, limit 1);
re-scoring and token details never touch the model and run beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from vepo_viz.render.scales import DEFAULT_COLOR_SCALE, color_scale_choices
from vepo_viz.ui import handlers as h
from vepo_viz.ui.backend import Backend
from vepo_viz.ui.controls import Controls, ControlValues, build_controls, mode_parameter_updates
from vepo_viz.ui.display import (
    IMAGE_BUTTONS,
    PANEL_MIN_WIDTH_PX,
    VIEWS_MIN_WIDTH_PX,
    wire_display,
)
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.events import MODEL_QUEUE, progress_adapter, view_updates
from vepo_viz.ui.export_panel import ExportPanel, build_export_panel, wire_export_panel
from vepo_viz.ui.labels import TABLE_LABEL
from vepo_viz.ui.messages import hide_paths
from vepo_viz.ui.samples import Sample
from vepo_viz.ui.scope_banner import scope_banner


@dataclass(frozen=True)
class AnalyzeTab:
    """The Analyze tab's components (the other tabs read its inputs and settings)."""

    session: gr.State
    image: gr.Image
    question: gr.Textbox
    response: gr.Textbox
    model: gr.Textbox
    controls: Controls
    analyze: gr.Button
    summary: gr.Markdown
    heatmap: gr.Plot
    scatter: gr.Plot
    table: gr.Dataframe
    token: gr.Dropdown
    token_click: gr.Textbox
    detail: gr.Plot
    clean_image: gr.Image
    counterfactual_image: gr.Image
    image_caption: gr.Markdown
    export: ExportPanel
    color_scale: gr.Dropdown

    def view_outputs(self) -> list[Any]:
        """The components a `View` fills (see `view_updates`)."""
        return [self.summary, self.heatmap, self.scatter, self.table, self.token, self.detail]

    def image_outputs(self) -> list[Any]:
        return [self.clean_image, self.counterfactual_image, self.image_caption]


def image_input(**kwargs: Any) -> gr.Image:
    """A gr.Image (type="filepath") that hands uploaded files over unopened.

    gr.Image opens every upload with Pillow before the handler runs, so a non-image, a
    decompression-bomb-sized or an unreadable file fails inside gradio with a bare
    "Error". vepo_viz.models.images.load_image checks the file instead and says what is
    wrong (and shrinks huge images to what the processor uses). The override is set on
    the instance: subclassing a gradio component makes gradio write a .pyi stub beside
    this module.
    """
    component = gr.Image(type="filepath", **kwargs)
    original = component.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 - shown to the user, app keeps serving
            raise gr.Error(
                hide_paths(f"cannot read the uploaded image: {error}"), print_exception=False
            ) from error

    component.preprocess = preprocess
    return component


def _inputs_column(samples: list[Sample], default_model: str) -> dict[str, Any]:
    image = image_input(
        label="Image",
        format="png",
        image_mode=None,
        sources=["upload", "clipboard"],
        height=220,
        elem_id="vv-image",
    )
    question = gr.Textbox(
        label="Question", lines=2, placeholder="What color is the square?", elem_id="vv-question"
    )
    response = gr.Textbox(
        label="Response (optional)",
        lines=3,
        placeholder="Leave empty to let the model answer; paste text to "
        "score it as if the model had written it",
        elem_id="vv-response",
    )
    if samples:
        gr.Examples(
            examples=[[s.image_path, s.question] for s in samples],
            inputs=[image, question],
            label="Samples (click one, then Analyze)",
            examples_per_page=4,
            elem_id="vv-samples",
        )
    analyze = gr.Button("Analyze", variant="primary", elem_id="vv-analyze")
    controls, model = build_controls(default_model)
    return dict(
        image=image,
        question=question,
        response=response,
        analyze=analyze,
        controls=controls,
        model=model,
    )


def _views_column() -> dict[str, Any]:
    summary = gr.Markdown("Pick a sample on the left and press **Analyze**.", elem_id="vv-summary")
    color_scale = gr.Dropdown(
        color_scale_choices(),
        value=DEFAULT_COLOR_SCALE,
        label="colour scale (heatmap and exports)",
        elem_id="vv-color-scale",
    )
    heatmap = gr.Plot(
        label="Tokens (hover for every number, click for details)", elem_id="vv-heatmap"
    )
    with gr.Row():
        scatter = gr.Plot(
            label="Entropy vs visual sensitivity",
            elem_id="vv-scatter",
            min_width=PANEL_MIN_WIDTH_PX,
        )
        with gr.Column(min_width=PANEL_MIN_WIDTH_PX, elem_id="vv-images"):
            with gr.Row():
                clean_image = gr.Image(
                    label="clean image",
                    interactive=False,
                    height=180,
                    format="png",
                    buttons=IMAGE_BUTTONS,
                )
                counterfactual_image = gr.Image(
                    label="counterfactual",
                    interactive=False,
                    height=180,
                    format="png",
                    buttons=IMAGE_BUTTONS,
                )
            image_caption = gr.Markdown(elem_classes=["vv-caption"])
    with gr.Row():
        token = gr.Dropdown(
            choices=[],
            label="token ([V] VEPO only, [E] entropy only, [B] both)",
            elem_id="vv-token",
            scale=1,
        )
        # Written by the app's CLICK_JS; hidden by CSS (a visible="hidden" component is
        # not bound in the page, so it cannot fire).
        token_click = gr.Textbox(elem_id="vv-token-click", show_label=False, container=False)
    detail = gr.Plot(label="Top candidates: clean vs perturbed image", elem_id="vv-detail")
    table = gr.Dataframe(
        label=TABLE_LABEL,
        interactive=False,
        max_height=360,
        elem_id="vv-table",
    )
    export = build_export_panel()
    return dict(
        summary=summary,
        heatmap=heatmap,
        scatter=scatter,
        clean_image=clean_image,
        counterfactual_image=counterfactual_image,
        image_caption=image_caption,
        token=token,
        token_click=token_click,
        detail=detail,
        table=table,
        export=export,
        color_scale=color_scale,
    )


def build_analyze_tab(
    backend: Backend, samples: list[Sample], default_model: str, session: gr.State
) -> AnalyzeTab:
    """Lay out the Analyze tab (inside the enclosing gr.Tab) and wire its events."""
    scope_banner("vv-scope-analyze")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            inputs = _inputs_column(samples, default_model)
        with gr.Column(scale=3, min_width=VIEWS_MIN_WIDTH_PX, elem_id="vv-views"):
            views = _views_column()
    tab = AnalyzeTab(session=session, **inputs, **views)
    _wire_model_runs(tab, backend)
    _wire_rescoring(tab)
    wire_display(tab)
    wire_export_panel(tab)
    return tab


def _wire_model_runs(tab: AnalyzeTab, backend: Backend) -> None:
    n_outputs = 1 + len(tab.view_outputs()) + len(tab.image_outputs())

    # Parameter names are the API's (gradio_client keyword arguments); the settings
    # arrive as keywords named by Controls.api_inputs().
    @user_errors
    def on_analyze(
        state,
        image_path,
        question_text,
        response_text,
        model_name,
        progress=gr.Progress(),  # noqa: B008
        **settings,
    ):
        new, view, images = h.analyze(
            backend,
            state,
            image_path,
            question_text,
            response_text,
            model_name,
            ControlValues.from_api(settings),
            progress_adapter(progress),
        )
        return (new, *view_updates(view), *images)

    @user_errors
    def on_auto_analyze(
        state,
        image_path,
        question_text,
        response_text,
        model_name,
        progress=gr.Progress(),  # noqa: B008
        **settings,
    ):
        # Changing an input re-runs an existing analysis; before the first one it waits
        # for the Analyze button.
        if state is None or state.current is None or not image_path:
            return tuple(gr.skip() for _ in range(n_outputs))
        if not (question_text or "").strip():
            return tuple(gr.skip() for _ in range(n_outputs))
        return on_analyze(
            state, image_path, question_text, response_text, model_name, progress, **settings
        )

    run = dict(
        inputs=[tab.session, tab.image, tab.question, tab.response, tab.model],
        inputs_kwargs=tab.controls.api_inputs(),
        outputs=[tab.session, *tab.view_outputs(), *tab.image_outputs()],
        concurrency_limit=1,
        concurrency_id=MODEL_QUEUE,
    )
    tab.analyze.click(on_analyze, api_name="analyze", **run)
    # Enter in the question/model box, Shift+Enter in the response box, a new upload,
    # or a released generation/counterfactual control re-runs an existing analysis.
    inputs_events = [tab.question.submit, tab.response.submit, tab.model.submit, tab.image.upload]
    for event in (*inputs_events, *tab.controls.rerun_events()):
        event(on_auto_analyze, api_visibility="private", trigger_mode="always_last", **run)

    def on_mode(mode):  # show only the parameters the chosen mode reads
        return mode_parameter_updates(tab.controls, mode)

    tab.controls.cf_mode.change(
        on_mode,
        tab.controls.cf_mode,
        list(tab.controls.mode_parameters().values()),
        api_visibility="private",
        concurrency_limit=None,
    )


def _wire_rescoring(tab: AnalyzeTab) -> None:
    views = tab.view_outputs()

    @user_errors
    def on_rescore(state, **values):
        if state is None or state.current is None:
            return tuple(gr.skip() for _ in range(1 + len(views)))
        token_index = values.pop("token_index", None)
        scoring = ControlValues.from_api(values)
        new, view = h.rescore(
            state, scoring.ratio, scoring.alpha, scoring.score_type, scoring.scope, token_index
        )
        return (new, *view_updates(view))

    selection = tab.controls.selection()
    for ctrl in selection:
        ctrl.change(
            on_rescore,
            [tab.session],
            [tab.session, *views],
            inputs_kwargs={**tab.controls.selection_api_inputs(), "token_index": tab.token},
            api_name="rescore" if ctrl is selection[0] else None,
            api_visibility="public" if ctrl is selection[0] else "private",
            trigger_mode="always_last",
            concurrency_limit=None,
        )
    tab.token.input(
        user_errors(h.detail),
        [tab.session, tab.token],
        tab.detail,
        api_name="token_detail",
        concurrency_limit=None,
    )

    def on_click(state, value):
        try:
            index = int(str(value).split(":")[0])
        except ValueError:
            return gr.skip(), gr.skip()
        if state is None or state.current is None or not 0 <= index < len(state.current.tokens):
            return gr.skip(), gr.skip()
        return index, h.detail(state, index)

    tab.token_click.change(
        on_click,
        [tab.session, tab.token_click],
        [tab.token, tab.detail],
        api_visibility="private",
        concurrency_limit=None,
    )

    def on_table_select(state, evt: gr.SelectData):
        index = h.token_from_table(state, getattr(evt, "row_value", None))
        if index is None:
            return gr.skip(), gr.skip()
        return index, h.detail(state, index)

    tab.table.select(
        on_table_select,
        [tab.session],
        [tab.token, tab.detail],
        api_visibility="private",
        concurrency_limit=None,
    )
