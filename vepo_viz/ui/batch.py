"""The Batch tab: score a JSONL (suite format) or the built-in suite, aggregate, Parquet.

Rows are analysed one by one through the app's Backend (so they queue with the other
model work) and collected into one per-token table: example id, family, question,
response, then every column of TokenAnalysis.to_dataframe().
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vepo_viz.render.figures import batch_figures, low_entropy_shares
from vepo_viz.ui.handlers import MAX_BATCH_ROWS, UserFacingError

SOURCES: tuple[str, ...] = ("built-in suite", "uploaded JSONL")


@dataclass
class Row:
    """One example to score."""

    id: str
    image: Any
    """A PIL image or a path."""
    question: str
    response: str | None = None
    family: str = ""
    answer: str = ""


def suite_rows(n_per_family: int, families: list[str] | None) -> Iterator[Row]:
    """Held-out examples of the procedural suite (no files needed)."""
    from vepo_viz.tasks import FAMILIES, iter_split

    chosen = families or list(FAMILIES)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        raise UserFacingError(f"unknown families {unknown}; choose from {sorted(FAMILIES)}")
    for ex in iter_split("heldout", n_per_family, chosen):
        yield Row(
            id=f"heldout-{ex.family}-{ex.seed}",
            image=ex.image,
            question=ex.question,
            family=ex.family,
            answer=ex.answer,
        )


def jsonl_rows(paths: list[str]) -> list[Row]:
    """Rows of an uploaded JSONL; its images are found among the other uploaded files (by
    name) or at their path relative to the JSONL."""
    jsonl = [Path(p) for p in paths if str(p).lower().endswith((".jsonl", ".json"))]
    if len(jsonl) != 1:
        raise UserFacingError(
            "upload exactly one .jsonl file (one JSON object per line: image, question, "
            "optional response), together with its images"
        )
    by_name = {Path(p).name: Path(p) for p in paths}
    rows = []
    for number, line in enumerate(jsonl[0].read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserFacingError(
                f"line {number} of {jsonl[0].name} is not JSON: {error}"
            ) from None
        if not isinstance(obj, dict) or "image" not in obj or "question" not in obj:
            raise UserFacingError(f"line {number} of {jsonl[0].name} needs 'image' and 'question'")
        image = Path(str(obj["image"]))
        found = by_name.get(image.name) or (
            image if image.is_absolute() else jsonl[0].parent / image
        )
        if not Path(found).is_file():
            raise UserFacingError(
                f"line {number}: image {obj['image']!r} was not uploaded (upload the images "
                "together with the JSONL)"
            )
        response = obj.get("response")
        rows.append(
            Row(
                id=str(obj.get("id", f"row-{number}")),
                image=str(found),
                question=str(obj["question"]),
                response=str(response) if response else None,
                family=str(obj.get("family", "")),
                answer=str(obj.get("answer", "")),
            )
        )
    if not rows:
        raise UserFacingError(f"{jsonl[0].name} has no rows")
    return rows


def run_batch(
    backend,
    rows: list[Row],
    model: str | None,
    settings,
    progress: Callable[[float, str], None] | None = None,
) -> pd.DataFrame:
    """Analyse every row; one output row per token. Rows that fail are reported in an
    `error` column of a one-row entry instead of stopping the run."""
    if len(rows) > MAX_BATCH_ROWS:
        raise UserFacingError(
            f"{len(rows)} examples is more than the app scores at once ({MAX_BATCH_ROWS}); "
            "use `vepo-viz batch` on the command line"
        )
    frames = []
    for i, row in enumerate(rows):
        if progress:
            progress(i / len(rows), f"example {i + 1}/{len(rows)}: {row.id}")
        try:
            analysis = backend.analyze(model, row.image, row.question, row.response, settings, None)
        except Exception as error:  # noqa: BLE001 - one bad row must not stop the batch
            frames.append(
                pd.DataFrame(
                    [
                        {
                            "example": row.id,
                            "family": row.family,
                            "error": f"{type(error).__name__}: {error}",
                        }
                    ]
                )
            )
            continue
        frame = analysis.to_dataframe()
        frame.insert(0, "example", row.id)
        frame.insert(1, "family", row.family or "")
        frame.insert(2, "question", row.question)
        frame.insert(3, "response", analysis.response)
        frame.insert(4, "answer", row.answer)
        frame["error"] = ""
        frames.append(frame)
    if progress:
        progress(1.0, "aggregating")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def aggregate(tokens: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-family table (examples, tokens, overlap, low-entropy shares) and the figures."""
    ok = tokens[tokens.get("error", "").fillna("") == ""] if "error" in tokens else tokens
    if ok.empty or "entropy" not in ok:
        raise UserFacingError(
            "no example could be analysed; see the error column of the Parquet file"
        )
    ok = ok.copy()
    ok["family"] = ok["family"].replace("", "all")
    figures = batch_figures(ok)
    median = ok.groupby("example")["entropy"].transform("median")
    ok["low_entropy"] = ok["entropy"] < median
    shares = low_entropy_shares(ok).set_index("family")

    def overlap(part: pd.DataFrame) -> float:
        v, e = part["selected_vepo"].astype(bool), part["selected_entropy"].astype(bool)
        return float((v & e).sum() / v.sum()) if v.sum() else math.nan

    rows = []
    for fam, part in list(ok.groupby("family", sort=True)) + [("all", ok)]:
        if fam == "all" and rows and len(rows) == 1 and rows[0]["family"] == "all":
            break
        rows.append(
            {
                "family": fam,
                "examples": int(part["example"].nunique()),
                "tokens": len(part),
                "VEPO picks": int(part["selected_vepo"].sum()),
                "overlap with entropy picks": round(overlap(part), 3),
                "VEPO picks below median H": round(float(shares.loc[fam, "vepo"]), 3),
                "entropy picks below median H": round(float(shares.loc[fam, "entropy"]), 3),
            }
        )
    n_failed = int(tokens["error"].fillna("").ne("").sum()) if "error" in tokens else 0
    table = pd.DataFrame(rows)
    table.attrs["n_failed"] = n_failed
    return table, figures


def write_parquet(tokens: pd.DataFrame) -> str:
    path = Path(tempfile.mkdtemp(prefix="vepo-viz-batch-")) / "scores.parquet"
    tokens.to_parquet(path, index=False)
    return str(path)
