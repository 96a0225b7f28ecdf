"""The Group tab: one GRPO step on one prompt, token by token (vepo_viz.group).

Sample G responses (one model call, queued with the other model work), verify them
against the answer (a suite sample's own, or typed), and show each response's tokens
coloured by the signed credit A_i x w_t of two methods side by side. Changing a method,
the ratio or the loss mode re-scores the stored group without the model. The group
exports as a figure (PDF/SVG/PNG), LaTeX or JSON, and a saved JSON loads back.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from vepo_viz.errors import VepoInputError
from vepo_viz.group import SCALE_REWARDS, GroupAnalysis, suite_example
from vepo_viz.render.group import DEFAULT_METHODS, group_html, group_latex, save_group_figure
from vepo_viz.scoring import ScoringConfig
from vepo_viz.train.rules import RULES
from vepo_viz.ui import tempfiles
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.events import MODEL_QUEUE, progress_adapter
from vepo_viz.ui.samples import Sample

EXPORTS: tuple[str, ...] = ("pdf", "svg", "png", "tex", "json")
DEFAULT_GROUP = 8
DEFAULT_TEMPERATURE = 1.0
"""TRL's GRPOConfig default temperature (the Train tab's runs default to 1.3)."""

EMPTY = '<div id="vv-group-view"><p>Pick a sample (or an image and a question), then Analyze group.</p></div>'


def _sample_fields(samples: list[Sample], sample_id: str | None):
    sample = next((s for s in samples if s.id == sample_id), None)
    if sample is None:
        return gr.update(), gr.update(), gr.update(), ""
    return sample.image_path, sample.question, sample.answer, sample.suite_ref


def _example_for(ref: str, question: str):
    """The suite example of `ref` when the question is still its own (else None)."""
    if not ref:
        return None
    example = suite_example(ref)
    return example if example.question == (question or "").strip() else None


def _render(group: GroupAnalysis | None, method_a: str, method_b: str, ratio, loss_mode) -> str:
    if group is None:
        return EMPTY
    return group_html(group, (method_a, method_b), ratio=float(ratio), loss_mode=loss_mode)


def build_group_tab(
    backend: Any, samples: list[Sample], model_box: gr.components.Component, limits_max: int = 16
) -> None:
    """Lay out the Group tab (inside the enclosing gr.Tab) and wire it."""
    gr.Markdown(
        "One GRPO update on one prompt: G sampled responses, their verifier rewards, "
        "TRL's advantages, and per token the signed credit A x w each token rule applies "
        "(orange pushed down, purple pushed up). Switching a method or the ratio re-scores "
        "without the model."
    )
    state = gr.State(None)
    suite_ref = gr.Textbox(visible=False)
    with gr.Row():
        with gr.Column(scale=1):
            suite = [s for s in samples if s.suite_ref]
            sample = gr.Dropdown(
                [s.id for s in suite], value=None, label="suite sample", elem_id="vv-group-sample"
            )
            image = gr.Image(type="filepath", label="image", height=180)
            question = gr.Textbox(label="question", elem_id="vv-group-question")
            answer = gr.Textbox(
                label="reference answer (empty: rewards unknown)", elem_id="vv-group-answer"
            )
        with gr.Column(scale=1):
            size = gr.Number(
                DEFAULT_GROUP, label=f"G responses (2-{limits_max})", precision=0,
                minimum=2, maximum=limits_max, elem_id="vv-group-size",
            )  # fmt: skip
            temperature = gr.Number(DEFAULT_TEMPERATURE, label="temperature", minimum=0.01)
            seed = gr.Number(0, label="seed", precision=0, minimum=0)
            scale = gr.Radio(list(SCALE_REWARDS), value="group", label="scale_rewards (TRL)")
            run = gr.Button("Analyze group", variant="primary", elem_id="vv-group-run")
    with gr.Row():
        method_a = gr.Dropdown(RULES.choices(), value=DEFAULT_METHODS[0], label="method A",
                               elem_id="vv-group-method-a")  # fmt: skip
        method_b = gr.Dropdown(RULES.choices(), value=DEFAULT_METHODS[1], label="method B",
                               elem_id="vv-group-method-b")  # fmt: skip
        ratio = gr.Slider(0.05, 1.0, value=ScoringConfig().ratio, step=0.05, label="ratio",
                          elem_id="vv-group-ratio")  # fmt: skip
        loss_mode = gr.Radio(["mask", "weight"], value="mask", label="loss mode")
    view = gr.HTML(EMPTY, elem_id="vv-group-out")
    with gr.Row():
        fmt = gr.Dropdown(list(EXPORTS), value="pdf", label="export as", elem_id="vv-group-format")
        export = gr.Button("Export", elem_id="vv-group-export")
        exported = gr.File(label="exported file", elem_id="vv-group-file")
        load = gr.File(
            label="load a saved group (.json)", file_types=[".json"], elem_id="vv-group-load"
        )

    sample.change(
        lambda sid: _sample_fields(samples, sid), [sample], [image, question, answer, suite_ref]
    )
    render_inputs = [method_a, method_b, ratio, loss_mode]

    @user_errors
    def analyze(
        model, sid_ref, img, q, ans, g, t, s, sc, a, b, r, lm,
        progress=gr.Progress(),  # noqa: B008
    ):  # fmt: skip
        if img is None:
            raise VepoInputError("choose a suite sample or upload an image first")
        if g is None or t is None or s is None:
            raise VepoInputError("G, temperature and seed need values")
        group = backend.analyze_group(
            model, img, q, progress_adapter(progress), answer=(ans or "").strip() or None,
            group=int(g), temperature=float(t), seed=int(s), scale_rewards=sc,
            example=_example_for(sid_ref, q),
        )  # fmt: skip
        return group, _render(group, a, b, r, lm)

    run.click(
        analyze,
        [
            model_box,
            suite_ref,
            image,
            question,
            answer,
            size,
            temperature,
            seed,
            scale,
            *render_inputs,
        ],
        [state, view],
        concurrency_id=MODEL_QUEUE,
        concurrency_limit=1,
    )

    @user_errors
    def rerender(group, a, b, r, lm):
        return _render(group, a, b, r, lm)

    for control in render_inputs:
        control.change(rerender, [state, *render_inputs], [view])

    @user_errors
    def do_export(group, kind, a, b, r, lm):
        if group is None:
            raise VepoInputError("nothing to export yet: analyze a group first")
        folder = tempfiles.new_dir("group")
        path = folder / f"group.{kind}"
        args = {"ratio": float(r), "loss_mode": lm}
        if kind == "json":
            group.save(path)
        elif kind == "tex":
            path.write_text(group_latex(group, (a, b), standalone=True, **args), encoding="utf-8")
        else:
            save_group_figure(group, path, (a, b), **args)
        return str(path)

    export.click(do_export, [state, fmt, *render_inputs], [exported])

    @user_errors
    def do_load(file, a, b, r, lm):
        if file is None:
            return gr.update(), gr.update()
        group = GroupAnalysis.load(file if isinstance(file, str) else file.name)
        return group, _render(group, a, b, r, lm)

    load.upload(do_load, [load, *render_inputs], [state, view])
