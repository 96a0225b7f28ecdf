"""Time per GRPO step of the TRL trainer: VEPO selection vs entropy-only vs TRL's plain
step (selection "all"), same settings, one process.

    python benchmarks/train_step.py --quick          # a few minutes on 2 CPU cores
    python benchmarks/train_step.py                  # more steps, larger batch
    python benchmarks/train_step.py --model Qwen/Qwen2.5-VL-3B-Instruct --lora \
        --prompts 4 --group-size 8 --max-new-tokens 256 --micro-batch 8 --steps 3   # GPU check

Each rule is one `vepo_viz.train.trl_train.train` run (a temporary run folder) from the
same weights on the same prompts; the runs go one after the other (rule by rule, not
step by step: each is a TRL Trainer of its own), so on a shared machine run it when the
load is steady. A step is TRL's: sampling G responses, the plug-in's no-grad score pass
(VEPO adds one counterfactual forward and token_stats; entropy-only its clean pass), the
update. The first step of each run is a warm-up and not timed. Prints the median step
time of each rule and the lines

    ratio vepo/entropy = X.XX (goal <= 1.15; ...)
    ratio vepo/all = X.XX (goal <= 1.15; ...)

On CPU the ratios are of process CPU time per step with --threads threads (default 1):
on a shared machine the wall clock mostly measures waiting for a free core. On CUDA they
are of wall-clock time, and the peak GPU memory of each run is printed. The model is the
embedded tiny model, else a tiny random Qwen2-VL (the script says which).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vepo_viz.train.config import TrainConfig  # noqa: E402
from vepo_viz.train.jobs import read_metrics  # noqa: E402
from vepo_viz.train.trl_train import train  # noqa: E402

RULES = ("vepo", "entropy", "all")


def _default_model() -> tuple[str, str]:
    from vepo_viz.tiny import DEFAULT_MODEL

    if (Path(DEFAULT_MODEL) / "config.json").is_file():
        return DEFAULT_MODEL, "the embedded tiny model"
    from tests.tiny_random import build_tiny_vlm

    folder = build_tiny_vlm("qwen2_vl", Path(tempfile.mkdtemp()) / "tiny_qwen2_vl")
    return str(folder), "a tiny random Qwen2-VL (the embedded model is not built)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few small steps")
    parser.add_argument("--model", default=None, help="model folder or hub id")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per rule")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per step")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--lora", action="store_true", help="LoRA instead of full fine-tuning")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    return parser


def _time_rule(cfg: TrainConfig, cuda: bool) -> dict[str, float]:
    """Median wall and CPU seconds per timed step of one run (and its peak GPU memory)."""
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train(cfg, progress=False)
    df = read_metrics(cfg.out)
    steps = df[df["reward"].notna()].sort_values("step")
    cpu = steps["process_cpu_s"].diff().iloc[1:]  # per step; the first one warms up
    out = {
        "wall_s": float(steps["step_s"].iloc[1:].median()),
        "cpu_s": float(cpu.median()),
        "response_len": float(steps["response_len"].median()),
    }
    if cuda:
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    steps = args.steps or (3 if args.quick else 8)
    prompts = args.prompts or (2 if args.quick else 4)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, what = (args.model, args.model) if args.model else _default_model()
    cuda = torch.cuda.is_available()
    root = Path(tempfile.mkdtemp(prefix="train_step_"))
    base = dict(
        model=model,
        dtype=args.dtype,
        prompts_per_step=prompts,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        micro_batch_size=args.micro_batch,
        finetune="lora" if args.lora else "auto",
        gradient_checkpointing=args.gradient_checkpointing,
        lr=1e-5,
        steps=steps + 1,
        n_eval=0,
        ckpt_every=0,
        threads=args.threads,
    )
    print(
        f"model: {what}; {prompts} prompts x G={args.group_size}, max {args.max_new_tokens} "
        f"new tokens, threads {torch.get_num_threads()}, {'cuda' if cuda else 'cpu'}"
    )
    times = {}
    for rule in RULES:
        cfg = TrainConfig(**base, selection=rule, out=str(root / rule))
        times[rule] = _time_rule(cfg, cuda)
        t = times[rule]
        peak = f", peak GPU memory {t['peak_gb']:.2f} GiB" if cuda else ""
        print(
            f"{rule:8s} step {t['wall_s']:.3f} s wall, {t['cpu_s']:.3f} s CPU; response "
            f"length {t['response_len']:.1f}{peak}"
        )
    key = "wall_s" if cuda else "cpu_s"
    basis = (
        "wall-clock time per step"
        if cuda
        else (f"CPU time per step, {torch.get_num_threads()} thread(s)")
    )
    for other in ("entropy", "all"):
        ratio = times["vepo"][key] / times[other][key]
        wall = times["vepo"]["wall_s"] / times[other]["wall_s"]
        print(
            f"ratio vepo/{other} = {ratio:.2f} (goal <= 1.15; {basis}; wall-clock {wall:.2f}); "
            f"{steps} timed steps each"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
