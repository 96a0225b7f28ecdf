"""The Train tab's "Selection traces" panel: what did step N train on?

Runs trained with `trace_every` keep a few completions per traced step in
<run>/traces/ (vepo_viz.train.traces). Pick a run and one of its traced steps to see each
completion as the Analyze tab's token heatmap (vepo_viz.render.figures.token_heatmap),
and a second run to see its trace of the same step beside it. The handlers are plain
functions over the run folders, testable without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from vepo_viz.render import figures as rfig
from vepo_viz.train.jobs import list_runs
from vepo_viz.train.traces import load_trace_rows, trace_steps
from vepo_viz.ui.errors import user_errors

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

SLOTS = 4
"""Heatmaps shown per run (a trace's first SLOTS completions)."""

NONE = "(none)"
"""The second run picker's "no comparison" entry."""


@dataclass
class TracesPanel:
    """The components of the panel (for wiring and tests)."""

    run: gr.Dropdown
    step: gr.Dropdown
    other: gr.Dropdown
    refresh: gr.Button
    info: gr.Markdown
    plots: list[gr.Plot]
    other_info: gr.Markdown
    other_plots: list[gr.Plot]


# ---- handlers (plain functions) ---------------------------------------------------


def traced_runs(runs_root: str | Path) -> list[str]:
    """Names of the runs under `runs_root` that have at least one trace, newest first."""
    return [p.name for p in list_runs(runs_root) if trace_steps(p)]


def _run_dir(runs_root: str | Path, run: str | None) -> Path | None:
    """The folder of run `run` if it is one of the runs under `runs_root` (never a path
    a request made up)."""
    if not run or run == NONE:
        return None
    known = {p.name: p for p in list_runs(runs_root)}
    return known.get(run)


def steps_of(runs_root: str | Path, run: str | None) -> list[int]:
    """Traced steps of `run`, ascending ([] for no or an unknown run)."""
    folder = _run_dir(runs_root, run)
    return trace_steps(folder) if folder is not None else []


def trace_heatmaps(
    runs_root: str | Path, run: str | None, step: int | str | None, slots: int = SLOTS
) -> tuple[str, list[Any]]:
    """(caption, heatmap figures) of `run`'s trace at `step`: one figure per completion,
    at most `slots`."""
    folder = _run_dir(runs_root, run)
    if folder is None:
        return ("" if not run or run == NONE else f"no run named {run!r}"), []
    steps = trace_steps(folder)
    if not steps:
        return f"**{run}** has no selection traces (train with trace_every > 0)", []
    if step in (None, ""):
        return f"**{run}**: pick a step ({_list(steps)})", []
    step = int(step)
    if step not in steps:
        return f"**{run}** has no trace at step {step}; its traced steps: {_list(steps)}", []
    rows = load_trace_rows(folder, step)
    figures = [
        rfig.token_heatmap(analysis, title=_title(meta, analysis)) for meta, analysis in rows
    ]
    return _caption(run, step, rows, slots), figures[:slots]


def side_by_side(
    runs_root: str | Path,
    run: str | None,
    other: str | None,
    step: int | str | None,
    slots: int = SLOTS,
) -> tuple[str, list[Any], str, list[Any]]:
    """(caption, figures) of `run` at `step`, then of `other` at the same step."""
    left = trace_heatmaps(runs_root, run, step, slots)
    right = trace_heatmaps(runs_root, other, step, slots)
    return left[0], left[1], right[0], right[1]


def _list(steps: list[int], most: int = 12) -> str:
    shown = ", ".join(str(s) for s in steps[:most])
    return shown + (f", ... ({len(steps)} in all)" if len(steps) > most else "")


def _title(meta: dict, analysis: TokenAnalysis) -> str:
    title = f"completion {meta.get('row', '?')}"
    if "advantage" in meta:
        title += f", advantage {meta['advantage']:+.2f}"
    return title + f": {int(analysis.selected_vepo.sum())}/{len(analysis)} selected"


def _caption(run: str, step: int, rows: list, slots: int) -> str:
    if not rows:
        return f"**{run}**, step {step}: the trace is empty"
    meta, first = rows[0]
    shown = f"{min(slots, len(rows))} of {len(rows)}" if len(rows) > slots else f"{len(rows)}"
    sc = first.settings.scoring
    text = (
        f"**{run}**, step {step}: {shown} completions, rule **{meta.get('rule', '?')}**, "
        f"score {sc.score_type}, top {sc.ratio:.0%} per {sc.scope}. The selection row "
        "compares the rule's tokens with entropy's top share."
    )
    if first.question:
        text += f"  \nquestion: {first.question}"
    if meta.get("note"):
        text += f"  \n*{meta['note']}*"
    return text


def _plot_updates(figures: list[Any], slots: int) -> list[Any]:
    return [
        gr.update(value=figures[i], visible=True) if i < len(figures) else gr.update(visible=False)
        for i in range(slots)
    ]


# ---- the panel ---------------------------------------------------------------------


def _column(label: str, prefix: str) -> tuple[gr.Markdown, list[gr.Plot]]:
    info = gr.Markdown(elem_id=f"vv-{prefix}-info")
    plots = [
        gr.Plot(label=f"{label} {i}", visible=False, elem_id=f"vv-{prefix}-{i}")
        for i in range(SLOTS)
    ]
    return info, plots


def build_traces_panel(runs_root: str | Path) -> TracesPanel:
    """Create the "Selection traces" accordion inside the enclosing Blocks and wire it."""
    runs_root = Path(runs_root)
    names = traced_runs(runs_root)
    with gr.Accordion("Selection traces", open=False, elem_id="vv-traces"):
        gr.Markdown(
            "What did a step train on? Runs trained with `trace_every` N keep a few "
            "completions of every N-th step with their per-token scores and selections. "
            "Pick a run and a step; pick a second run to see its trace of the same step "
            "beside it."
        )
        with gr.Row():
            run = gr.Dropdown(names, value=None, label="run", elem_id="vv-traces-run", scale=3)
            step = gr.Dropdown([], value=None, label="step", elem_id="vv-traces-step", scale=1)
            other = gr.Dropdown(
                [NONE, *names],
                value=NONE,
                label="compare with run",
                elem_id="vv-traces-other",
                scale=3,
            )
            refresh = gr.Button("Refresh", scale=1, elem_id="vv-traces-refresh")
        with gr.Row(equal_height=False):
            with gr.Column():
                info, plots = _column("completion", "traces-a")
            with gr.Column():
                other_info, other_plots = _column("other run's completion", "traces-b")

    @user_errors
    def on_show(run_name, step_value, other_name):
        a, figs_a, b, figs_b = side_by_side(runs_root, run_name, other_name, step_value)
        return [a, *_plot_updates(figs_a, SLOTS), b, *_plot_updates(figs_b, SLOTS)]

    @user_errors
    def on_run(run_name, step_value):
        steps = steps_of(runs_root, run_name)
        keep = step_value if step_value in steps else (steps[-1] if steps else None)
        return gr.update(choices=steps, value=keep)

    @user_errors
    def on_rescan(run_name, other_name):
        found = traced_runs(runs_root)
        return (
            gr.update(choices=found, value=run_name if run_name in found else None),
            gr.update(choices=[NONE, *found], value=other_name if other_name in found else NONE),
        )

    shown = [info, *plots, other_info, *other_plots]
    picks = [run, step, other]
    run.change(on_run, inputs=[run, step], outputs=[step], api_name="trace_steps").then(
        on_show, inputs=picks, outputs=shown, api_name=False
    )
    step.change(on_show, inputs=picks, outputs=shown, api_name="trace_show")
    other.change(on_show, inputs=picks, outputs=shown, api_name=False)
    refresh.click(on_rescan, inputs=[run, other], outputs=[run, other], api_name="trace_runs").then(
        on_run, inputs=[run, step], outputs=[step], api_name=False
    )
    return TracesPanel(run, step, other, refresh, info, plots, other_info, other_plots)
