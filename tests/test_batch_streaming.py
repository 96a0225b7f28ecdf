"""A 100,000-row Parquet scored with --max-rows 50 streams: its peak memory stays within
1 GB of the same run on a 50-row file (benchmarks/batch_streaming.py prints the numbers,
with the start-up time; no timing is asserted here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "batch_streaming.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("batch_streaming", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_100k_rows_with_max_rows_50_stay_within_1gb_of_50_rows(tmp_path, tiny_model_dir):
    runs = _benchmark().compare(tmp_path, str(tiny_model_dir("qwen2_vl")), n_rows=100_000)
    print({name: {k: round(v, 2) for k, v in r.items()} for name, r in runs.items()})
    assert runs["big"]["rc"] == 0 and runs["small"]["rc"] == 0
    assert runs["big"]["peak_mb"] - runs["small"]["peak_mb"] < 1024
    assert pq.ParquetFile(tmp_path / "big.parquet").metadata.num_rows == 100_000
    scored = pq.read_table(tmp_path / "big.scores.parquet", columns=["example_id"])
    assert len(set(scored.column("example_id").to_pylist())) == 50
