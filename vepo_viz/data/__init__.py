"""Datasets for batch scoring, training and evaluation: one reader, answer verifiers.

    from vepo_viz.data import open_data, iter_records, DataColumns, check_answer
    source = open_data("geo3k_folder", split="test")      # or x.parquet, x.jsonl, "suite"
    for record in iter_records(source, DataColumns(), max_rows=50):
        record.load_image(), record.question, record.answer
    check_answer("auto", "... so the answer is \\\\frac{3}{4}.", "0.75").correct  # True

`open_data` opens without reading rows; `iter_records` streams them (Parquet and Arrow in
batches), so a large dataset is never in memory at once. `VERIFIERS` is the registry of
answer checkers (suite, exact, numeric, multiple-choice, math-verify, auto).
"""

from vepo_viz.data.columns import DataColumns
from vepo_viz.data.readers import DataSource, open_data, open_hub
from vepo_viz.data.records import Record
from vepo_viz.data.rows import iter_records
from vepo_viz.data.verifiers import (
    VERIFIERS,
    Verifier,
    check_answer,
    final_answer,
    math_verify_installed,
    resolve,
)

__all__ = [
    "VERIFIERS",
    "DataColumns",
    "DataSource",
    "Record",
    "Verifier",
    "check_answer",
    "final_answer",
    "iter_records",
    "math_verify_installed",
    "open_data",
    "open_hub",
    "resolve",
]
