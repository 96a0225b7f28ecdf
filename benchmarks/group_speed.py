"""Speed of `analyze_group`: a group of G responses against one single-response analysis.

    python benchmarks/group_speed.py            # G = 8, 7 interleaved repeats
    python benchmarks/group_speed.py --group 16 --repeats 5

On the embedded model (CPU, one thread), the same suite prompt, temperature and seeds:
each repeat times one `analyze` (generate, one view + the noise-floor pass, statistics)
and one `analyze_group` (one batched generate of G rows, one batched pass per view, the
statistics, G verifier calls and advantages), side by side, after a warm-up of both. The
medians give the ratio; goal for G = 8: <= 2.5.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL = 2.5


def main(argv: list[str] | None = None) -> int:
    from vepo_viz import AnalysisSettings, analyze, load_model
    from vepo_viz.group import analyze_group, suite_example

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--example", default="read:3:0.5", help="suite family:seed:difficulty")
    parser.add_argument("--temperature", type=float, default=1.3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    vlm = load_model(None)
    example = suite_example(args.example)

    def single(seed: int) -> float:
        settings = AnalysisSettings(temperature=args.temperature, seed=seed)
        start = time.perf_counter()
        analyze(vlm, example.image, example.question, settings=settings)
        return time.perf_counter() - start

    def group(seed: int) -> float:
        start = time.perf_counter()
        analyze_group(vlm, example.image, example.question, group=args.group,
                      temperature=args.temperature, seed=seed, example=example)  # fmt: skip
        return time.perf_counter() - start

    single(0), group(0)  # warm-up
    singles, groups = [], []
    for seed in range(1, args.repeats + 1):
        singles.append(single(seed))
        groups.append(group(seed))
    s, g = statistics.median(singles), statistics.median(groups)
    ratio = g / s
    print(f"model: {vlm.model_id} (cpu, {args.threads} thread(s)); example {args.example}")
    print(f"single analysis: median {s * 1000:.0f} ms over {args.repeats}")
    print(f"group of {args.group}:     median {g * 1000:.0f} ms over {args.repeats}")
    print(f"ratio group / single: {ratio:.2f} (goal <= {GOAL} for G = 8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
