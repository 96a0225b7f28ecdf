"""Peak extra memory and time of `token_stats` vs a naive full-tensor implementation.

    python benchmarks/scoring_memory.py            # T in {512, 2048, 4096}, V = 151,936
    python benchmarks/scoring_memory.py --quick    # T = 512 only

Each (implementation, T) runs in its own subprocess: it allocates the two bf16 (1, T, V)
logit tensors, records its RSS, runs once and reads the peak RSS (ru_maxrss); "extra" is
peak minus the RSS after the inputs existed. The naive version mimics the reference code
(softmax p, q, log p, log q, m, log m as full (B, T, V) float32 tensors) and is skipped
above --skip-naive-above T, where it would need more memory than a laptop has; its time
there is extrapolated linearly from the largest T it ran at (marked "~").

Both implementations run with --threads torch threads (default 1). On a small shared
machine (2 cores, one busy with a training job) every multi-threaded op waits for a
descheduled OpenMP thread; that penalises the chunked loop (thousands of small ops) far
more than the naive one (a dozen huge ops) and makes timings erratic. One thread measures
the work itself; pass --threads 0 for torch's default.

Goal (issue 2): extra peak memory of token_stats at T = 4096 below 512 MB, and at least
5x faster than the naive version.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

QWEN_VOCAB = 151_936
MIB = 2**20
NAIVE_FLOAT32_TENSORS = 7  # p, q, log p, log q, m, log m + one product temporary
MEMORY_GOAL_MIB = 512
SPEEDUP_GOAL = 5.0


def naive_token_stats(logits_clean, logits_noisy, temperature=1.0):
    """The reference formula on full (B, T, V) float32 tensors (for comparison only)."""
    zc = logits_clean.float() / temperature  # (B, T, V)
    zn = logits_noisy.float() / temperature  # (B, T, V)
    p = torch.softmax(zc, dim=-1)
    q = torch.softmax(zn, dim=-1)
    logp = torch.log_softmax(zc, dim=-1)
    logq = torch.log_softmax(zn, dim=-1)
    del zc, zn
    m = 0.5 * (p + q)
    logm = torch.log(m.clamp_min(1e-30))
    entropy = -(p * logp).sum(-1)  # (B, T)
    entropy_noisy = -(q * logq).sum(-1)
    jsd = 0.5 * (p * (logp - logm)).sum(-1) + 0.5 * (q * (logq - logm)).sum(-1)
    kl = (p * (logp - logq)).sum(-1)
    return {"entropy": entropy, "entropy_noisy": entropy_noisy, "jsd": jsd, "kl": kl}


def chunked_token_stats(logits_clean, logits_noisy):
    from vepo_viz.scoring import token_stats

    stats = token_stats(logits_clean, logits_noisy)
    return {name: getattr(stats, name) for name in ("entropy", "entropy_noisy", "jsd", "kl")}


IMPLS = {"token_stats": chunked_token_stats, "naive": naive_token_stats}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_inputs(T: int, V: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two bf16 (1, T, V) logit tensors filled row block by row block (small peak)."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.empty(1, T, V, dtype=torch.bfloat16)
    noisy = torch.empty(1, T, V, dtype=torch.bfloat16)
    for start in range(0, T, 64):
        stop = min(start + 64, T)
        block = torch.randn(stop - start, V, generator=g) * 3.0  # (rows, V)
        clean[0, start:stop] = block
        block += torch.randn(stop - start, V, generator=g)
        noisy[0, start:stop] = block
    return clean, noisy


def worker(impl: str, T: int, V: int, out_path: str, threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
    fn = IMPLS[impl]
    fn(*make_inputs(4, V, seed=1))  # warm up kernels / lazy init before the baseline
    clean, noisy = make_inputs(T, V)
    baseline = rss_bytes()
    start = time.perf_counter()
    result = fn(clean, noisy)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux
    torch.save(result, out_path)
    print(json.dumps({"seconds": seconds, "extra_bytes": max(0, peak - baseline)}))


def run_case(impl: str, T: int, V: int, out_path: str, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, str(T), str(V), out_path, str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} at T={T} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[512, 2048, 4096])
    parser.add_argument("--V", type=int, default=QWEN_VOCAB)
    parser.add_argument("--quick", action="store_true", help="T = 512 only")
    parser.add_argument("--skip-naive-above", type=int, default=2048, metavar="T")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for both implementations (0 = torch's default; see docstring)",
    )
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, T, V, out_path, threads = args.worker
        worker(impl, int(T), int(V), out_path, int(threads))
        return 0

    lengths = [512] if args.quick else sorted(args.T)
    V = args.V
    print(
        f"token_stats vs naive, B = 1, V = {V:,}, bf16 inputs, torch threads = {args.threads or torch.get_num_threads()}"
    )
    header = f"{'T':>6} | {'naive s':>8} {'naive MiB':>10} | {'chunked s':>9} {'chunked MiB':>11} | {'speedup':>8} {'mem ratio':>9} | max |diff|"
    print(header)
    print("-" * len(header))
    summary = {}
    last_naive = None  # (T, seconds) of the largest T the naive version ran at
    with tempfile.TemporaryDirectory() as tmp:
        for T in lengths:
            chunked_path = str(Path(tmp) / f"chunked_{T}.pt")
            chunked = run_case("token_stats", T, V, chunked_path, args.threads)
            row = {"chunked": chunked}
            if T <= args.skip_naive_above:
                naive_path = str(Path(tmp) / f"naive_{T}.pt")
                naive = run_case("naive", T, V, naive_path, args.threads)
                a, b = torch.load(chunked_path), torch.load(naive_path)
                diff = max(float((a[k] - b[k]).abs().max()) for k in a)
                last_naive = (T, naive["seconds"])
                speedup = naive["seconds"] / chunked["seconds"]
                mem_ratio = naive["extra_bytes"] / max(chunked["extra_bytes"], MIB)
                print(
                    f"{T:>6} | {naive['seconds']:>8.2f} {naive['extra_bytes'] / MIB:>10.0f} | "
                    f"{chunked['seconds']:>9.2f} {chunked['extra_bytes'] / MIB:>11.0f} | "
                    f"{speedup:>7.1f}x {mem_ratio:>8.0f}x | {diff:.1e}"
                )
                row["speedup"] = speedup
            else:
                need_gb = (NAIVE_FLOAT32_TENSORS * T * V * 4 + 2 * T * V * 2) / 1e9
                est = ""
                if last_naive is not None:
                    est_seconds = last_naive[1] * T / last_naive[0]
                    row["speedup"] = est_seconds / chunked["seconds"]
                    est = f"~{row['speedup']:.1f}x (naive time ~{est_seconds:.0f} s, linear from T={last_naive[0]})"
                print(
                    f"{T:>6} | naive skipped (would need ~{need_gb:.0f} GB) | "
                    f"{chunked['seconds']:>9.2f} {chunked['extra_bytes'] / MIB:>11.0f} | {est}"
                )
            summary[T] = row

    T_goal = max(lengths)
    extra_mib = summary[T_goal]["chunked"]["extra_bytes"] / MIB
    speedup = summary[T_goal].get("speedup")
    ok_mem = extra_mib < MEMORY_GOAL_MIB
    print()
    print(
        f"goal at T={T_goal}: extra peak memory {extra_mib:.0f} MiB < {MEMORY_GOAL_MIB} MiB: "
        f"{'PASS' if ok_mem else 'FAIL'}"
    )
    if speedup is not None:
        measured = T_goal <= args.skip_naive_above
        print(
            f"goal at T={T_goal}: speedup {'' if measured else '~'}{speedup:.1f}x >= {SPEEDUP_GOAL:.0f}x: "
            f"{'PASS' if speedup >= SPEEDUP_GOAL else 'FAIL'}"
            + ("" if measured else " (naive time extrapolated)")
        )
    return 0 if ok_mem and (speedup is None or speedup >= SPEEDUP_GOAL) else 1


if __name__ == "__main__":
    sys.exit(main())
