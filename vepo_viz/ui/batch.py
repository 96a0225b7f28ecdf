"""The Batch tab: score the built-in suite, an uploaded JSONL, uploaded Parquet or
`datasets` folder files, or a hub dataset in the server's cache; aggregate; Parquet.

The same readers (vepo_viz.data), checks, Parquet schema and aggregates as `vepo-viz
batch` (the batch library, vepo_viz.batch): a JSONL's uploads are gathered into one folder
so its relative image paths resolve, Parquet shards and a `datasets` folder's files are
linked into one (not copied), the built-in suite is exported as a JSONL, and the rows are
analysed one by one through the app's Backend (so they queue with the other model work).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vepo_viz.batch import Row, aggregate, read_rows, to_frame
from vepo_viz.data import DataColumns, DataSource, iter_records, open_data, open_hub
from vepo_viz.render.figures import batch_figures
from vepo_viz.ui import tempfiles
from vepo_viz.ui.errors import scrub_paths
from vepo_viz.ui.handlers import MAX_BATCH_ROWS, UserFacingError
from vepo_viz.ui.policy import ModelRefused

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.results import TokenAnalysis
    from vepo_viz.ui.backend import Backend

SOURCES: tuple[str, ...] = (
    "built-in suite",
    "uploaded JSONL",
    "uploaded Parquet or datasets folder",
    "hub dataset in the server's cache",
)


def _workdir(folder: Path | None = None) -> Path:
    """`folder`, or a new one in the session's temporary folder (vepo_viz.ui.tempfiles)."""
    if folder is None:
        return tempfiles.new_dir("batch")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _link_or_copy(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (no second copy of an upload), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy(source, target)


def suite_rows(
    n_per_family: int, families: list[str] | None, folder: Path | None = None
) -> list[Row]:
    """Held-out examples of the procedural suite, exported as a JSONL with images (into
    `folder`; default a new session folder)."""
    from vepo_viz.tasks import FAMILIES, export_jsonl

    chosen = families or list(FAMILIES)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        raise UserFacingError(f"unknown families {unknown}; choose from {sorted(FAMILIES)}")
    path = export_jsonl(_workdir(folder) / "suite.jsonl", "heldout", n_per_family, chosen)
    return read_rows(path)


def jsonl_rows(paths: list[str], folder: Path | None = None) -> list[Row]:
    """Rows of an uploaded JSONL and its images (uploaded together; matched by file name,
    so the JSONL's "image" paths may keep their folders, e.g. images/a.png), arranged in
    `folder` (default a new session folder) as hard links where possible."""
    jsonl = [Path(p) for p in paths if str(p).lower().endswith(".jsonl")]
    if len(jsonl) != 1:
        raise UserFacingError(
            "upload exactly one .jsonl file (one JSON object per line: image, question, "
            "optional response, family, id), together with its images"
        )
    folder = _workdir(folder)
    images = {Path(p).name: Path(p) for p in paths if Path(p) != jsonl[0]}
    target = folder / "data.jsonl"
    _link_or_copy(jsonl[0], target)
    import json

    try:
        lines = target.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return read_rows(target)  # which says what is wrong with the file
    for line_no, line in enumerate(lines, start=1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue  # read_rows reports it with its line number
        image = record.get("image") if isinstance(record, dict) else None
        if not isinstance(image, str) or not image.strip():
            continue
        relative = Path(image)
        if relative.is_absolute() or ".." in relative.parts:
            raise UserFacingError(f"line {line_no}: image {image!r} must be a relative path")
        if relative.name not in images:
            raise UserFacingError(
                f"line {line_no}: image {image!r} was not uploaded (upload the images "
                "together with the JSONL)"
            )
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        if not (folder / relative).exists():
            _link_or_copy(images[relative.name], folder / relative)
    return read_rows(target)


def dataset_rows(
    paths: list[str],
    columns: DataColumns,
    max_rows: int,
    group_by: str = "family",
    folder: Path | None = None,
) -> list[Row]:
    """Rows of uploaded Parquet shards, or of the files of a `datasets` folder
    (save_to_disk: state.json, dataset_info.json and its .arrow files)."""
    files = [Path(p) for p in paths]
    names = {f.name for f in files}
    if "state.json" in names:
        chosen = files
    else:
        chosen = [f for f in files if f.suffix.lower() == ".parquet"]
    if not chosen:
        raise UserFacingError(
            "upload Parquet file(s), or all the files of a datasets folder (Dataset."
            "save_to_disk: state.json, dataset_info.json and the .arrow files)"
        )
    folder = _workdir(folder)
    for file in chosen:
        (folder / file.name).symlink_to(file.resolve())  # a link: the upload is not copied
    return _read(open_data(folder, columns.split), columns, max_rows, group_by)


def hub_rows(
    dataset_id: str, columns: DataColumns, max_rows: int, group_by: str = "family"
) -> list[Row]:
    """Rows of a hub dataset found in the server's local hub cache (never a path)."""
    return _read(open_hub(dataset_id.strip(), columns.split), columns, max_rows, group_by)


def _read(source: DataSource, columns: DataColumns, max_rows: int, group_by: str) -> list[Row]:
    if not 1 <= max_rows <= MAX_BATCH_ROWS:
        raise UserFacingError(
            f"max rows must be between 1 and {MAX_BATCH_ROWS} in the app; use `vepo-viz "
            "batch` on the command line for more"
        )
    extra = () if group_by in ("", "family") else (group_by,)
    return list(iter_records(source, columns, max_rows=max_rows, extra=extra))


def run_batch(
    backend: Backend,
    rows: list[Row],
    model: str | None,
    settings: AnalysisSettings,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[list[tuple[Row, TokenAnalysis]], list[tuple[str, str]]]:
    """Analyse every row: (finished (row, TokenAnalysis) pairs, failures (id, message)).
    A failing row is reported, not fatal."""
    if len(rows) > MAX_BATCH_ROWS:
        raise UserFacingError(
            f"{len(rows)} examples is more than the app scores at once ({MAX_BATCH_ROWS}); "
            "use `vepo-viz batch` on the command line"
        )
    finished, failures = [], []
    for i, row in enumerate(rows):
        if progress:
            progress(i / len(rows), f"example {i + 1}/{len(rows)}: {row.key}")
        try:
            image = str(row.image) if row.image_bytes is None else row.image_input()
            result = backend.analyze(model, image, row.question, row.response, settings, None)
        except ModelRefused:
            raise  # the whole batch's model, not one row's problem
        except Exception as error:  # noqa: BLE001 - one bad row must not stop the batch
            failures.append((row.key, scrub_paths(f"{type(error).__name__}: {error}")))
            continue
        finished.append((row, result))
    if progress:
        progress(1.0, "aggregating")
    return finished, failures


def summarize(
    finished: list[tuple[Row, TokenAnalysis]], group_by: str = "family"
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(per-token frame as the CLI writes it, per-group table, aggregate figures)."""
    if not finished:
        raise UserFacingError("no example could be analysed (see the messages above)")
    tokens = to_frame(finished)
    agg = aggregate(finished, group_by or "family")
    label = group_by or "family"
    rows = [{label: str(value), **stats} for value, stats in agg["families"].items()]
    rows.append({label: "all", **agg["all"]})
    table = pd.DataFrame(rows).rename(
        columns={
            "jaccard_mean": "Jaccard VEPO vs entropy",
            "overlap_pooled": "VEPO picks also entropy picks",
            "vepo_low_entropy_share": "VEPO picks below median H",
            "entropy_low_entropy_share": "entropy picks below median H",
        }
    )
    table = table.round(3)
    figure_input = tokens.rename(columns={"example_id": "example"})
    if label != "family" and label in figure_input:
        figure_input["family"] = figure_input[label].astype(str)
    figure_input["family"] = figure_input["family"].fillna("all")
    return tokens, table, batch_figures(figure_input)


def accuracy_line(finished: list[tuple[Row, TokenAnalysis]], group_by: str = "family") -> str:
    """ "Accuracy (numeric verifier): 40.0% of 5." per verifier ("" without answers)."""
    verifiers = aggregate(finished, group_by or "family")["verifiers"]
    return " ".join(
        f"Accuracy ({name} verifier): {100 * s['accuracy']:.1f}% of {s['examples']}."
        for name, s in verifiers.items()
    )


def write_parquet(tokens: pd.DataFrame, metadata: dict[str, Any] | None = None) -> str:
    """The per-token frame as a Parquet file to download (with the run's `metadata`,
    see `batch.run_metadata`, in its schema metadata)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tempfiles.new_dir("scores") / "scores.parquet"  # a download: the session's
    table = pa.Table.from_pandas(tokens, preserve_index=False)
    if metadata is not None:
        extra = {b"vepo_viz": json.dumps(metadata)}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    pq.write_table(table, path)
    return str(path)
