"""The Batch tab: score the built-in suite, an uploaded JSONL, uploaded Parquet or
`datasets` folder files, or a hub dataset in the server's cache, with the Analyze tab's
model and settings; aggregate per group and verifier; download the per-token Parquet.

The data handling is vepo_viz.ui.batch (the same readers, format and aggregates as
`vepo-viz batch`); this module lays out the tab and wires it.
"""

from __future__ import annotations

import gradio as gr

from vepo_viz.batch_tokens import tab_outputs
from vepo_viz.ui import batch as hbatch
from vepo_viz.ui import tempfiles
from vepo_viz.ui.analyze_tab import AnalyzeTab
from vepo_viz.ui.backend import Backend
from vepo_viz.ui.controls import ControlValues, whole_number
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.events import MODEL_QUEUE, progress_adapter
from vepo_viz.ui.handlers import MAX_BATCH_ROWS

DEFAULT_MAX_ROWS = 50
"""Rows an uploaded dataset is scored on by default in the app."""


def batch_status(n_rows: int, finished: list, failures: list[tuple[str, str]]) -> str:
    """ "Scored m of n examples." and the first failures."""
    status = f"Scored {len(finished)} of {n_rows} examples."
    if failures:
        listed = "; ".join(f"`{key}`: {message}" for key, message in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        status += f" {len(failures)} failed: {listed}{more}."
    return status


def batch_rows(
    source: str,
    n_per_family,
    families,
    files,
    *,
    dataset_id: str = "",
    columns: hbatch.DataColumns | None = None,
    max_rows=DEFAULT_MAX_ROWS,
    group_by: str = "family",
    folder=None,
) -> list:
    """The rows the tab's inputs name (UserFacingError / VepoInputError when they are bad),
    their files arranged in `folder` (default: a new folder of the session)."""
    columns = columns or hbatch.DataColumns()
    paths = [getattr(f, "name", f) for f in (files or [])]
    if source == hbatch.SOURCES[1]:
        return hbatch.jsonl_rows(paths, folder)
    if source in hbatch.SOURCES[2:]:
        n_rows = whole_number("max rows", max_rows, 1, MAX_BATCH_ROWS)
        if source == hbatch.SOURCES[2]:
            return hbatch.dataset_rows(paths, columns, n_rows, group_by, folder)
        return hbatch.hub_rows(dataset_id, columns, n_rows, group_by)
    n = whole_number("examples per family", n_per_family, 1, 200)
    return hbatch.suite_rows(n, list(families or []), folder)


def build_batch_tab(analyze: AnalyzeTab, backend: Backend) -> None:
    """Lay out the Batch tab (inside the enclosing gr.Tab) and wire it."""
    from vepo_viz.data import VERIFIERS
    from vepo_viz.tasks import FAMILIES

    gr.Markdown(
        "Score many examples with the Analyze tab's model and settings: the built-in "
        "suite; a JSONL (one object per line: `image`, `question`, optional `response`, "
        "`answer`, `family`, `id`) uploaded together with its images; Parquet files or the "
        "files of a `datasets` folder (`save_to_disk`); or a hub dataset already in the "
        "server's cache. Empty column fields pick the common names (`images`/`image`, "
        "`problem`/`question`, `answer`)."
    )
    with gr.Row():
        source = gr.Radio(list(hbatch.SOURCES), value=hbatch.SOURCES[0], label="data")
        n_per_family = gr.Slider(1, 50, value=2, step=1, label="examples per family (suite)")
        families = gr.CheckboxGroup(list(FAMILIES), value=list(FAMILIES), label="families (suite)")
    files = gr.File(
        label="JSONL + images, Parquet, or a datasets folder's files",
        file_count="multiple",
        file_types=[".jsonl", ".parquet", ".arrow", ".json", "image"],
    )
    with gr.Row():
        dataset_id = gr.Textbox(label="hub dataset id (server cache)", placeholder="owner/name")
        split = gr.Textbox(label="split", placeholder="train")
        max_rows = gr.Number(value=DEFAULT_MAX_ROWS, precision=0, label="max rows (datasets)")
    with gr.Row():
        image_column = gr.Textbox(label="image column", placeholder="images / image")
        question_column = gr.Textbox(label="question column", placeholder="problem / question")
        answer_column = gr.Textbox(label="answer column", placeholder="answer")
        verifier = gr.Dropdown(VERIFIERS.choices(), value="auto", label="verifier")
        group_by = gr.Textbox(value="family", label="group statistics by column")
    button = gr.Button("Run batch", variant="primary", elem_id="vv-batch")
    status = gr.Markdown()
    table = gr.Dataframe(label="Per group", interactive=False)
    with gr.Row():
        scatter = gr.Plot(label="Entropy vs visual sensitivity (all tokens)")
        bars = gr.Plot(label="Low-entropy share of each selection")
    parquet = gr.File(label="Per-token scores (Parquet)", interactive=False)
    data_inputs = {
        "dataset_id": dataset_id,
        "split": split,
        "max_rows": max_rows,
        "image_column": image_column,
        "question_column": question_column,
        "answer_column": answer_column,
        "verifier": verifier,
        "group_by": group_by,
    }
    picks = _token_picks_outputs()

    @user_errors
    def on_batch(
        source,
        n_per_family,
        families,
        files,
        model_name,
        progress=gr.Progress(),  # noqa: B008
        dataset_id=None,
        split=None,
        max_rows=None,
        image_column=None,
        question_column=None,
        answer_column=None,
        verifier=None,
        group_by=None,
        **settings,
    ):
        # the data fields default to None (optional for API clients of before)
        data = dict(dataset_id=dataset_id, split=split, max_rows=max_rows, group_by=group_by)
        data.update(image_column=image_column, question_column=question_column)
        data.update(answer_column=answer_column, verifier=verifier)
        return run_batch_tab(
            backend, source, n_per_family, families, files, model_name, progress,
            with_finished=True, **data, **settings,
        )  # fmt: skip

    button.click(
        on_batch,
        [source, n_per_family, families, files, analyze.model],
        [status, table, scatter, bars, parquet, picks[0]],
        inputs_kwargs={**data_inputs, **analyze.controls.api_inputs()},
        api_name="batch",
        concurrency_limit=1,
        concurrency_id=MODEL_QUEUE,
    ).success(
        user_errors(_picks_report),
        [picks[0], source, n_per_family, families, files],
        list(picks[1:]),
        api_name=False,
    )


def _picks_report(finished, source, n_per_family, families, files):
    """The token-picks report of the finished rows, its PDF in the session's folder."""
    return tab_outputs(
        finished, source, n_per_family, families, files, folder=tempfiles.new_dir("tokens")
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


DATA_FIELDS = ("image_column", "question_column", "answer_column", "split", "verifier")


def run_batch_tab(
    backend,
    source,
    n_per_family,
    families,
    files,
    model_name,
    progress=None,
    with_finished=False,
    **inputs,
):
    """The Batch button's work: (status, per-group table, scatter, bars, Parquet path),
    plus the finished rows with `with_finished` (the token-picks report reads them).
    `inputs`: the data fields (dataset_id, max_rows, group_by and DATA_FIELDS, all
    optional) and the Analyze controls' API values."""
    from vepo_viz import batch

    data = {name: (inputs.pop(name, "") or "").strip() for name in DATA_FIELDS}
    columns = hbatch.DataColumns(**{**data, "verifier": data["verifier"] or "auto"})
    dataset_id = inputs.pop("dataset_id", "") or ""
    max_rows = inputs.pop("max_rows", None)
    max_rows = DEFAULT_MAX_ROWS if max_rows is None else max_rows
    group_by = (inputs.pop("group_by", "") or "family").strip()
    analysis_settings = ControlValues.from_api(inputs).settings()
    with tempfiles.scratch("batch") as work:  # the rows' files: gone when it finishes
        rows = batch_rows(
            source,
            n_per_family,
            families,
            files,
            dataset_id=dataset_id,
            columns=columns,
            max_rows=max_rows,
            group_by=group_by,
            folder=work,
        )
        finished, failures = hbatch.run_batch(
            backend, rows, model_name, analysis_settings, progress and progress_adapter(progress)
        )
    tokens, table_df, figs = hbatch.summarize(finished, group_by)
    meta = batch.run_metadata(
        finished, model=model_name, settings=analysis_settings, data=source, columns=columns
    )
    status = batch_status(len(rows), finished, failures)
    accuracy = hbatch.accuracy_line(finished, group_by)
    return (
        f"{status} {accuracy}".strip(),
        table_df,
        figs["scatter"],
        figs["low_entropy"],
        hbatch.write_parquet(tokens, meta),
        *((finished,) if with_finished else ()),
    )
