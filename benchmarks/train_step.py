"""Time per GRPO step with VEPO selection vs entropy-only selection, same settings, one run.

    python benchmarks/train_step.py --quick          # under a minute on 2 CPU cores
    python benchmarks/train_step.py                  # more steps, larger batch
    python benchmarks/train_step.py --model Qwen/Qwen2.5-VL-3B-Instruct --lora \
        --prompts 4 --group-size 8 --max-new-tokens 256 --micro-batch 8 --steps 3   # GPU check

Two policies start from the same weights and take turns (VEPO step, entropy step,
entropy step, VEPO step, ...) on the same prompts, so load on a shared machine hits both
alike. Everything is the trainer's own `train_step`: rollout (sampling G responses),
score pass (one no-grad clean pass; VEPO adds one no-grad counterfactual pass and
token_stats), update (forward + backward + AdamW). Entropy-only runs with no diagnostic
counterfactual pass. Prints the median step time of each and the line

    ratio vepo/entropy = X.XX (goal <= 1.3; ...)

On CPU the ratio is of process CPU time per step with --threads threads (default 1): on a
shared machine the wall clock mostly measures waiting for a free core, and CPU time with
one thread equals the wall time on an idle core. The wall-clock ratio is printed beside
it. On CUDA the ratio is of wall-clock time (synchronised).

On CUDA also the peak GPU memory of the VEPO policy's steps. The model is the embedded
tiny model, else a tiny random Qwen2-VL (the script says which).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vepo_viz.train.config import TrainConfig  # noqa: E402
from vepo_viz.train.data import PromptSource  # noqa: E402
from vepo_viz.train.policy import VLMPolicy  # noqa: E402
from vepo_viz.train.trainer import make_optimizer, train_step  # noqa: E402


def _default_model() -> tuple[str, str]:
    from vepo_viz.tiny import DEFAULT_MODEL

    if (Path(DEFAULT_MODEL) / "config.json").is_file():
        return DEFAULT_MODEL, "the embedded tiny model"
    from tests.tiny_random import build_tiny_vlm

    folder = build_tiny_vlm("qwen2_vl", Path(tempfile.mkdtemp()) / "tiny_qwen2_vl")
    return str(folder), "a tiny random Qwen2-VL (the embedded model is not built)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few small steps (< 1 min on CPU)")
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
    args = parser.parse_args(argv)

    steps = args.steps or (3 if args.quick else 8)
    prompts = args.prompts or (2 if args.quick else 4)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, what = (args.model, args.model) if args.model else _default_model()
    base = dict(
        model=model,
        dtype=args.dtype,
        prompts_per_step=prompts,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        micro_batch_size=args.micro_batch,
        finetune="lora" if args.lora else "auto",
        gradient_checkpointing=args.gradient_checkpointing,
        diagnostics_every=0,
        lr=1e-5,
        steps=steps + 1,
    )
    configs = {
        "vepo": TrainConfig(**base, selection="vepo"),
        "entropy": TrainConfig(**base, selection="entropy"),
    }
    policies = {k: VLMPolicy.load(c) for k, c in configs.items()}
    optimizers = {k: make_optimizer(p, configs[k]) for k, p in policies.items()}
    source = PromptSource(configs["vepo"])
    info = policies["vepo"].describe()
    print(
        f"model: {what} ({info['family']}, {info['total_params'] / 1e6:.1f}M params, "
        f"{info['finetune']}, {info['device']}, {info['dtype']}); {prompts} prompts x "
        f"G={args.group_size}, max {args.max_new_tokens} new tokens, threads "
        f"{torch.get_num_threads()}"
    )
    cuda = torch.cuda.is_available() and info["device"].startswith("cuda")
    times: dict[str, list[dict]] = {"vepo": [], "entropy": []}
    peak_gb = 0.0
    t_start = time.perf_counter()
    for step in range(steps + 1):  # step 0 warms up both
        order = ("vepo", "entropy") if step % 2 == 0 else ("entropy", "vepo")
        for rule in order:
            if cuda:
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            cpu0 = time.process_time()
            record = train_step(policies[rule], optimizers[rule], source, configs[rule], step)
            if cuda:
                torch.cuda.synchronize()
                if rule == "vepo":
                    peak_gb = max(peak_gb, torch.cuda.max_memory_allocated() / 2**30)
            record["cpu_s"] = time.process_time() - cpu0
            if step > 0:
                times[rule].append(record)
    wall = time.perf_counter() - t_start

    def median(rule: str, key: str) -> float:
        return statistics.median(r[key] for r in times[rule])

    for rule in ("vepo", "entropy"):
        print(
            f"{rule:8s} step {median(rule, 'step_s'):.3f} s (rollout {median(rule, 'rollout_s'):.3f}"
            f", score {median(rule, 'score_s'):.3f}, update {median(rule, 'update_s'):.3f}); "
            f"response length {median(rule, 'response_len'):.1f}"
        )
    if cuda:
        print(f"peak GPU memory (VEPO steps): {peak_gb:.2f} GiB")
    wall_ratio = median("vepo", "step_s") / median("entropy", "step_s")
    score_ratio = median("vepo", "score_s") / median("entropy", "score_s")
    print(f"score pass alone (wall): vepo/entropy = {score_ratio:.2f} (the counterfactual forward)")
    if cuda:
        ratio, basis = wall_ratio, "wall-clock time per step"
    else:
        # On a shared CPU the wall clock mostly measures waiting for a core; the process's
        # CPU time with one thread is the work itself (= wall time on an idle core).
        ratio = median("vepo", "cpu_s") / median("entropy", "cpu_s")
        basis = f"CPU time per step, {torch.get_num_threads()} thread(s); wall-clock ratio {wall_ratio:.2f}"
        for rule in ("vepo", "entropy"):
            print(f"{rule:8s} CPU time per step {median(rule, 'cpu_s'):.3f} s")
    print(
        f"ratio vepo/entropy = {ratio:.2f} (goal <= 1.3; {basis}); "
        f"{steps} timed steps each, {wall:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
