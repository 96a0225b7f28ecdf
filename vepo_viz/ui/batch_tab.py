"""The Batch tab: score the built-in suite or an uploaded JSONL with the Analyze tab's
model and settings, aggregate per family, download the per-token Parquet.

The data handling is vepo_viz.ui.batch (the same format and aggregates as
`vepo-viz batch`); this module lays out the tab and wires it.
"""

from __future__ import annotations

import gradio as gr

from vepo_viz.batch_tokens import tab_outputs
from vepo_viz.ui import batch as hbatch
from vepo_viz.ui.analyze_tab import AnalyzeTab
from vepo_viz.ui.backend import Backend
from vepo_viz.ui.controls import ControlValues, whole_number
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.events import MODEL_QUEUE, progress_adapter


def batch_status(n_rows: int, finished: list, failures: list[tuple[str, str]]) -> str:
    """ "Scored m of n examples." and the first failures."""
    status = f"Scored {len(finished)} of {n_rows} examples."
    if failures:
        listed = "; ".join(f"`{key}`: {message}" for key, message in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        status += f" {len(failures)} failed: {listed}{more}."
    return status


def build_batch_tab(analyze: AnalyzeTab, backend: Backend) -> None:
    """Lay out the Batch tab (inside the enclosing gr.Tab) and wire it."""
    from vepo_viz.tasks import FAMILIES

    gr.Markdown(
        "Score many examples with the Analyze tab's model and settings: the built-in "
        "suite, or a JSONL (one object per line: `image`, `question`, optional "
        "`response`, `family`, `id`) uploaded together with its images."
    )
    with gr.Row():
        source = gr.Radio(list(hbatch.SOURCES), value=hbatch.SOURCES[0], label="data")
        n_per_family = gr.Slider(1, 50, value=2, step=1, label="examples per family (suite)")
        families = gr.CheckboxGroup(list(FAMILIES), value=list(FAMILIES), label="families (suite)")
    files = gr.File(label="JSONL + images", file_count="multiple", file_types=[".jsonl", "image"])
    button = gr.Button("Run batch", variant="primary", elem_id="vv-batch")
    status = gr.Markdown()
    table = gr.Dataframe(label="Per family", interactive=False)
    with gr.Row():
        scatter = gr.Plot(label="Entropy vs visual sensitivity (all tokens)")
        bars = gr.Plot(label="Low-entropy share of each selection")
    parquet = gr.File(label="Per-token scores (Parquet)", interactive=False)
    picks = _token_picks_outputs()

    @user_errors
    def on_batch(
        source,
        n_per_family,
        families,
        files,
        model_name,
        progress=gr.Progress(),  # noqa: B008
        **settings,
    ):
        analysis_settings = ControlValues.from_api(settings).settings()
        if source == "uploaded JSONL":
            rows = hbatch.jsonl_rows([getattr(f, "name", f) for f in (files or [])])
        else:
            n = whole_number("examples per family", n_per_family, 1, 200)
            rows = hbatch.suite_rows(n, list(families or []))
        finished, failures = hbatch.run_batch(
            backend, rows, model_name, analysis_settings, progress_adapter(progress)
        )
        tokens, table_df, figs = hbatch.summarize(finished)
        return (
            batch_status(len(rows), finished, failures),
            table_df,
            figs["scatter"],
            figs["low_entropy"],
            hbatch.write_parquet(tokens),
            finished,
        )

    button.click(
        on_batch,
        [source, n_per_family, families, files, analyze.model],
        [status, table, scatter, bars, parquet, picks[0]],
        inputs_kwargs=analyze.controls.api_inputs(),
        api_name="batch",
        concurrency_limit=1,
        concurrency_id=MODEL_QUEUE,
    ).success(
        user_errors(tab_outputs),
        [picks[0], source, n_per_family, families, files],
        list(picks[1:]),
        api_name=False,
    )


def _token_picks_outputs() -> tuple:
    """(state of the finished rows, Markdown, figure, PDF) of the token picks report."""
    gr.Markdown("**Which tokens each rule picks** (vepo_viz.batch_tokens)")
    return (
        gr.State(),
        gr.Markdown(elem_id="vv-batch-picks"),
        gr.Plot(label="Token kinds and low-entropy share of the picks"),
        gr.File(label="Figure (PDF)", interactive=False),
    )
