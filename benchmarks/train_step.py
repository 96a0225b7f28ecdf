"""VEPO on TRL: step-time ratios and the selection's extra peak memory, side by side.

    python benchmarks/train_step.py --quick          # well under a minute on 2 CPU cores
    python benchmarks/train_step.py                  # more steps, a larger batch, T = 2,048
    python benchmarks/train_step.py --model Qwen/Qwen2.5-VL-3B-Instruct --lora \
        --gradient-checkpointing --prompts 4 --group-size 8 --max-new-tokens 256 \
        --steps 3 --memory-hidden 2048                # the GPU check (docs/train_gpu.md)

Step time. Three trainers start from the same weights on the same prompts and take
turns (vepo, entropy, plain; then plain, entropy, vepo; ...), so load on a shared machine
hits them alike: VEPOGRPOTrainer with the VEPO reference selection, VEPOGRPOTrainer with
entropy-only selection (no counterfactual pass), and TRL's plain GRPOTrainer with the
same GRPOConfig values (trl_train.trl_args of one TrainConfig). One step is TRL's own
`training_step` (generation, rewards, the plug-in's no-grad passes and selection, forward
+ backward) plus the optimizer step. The first step of each warms up and is not timed.
On CPU the ratios are of process CPU time per step with --threads threads (default 1;
on a shared machine the wall clock mostly measures waiting for a core); the wall-clock
ratios are printed beside them. On CUDA they are of synchronised wall-clock time.

Memory. The plug-in's hidden -> token_stats path (`engine.head_walk`:
chunks of positions through the output head, clean and counterfactual) against a naive
version that materialises the (B, T, V) logits of both passes and computes the stats at
once (benchmarks/scoring_memory.py's reference formula), at Qwen's vocabulary (151,936)
and T = 2,048 completion tokens (--quick: 256, as the full size takes minutes on a small
CPU), through a random bf16 head of hidden size D (default 1024; --quick: 64). Each runs
in its own subprocess; "extra" is its peak RSS (ru_maxrss) minus the RSS once the head and
hidden states exist, as scoring_memory.py measures (on CUDA: torch's allocator peak).

Goals (issue 12): vepo/entropy <= 1.15 and vepo/plain <= 1.15. Issue 22: the plug-in's own
time per vepo step (its passes, head walk, selection and hand-over) <= 1.1 x the time of
the no-grad forward over the views that the method needs (every `engine.view_passes`
call of the step, timed inside the same step).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from scoring_memory import QWEN_VOCAB, naive_token_stats, rss_bytes  # noqa: E402

RATIO_GOAL = 1.15
OWN_GOAL = 1.1  # issue 22: the plug-in's own time <= 1.1 x the forward the method needs
MIB = 2**20
RULES = ("vepo", "entropy", "plain")


# ---- step time -------------------------------------------------------------------------


def _train_config(args, steps: int):
    from vepo_viz.train.config import TrainConfig

    return TrainConfig(
        model=args.model or "tiny",
        dtype=args.dtype,
        prompts_per_step=args.prompts,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        finetune="lora" if args.lora else "auto",
        gradient_checkpointing=args.gradient_checkpointing,
        n_eval=0,
        lr=1e-5,
        steps=steps,
        selection="vepo",
    )


def build_trainers(args, steps: int, out: Path) -> tuple[dict, dict]:
    """{rule: trainer} of the three trainers on copies of one model, and the model's info."""
    from trl import GRPOTrainer

    from vepo_viz.train.data import PromptSource
    from vepo_viz.train.trl_data import REWARD_FUNCS, build_dataset
    from vepo_viz.train.trl_plugin import VEPOGRPOTrainer
    from vepo_viz.train.trl_train import _load, trl_args

    cfg = _train_config(args, steps)
    vlm, peft, finetune = _load(cfg)
    dataset = build_dataset(cfg, PromptSource(cfg), vlm.max_image_pixels)
    vepo_args = trl_args(cfg, out / "vepo", save_strategy="no")
    settings = {
        "vepo": (VEPOGRPOTrainer, vepo_args),
        "entropy": (VEPOGRPOTrainer, trl_args(cfg, out / "entropy", save_strategy="no",
                                              selection="entropy")),
        # TRL's own trainer; the extra VEPO fields of its config are ignored by it.
        "plain": (GRPOTrainer, trl_args(cfg, out / "plain", save_strategy="no", selection="all")),
    }  # fmt: skip
    trainers = {}
    for rule, (cls, targs) in settings.items():
        trainer = cls(
            model=copy.deepcopy(vlm.model),
            processing_class=vlm.processor,
            reward_funcs=REWARD_FUNCS,
            args=targs,
            train_dataset=dataset,
            peft_config=peft,
        )
        trainer.create_optimizer_and_scheduler(num_training_steps=steps)
        trainer.current_gradient_accumulation_steps = 1  # set by train(); the loss reads it
        trainer.bench_batches = iter(trainer.get_train_dataloader())
        trainers[rule] = trainer
    n_params = sum(p.numel() for p in vlm.model.parameters())
    info = dict(family=vlm.family.name, params=n_params, finetune=finetune,
                device=str(vlm.model.device), dtype=str(vlm.model.dtype))  # fmt: skip
    return trainers, info


VIEW_FORWARD = {"wall_s": 0.0, "cpu_s": 0.0}
"""Seconds in the engine's no-grad forwards over the views (the forward the method needs),
accumulated over one step."""


def _time_view_forwards() -> None:
    """Time every `engine.view_passes` call (the plug-in's counterfactual forwards)."""
    from vepo_viz.models import engine

    original = engine.view_passes

    def timed(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        try:
            return original(*a, **kw)
        finally:
            VIEW_FORWARD["wall_s"] += time.perf_counter() - t
            VIEW_FORWARD["cpu_s"] += time.process_time() - c

    engine.view_passes = timed


def _time_selection(trainer) -> None:
    """Accumulate the seconds the plug-in spends in its own passes and selection."""
    trainer.bench_select_s = trainer.bench_select_cpu_s = 0.0
    for name in ("_signals", "_select", "_apply", "_log_selection"):
        method = getattr(trainer, name)

        def timed(*a, _method=method, **kw):
            t, c = time.perf_counter(), time.process_time()
            try:
                return _method(*a, **kw)
            finally:
                trainer.bench_select_s += time.perf_counter() - t
                trainer.bench_select_cpu_s += time.process_time() - c

        setattr(trainer, name, timed)


def one_step(trainer, cuda: bool) -> dict:
    """One optimizer step of `trainer` as Trainer's loop runs it; its times."""
    inputs = next(trainer.bench_batches)
    trainer.bench_select_s = trainer.bench_select_cpu_s = 0.0
    VIEW_FORWARD.update(wall_s=0.0, cpu_s=0.0)
    if cuda:
        torch.cuda.synchronize()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    trainer.training_step(trainer.model, inputs, None)
    if trainer.args.max_grad_norm:
        trainer.accelerator.clip_grad_norm_(trainer.model.parameters(), trainer.args.max_grad_norm)
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    trainer.model.zero_grad()
    if cuda:
        torch.cuda.synchronize()
    return {
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "select_s": trainer.bench_select_s,
        "select_cpu_s": trainer.bench_select_cpu_s,
        "forward_s": VIEW_FORWARD["wall_s"],
        "forward_cpu_s": VIEW_FORWARD["cpu_s"],
    }


def step_times(args) -> None:
    steps = args.steps
    with tempfile.TemporaryDirectory() as tmp:
        trainers, info = build_trainers(args, steps + 1, Path(tmp))
        for rule in ("vepo", "entropy"):
            _time_selection(trainers[rule])
        _time_view_forwards()
        trainers["plain"].bench_select_s = trainers["plain"].bench_select_cpu_s = 0.0
        cuda = info["device"].startswith("cuda")
        print(
            f"model: {args.model or 'the embedded tiny model'} ({info['family']}, "
            f"{info['params'] / 1e6:.1f}M params, {info['finetune']}, {info['device']}, "
            f"{info['dtype']}); {args.prompts} prompts x G={args.group_size}, max "
            f"{args.max_new_tokens} new tokens, torch threads {torch.get_num_threads()}"
        )
        times: dict[str, list[dict]] = {rule: [] for rule in RULES}
        t_start = time.perf_counter()
        for step in range(steps + 1):  # step 0 warms up all three
            order = RULES if step % 2 == 0 else RULES[::-1]
            for rule in order:
                record = one_step(trainers[rule], cuda)
                if step > 0:
                    times[rule].append(record)
        wall = time.perf_counter() - t_start

    def median(rule: str, key: str) -> float:
        return statistics.median(r[key] for r in times[rule])

    for rule in RULES:
        print(
            f"{rule:8s} step: CPU {median(rule, 'cpu_s'):.3f} s, wall {median(rule, 'wall_s'):.3f} s"
            f" (of which the plug-in's passes + selection {median(rule, 'select_s'):.3f} s wall)"
        )
    key, basis = ("wall_s", "wall-clock") if cuda else ("cpu_s", "CPU time")
    for other in ("entropy", "plain"):
        ratio = median("vepo", key) / median(other, key)
        wall_ratio = median("vepo", "wall_s") / median(other, "wall_s")
        verdict = "PASS" if ratio <= RATIO_GOAL else "FAIL"
        print(
            f"ratio vepo/{other} = {ratio:.3f} ({basis} per step; goal <= {RATIO_GOAL}: "
            f"{verdict}); wall-clock ratio {wall_ratio:.2f}"
        )
    sel = "select_s" if cuda else "select_cpu_s"
    floor = median("vepo", sel) / median("plain", key)
    source = getattr(trainers["vepo"], "clean_pass_source", "") or "?"
    print(
        f"the plug-in's own work in a vepo step: {median('vepo', sel):.3f} s ({basis}; the "
        f"clean states came from {source}, so this is the counterfactual forward on fresh "
        f"views plus the selection) = {floor:.1%} of the plain step: vepo/plain cannot be "
        f"below {1 + floor:.2f} while that forward costs what it does"
    )
    fwd = "forward_s" if cuda else "forward_cpu_s"
    own = median("vepo", sel) / median("vepo", fwd)
    verdict = "PASS" if own <= OWN_GOAL else "FAIL"
    print(
        f"the plug-in's own time per vepo step / its no-grad forward over the views = "
        f"{median('vepo', sel):.3f} / {median('vepo', fwd):.3f} s = {own:.3f} ({basis}; "
        f"goal <= {OWN_GOAL}: {verdict})"
    )
    print(f"{steps} timed steps each, {wall:.0f} s")


# ---- memory ----------------------------------------------------------------------------


def _memory_inputs(B: int, T: int, V: int, D: int, device: str, seed: int = 0):
    """A random bf16 head (V, D), clean and noisy hidden states (B, T, D), token ids (B, T)."""
    g = torch.Generator(device).manual_seed(seed)
    head = torch.nn.Linear(D, V, bias=False, device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        head.weight.normal_(0.0, 3.0 / D**0.5, generator=g)  # in place: no float32 copy
    head.requires_grad_(False)
    hidden = torch.randn(B, T, D, generator=g, device=device).to(torch.bfloat16)  # (B, T, D)
    noisy = hidden + 0.5 * torch.randn(B, T, D, generator=g, device=device).to(torch.bfloat16)
    ids = torch.randint(0, V, (B, T), generator=g, device=device)  # (B, T)
    return head, hidden, noisy, ids


def plugin_stats(head, hidden, noisy, ids) -> dict:
    from vepo_viz.models.engine import head_walk

    signals = head_walk(head, hidden, [noisy], ids)
    out = {f: getattr(signals.stats(), f) for f in ("entropy", "entropy_noisy", "jsd", "kl")}
    return {**out, "logp": signals.logprob, "logq": signals.logprob_noisy[0]}


@torch.no_grad()
def naive_stats(head, hidden, noisy, ids) -> dict:
    logits_clean = head(hidden)  # (B, T, V): the whole batch's logits, both passes
    logits_noisy = head(noisy)  # (B, T, V)
    out = naive_token_stats(logits_clean, logits_noisy)
    for name, logits in (("logp", logits_clean), ("logq", logits_noisy)):
        logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
        out[name] = logp.gather(-1, ids[..., None])[..., 0]  # (B, T)
    return out


MEMORY_IMPLS = {"plugin": plugin_stats, "naive": naive_stats}


def memory_worker(impl: str, B: int, T: int, V: int, D: int, out_path: str, threads: int):
    if threads > 0:
        torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fn = MEMORY_IMPLS[impl]
    fn(*_memory_inputs(1, 4, V, D, device, seed=1))  # lazy init before the baseline
    inputs = _memory_inputs(B, T, V, D, device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        baseline = rss_bytes()
    start = time.perf_counter()
    result = fn(*inputs)
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux
    seconds = time.perf_counter() - start
    torch.save({k: v.float().cpu() for k, v in result.items()}, out_path)
    print(json.dumps({"seconds": seconds, "extra_bytes": max(0, peak - baseline)}))


def _memory_case(impl: str, args, out_path: str) -> dict:
    cmd = [sys.executable, __file__, "--memory-worker", impl, str(args.memory_batch),
           str(args.memory_tokens), str(QWEN_VOCAB), str(args.memory_hidden), out_path,
           str(args.threads)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker {impl} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(args) -> None:
    B, T, D = args.memory_batch, args.memory_tokens, args.memory_hidden
    print(
        f"selection memory: B={B}, T={T:,} completion tokens, V={QWEN_VOCAB:,}, D={D}, "
        "bf16 head and hidden states, one counterfactual view"
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = {impl: str(Path(tmp) / f"{impl}.pt") for impl in MEMORY_IMPLS}
        res = {impl: _memory_case(impl, args, paths[impl]) for impl in MEMORY_IMPLS}
        a, b = torch.load(paths["plugin"]), torch.load(paths["naive"])
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    for impl, label in (("plugin", "plug-in (chunked)"), ("naive", "naive (full logits)")):
        r = res[impl]
        print(f"{label:20s} extra peak {r['extra_bytes'] / MIB:8.0f} MiB, {r['seconds']:.2f} s")
    ratio = res["naive"]["extra_bytes"] / max(res["plugin"]["extra_bytes"], MIB)
    print(
        f"extra peak memory naive/plug-in = {ratio:.0f}x "
        f"({res['plugin']['extra_bytes'] / MIB:.0f} MiB vs {res['naive']['extra_bytes'] / MIB:.0f}"
        f" MiB); time naive/plug-in = {res['naive']['seconds'] / res['plugin']['seconds']:.1f}x;"
        f" max |diff| {diff:.1e}"
    )


# ---- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few small steps (< 1 min on CPU)")
    parser.add_argument("--model", default=None, help="model folder or hub id (default: tiny)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per trainer")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per step")
    parser.add_argument("--group-size", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--lora", action="store_true", help="LoRA instead of full fine-tuning")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--memory-tokens", type=int, default=None, help="T of the memory case (2048; quick: 256)"
    )
    parser.add_argument("--memory-batch", type=int, default=1, help="B of the memory case")
    parser.add_argument("--memory-hidden", type=int, default=None, help="D of the random head")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-steps", action="store_true")
    parser.add_argument("--memory-worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        impl, *numbers, out_path, threads = args.memory_worker
        memory_worker(impl, *map(int, numbers), out_path, int(threads))
        return 0
    args.steps = args.steps or (3 if args.quick else 8)
    args.prompts = args.prompts or (2 if args.quick else 4)
    args.group_size = args.group_size or (4 if args.quick else 8)
    args.memory_hidden = args.memory_hidden or (64 if args.quick else 1024)
    args.memory_tokens = args.memory_tokens or (256 if args.quick else 2048)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if not args.skip_steps:
        step_times(args)
    if not args.skip_memory:
        memory(args)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
