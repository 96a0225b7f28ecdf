"""What the default training run does to the embedded model, at a few learning rates.

    python benchmarks/default_run.py                      # lr 3e-5 (default), 1e-4, 2e-4
    python benchmarks/default_run.py --lrs 3e-5 --steps 30 --out runs/bench_default

Each learning rate is one `vepo-viz train` run with every other setting at its default
(TrainConfig: number reading at difficulty 1, 4 prompts x G 16 per step, temperature 1.3,
30 steps, VEPO selection), one torch thread, run one after the other. The starting model
and each final model are then measured on the same fixed held-out questions (never
trained on):
- greedy accuracy on the first --n-greedy held-out questions;
- sampled accuracy at the run's temperature, G samples each on the first --n-sampled;
- the share of those sampled groups whose rewards differ (what GRPO could learn from).
It also prints the mean training reward of the first and last 10 steps (the curve the
Train tab shows; each step has 4 prompts, so it is noisy) and the wall time.

The default learning rate is the one that does no harm here (docs/mini_reproduction.md
and README "Defaults that learn": on fresh prompts the embedded model does not improve
within 30 steps at any of these rates; the higher ones lower its held-out accuracy).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(out: Path, lr: float, steps: int) -> float:
    """One default run at `lr` into `out` (skipped when finished); its wall seconds."""
    from vepo_viz.train.jobs import read_status

    if read_status(out).get("state") == "finished":
        return float(read_status(out).get("elapsed_s") or 0.0)
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "vepo_viz", "train", "--out", str(out), "--threads", "1"]
    cmd += ["--lr", str(lr), "--steps", str(steps)]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def measure(model: str, n_greedy: int, n_sampled: int) -> dict:
    """Greedy and sampled held-out accuracy of `model` under the default settings."""
    import torch

    from vepo_viz.models import load_model
    from vepo_viz.repro.profile import headroom, sample_responses
    from vepo_viz.train.config import TrainConfig
    from vepo_viz.train.data import PromptSource
    from vepo_viz.train.trl_data import evaluate

    torch.set_num_threads(1)
    cfg = TrainConfig(n_eval=n_greedy)
    vlm = load_model(None if model == "tiny" else model, device="cpu", cache=False)
    greedy = evaluate(vlm.model, vlm.processor, PromptSource(cfg).heldout(), cfg)
    prompts = PromptSource(cfg.replace(n_eval=n_sampled)).heldout()
    settings = {"group_size": cfg.group_size, "temperature": cfg.temperature}
    _, _, _, responses = sample_responses(model, prompts, settings)
    room = headroom(responses, cfg.group_size)
    return {"greedy": greedy["heldout_acc"], **room}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lrs", nargs="+", type=float, default=[3e-5, 1e-4, 2e-4])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--n-greedy", type=int, default=100)
    parser.add_argument("--n-sampled", type=int, default=48)
    parser.add_argument("--out", default="runs/bench_default")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from vepo_viz.train.jobs import read_metrics

    rows = [("start", None, measure("tiny", args.n_greedy, args.n_sampled), 0.0)]
    for lr in args.lrs:
        out = Path(args.out) / f"lr{lr:g}"
        wall = run(out, lr, args.steps)
        rewards = read_metrics(out)["reward"].dropna().tolist()
        curve = (sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10) if len(rewards) >= 20 else None
        rows.append(
            (
                f"lr {lr:g}",
                curve,
                measure(str(out / "final"), args.n_greedy, args.n_sampled),
                wall,
            )
        )
    print(
        f"| model | greedy acc. ({args.n_greedy} held-out) | sampled acc. ({args.n_sampled} x G) "
        "| groups with nonzero advantage | train reward, steps 1-10 / last 10 | wall s |"
    )
    print("|---|---|---|---|---|---|")
    for name, curve, m, wall in rows:
        reward = f"{curve[0]:.3f} / {curve[1]:.3f}" if curve else ""
        print(
            f"| {name} | {m['greedy']:.3f} | {m['sampled_acc']:.3f} | "
            f"{m['nonzero_adv_groups']:.3f} | {reward} | {wall:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
