"""`vepo-viz batch`: score a JSONL dataset, one parquet row per token, resumable.

    vepo-viz batch data.jsonl --out scores.parquet
    vepo-viz batch sample_data/samples.jsonl --response-field target   # score references

Each JSONL line is an object with "image" (a path relative to the JSONL file), "question",
and optionally "response" (else the model generates one), "family" and "id". Finished rows
are appended to a progress file next to the output (<out>.progress.jsonl) as they
complete, so an interrupted run picks up where it stopped; the parquet file is written
from it at the end. Prints aggregates: overlap of the VEPO and entropy selections, the
share of VEPO picks with entropy below their response's median, per family.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vepo_viz.commands import common
from vepo_viz.errors import VepoError, VepoInputError
from vepo_viz.results import SCORING_KEYS, summary

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
    lines = path.read_text(encoding="utf-8").splitlines()
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
        record = {"key": row.key, "index": row.index, "family": row.family}
        record["analysis"] = analysis_dict
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.done[row.key] = record


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "batch",
        help="score a JSONL dataset into a per-token parquet file (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", help="JSONL file of examples")
    parser.add_argument(
        "--out", default=None, help="parquet file to write (default: <data>.scores.parquet)"
    )
    parser.add_argument(
        "--response-field",
        default="response",
        help='JSONL key holding a response to score (default "response"; e.g. "target")',
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N examples")
    parser.add_argument(
        "--restart", action="store_true", help="forget earlier progress and score every row again"
    )
    common.add_model_arguments(parser)
    common.add_settings_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vepo_viz.analysis import analyze
    from vepo_viz.results import TokenAnalysis

    data_path = Path(args.data)
    rows = read_rows(data_path, args.response_field)
    if args.limit is not None:
        if args.limit < 1:
            raise VepoInputError(f"--limit must be >= 1, got {args.limit}")
        rows = rows[: args.limit]
    settings = common.settings_from_args(args)
    out_path = Path(args.out) if args.out else data_path.with_suffix(".scores.parquet")
    progress_path = out_path.with_name(out_path.name + ".progress.jsonl")
    header = {
        "format": PROGRESS_FORMAT,
        "data": str(data_path.resolve()),
        "model": args.model,
        "settings": settings.to_dict(),
        "response_field": args.response_field,
    }
    progress = Progress(progress_path, header, args.restart)
    todo = [row for row in rows if row.key not in progress.done]
    n_resumed = len(rows) - len(todo)
    print(
        f"{len(rows)} examples: {n_resumed} already scored, {len(todo)} to go "
        f"(progress: {progress_path})",
        file=sys.stderr,
    )

    failures: list[tuple[Row, str]] = [
        (row, f"image file not found: {row.image}") for row in todo if not row.image.is_file()
    ]
    todo = [row for row in todo if row.image.is_file()]
    if todo:
        model = common.load_model_from_args(args)
        for row in tqdm(todo, desc="scoring", unit="example", file=sys.stderr):
            try:
                result = analyze(model, row.image, row.question, row.response, settings)
            except VepoError as error:
                failures.append((row, str(error)))
                continue
            progress.add(row, result.to_dict())

    # Scores and selections follow the current scoring settings, also for rows scored
    # earlier with other ones (re-scoring needs no model).
    scoring_now = {k: getattr(settings, k) for k in SCORING_KEYS}
    finished = [
        (row, TokenAnalysis.from_dict(progress.done[row.key]["analysis"]).rescore(**scoring_now))
        for row in rows
        if row.key in progress.done
    ]
    if finished:
        frame = to_frame(finished)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out_path, index=False)
        print(f"wrote {out_path} ({len(frame)} token rows, {len(finished)} examples)")
    print(format_aggregates(aggregate(finished)))
    for row, message in failures:
        print(f"failed: {row.key} ({row.image.name}): {message}", file=sys.stderr)
    if failures:
        print(
            f"{len(failures)} example(s) failed; fix them and run again to score only those",
            file=sys.stderr,
        )
        return 1
    return 0


def to_frame(finished):
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


def aggregate(finished) -> dict[str, Any]:
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


def format_aggregates(agg: dict[str, Any]) -> str:
    overall = agg["all"]
    pct = common.percent
    lines = [
        f"examples: {overall['examples']}, tokens: {overall['tokens']}",
        f"selection overlap VEPO vs entropy: Jaccard {_num(overall['jaccard_mean'])} "
        f"(mean per response); {pct(overall['overlap_pooled'])} of VEPO picks are also "
        "entropy picks",
        f"VEPO picks with entropy below their response's median: "
        f"{pct(overall['vepo_low_entropy_share'])} "
        f"(entropy-only picks: {pct(overall['entropy_low_entropy_share'])})",
    ]
    if agg["families"]:
        lines.append("")
        lines.append(
            f"{'family':<16} {'examples':>8} {'tokens':>7} {'jaccard':>8} {'low-H VEPO':>10}"
        )
        for family, s in agg["families"].items():
            lines.append(
                f"{family:<16} {s['examples']:>8} {s['tokens']:>7} {_num(s['jaccard_mean']):>8} "
                f"{pct(s['vepo_low_entropy_share']):>10}"
            )
    return "\n".join(lines)


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"
