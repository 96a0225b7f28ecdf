"""`vepo-viz batch`: score a dataset, one parquet row per token, resumable.

    vepo-viz batch data.jsonl --out scores.parquet
    vepo-viz batch sample_data/samples.jsonl --response-field target   # score references
    vepo-viz batch geo3k/ --split test --max-rows 200 --group-by subject
    vepo-viz batch data/test-*.parquet --image-column image --answer-column answer

The data: a `datasets` folder (save_to_disk), a Parquet file, folder or glob of shards, a
hub dataset id in the local cache, "suite", or a JSONL: one object per line with "image" (a
path relative to the JSONL file), "question", and optionally "response" (else the model
generates one), "answer", "family" and "id". Rows stream in; only --max-rows are read.
Finished rows are appended to a progress file next to the output (<out>.progress.jsonl)
with a fingerprint (image digest, question, response, settings), so an interrupted run
picks up where it stopped and a changed row is scored again; the parquet file (and its
sidecar <out>.meta.json: model, revision, settings, versions) is written at the end.
Prints aggregates: overlap of the VEPO and entropy selections, the share of VEPO picks
with entropy below their response's median and the accuracy per verifier, per group.

The work is done by the batch library (vepo_viz.batch); this module parses and prints.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from vepo_viz import batch, settings
from vepo_viz.batch_tokens import cli_section
from vepo_viz.commands import common
from vepo_viz.data import DataColumns, iter_records, math_verify_installed, open_data
from vepo_viz.errors import VepoInputError
from vepo_viz.io_errors import check_output_path, writing


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "batch",
        help="score a dataset (datasets folder, Parquet, JSONL, suite) into a per-token "
        "parquet file (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "data", help="JSONL, Parquet (file, folder or glob), datasets folder, hub id or suite"
    )
    parser.add_argument(
        "--out", default=None, help="parquet file to write (default: <data>.scores.parquet)"
    )
    parser.add_argument(
        "--response-field",
        default="response",
        help='column holding a response to score (default "response"; e.g. "target")',
    )
    parser.add_argument(
        "--max-rows",
        "--limit",
        dest="max_rows",
        type=int,
        default=None,
        help="only the first N examples (read as a stream: the rest is never loaded)",
    )
    parser.add_argument(
        "--group-by",
        default="family",
        help="column to split the statistics by (default: family), e.g. subject",
    )
    parser.add_argument("--figure", help="write the token-picks figure here (.pdf, .png or .svg)")
    parser.add_argument(
        "--restart", action="store_true", help="forget earlier progress and score every row again"
    )
    settings.add_flags(parser.add_argument_group("data columns"), DataColumns)
    common.add_model_arguments(parser)
    common.add_settings_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def columns_from_args(args: argparse.Namespace) -> DataColumns:
    """The DataColumns the --image-column ... --verifier flags give."""
    columns = DataColumns(**settings.given_values(args, DataColumns))
    if columns.verifier == "math-verify" and not math_verify_installed():
        raise VepoInputError("--verifier math-verify needs the package: pip install math-verify")
    return columns


def default_out(data: str) -> Path:
    if data == "suite":
        return Path("suite.scores.parquet")
    path = Path(data.rstrip("/"))
    return path.with_name(path.name.split("*")[0].removesuffix(path.suffix) + ".scores.parquet")


def run(args: argparse.Namespace) -> int:
    from vepo_viz.analysis import analyze

    if args.max_rows is not None and args.max_rows < 1:
        raise VepoInputError(f"--max-rows must be >= 1, got {args.max_rows}")
    columns = columns_from_args(args)
    source = open_data(args.data, columns.split)
    extra = () if args.group_by == "family" else (args.group_by,)
    read = dict(response_column=args.response_field, max_rows=args.max_rows, extra=extra)
    rows = list(iter_records(source, columns, keep_images=False, **read))  # light: no bytes
    analysis_settings = common.settings_from_args(args)
    out_path = check_output_path(args.out if args.out else default_out(args.data))
    job = batch.plan(
        rows,
        out_path,
        data_path=Path(args.data),
        data_identity=source.identity,
        model=args.model,
        settings=analysis_settings,
        response_field=args.response_field,
        restart=args.restart,
    )
    changed = f", {len(job.changed)} changed since scored" if job.changed else ""
    print(
        f"{len(rows)} examples: {job.n_resumed} already scored{changed}, "
        f"{len(job.todo) + len(job.failures)} to go (progress: {job.progress.path})",
        file=sys.stderr,
        flush=True,
    )
    failures = list(job.failures)
    revision = ""
    if job.todo:
        model = common.load_model_from_args(args)
        revision = model_revision(model)
        todo = iter_records(source, columns, only={row.key for row in job.todo}, **read)
        failures += _score(job, todo, model, analysis_settings, analyze)

    finished = batch.finished_rows(job, analysis_settings)
    if finished:
        meta = batch.run_metadata(
            finished,
            model=args.model,
            settings=analysis_settings,
            data=source.identity,
            columns=columns,
            revision=revision,
        )
        with writing(out_path):
            frame = batch.write_parquet(finished, out_path, meta)
        print(f"wrote {out_path} ({len(frame)} token rows, {len(finished)} examples)")
    print(format_aggregates(batch.aggregate(finished, args.group_by)))
    if finished:  # which tokens each rule picks (vepo_viz.batch_tokens)
        print(cli_section(finished, args.data, args.figure))
    for row, message in failures:
        print(f"failed: {row.key} ({row.label}): {message}", file=sys.stderr)
    if failures:
        print(
            f"{len(failures)} example(s) failed; fix them and run again to score only those",
            file=sys.stderr,
        )
        return 1
    return 0


def _score(job: batch.Plan, todo, model, analysis_settings, analyze) -> list:
    from tqdm import tqdm

    with tqdm(total=len(job.todo), desc="scoring", unit="example", file=sys.stderr) as bar:
        _, failed = batch.score_rows(
            todo,
            lambda row: analyze(
                model, row.image_input(), row.question, row.response, analysis_settings
            ),
            on_result=job.record,
            on_progress=lambda done, total, row: bar.update(done - bar.n),
            total=len(job.todo),
        )
    return failed


def model_revision(model) -> str:
    """The hub commit of a loaded model ("" for a local folder or the embedded model)."""
    config = getattr(getattr(model, "model", None), "config", None)
    return str(getattr(config, "_commit_hash", "") or "")


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
    for name, s in agg.get("verifiers", {}).items():
        lines.append(f"accuracy ({name} verifier): {pct(s['accuracy'])} of {s['examples']}")
    if agg["families"]:
        group = agg.get("group_by", "family")
        lines.append("")
        lines.append(
            f"{group:<16} {'examples':>8} {'tokens':>7} {'jaccard':>8} {'low-H VEPO':>10} "
            f"{'accuracy':>8}"
        )
        for family, s in agg["families"].items():
            accuracy = pct(s["accuracy"]) if s.get("answered") else "n/a"
            lines.append(
                f"{str(family):<16} {s['examples']:>8} {s['tokens']:>7} "
                f"{_num(s['jaccard_mean']):>8} {pct(s['vepo_low_entropy_share']):>10} "
                f"{accuracy:>8}"
            )
    return "\n".join(lines)


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"
