"""The Gradio app: Analyze, Compare, Batch, Train and About tabs.

`build_app(backend)` lays out the components and wires them to the handlers of
vepo_viz.ui.handlers (thin; they call render/ and the backend). Model work (Analyze,
Compare, Batch) shares one queue slot (concurrency_id "model", limit 1), so one analysis
runs at a time; re-scoring, token details and exports never touch the model and run
beside it. Per-session data lives in a gr.State (a `Session`: analyses, no tensors).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from vepo_viz.perturb import MODES
from vepo_viz.render import export as rexport
from vepo_viz.render.colors import CATEGORY_COLORS, CATEGORY_LABELS, COLORMAPS
from vepo_viz.render.data import SELECTION_ROW, SIGNALS
from vepo_viz.scoring import SCOPES, SCORE_TYPES
from vepo_viz.ui import batch as hbatch
from vepo_viz.ui import handlers as h
from vepo_viz.ui.backend import EMBEDDED, Backend, ModelBackend
from vepo_viz.ui.samples import Sample, load_samples

log = logging.getLogger("vepo_viz.ui")

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MODEL_QUEUE = "model"
"""concurrency_id shared by every event that runs a model."""

MAX_FILE_SIZE = "25mb"
"""Largest upload the server accepts (images, JSONL, saved analyses)."""

CLICK_JS = """
<script>
// Clicking a token in the heatmap or the scatter selects it in the token-detail view:
// plotly's click event writes "index:time" into a hidden textbox, whose change event the
// app handles. (gr.Plot has no click event of its own in gradio 6.)
(function () {
  function onClick(ev) {
    var p = ev && ev.points && ev.points[0];
    if (!p || !p.customdata) return;
    var box = document.querySelector('#vv-token-click textarea, #vv-token-click input');
    if (!box) return;
    var proto = Object.getPrototypeOf(box);
    var setter = Object.getOwnPropertyDescriptor(proto, 'value').set;
    setter.call(box, String(p.customdata[0]) + ':' + Date.now());
    box.dispatchEvent(new Event('input', { bubbles: true }));
  }
  var pending = false;
  function bind() {
    pending = false;
    document.querySelectorAll('#vv-heatmap .js-plotly-plot, #vv-scatter .js-plotly-plot')
      .forEach(function (gd) {
        if (!gd.on) return;
        if (gd.removeListener) gd.removeListener('plotly_click', onClick);
        gd.on('plotly_click', onClick);
      });
  }
  new MutationObserver(function () {
    if (!pending) { pending = true; setTimeout(bind, 150); }
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
</script>
"""

ABOUT = """
### What you are looking at

For each token of the model's answer, vepo-viz runs the model twice over the same tokens:
once with the image (clean, distribution *p*) and once with a counterfactual image
(*q*, default: Gaussian noise with sigma = 2 on the normalised pixels). Per token:

- **entropy H** of *p* (nats): how unsure the model is. The "80/20" rule trains on the
  top-20% highest-entropy tokens ("forking tokens").
- **visual sensitivity v** = 1 - (1 - JSD^)^alpha (1 - |dH|^)^(1-alpha): how much the
  image changes the prediction (JSD between *p* and *q*, and the entropy gap, each
  min-max normalised over the response).
- **VEPO score s** = v * H^ (type D of Jin et al. 2026); VEPO trains on the top 20% by s.

The selection row shows the two rules together: **VEPO only** tokens are the "visual
forking tokens" that entropy-only training skips, often low-entropy tokens read off the
image (a colour, a number, "left").

Changing ratio, alpha, score type or scope re-scores instantly from the stored numbers;
changing the image, question, response, model or counterfactual re-runs the model.
Click a token in the heatmap (or pick it in the list, or click a table row) for its top
candidates under the clean and the perturbed image.
"""


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
                f"cannot read the uploaded image: {error}", print_exception=False
            ) from error

    component.preprocess = preprocess
    return component


def _view_updates(view: h.View) -> tuple:
    return (
        view.summary,
        view.heatmap,
        view.scatter,
        view.table,
        gr.update(choices=view.token_choices, value=view.token),
        view.detail,
    )


def _progress_adapter(progress: gr.Progress):
    def report(fraction: float, desc: str) -> None:
        progress(fraction, desc=desc)

    return report


def _train_tab(model_box: gr.Textbox, tabs: gr.Tabs) -> None:
    """The training worker's tab, when it exists (vepo_viz.ui.train_tab)."""
    try:
        from vepo_viz.ui.train_tab import build_train_tab
    except ImportError:
        gr.Markdown("Training from the app is not available in this build.")
        return
    import inspect

    params = inspect.signature(build_train_tab).parameters
    kwargs: dict[str, Any] = {}
    if "model_box" in params:
        kwargs["model_box"] = model_box
    if "tabs" in params:
        kwargs["tabs"] = tabs
    build_train_tab(**kwargs)


def build_app(
    backend: Backend | None = None,
    samples: list[Sample] | None = None,
    default_model: str = EMBEDDED,
) -> gr.Blocks:
    """The app as a gr.Blocks (not launched). `backend` defaults to the real models."""
    backend = backend or ModelBackend()
    samples = load_samples() if samples is None else samples

    with gr.Blocks(title="vepo-viz: which tokens look at the image?") as demo:
        session = gr.State(None)
        logo = (ASSETS / "logo.svg").read_text() if (ASSETS / "logo.svg").is_file() else ""
        gr.HTML(
            f'<div id="vv-header">{logo}<p>Which tokens of a VLM\'s answer look at the image, '
            "and which ones does RL train on? Entropy-only (80/20) vs VEPO token selection, "
            "per token.</p></div>"
        )
        with gr.Tabs() as tabs:
            with gr.Tab("Analyze", id="analyze"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        image = image_input(
                            label="Image",
                            format="png",
                            image_mode=None,
                            sources=["upload", "clipboard"],
                            height=220,
                            elem_id="vv-image",
                        )
                        question = gr.Textbox(
                            label="Question",
                            lines=2,
                            placeholder="What color is the square?",
                            elem_id="vv-question",
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
                        analyze_btn = gr.Button("Analyze", variant="primary", elem_id="vv-analyze")
                        with gr.Accordion("Selection (re-scores instantly, no model)", open=True):
                            ratio = gr.Slider(
                                0.05,
                                1.0,
                                value=0.2,
                                step=0.05,
                                label="ratio (share of tokens kept)",
                                elem_id="vv-ratio",
                            )
                            alpha = gr.Slider(
                                0.0,
                                1.0,
                                value=0.7,
                                step=0.05,
                                label="alpha (JSD vs |entropy gap|)",
                                elem_id="vv-alpha",
                            )
                            score_type = gr.Dropdown(
                                SCORE_TYPES.choices(),
                                value="D",
                                label="score type",
                                elem_id="vv-score-type",
                            )
                            scope = gr.Dropdown(list(SCOPES), value="response", label="scope")
                        with gr.Accordion("Model and generation", open=False):
                            model = gr.Textbox(
                                value=default_model,
                                label="model",
                                info="'embedded' (the tiny model), a local folder, or a hub id "
                                "such as Qwen/Qwen2.5-VL-3B-Instruct; press Enter to re-run",
                                elem_id="vv-model",
                            )
                            max_new_tokens = gr.Slider(
                                1, 1024, value=64, step=1, label="max new tokens"
                            )
                            temperature = gr.Slider(
                                0.0, 2.0, value=1.0, step=0.05, label="temperature (0 = greedy)"
                            )
                            seed = gr.Number(value=0, precision=0, minimum=0, label="seed")
                        with gr.Accordion("Counterfactual image", open=False):
                            cf_mode = gr.Dropdown(list(MODES), value="gaussian", label="mode")
                            sigma = gr.Slider(0.0, 5.0, value=2.0, step=0.1, label="sigma")
                            n_draws = gr.Slider(1, 16, value=1, step=1, label="draws K")
                    with gr.Column(scale=3):
                        summary = gr.Markdown(
                            "Pick a sample on the left and press **Analyze**.", elem_id="vv-summary"
                        )
                        heatmap = gr.Plot(
                            label="Tokens (hover for every number, click for details)",
                            elem_id="vv-heatmap",
                        )
                        with gr.Row():
                            scatter = gr.Plot(
                                label="Entropy vs visual sensitivity", elem_id="vv-scatter"
                            )
                            with gr.Column():
                                with gr.Row():
                                    clean_img = gr.Image(
                                        label="clean image",
                                        interactive=False,
                                        height=180,
                                        format="png",
                                    )
                                    cf_img = gr.Image(
                                        label="counterfactual",
                                        interactive=False,
                                        height=180,
                                        format="png",
                                    )
                                image_caption = gr.Markdown(elem_classes=["vv-caption"])
                        with gr.Row():
                            token = gr.Dropdown(
                                choices=[],
                                label="token ([V] VEPO only, [E] entropy only, [B] both)",
                                elem_id="vv-token",
                                scale=1,
                            )
                            # Written by CLICK_JS; hidden by CSS (a visible="hidden"
                            # component is not bound in the page, so it cannot fire).
                            token_click = gr.Textbox(
                                elem_id="vv-token-click", show_label=False, container=False
                            )
                        detail_plot = gr.Plot(
                            label="Top candidates: clean vs perturbed image", elem_id="vv-detail"
                        )
                        table = gr.Dataframe(
                            label="Per-token values (click a header to sort, a row to inspect)",
                            interactive=False,
                            max_height=360,
                            elem_id="vv-table",
                        )
                        with gr.Accordion("Export for papers, save and load", open=False):
                            with gr.Row():
                                export_fmt = gr.Radio(
                                    list(rexport.EXPORT_FORMATS),
                                    value="pdf",
                                    label="format",
                                    elem_id="vv-export-format",
                                )
                                panels = gr.CheckboxGroup(
                                    [(SIGNALS[k][0], k) for k in SIGNALS]
                                    + [("selection", SELECTION_ROW)],
                                    value=list(rexport.FigureOptions().signals),
                                    label="panels (figures, HTML)",
                                )
                            with gr.Row():
                                width_in = gr.Number(
                                    value=6.5, label="width (inches)", minimum=1, maximum=40
                                )
                                font = gr.Dropdown(
                                    rexport.available_fonts(), value="DejaVu Sans", label="font"
                                )
                                font_size = gr.Number(
                                    value=9, label="font size (pt)", minimum=3, maximum=72
                                )
                                dpi = gr.Number(
                                    value=300,
                                    precision=0,
                                    label="dpi (PNG)",
                                    minimum=30,
                                    maximum=1200,
                                )
                            with gr.Row():
                                cmap = gr.Dropdown(
                                    list(COLORMAPS), value="cividis", label="colour map"
                                )
                                latex_signal = gr.Dropdown(
                                    [(SIGNALS[k][0], k) for k in SIGNALS]
                                    + [("selection", SELECTION_ROW)],
                                    value="score",
                                    label="LaTeX colours by",
                                )
                                legend = gr.Checkbox(value=True, label="legend")
                                colorbar = gr.Checkbox(value=True, label="colour bar")
                            with gr.Row():
                                export_btn = gr.Button("Export", elem_id="vv-export")
                                load_btn = gr.UploadButton(
                                    "Load a saved analysis (.json)",
                                    file_types=[".json"],
                                    elem_id="vv-load",
                                )
                            export_file = gr.File(
                                label="Download", interactive=False, elem_id="vv-export-file"
                            )

            with gr.Tab("Compare", id="compare"):
                gr.Markdown(
                    "Two analyses of the same image and question (inputs and settings of the "
                    "Analyze tab) that differ in one thing. Score types re-score the current "
                    "analysis; counterfactual modes and models run the model twice on the same "
                    "response, so the selections line up token by token."
                )
                with gr.Row():
                    compare_what = gr.Radio(
                        list(h.COMPARE_MODES), value="score type", label="compare"
                    )
                    compare_a = gr.Dropdown(
                        list(SCORE_TYPES), value="D", label="A", allow_custom_value=True
                    )
                    compare_b = gr.Dropdown(
                        list(SCORE_TYPES), value="entropy", label="B", allow_custom_value=True
                    )
                    compare_btn = gr.Button("Compare", variant="primary", elem_id="vv-compare")
                compare_summary = gr.Markdown()
                compare_plot = gr.Plot(label="Selection difference", elem_id="vv-compare-diff")
                with gr.Row():
                    compare_a_plot = gr.Plot(label="A")
                    compare_b_plot = gr.Plot(label="B")

            with gr.Tab("Batch", id="batch"):
                gr.Markdown(
                    "Score many examples with the Analyze tab's model and settings: the built-in "
                    "suite, or a JSONL (one object per line: `image`, `question`, optional "
                    "`response`, `family`, `id`) uploaded together with its images."
                )
                with gr.Row():
                    batch_source = gr.Radio(
                        list(hbatch.SOURCES), value="built-in suite", label="data"
                    )
                    batch_n = gr.Slider(1, 50, value=2, step=1, label="examples per family (suite)")
                    from vepo_viz.tasks import FAMILIES

                    batch_families = gr.CheckboxGroup(
                        list(FAMILIES), value=list(FAMILIES), label="families (suite)"
                    )
                batch_files = gr.File(
                    label="JSONL + images",
                    file_count="multiple",
                    file_types=[".jsonl", "image"],
                )
                batch_btn = gr.Button("Run batch", variant="primary", elem_id="vv-batch")
                batch_status = gr.Markdown()
                batch_table = gr.Dataframe(label="Per family", interactive=False)
                with gr.Row():
                    batch_scatter = gr.Plot(label="Entropy vs visual sensitivity (all tokens)")
                    batch_bars = gr.Plot(label="Low-entropy share of each selection")
                batch_file = gr.File(label="Per-token scores (Parquet)", interactive=False)

            with gr.Tab("Train", id="train"):
                _train_tab(model, tabs)

            with gr.Tab("About", id="about"):
                legend_html = "".join(
                    f'<span style="background:{CATEGORY_COLORS[c]}">{CATEGORY_LABELS[c]}</span>'
                    for c in CATEGORY_COLORS
                )
                gr.HTML(f'<p class="vv-legend">{legend_html}</p>')
                gr.Markdown(ABOUT)

        controls = [
            max_new_tokens,
            temperature,
            seed,
            cf_mode,
            sigma,
            n_draws,
            ratio,
            alpha,
            score_type,
            scope,
        ]
        view_outputs = [summary, heatmap, scatter, table, token, detail_plot]
        image_outputs = [clean_img, cf_img, image_caption]

        # ---- Analyze: model runs --------------------------------------------------------
        # Parameter names are the API's (gradio_client keyword arguments).
        @h.user_errors
        def on_analyze(
            state,
            image_path,
            question_text,
            response_text,
            model_name,
            max_new_tokens_value,
            temperature_value,
            seed_value,
            cf_mode_value,
            sigma_value,
            n_draws_value,
            ratio_value,
            alpha_value,
            score_type_value,
            scope_value,
            progress=gr.Progress(),  # noqa: B008
        ):
            controls = h.Controls(
                max_new_tokens_value,
                temperature_value,
                seed_value,
                cf_mode_value,
                sigma_value,
                n_draws_value,
                ratio_value,
                alpha_value,
                score_type_value,
                scope_value,
            )
            new, view, images = h.analyze(
                backend,
                state,
                image_path,
                question_text,
                response_text,
                model_name,
                controls,
                _progress_adapter(progress),
            )
            return (new, *_view_updates(view), *images)

        def on_auto_analyze(
            state,
            image_path,
            question_text,
            response_text,
            model_name,
            max_new_tokens_value,
            temperature_value,
            seed_value,
            cf_mode_value,
            sigma_value,
            n_draws_value,
            ratio_value,
            alpha_value,
            score_type_value,
            scope_value,
            progress=gr.Progress(),  # noqa: B008
        ):
            # Changing an input re-runs an existing analysis; before the first one it waits
            # for the Analyze button.
            if (
                state is None
                or state.current is None
                or not image_path
                or not (question_text or "").strip()
            ):
                return tuple(gr.skip() for _ in range(1 + len(view_outputs) + len(image_outputs)))
            return on_analyze(
                state,
                image_path,
                question_text,
                response_text,
                model_name,
                max_new_tokens_value,
                temperature_value,
                seed_value,
                cf_mode_value,
                sigma_value,
                n_draws_value,
                ratio_value,
                alpha_value,
                score_type_value,
                scope_value,
                progress=progress,
            )

        run_inputs = [session, image, question, response, model, *controls]
        run_outputs = [session, *view_outputs, *image_outputs]
        analyze_btn.click(
            on_analyze,
            run_inputs,
            run_outputs,
            api_name="analyze",
            concurrency_limit=1,
            concurrency_id=MODEL_QUEUE,
        )
        # Enter in the question/model box, Shift+Enter in the response box, a new upload,
        # or a released generation/counterfactual control re-runs an existing analysis.
        for event in (
            question.submit,
            response.submit,
            model.submit,
            image.upload,
            cf_mode.input,
            sigma.release,
            n_draws.release,
            max_new_tokens.release,
            temperature.release,
            seed.submit,
        ):
            event(
                h.user_errors(on_auto_analyze),
                run_inputs,
                run_outputs,
                api_visibility="private",
                concurrency_limit=1,
                concurrency_id=MODEL_QUEUE,
                trigger_mode="always_last",
            )

        # ---- Analyze: re-scoring and details (no model) ---------------------------------
        @h.user_errors
        def on_rescore(state, ratio_value, alpha_value, score_type_value, scope_value, token_index):
            if state is None or state.current is None:
                return tuple(gr.skip() for _ in range(1 + len(view_outputs)))
            new, view = h.rescore(
                state, ratio_value, alpha_value, score_type_value, scope_value, token_index
            )
            return (new, *_view_updates(view))

        for ctrl in (ratio, alpha, score_type, scope):
            ctrl.change(
                on_rescore,
                [session, ratio, alpha, score_type, scope, token],
                [session, *view_outputs],
                api_name="rescore" if ctrl is ratio else None,
                api_visibility="public" if ctrl is ratio else "private",
                trigger_mode="always_last",
                concurrency_limit=None,
            )

        token.input(
            h.user_errors(h.detail),
            [session, token],
            detail_plot,
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

        token_click.change(
            on_click,
            [session, token_click],
            [token, detail_plot],
            api_visibility="private",
            concurrency_limit=None,
        )

        def on_table_select(state, evt: gr.SelectData):
            index = h.token_from_table(state, getattr(evt, "row_value", None))
            if index is None:
                return gr.skip(), gr.skip()
            return index, h.detail(state, index)

        table.select(
            on_table_select,
            [session],
            [token, detail_plot],
            api_visibility="private",
            concurrency_limit=None,
        )

        # ---- export, save, load ----------------------------------------------------------
        @h.user_errors
        def on_export(
            state,
            export_format,
            panel_names,
            width_inches,
            font_family,
            font_size_pt,
            dpi_value,
            colormap,
            show_legend,
            show_colorbar,
            latex_colours_by,
        ):
            return h.export_file(
                state,
                export_format,
                signals=panel_names,
                width_in=width_inches,
                font_family=font_family,
                font_size=font_size_pt,
                dpi=dpi_value,
                cmap=colormap,
                legend=show_legend,
                colorbar=show_colorbar,
                latex_signal=latex_colours_by,
            )

        export_btn.click(
            on_export,
            [
                session,
                export_fmt,
                panels,
                width_in,
                font,
                font_size,
                dpi,
                cmap,
                legend,
                colorbar,
                latex_signal,
            ],
            export_file,
            api_name="export",
            concurrency_limit=4,
        )

        @h.user_errors
        def on_load(file):
            path = getattr(file, "name", file)
            new, view, images = h.load_session(path)
            from vepo_viz.render.data import scoring_of
            from vepo_viz.render.images import perturb_config_of

            sc = scoring_of(new.current)
            cf = perturb_config_of(new.current)
            gen = new.current.settings
            return (
                new,
                *_view_updates(view),
                *images,
                new.current.question,
                new.current.response if not new.current.generated else "",
                sc["ratio"],
                sc["alpha"],
                sc["score_type"],
                sc["scope"],
                cf.mode,
                cf.sigma,
                cf.n_draws,
                gen.get("max_new_tokens", 64),
                gen.get("temperature", 1.0),
                gen.get("seed", 0),
                new.current.model_id or EMBEDDED,
            )

        load_btn.upload(
            on_load,
            load_btn,
            [
                session,
                *view_outputs,
                *image_outputs,
                question,
                response,
                ratio,
                alpha,
                score_type,
                scope,
                cf_mode,
                sigma,
                n_draws,
                max_new_tokens,
                temperature,
                seed,
                model,
            ],
            api_name="load",
            concurrency_limit=4,
        )

        # ---- Compare -----------------------------------------------------------------------
        def on_compare_what(what):
            if what == "score type":
                return gr.update(choices=list(SCORE_TYPES), value="D"), gr.update(
                    choices=list(SCORE_TYPES), value="entropy"
                )
            if what == "counterfactual mode":
                return gr.update(choices=list(MODES), value="gaussian"), gr.update(
                    choices=list(MODES), value="no_image"
                )
            return gr.update(choices=[EMBEDDED], value=EMBEDDED), gr.update(
                choices=[EMBEDDED], value=EMBEDDED
            )

        compare_what.change(
            on_compare_what, compare_what, [compare_a, compare_b], api_visibility="private"
        )

        @h.user_errors
        def on_compare(
            state,
            what,
            a,
            b,
            image_path,
            question_text,
            response_text,
            model_name,
            max_new_tokens_value,
            temperature_value,
            seed_value,
            cf_mode_value,
            sigma_value,
            n_draws_value,
            ratio_value,
            alpha_value,
            score_type_value,
            scope_value,
            progress=gr.Progress(),  # noqa: B008
        ):
            return h.compare(
                backend,
                state,
                what,
                a,
                b,
                image_path,
                question_text,
                response_text,
                model_name,
                h.Controls(
                    max_new_tokens_value,
                    temperature_value,
                    seed_value,
                    cf_mode_value,
                    sigma_value,
                    n_draws_value,
                    ratio_value,
                    alpha_value,
                    score_type_value,
                    scope_value,
                ),
                _progress_adapter(progress),
            )

        compare_btn.click(
            on_compare,
            [
                session,
                compare_what,
                compare_a,
                compare_b,
                image,
                question,
                response,
                model,
                *controls,
            ],
            [compare_summary, compare_plot, compare_a_plot, compare_b_plot],
            api_name="compare",
            concurrency_limit=1,
            concurrency_id=MODEL_QUEUE,
        )

        # ---- Batch ---------------------------------------------------------------------------
        @h.user_errors
        def on_batch(
            source,
            n_per_family,
            families,
            files,
            model_name,
            max_new_tokens_value,
            temperature_value,
            seed_value,
            cf_mode_value,
            sigma_value,
            n_draws_value,
            ratio_value,
            alpha_value,
            score_type_value,
            scope_value,
            progress=gr.Progress(),  # noqa: B008
        ):
            settings = h.Controls(
                max_new_tokens_value,
                temperature_value,
                seed_value,
                cf_mode_value,
                sigma_value,
                n_draws_value,
                ratio_value,
                alpha_value,
                score_type_value,
                scope_value,
            ).settings()
            if source == "uploaded JSONL":
                paths = [getattr(f, "name", f) for f in (files or [])]
                rows = hbatch.jsonl_rows(paths)
            else:
                n = h._int("examples per family", n_per_family, 1, 200)
                rows = hbatch.suite_rows(n, list(families or []))
            finished, failures = hbatch.run_batch(
                backend, rows, model_name, settings, _progress_adapter(progress)
            )
            status = f"Scored {len(finished)} of {len(rows)} examples."
            if failures:
                listed = "; ".join(f"`{key}`: {message}" for key, message in failures[:5])
                more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
                status += f" {len(failures)} failed: {listed}{more}."
            tokens, table_df, figs = hbatch.summarize(finished)
            return (
                status,
                table_df,
                figs["scatter"],
                figs["low_entropy"],
                hbatch.write_parquet(tokens),
            )

        batch_btn.click(
            on_batch,
            [batch_source, batch_n, batch_families, batch_files, model, *controls],
            [batch_status, batch_table, batch_scatter, batch_bars, batch_file],
            api_name="batch",
            concurrency_limit=1,
            concurrency_id=MODEL_QUEUE,
        )
    return demo


def launch_kwargs(max_file_size: str | int = MAX_FILE_SIZE) -> dict[str, Any]:
    """Styling and upload-limit arguments of demo.launch() (gradio 6 takes css, head and
    theme at launch)."""
    css_path = ASSETS / "app.css"
    return {
        "css": css_path.read_text() if css_path.is_file() else None,
        "head": CLICK_JS,
        "theme": gr.themes.Soft(primary_hue="orange", secondary_hue="sky"),
        "max_file_size": max_file_size,
    }
