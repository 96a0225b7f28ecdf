"""The Gradio app: Analyze, Group, Compare, Batch, Train and About tabs, one module each.

`build_app(backend)` lays out the tabs (vepo_viz.ui.analyze_tab, compare_tab, batch_tab,
train_tab, about_tab), each wiring its own events to plain handlers. Model work
(Analyze, Compare, Batch) shares one queue slot (concurrency_id "model", limit 1), so
one analysis runs at a time; re-scoring, token details and exports never touch the model
and run beside it. Per-session data lives in a gr.State (a `Session`: analyses, no
tensors); its files are deleted when the session ends (vepo_viz.ui.tempfiles). A `ServingPolicy` (vepo_viz.ui.policy) says which models a user may choose and
whether the Train tab may start processes; the default allows everything (this machine).
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from vepo_viz.train.app_runs import RunLimits
from vepo_viz.train.jobs import DEFAULT_RUNS_ROOT
from vepo_viz.ui import tempfiles
from vepo_viz.ui.about_tab import build_about_tab
from vepo_viz.ui.analyze_tab import build_analyze_tab
from vepo_viz.ui.backend import EMBEDDED, Backend, ModelBackend
from vepo_viz.ui.batch_tab import build_batch_tab
from vepo_viz.ui.compare_tab import build_compare_tab
from vepo_viz.ui.events import MODEL_QUEUE
from vepo_viz.ui.group_tab import build_group_tab
from vepo_viz.ui.policy import PolicyBackend, ServingPolicy
from vepo_viz.ui.samples import Sample, load_samples
from vepo_viz.ui.train_tab import build_train_tab

log = logging.getLogger("vepo_viz.ui")

ASSETS = Path(__file__).resolve().parents[2] / "assets"

MAX_FILE_SIZE = "25mb"
"""Largest upload the server accepts (images, JSONL, saved analyses)."""

__all__ = ["MAX_FILE_SIZE", "MODEL_QUEUE", "build_app", "launch_kwargs"]

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


def _end_session(request: gr.Request) -> None:
    """A closed tab: delete the files made for its session (vepo_viz.ui.tempfiles)."""
    tempfiles.end_session(getattr(request, "session_hash", None), tempfiles.END_GRACE_S)


def build_app(
    backend: Backend | None = None,
    samples: list[Sample] | None = None,
    default_model: str = EMBEDDED,
    policy: ServingPolicy | None = None,
    run_limits: RunLimits | None = None,
    runs_root: str | Path | None = None,
) -> gr.Blocks:
    """The app as a gr.Blocks (not launched). `backend` defaults to the real models,
    `policy` to this machine's (any model, training allowed), `run_limits` (the Train
    tab's train.app_runs.RunLimits) to its defaults, `runs_root` (the Train tab's runs
    folder) to train.jobs.DEFAULT_RUNS_ROOT."""
    policy = policy or ServingPolicy()
    backend = backend or ModelBackend()
    if policy.models is not None:
        backend = PolicyBackend(backend, policy)
    samples = load_samples() if samples is None else samples

    with gr.Blocks(
        title="vepo-viz: which tokens look at the image?", delete_cache=tempfiles.CACHE_CLEANUP
    ) as demo:
        session = gr.State(None)
        demo.unload(_end_session)
        logo = (ASSETS / "logo.svg").read_text() if (ASSETS / "logo.svg").is_file() else ""
        gr.HTML(
            f'<div id="vv-header">{logo}<p>Which tokens of a VLM\'s answer look at the image, '
            "and which ones does RL train on? Entropy-only (80/20) vs VEPO token selection, "
            "per token.</p></div>"
        )
        if policy.warning:
            banner = f'<div role="alert">&#9888; {html.escape(policy.warning)}</div>'
            gr.HTML(banner, elem_id="vv-warning")
        with gr.Tabs() as tabs:
            with gr.Tab("Analyze", id="analyze"):
                analyze = build_analyze_tab(backend, samples, default_model, session)
            with gr.Tab("Group", id="group"):
                limits = getattr(backend, "limits", None)
                build_group_tab(backend, samples, analyze.model, getattr(limits, "max_group", 16))
            with gr.Tab("Compare", id="compare"):
                build_compare_tab(analyze, backend)
            with gr.Tab("Batch", id="batch"):
                build_batch_tab(analyze, backend)
            with gr.Tab("Train", id="train"):
                build_train_tab(
                    model_box=analyze.model,
                    tabs=tabs,
                    runs_root=DEFAULT_RUNS_ROOT if runs_root is None else runs_root,
                    policy=policy,
                    run_limits=run_limits,
                )
            with gr.Tab("About", id="about"):
                build_about_tab(policy)
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
