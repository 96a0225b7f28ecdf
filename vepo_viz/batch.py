"""The dataset scoring library behind `vepo-viz batch` and the app's Batch tab.

A dataset is a JSONL file: one object per line with "image" (a path relative to the
file), "question", and optionally "response" (else the model generates one), "family" and
"id". `read_rows` checks the whole file before any model work; `plan` opens the progress
file next to the output (<out>.progress.jsonl) and says which rows are left, so an
interrupted run picks up where it stopped; `score_rows` analyses rows one by one,
reporting progress through a callback (the CLI's tqdm bar, the app's progress bar);
`finished_rows` re-scores every stored row with the current scoring settings; `to_frame` and
`write_parquet` give one row per token; `aggregate` the overlap of the VEPO and entropy
selections and the low-entropy share, over all rows and per family.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vepo_viz.errors import VepoError, VepoInputError
from vepo_viz.results import SCORING_KEYS, summary

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from vepo_viz.analysis import AnalysisSettings
    from vepo_viz.results import TokenAnalysis

PROGRESS_FORMAT = "vepo-viz/batch-progress"


@dataclass(frozen=True)
class Row:
    """One example of the dataset."""

    index: int
    """0-based line number among the examples."""
    key: str
    """Its "id", or "row-<index>" when the file has none."""
    image: Path
    """Absolute image path."""
    question: str
    response: str | None
    family: str | None


def read_rows(path: Path, response_field: str = "response") -> list[Row]:
    """Parse and check the whole JSONL file before any model work."""
    if not path.is_file():
        raise VepoInputError(f"dataset not found: {path}")
    rows: list[Row] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise VepoInputError(
            f"{path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save the JSONL as UTF-8"
        ) from None
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise VepoInputError(f"{where}: not valid JSON ({error.msg})") from error
        if not isinstance(record, dict):
            raise VepoInputError(f"{where}: each line must be a JSON object")
        for name in ("image", "question"):
            if not isinstance(record.get(name), str) or not record[name].strip():
                raise VepoInputError(f"{where}: needs a non-empty string {name!r}")
        response = record.get(response_field)
        if response is not None and not isinstance(response, str):
            raise VepoInputError(f"{where}: {response_field!r} must be a string")
        index = len(rows)
        key = str(record["id"]) if record.get("id") is not None else f"row-{index}"
        if key in seen:
            raise VepoInputError(f"{where}: duplicate id {key!r}")
        seen.add(key)
        family = record.get("family")
        rows.append(
            Row(
                index=index,
                key=key,
                image=(path.parent / record["image"]).resolve(),
                question=record["question"],
                response=response,
                family=None if family is None else str(family),
            )
        )
    if not rows:
        raise VepoInputError(f"{path} holds no examples")
    return rows


def _changed_settings(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


class Progress:
    """Append-only record of finished rows: a header line, then one line per row."""

    def __init__(self, path: Path, header: dict[str, Any], restart: bool) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = {}
        if restart and path.exists():
            path.unlink()
        if path.exists():
            self._read(header)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(header) + "\n", encoding="utf-8")

    def _read(self, header: dict[str, Any]) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            stored = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            stored = {}
        if stored.get("format") != PROGRESS_FORMAT:
            raise VepoInputError(
                f"{self.path} is not a vepo-viz progress file; move it away or pass --restart"
            )
        for name in ("model", "response_field"):
            if stored.get(name) != header[name]:
                raise VepoInputError(
                    f"{self.path} was made with {name.replace('_', ' ')} {stored.get(name)!r}, "
                    f"not {header[name]!r}; pass --restart to start over, or --out elsewhere"
                )
        changed = _changed_settings(stored.get("settings") or {}, header["settings"])
        if changed - set(SCORING_KEYS):
            details = ", ".join(
                f"{k}: {stored['settings'].get(k)!r} there, {header['settings'].get(k)!r} now"
                for k in sorted(changed - set(SCORING_KEYS))
            )
            raise VepoInputError(
                f"{self.path} was made with other settings ({details}); pass --restart to "
                "start over, or --out elsewhere (scoring settings alone may change)"
            )
        for line in lines[1:]:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption: that row runs again
            self.done[record["key"]] = record

    def add(self, row: Row, analysis_dict: dict[str, Any]) -> None:
        """Record a finished row (its analysis as `TokenAnalysis.to_dict`)."""
        record = {"key": row.key, "index": row.index, "family": row.family}
        record["analysis"] = analysis_dict
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.done[row.key] = record


def progress_path(out_path: Path) -> Path:
    """Where the progress of a run writing `out_path` is kept."""
    return out_path.with_name(out_path.name + ".progress.jsonl")


@dataclass
class Plan:
    """A run over a dataset: its rows, its progress file, and what is left to score."""

    rows: list[Row]
    progress: Progress
    todo: list[Row]
    """Rows not scored yet whose image exists."""
    failures: list[tuple[Row, str]] = field(default_factory=list)
    """Rows that cannot run (image not found), with the message."""

    @property
    def n_resumed(self) -> int:
        """Rows scored by an earlier run."""
        return len(self.rows) - len(self.todo) - len(self.failures)


def plan(
    rows: list[Row],
    out_path: Path,
    *,
    data_path: Path,
    model: str | None,
    settings: AnalysisSettings,
    response_field: str = "response",
    restart: bool = False,
) -> Plan:
    """Open (or start) the progress file of a run writing `out_path`, and list what is left.

    Raises VepoInputError when the progress file was made with another model, response
    field or non-scoring settings (scoring settings alone may change between runs).
    """
    header = {
        "format": PROGRESS_FORMAT,
        "data": str(data_path.resolve()),
        "model": model,
        "settings": settings.to_dict(),
        "response_field": response_field,
    }
    progress = Progress(progress_path(out_path), header, restart)
    left = [row for row in rows if row.key not in progress.done]
    failures = [
        (row, f"image file not found: {row.image}") for row in left if not row.image.is_file()
    ]
    todo = [row for row in left if row.image.is_file()]
    return Plan(rows=rows, progress=progress, todo=todo, failures=failures)


OnProgress = Callable[[int, int, "Row | None"], None]
"""on_progress(done, total, row): called before each row (row = the one starting) and once
at the end (done == total, row None)."""


def score_rows(
    rows: list[Row],
    analyze_row: Callable[[Row], TokenAnalysis],
    *,
    on_result: Callable[[Row, TokenAnalysis], None] | None = None,
    on_progress: OnProgress | None = None,
    catch: tuple[type[BaseException], ...] = (VepoError,),
    describe: Callable[[BaseException], str] = str,
) -> tuple[list[tuple[Row, TokenAnalysis]], list[tuple[Row, str]]]:
    """Analyse every row: (finished (row, result) pairs, failures (row, message)).

    A row whose `analyze_row` raises one of `catch` is a failure (its message:
    `describe(error)`), not the end of the run. `on_result` sees each result as it comes
    (e.g. `Plan.progress.add`).
    """
    finished, failures = [], []
    total = len(rows)
    for i, row in enumerate(rows):
        if on_progress:
            on_progress(i, total, row)
        try:
            result = analyze_row(row)
        except catch as error:
            failures.append((row, describe(error)))
            continue
        if on_result:
            on_result(row, result)
        finished.append((row, result))
    if on_progress:
        on_progress(total, total, None)
    return finished, failures


def finished_rows(job: Plan, settings: AnalysisSettings) -> list[tuple[Row, TokenAnalysis]]:
    """Every scored row of the run, in dataset order, scored and selected with the current
    scoring settings, also for rows scored earlier with other ones (no model needed)."""
    from vepo_viz.results import TokenAnalysis

    scoring_now = {k: getattr(settings, k) for k in SCORING_KEYS}
    done = job.progress.done
    return [
        (row, TokenAnalysis.from_dict(done[row.key]["analysis"]).rescore(**scoring_now))
        for row in job.rows
        if row.key in done
    ]


def write_parquet(finished: list[tuple[Row, TokenAnalysis]], path: Path) -> pd.DataFrame:
    """Write `to_frame(finished)` to `path` (folders made as needed); returns the frame."""
    frame = to_frame(finished)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return frame


def to_frame(finished: list[tuple[Row, TokenAnalysis]]) -> pd.DataFrame:
    """One row per token of every finished example, in dataset order."""
    import pandas as pd

    frames = []
    for row, result in finished:
        frame = result.to_dataframe()
        frame.insert(0, "example_id", row.key)
        frame.insert(1, "example_index", row.index)
        frame.insert(2, "family", row.family)
        frame["generated"] = result.generated
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def aggregate(finished: list[tuple[Row, TokenAnalysis]]) -> dict[str, Any]:
    """Overlap and low-entropy share over all examples (pooled over tokens), and per family."""

    def stats(pairs) -> dict[str, float]:
        summaries = [summary(r) for _, r in pairs]
        jaccards = [s.jaccard for s in summaries if not math.isnan(s.jaccard)]
        n_vepo = sum(s.n_vepo for s in summaries)
        n_both = sum(s.n_both for s in summaries)
        below_vepo = sum(s.n_vepo_low_entropy for s in summaries)
        below_entropy = sum(s.n_entropy_low_entropy for s in summaries)
        n_entropy = sum(s.n_entropy for s in summaries)
        return {
            "examples": len(pairs),
            "tokens": sum(s.n_tokens for s in summaries),
            "jaccard_mean": float(np.mean(jaccards)) if jaccards else math.nan,
            "overlap_pooled": n_both / n_vepo if n_vepo else math.nan,
            "vepo_low_entropy_share": below_vepo / n_vepo if n_vepo else math.nan,
            "entropy_low_entropy_share": below_entropy / n_entropy if n_entropy else math.nan,
        }

    families = sorted({row.family for row, _ in finished if row.family is not None})
    return {
        "all": stats(finished),
        "families": {f: stats([p for p in finished if p[0].family == f]) for f in families},
    }
