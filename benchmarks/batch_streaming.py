"""Peak memory and start-up time of `vepo-viz batch --max-rows 50` on a 100,000-row Parquet.

    python benchmarks/batch_streaming.py                  # the embedded model
    python benchmarks/batch_streaming.py --model DIR      # another model folder or hub id

Writes two Parquet files of small suite images (112 x 112 PNG, datasets' Image layout):
100,000 rows, and the same first 50 rows alone. Each is scored with --max-rows 50 in its
own subprocess; the peak RSS comes from `os.wait4` (ru_maxrss of that child), the start
time is when the command prints its plan line ("50 examples: ... to go"), before the
model loads. The 50-row run is the baseline: the model, its work on 50 rows, Python. The
difference is what the 100,000 rows cost: the rows stream through pyarrow's
iter_batches, so it must stay far below 1 GB.

Goal (issue 17): peak memory under 1 GB above the model's, and a start in under 10 s.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 250
"""Distinct images, cycled over the rows (each row has its own question and id)."""


def make_parquet(path: Path, n_rows: int, row_group_size: int = 1000) -> Path:
    """A Parquet of `n_rows` suite images with id, image {"bytes", "path"}, question, answer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from vepo_viz.tasks import iter_split

    examples = list(iter_split("heldout", N_IMAGES // 5))
    pngs = []
    for ex in examples:
        buffer = io.BytesIO()
        ex.image.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    writer = None
    for start in range(0, n_rows, row_group_size):
        index = range(start, min(n_rows, start + row_group_size))
        chosen = [examples[i % len(examples)] for i in index]
        table = pa.table(
            {
                "id": [f"r{i}" for i in index],
                "image": pa.array(
                    [{"bytes": pngs[i % len(pngs)], "path": None} for i in index], image_type
                ),
                "question": [f"{ex.question} (#{i})" for i, ex in zip(index, chosen, strict=True)],
                "answer": [ex.answer for ex in chosen],
            }
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return path


def measure(argv: list[str]) -> dict[str, float]:
    """Run `python -m vepo_viz <argv>`: rc, peak RSS (MB), start (plan line, s), wall (s)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    begin = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vepo_viz", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    start_s = float("nan")
    for line in proc.stderr:
        if "to go" in line and start_s != start_s:
            start_s = time.perf_counter() - begin
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": proc.returncode,
        "peak_mb": usage.ru_maxrss / 1024,  # Linux: kilobytes
        "start_s": start_s,
        "wall_s": time.perf_counter() - begin,
    }


def compare(folder: Path, model: str | None, n_rows: int = 100_000) -> dict[str, dict]:
    """{"big": measure of n_rows, "small": of 50 rows}, both with --max-rows 50."""
    folder.mkdir(parents=True, exist_ok=True)
    big = make_parquet(folder / "big.parquet", n_rows)
    small = make_parquet(folder / "small.parquet", 50)
    common = ["--max-rows", "50", "--max-new-tokens", "4", "--device", "cpu"]
    common += ["--model", model] if model else []
    return {
        name: measure(
            ["batch", str(path), "--out", str(folder / f"{name}.scores.parquet"), *common]
        )
        for name, path in (("small", small), ("big", big))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder or hub id (default: embedded)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--folder", default="/tmp/vepo-viz-batch-streaming")
    args = parser.parse_args()
    runs = compare(Path(args.folder), args.model, args.rows)
    print(f"{'data':<22} {'rc':>3} {'peak RSS':>10} {'start':>8} {'wall':>8}")
    for name, rows in (("small", 50), ("big", args.rows)):
        r = runs[name]
        print(
            f"{f'{rows:,} rows':<22} {r['rc']:>3} {r['peak_mb']:>8.0f}MB {r['start_s']:>7.2f}s "
            f"{r['wall_s']:>7.2f}s"
        )
    extra = runs["big"]["peak_mb"] - runs["small"]["peak_mb"]
    print(f"peak memory above the 50-row run (model + work): {extra:+.0f} MB (goal < 1024 MB)")
    print(f"start on {args.rows:,} rows: {runs['big']['start_s']:.2f} s (goal < 10 s)")
    ok = runs["big"]["rc"] == 0 and extra < 1024 and runs["big"]["start_s"] < 10
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
