"""`vepo-viz batch`: score a JSONL dataset, one parquet row per token, resumable.

    vepo-viz batch data.jsonl --out scores.parquet
    vepo-viz batch sample_data/samples.jsonl --response-field target   # score references

Each JSONL line is an object with "image" (a path relative to the JSONL file), "question",
and optionally "response" (else the model generates one), "family" and "id". Finished rows
are appended to a progress file next to the output (<out>.progress.jsonl) as they
complete, so an interrupted run picks up where it stopped; the parquet file is written
from it at the end. Prints aggregates: overlap of the VEPO and entropy selections, the
share of VEPO picks with entropy below their response's median, per family.

The work is done by the batch library (vepo_viz.batch); this module parses and prints.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from vepo_viz import batch
from vepo_viz.batch_tokens import cli_section
from vepo_viz.commands import common
from vepo_viz.errors import VepoInputError


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
    parser.add_argument("--figure", help="write the token-picks figure here (.pdf, .png or .svg)")
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

    data_path = Path(args.data)
    rows = batch.read_rows(data_path, args.response_field)
    if args.limit is not None:
        if args.limit < 1:
            raise VepoInputError(f"--limit must be >= 1, got {args.limit}")
        rows = rows[: args.limit]
    settings = common.settings_from_args(args)
    out_path = Path(args.out) if args.out else data_path.with_suffix(".scores.parquet")
    job = batch.plan(
        rows,
        out_path,
        data_path=data_path,
        model=args.model,
        settings=settings,
        response_field=args.response_field,
        restart=args.restart,
    )
    print(
        f"{len(rows)} examples: {job.n_resumed} already scored, "
        f"{len(job.todo) + len(job.failures)} to go (progress: {job.progress.path})",
        file=sys.stderr,
    )
    failures = list(job.failures)
    if job.todo:
        model = common.load_model_from_args(args)
        with tqdm(total=len(job.todo), desc="scoring", unit="example", file=sys.stderr) as bar:
            _, failed = batch.score_rows(
                job.todo,
                lambda row: analyze(model, row.image, row.question, row.response, settings),
                on_result=lambda row, result: job.progress.add(row, result.to_dict()),
                on_progress=lambda done, total, row: bar.update(done - bar.n),
            )
        failures += failed

    finished = batch.finished_rows(job, settings)
    if finished:
        frame = batch.write_parquet(finished, out_path)
        print(f"wrote {out_path} ({len(frame)} token rows, {len(finished)} examples)")
    print(format_aggregates(batch.aggregate(finished)))
    if finished:  # which tokens each rule picks (vepo_viz.batch_tokens)
        print(cli_section(finished, data_path, args.figure))
    for row, message in failures:
        print(f"failed: {row.key} ({row.image.name}): {message}", file=sys.stderr)
    if failures:
        print(
            f"{len(failures)} example(s) failed; fix them and run again to score only those",
            file=sys.stderr,
        )
        return 1
    return 0


def format_aggregates(agg: dict[str, Any]) -> str:
    """The aggregates of `batch.aggregate` as the lines the command prints."""
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
