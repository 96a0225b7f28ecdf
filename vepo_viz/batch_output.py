"""The output of a batch run: the per-token frame and Parquet, and what makes it readable.

`to_frame` gives one row per token with the example's question, response, model id,
answer, verifier and correctness; `write_parquet` writes it with the run's metadata
(`run_metadata`: model id and revision, settings, package versions, data, columns) in the
file's schema metadata and in a sidecar JSON (`meta_path`: <out>.meta.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vepo_viz.data import DataColumns, Record, check_answer, resolve

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from vepo_viz.analysis import AnalysisSettings
    from vepo_viz.results import TokenAnalysis
    from vepo_viz.tasks import Verdict

Row = Record


def verdict(row: Row, result: TokenAnalysis) -> Verdict | None:
    """The row's verifier's verdict on the analysed response (None: the row has no answer)."""
    if row.answer is None:
        return None
    return check_answer(row.verifier, result.response, row.answer, row.options)


def meta_path(out_path: Path) -> Path:
    """The sidecar JSON beside a batch Parquet: model, revision, settings, versions, data."""
    return out_path.with_name(out_path.name + ".meta.json")


def run_metadata(
    finished: list[tuple[Row, TokenAnalysis]],
    *,
    model: str | None,
    settings: AnalysisSettings,
    data: str,
    columns: DataColumns | None = None,
    revision: str = "",
) -> dict[str, Any]:
    """What a batch Parquet needs to be read on its own: the model (id and revision), the
    settings, the package versions, the data and its column mapping."""
    from dataclasses import asdict

    first = finished[0][1] if finished else None
    return {
        "format": "vepo-viz/batch-meta",
        "model_id": first.model_id if first is not None else (model or ""),
        "model_revision": revision,
        "settings": settings.to_dict(),
        "versions": dict(first.versions) if first is not None else {},
        "data": data,
        "columns": asdict(columns or DataColumns()),
        "examples": len(finished),
    }


def write_parquet(
    finished: list[tuple[Row, TokenAnalysis]], path: Path, metadata: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Write `to_frame(finished)` to `path` (folders made as needed); returns the frame.
    `metadata` (see `run_metadata`) goes into the file's schema metadata ("vepo_viz") and
    into the sidecar `meta_path(path)`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = to_frame(finished)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata is not None:
        text = json.dumps(metadata, indent=1)
        table = table.replace_schema_metadata({**table.schema.metadata, b"vepo_viz": text})
        meta_path(path).write_text(text + "\n", encoding="utf-8")
    pq.write_table(table, path)
    return frame


def to_frame(finished: list[tuple[Row, TokenAnalysis]]) -> pd.DataFrame:
    """One row per token of every finished example, in dataset order, with the example's
    question, response, model id, answer, verifier and correctness (None: no answer),
    and the extra columns it was read with (e.g. --group-by)."""
    import pandas as pd

    frames = []
    for row, result in finished:
        frame = result.to_dataframe()
        frame.insert(0, "example_id", row.key)
        frame.insert(1, "example_index", row.index)
        frame.insert(2, "family", row.family)
        frame["generated"] = result.generated
        judged = verdict(row, result)
        frame["question"] = row.question
        frame["response"] = result.response
        frame["model_id"] = result.model_id
        frame["answer"] = row.answer
        frame["verifier"] = resolve(row.verifier, row.answer, row.options) if row.answer else None
        frame["correct"] = pd.array(
            [None if judged is None else judged.correct] * len(frame), dtype="boolean"
        )
        for name, value in row.extra:
            frame[name if name not in frame else f"data_{name}"] = value
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
