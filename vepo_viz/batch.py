"""The dataset scoring library behind `vepo-viz batch` and the app's Batch tab.

A dataset is anything `vepo_viz.data` reads (a `datasets` folder, Parquet, JSONL, the
suite); its rows are `Row`s (= `data.Record`). `read_rows` reads a whole (small) dataset;
`plan` opens the progress file next to the output (<out>.progress.jsonl) and says which
rows are left, so an interrupted run picks up where it stopped. Each finished row is
stored with a fingerprint (image digest, question, response, settings): a row whose
fingerprint changed is scored again, never reused, and a progress file of other data is
refused. `score_rows` analyses rows one by one, reporting progress through a callback;
`finished_rows` re-scores every stored row with the current scoring settings; `to_frame`
and `write_parquet` give one row per token (with the question, response, answer and
correctness); `aggregate` the overlap of the VEPO and entropy selections, the
low-entropy share and the accuracy per verifier, over all rows and per group.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vepo_viz.batch_output import meta_path, run_metadata, to_frame, verdict, write_parquet
from vepo_viz.data import DataColumns, Record, iter_records, open_data, resolve
from vepo_viz.errors import VepoError, VepoInputError
from vepo_viz.results import SCORING_KEYS, summary

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.analysis import AnalysisSettings
    from vepo_viz.results import TokenAnalysis

__all__ = [
    "Plan",
    "Progress",
    "Row",
    "aggregate",
    "finished_rows",
    "fingerprint",
    "meta_path",
    "plan",
    "progress_path",
    "read_rows",
    "run_metadata",
    "score_rows",
    "to_frame",
    "verdict",
    "write_parquet",
]

PROGRESS_FORMAT = "vepo-viz/batch-progress"


Row = Record
"""One example of the dataset: index, key, image (path or None), question, response,
family, and answer, inline image bytes, options, extra columns, verifier, digest."""


def read_rows(
    path: Path | str,
    response_field: str = "response",
    *,
    columns: DataColumns | None = None,
    max_rows: int | None = None,
    extra: tuple[str, ...] = (),
) -> list[Row]:
    """Read and check the rows of a (small) dataset before any model work: all of them,
    or the first `max_rows`. For a large one, stream `data.iter_records` instead."""
    columns = columns or DataColumns()
    source = open_data(path, columns.split)
    return list(
        iter_records(
            source, columns, response_column=response_field, max_rows=max_rows, extra=extra
        )
    )


def fingerprint(row: Row, settings: dict[str, Any]) -> str:
    """sha256 of what a row's analysis depends on: its image digest, question, response
    and the settings outside the scoring ones (those re-score without the model)."""
    kept = {k: v for k, v in settings.items() if k not in SCORING_KEYS}
    text = json.dumps([row.digest, row.question, row.response, kept], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _changed_settings(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


class Progress:
    """Append-only record of finished rows: a header line, then one line per row."""

    def __init__(self, path: Path, header: dict[str, Any], restart: bool) -> None:
        self.path = path
        self.settings: dict[str, Any] = header["settings"]
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
        if stored.get("data") != header["data"]:
            raise VepoInputError(
                f"{self.path} holds scores of other data ({stored.get('data')}), not "
                f"{header['data']}; pass --restart to score this data from the start, or "
                "--out elsewhere to keep both"
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
        """Record a finished row (its analysis as `TokenAnalysis.to_dict`) with the
        `fingerprint` of the row it was made from."""
        record = {"key": row.key, "index": row.index, "family": row.family}
        record["fingerprint"] = fingerprint(row, self.settings)
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
    fingerprints: dict[str, str] = field(default_factory=dict)
    """{key: fingerprint} of every row as it is now."""
    changed: list[Row] = field(default_factory=list)
    """Rows scored before whose fingerprint changed since (scored again, in `todo`)."""

    @property
    def n_resumed(self) -> int:
        """Rows scored by an earlier run."""
        return len(self.rows) - len(self.todo) - len(self.failures)

    def record(self, row: Row, result: TokenAnalysis) -> None:
        """Store a finished row in the progress file with its fingerprint."""
        self.progress.add(row, result.to_dict())

    def is_current(self, key: str) -> bool:
        """Whether the stored result of `key` was made from the row as it is now."""
        done = self.progress.done.get(key)
        return done is not None and done.get("fingerprint") == self.fingerprints.get(key)


def plan(
    rows: list[Row],
    out_path: Path,
    *,
    data_path: Path,
    model: str | None,
    settings: AnalysisSettings,
    response_field: str = "response",
    restart: bool = False,
    data_identity: str | None = None,
) -> Plan:
    """Open (or start) the progress file of a run writing `out_path`, and list what is left:
    rows never scored, and rows whose fingerprint changed since they were.

    Raises VepoInputError when the progress file was made from other data (its
    `data_identity`, default the resolved `data_path`), another model, response field or
    non-scoring settings (scoring settings alone may change between runs).
    """
    header = {
        "format": PROGRESS_FORMAT,
        "data": data_identity or str(Path(data_path).resolve()),
        "model": model,
        "settings": settings.to_dict(),
        "response_field": response_field,
    }
    progress = Progress(progress_path(out_path), header, restart)
    job = Plan(rows=rows, progress=progress, todo=[])
    job.fingerprints = {row.key: fingerprint(row, header["settings"]) for row in rows}
    left = [row for row in rows if not job.is_current(row.key)]
    job.changed = [row for row in left if row.key in progress.done]
    for row in left:
        problem = row.image_missing()
        if problem:
            job.failures.append((row, problem))
        else:
            job.todo.append(row)
    return job


OnProgress = Callable[[int, int, "Row | None"], None]
"""on_progress(done, total, row): called before each row (row = the one starting) and once
at the end (done == total, row None)."""


def score_rows(
    rows: Iterable[Row],
    analyze_row: Callable[[Row], TokenAnalysis],
    *,
    on_result: Callable[[Row, TokenAnalysis], None] | None = None,
    on_progress: OnProgress | None = None,
    catch: tuple[type[BaseException], ...] = (VepoError,),
    describe: Callable[[BaseException], str] = str,
    total: int | None = None,
) -> tuple[list[tuple[Row, TokenAnalysis]], list[tuple[Row, str]]]:
    """Analyse every row: (finished (row, result) pairs, failures (row, message)).

    A row whose `analyze_row` raises one of `catch` is a failure (its message:
    `describe(error)`), not the end of the run. `on_result` sees each result as it comes
    (e.g. `Plan.record`). `rows` may be a stream (e.g. `data.iter_records`); then give
    its length as `total` for the progress callback.
    """
    finished, failures = [], []
    if total is None:
        rows = list(rows)
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

    scoring_now = {k: getattr(settings.scoring, k) for k in SCORING_KEYS}
    done = job.progress.done
    return [
        (row, TokenAnalysis.from_dict(done[row.key]["analysis"]).rescore(**scoring_now))
        for row in job.rows
        if job.is_current(row.key)
    ]


def aggregate(
    finished: list[tuple[Row, TokenAnalysis]], group_by: str = "family"
) -> dict[str, Any]:
    """Overlap, low-entropy share and accuracy over all examples (pooled over tokens), per
    value of the `group_by` column ("families": {value: stats}), and the accuracy per
    verifier ("verifiers": {name: {"examples", "accuracy"}}, examples with an answer)."""
    verdicts = [verdict(row, result) for row, result in finished]
    judged = {id(pair): v for pair, v in zip(finished, verdicts, strict=True)}

    def stats(pairs) -> dict[str, float]:
        summaries = [summary(r) for _, r in pairs]
        jaccards = [s.jaccard for s in summaries if not math.isnan(s.jaccard)]
        n_vepo = sum(s.n_vepo for s in summaries)
        n_both = sum(s.n_both for s in summaries)
        below_vepo = sum(s.n_vepo_low_entropy for s in summaries)
        below_entropy = sum(s.n_entropy_low_entropy for s in summaries)
        n_entropy = sum(s.n_entropy for s in summaries)
        hits = [judged[id(p)].correct for p in pairs if judged[id(p)] is not None]
        return {
            "examples": len(pairs),
            "tokens": sum(s.n_tokens for s in summaries),
            "jaccard_mean": float(np.mean(jaccards)) if jaccards else math.nan,
            "overlap_pooled": n_both / n_vepo if n_vepo else math.nan,
            "vepo_low_entropy_share": below_vepo / n_vepo if n_vepo else math.nan,
            "entropy_low_entropy_share": below_entropy / n_entropy if n_entropy else math.nan,
            "answered": len(hits),
            "accuracy": float(np.mean(hits)) if hits else math.nan,
        }

    groups = sorted({v for row, _ in finished if (v := row.value(group_by)) is not None})
    by_verifier: dict[str, list[bool]] = {}
    for (row, _), v in zip(finished, verdicts, strict=True):
        if v is not None:
            name = resolve(row.verifier, row.answer or "", row.options)
            by_verifier.setdefault(name, []).append(v.correct)
    return {
        "all": stats(finished),
        "group_by": group_by,
        "families": {g: stats([p for p in finished if p[0].value(group_by) == g]) for g in groups},
        "verifiers": {
            name: {"examples": len(hits), "accuracy": float(np.mean(hits))}
            for name, hits in sorted(by_verifier.items())
        },
    }
