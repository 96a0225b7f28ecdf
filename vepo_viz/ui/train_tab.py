"""The app's Train tab: start GRPO runs as background processes, watch and compare them.

`build_train_tab()` creates the tab's components inside the enclosing gr.Blocks/gr.Tab.
A run is `python -m vepo_viz train --config <run>/config.toml` in its own process (the
app stays responsive). The server owns those processes (vepo_viz.train.app_runs): at most
--max-runs at once, each writing only into its folder of the runs folder, stopped with a
checkpoint when the app exits unless --keep-runs. The tab polls each selected
run's metrics.jsonl and status.json every few seconds. Runs started from a terminal
under the same runs folder show up too. The handlers are thin functions over
vepo_viz.train.jobs, testable without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from vepo_viz.errors import VepoError
from vepo_viz.scoring import SCORE_TYPES
from vepo_viz.train.app_runs import AppRuns, RunLimits
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.curves import plotly_curves
from vepo_viz.train.jobs import (
    DEFAULT_RUNS_ROOT,
    RunPaths,
    list_runs,
    openable_model,
    read_metrics,
    run_summary,
    stop_run,
)
from vepo_viz.train.rules import RULES, vepo_score_type
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.policy import REFUSED_TRAIN, ServingPolicy
from vepo_viz.ui.traces_panel import build_traces_panel
from vepo_viz.ui.train_form import form_config, start_from_form  # noqa: F401 - form_config re-exported

_DEFAULTS = TrainConfig()
"""The form starts at TrainConfig's defaults (a run that learns on the embedded model)."""

POLL_S = 3.0
"""Seconds between refreshes of the curves and the run table (only while a run shown in
the table is starting or running; selecting runs or pressing Refresh re-checks)."""

LOG_LINES = 15
"""Lines of the first selected run's log shown under the curves."""

TABLE_COLUMNS = ["run", "state", "step", "reward", "signal_groups", "heldout_acc"]
"""signal_groups: share of the latest step's groups whose sampled rewards differ (nonzero
advantage: what GRPO can learn from); 0 means that step had nothing to learn."""


@dataclass
class TrainTab:
    """The components of the tab (for wiring and tests)."""

    name: gr.Textbox
    model: gr.Textbox
    selection: gr.Dropdown
    score_type: gr.Dropdown
    ratio: gr.Slider
    steps: gr.Number
    prompts_per_step: gr.Number
    group_size: gr.Number
    lr: gr.Number
    seed: gr.Number
    families: gr.CheckboxGroup
    difficulty: gr.Slider
    extra: gr.Textbox
    start: gr.Button
    runs: gr.Dropdown
    refresh: gr.Button
    table: gr.Dataframe
    stop: gr.Button
    open_analyze: gr.Button
    message: gr.Markdown
    curves: gr.Plot
    log: gr.Textbox
    timer: gr.Timer
    advice: gr.Markdown | None = None
    """The zero-advantage warning of the selected runs (empty when they learn)."""


# ---- handlers (plain functions) ---------------------------------------------------


def run_names(runs_root: str | Path) -> list[str]:
    return [p.name for p in list_runs(runs_root)]


def runs_table(runs_root: str | Path, selected: list[str] | None = None) -> pd.DataFrame:
    """Status of every run (selected ones first)."""
    names = run_names(runs_root)
    chosen = [n for n in (selected or []) if n in names]
    order = chosen + [n for n in names if n not in chosen]
    rows = [run_summary(Path(runs_root) / n) for n in order]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def curves_figure(runs_root: str | Path, selected: list[str] | None, smooth: int = 1):
    frames = {n: read_metrics(Path(runs_root) / n) for n in (selected or [])}
    return plotly_curves(frames, smooth=smooth)


def log_tail(runs_root: str | Path, selected: list[str] | None, n_lines: int = LOG_LINES) -> str:
    if not selected:
        return ""
    path = RunPaths(Path(runs_root) / selected[0]).log
    try:
        lines = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return f"(no log for {selected[0]}: started from a terminal?)"
    lines = [ln for ln in lines if ln.strip() and "Writing model shards" not in ln]
    return "\n".join(lines[-n_lines:])


def advice_text(runs_root: str | Path, selected: list[str] | None) -> str:
    """The warnings of each selected run (train.advice): most groups of its latest steps
    with equal rewards, or held-out accuracy fallen below its start; one line each, ""
    when none."""
    from vepo_viz.train.advice import heldout_drop_warning, zero_advantage_warning

    lines = []
    for name in selected or []:
        metrics = read_metrics(Path(runs_root) / name)
        for warning in (zero_advantage_warning(metrics), heldout_drop_warning(metrics)):
            if warning:
                lines.append(f"**{name}** {warning}")
    return "  \n".join(lines)


def stop_selected(runs_root: str | Path, selected: list[str] | None) -> str:
    if not selected:
        return "select a run to stop"
    names = run_names(runs_root)  # a client's name is only a key into the runs folder
    return "  \n".join(
        stop_run(Path(runs_root) / n) if n in names else f"no run named {n!r}" for n in selected
    )


def analyze_target(runs_root: str | Path, selected: list[str] | None) -> tuple[str | None, str]:
    """(model folder to open, message) for the first selected run."""
    if not selected:
        return None, "select a run first"
    folder = openable_model(Path(runs_root) / selected[0])
    if folder is None:
        return None, f"{selected[0]} has no checkpoint yet"
    return str(folder), f"opened **{folder}** in the Analyze tab (press Analyze there)"


# ---- layout ---------------------------------------------------------------------


def _new_run_form() -> tuple[list[Any], gr.Button]:
    """The "New run" accordion: (its fields in form_config's order, the start button)."""
    from vepo_viz.tasks import FAMILIES

    with gr.Accordion("New run", open=True):
        name = gr.Textbox(label="run name", value="vepo-seed0", elem_id="vv-train-name")
        model = gr.Textbox(
            label="model",
            value="tiny",
            info="'tiny' (embedded), a folder or a hub id (LoRA above 200M parameters)",
        )
        selection = gr.Dropdown(
            RULES.choices(),
            value=RULES.reference,
            label="token selection",
            info="; ".join(f"{r.name}: {r.description}" for r in RULES.entries()),
            elem_id="vv-train-selection",
        )
        score_type = gr.Dropdown(
            SCORE_TYPES.choices(vepo_score_type),
            value=SCORE_TYPES.reference,
            label="VEPO score type (vepo rule only)",
        )
        ratio = gr.Slider(
            0.05, 1.0, value=_DEFAULTS.scoring.ratio, step=0.05, label="ratio of tokens trained on"
        )
        with gr.Row():
            steps = gr.Number(
                value=_DEFAULTS.steps,
                label="steps",
                precision=0,
                minimum=1,
                elem_id="vv-train-steps",
            )
            seed = gr.Number(value=_DEFAULTS.seed, label="seed", precision=0, minimum=0)
        with gr.Row():
            prompts_per_step = gr.Number(
                value=_DEFAULTS.prompts_per_step, label="prompts / step", precision=0
            )
            group_size = gr.Number(value=_DEFAULTS.group_size, label="group size G", precision=0)
        lr = gr.Number(value=_DEFAULTS.lr, label="learning rate")
        families = gr.CheckboxGroup(
            list(FAMILIES), value=list(_DEFAULTS.families or FAMILIES), label="task families"
        )
        difficulty = gr.Slider(0.0, 1.0, value=_DEFAULTS.difficulty, step=0.05, label="difficulty")
        extra = gr.Textbox(
            label="more settings (TOML, any TrainConfig field)",
            lines=3,
            placeholder='kl_beta = 0.01\nloss_mode = "weight"\nthreads = 1',
            elem_id="vv-train-extra",
        )
        start = gr.Button("Start run", variant="primary", elem_id="vv-train-start")
    for box in (steps, seed, prompts_per_step, group_size):
        box.precision = None  # whole numbers are checked by form_config, never rounded (1.5)
    form = [
        name,
        model,
        selection,
        score_type,
        ratio,
        steps,
        prompts_per_step,
        group_size,
        lr,
        seed,
        families,
        difficulty,
        extra,
    ]
    return form, start


def _runs_column(runs_root: Path) -> tuple[Any, ...]:
    """(runs, refresh, table, stop, open_analyze, message, curves, log) of the run list."""
    names = run_names(runs_root)
    with gr.Row():
        runs = gr.Dropdown(
            names,
            value=names[:1],
            multiselect=True,
            label="runs (select several to overlay)",
            scale=4,
            elem_id="vv-train-runs",
        )
        refresh = gr.Button("Refresh", scale=1)
    table = gr.Dataframe(
        value=runs_table(runs_root, names[:1]),
        headers=TABLE_COLUMNS,
        interactive=False,
        label="runs",
        elem_id="vv-train-table",
    )
    with gr.Row():
        stop = gr.Button("Stop", variant="stop", elem_id="vv-train-stop")
        open_analyze = gr.Button("Open in Analyze", elem_id="vv-train-open")
    message = gr.Markdown(elem_id="vv-train-message")
    advice = gr.Markdown(elem_id="vv-train-advice")
    curves = gr.Plot(label="curves", elem_id="vv-train-curves")
    log = gr.Textbox(label="log (first selected run)", lines=6, max_lines=6, interactive=False)
    return runs, refresh, table, stop, open_analyze, message, curves, log, advice


def build_train_tab(
    model_box: gr.Textbox | None = None,
    tabs: gr.Tabs | None = None,
    runs_root: str | Path = DEFAULT_RUNS_ROOT,
    policy: ServingPolicy | None = None,
    run_limits: RunLimits | None = None,
) -> TrainTab:
    """Create the Train tab's components inside the enclosing Blocks/Tab and wire them.

    model_box / tabs: the Analyze tab's model textbox and the app's gr.Tabs; when given,
    "Open in Analyze" writes the run's model folder into the box and switches tabs.
    policy: what the server allows (default: this machine's, training allowed); without
    allow_train, Start and Stop are refused (the runs stay visible).
    run_limits: how many runs may run at once and whether they outlive the app (default:
    app_runs.RunLimits()).
    """
    policy = policy or ServingPolicy()
    runs_root = Path(runs_root)
    app_runs = AppRuns(runs_root, run_limits)
    gr.Markdown(
        "Train a model with GRPO that updates only the selected tokens, in a background "
        "process. Compare rules under identical settings: give each run its own name and the "
        "same seed, select several runs to overlay their curves. Runs started with "
        f"`vepo-viz train --out {runs_root}/NAME` appear here too. In the runs table, "
        "`signal_groups` is the share of the latest step's groups whose sampled answers got "
        "different rewards: GRPO learns only from those."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            form, start = _new_run_form()
        with gr.Column(scale=2, min_width=400):
            column = _runs_column(runs_root)
            runs, refresh, table, stop, open_analyze, message, curves, log, advice = column
    build_traces_panel(runs_root)  # "Selection traces": what a step trained on
    # Active at first: its first tick after page load draws the curves, then it stays on
    # only while a run is live.
    timer = gr.Timer(POLL_S, active=True)
    if not policy.allow_train:
        gr.Markdown(f"**{REFUSED_TRAIN}.**", elem_id="vv-train-off")
        start.interactive = False

    @user_errors
    def on_start(*values):
        try:
            text, chosen = start_from_form(runs_root, *values, policy=policy, runs=app_runs)
        except VepoError as error:
            return f"**not started:** {error}", gr.update()
        return text, gr.update(choices=run_names(runs_root), value=chosen)

    def on_refresh(selected):
        selected = [s for s in (selected or []) if s in run_names(runs_root)]
        table = runs_table(runs_root, selected)
        live = any(table["state"].isin(["starting", "running"]))
        return (
            table,
            curves_figure(runs_root, selected),
            log_tail(runs_root, selected),
            gr.Timer(active=live),  # poll only while something runs
        )

    def on_rescan(selected):
        names = run_names(runs_root)
        return gr.update(choices=names, value=[s for s in (selected or []) if s in names])

    start.click(on_start, inputs=form, outputs=[message, runs])
    outputs = [table, curves, log, timer]
    runs.change(on_refresh, inputs=[runs], outputs=outputs)
    refresh.click(on_rescan, inputs=[runs], outputs=[runs]).then(
        on_refresh, inputs=[runs], outputs=outputs
    )
    timer.tick(on_refresh, inputs=[runs], outputs=outputs, show_progress="hidden")
    for event in (runs.change, timer.tick):  # the warning beside the curves
        event(
            lambda s: advice_text(runs_root, s),
            inputs=[runs],
            outputs=[advice],
            show_progress="hidden",
            api_name=False,
        )

    def stop_checked(selected):
        policy.check_train()
        return stop_selected(runs_root, selected)

    # (a lambda: the event's API name stays "lambda")
    stop.click(
        user_errors(lambda s: stop_checked(s)), inputs=[runs], outputs=[message], api_name="stop"
    )

    def on_open(selected):
        folder, text = analyze_target(runs_root, selected)
        if folder is None or model_box is None:
            return text, gr.update(), gr.update()
        return text, folder, gr.Tabs(selected="analyze") if tabs is not None else gr.update()

    open_outputs = [message, model_box or gr.State(), tabs or gr.State()]
    open_analyze.click(on_open, inputs=[runs], outputs=open_outputs)

    return TrainTab(
        *form,  # the form's fields come first, in the same order
        start,
        runs,
        refresh,
        table,
        stop,
        open_analyze,
        message,
        curves,
        log,
        timer,
        advice,
    )
