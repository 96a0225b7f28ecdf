"""Wall time of `python -m vepo_viz [command] --help` (the goal: under 0.5 s), beside
`python -c pass` (the interpreter's own start) measured in the same run.

    python benchmarks/cli_help.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    base = wall(["-c", "pass"], args.repeats)
    print(f"{'command':<32} {'median s':>9} {'x python -c pass':>17}")
    print(f"{'python -c pass':<32} {base:9.3f} {1.0:17.1f}")
    for command in (None, "analyze", "batch", "train", "tiny-train", "tiny-eval", "suite"):
        argv = ["-m", "vepo_viz", *([command] if command else []), "--help"]
        seconds = wall(argv, args.repeats)
        print(f"{' '.join(argv[2:]):<32} {seconds:9.3f} {seconds / base:17.1f}")


if __name__ == "__main__":
    main()
