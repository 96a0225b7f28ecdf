"""Time of the per-token statistics against two logsumexp passes over the same logits.

    python benchmarks/token_stats_speed.py             # T = 2,048, V = 151,936, 1 thread
    python benchmarks/token_stats_speed.py --tokens 512 --repeats 5

Two logsumexp passes (one per distribution) are the least any exact H/JSD/KL code must
do: each reads a (T, V) tensor once with an exp per element. `scoring.token_stats` (the
public pure-math API) and the engine's head walk (`models.engine.head_walk`, here with a
"head" that hands out rows of the precomputed logits) compute H, H', JSD, KL and the
sampled-token log-probs. Goal (issue 22): token_stats <= 1.5 x the two passes, one
thread. All are measured side by side in one run (medians of --repeats).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL = 1.5


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from vepo_viz import scoring
    from vepo_viz.models import engine

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    T, V = args.tokens, args.vocab
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(T, V, generator=g).mul_(3.0)  # (T, V) float32
    noisy = clean + torch.randn(T, V, generator=g)  # (T, V)
    ids = torch.randint(0, V, (1, T), generator=g)

    def head(rows: torch.Tensor) -> torch.Tensor:  # (n, 1) row indices -> (n, V) logits
        index = rows[:, 0].long()
        return noisy[index - T] if bool(index[0] >= T) else clean[index]

    positions = torch.arange(T, dtype=torch.float32).view(1, T, 1)  # (1, T, 1)
    lse = median_time(lambda: (clean.logsumexp(-1), noisy.logsumexp(-1)), args.repeats)
    stats = median_time(lambda: scoring.token_stats(clean[None], noisy[None]), args.repeats)
    walk = median_time(
        lambda: engine.head_walk(head, positions, [positions + T], ids, n_vocab=V),
        args.repeats,
    )
    print(f"T = {T}, V = {V}, {torch.get_num_threads()} thread(s), medians of {args.repeats}")
    print(f"two logsumexp passes       {lse:8.3f} s   1.00")
    print(f"scoring.token_stats        {stats:8.3f} s   {stats / lse:.2f}   goal <= {GOAL}")
    print(f"engine.head_walk (+logprob) {walk:7.3f} s   {walk / lse:.2f}")
    verdict = "meets" if stats / lse <= GOAL else "misses"
    print(f"token_stats / two logsumexp = {stats / lse:.2f}: {verdict} the goal")


if __name__ == "__main__":
    main()
