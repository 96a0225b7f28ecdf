"""GRPO that updates only the selected tokens: the training loop, as one explicit for-loop.

Each step: sample cfg.prompts_per_step prompts (a pure function of the step), G responses
each; reward them with the task verifier; normalise rewards within each group; one
no-grad pass of the rollout policy scores every response token (entropy; with VEPO/VPPO
also a counterfactual-image pass); the selection rule picks the tokens to train on;
ppo_epochs optimizer steps on the PPO-clipped loss over those tokens.

Where this departs from textbook GRPO (Shao et al. 2024), each a setting:

1. Token selection. The clipped loss covers only the selected tokens ("mask", the VEPO
   reference) or up-weights them ("weight"); selection="all" is plain GRPO. Scores come
   from the rollout policy, once per step, without gradient, and stay fixed across
   ppo_epochs.
2. Token-level mean over the whole rollout batch (DAPO-style), not GRPO's mean over each
   response then over responses; gradient accumulation keeps this exact.
3. The KL penalty (k3, as GRPO) is off by default (kl_beta=0) and, when on, averages over
   all valid tokens, selected or not.
4. One optimizer step per rollout batch by default (ppo_epochs=1): the ratio is 1 and the
   clip never binds; clip_eps/clip_eps_high matter from the second epoch on.
5. Advantages: (r - mean) / (std + 1e-6) per group, std unbiased (as TRL/EasyR1);
   adv_norm="none" drops the std (Dr. GRPO). Groups whose rewards are all equal get zero
   advantage but their tokens still count in the mean's denominator.
6. Rewards are the suite's verifier: 1.0 correct, 0.1 well-formed but wrong, 0.0 malformed
   (format reward folded in). A response that hits max_new_tokens is kept as is.
7. VPPO: tokens chosen by the k3 dependency of the sampled token on the image, and each
   response's advantage scaled by its mean dependency (vppo_rescale).
8. Sampling draws from softmax(z / tau) with an explicit generator seeded by (seed, step),
   so a resumed run repeats the uninterrupted one exactly; the counterfactual noise is
   fresh per view (never stacked over the G responses sharing an image).

Files (see jobs.RunPaths): metrics.jsonl (one line per step, one per evaluation),
status.json, checkpoints/step_NNNNNN/ (save_pretrained model + processor +
trainer_state.pt) and final/ (a plain model folder the Analyze tab opens).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from vepo_viz.train.config import TrainConfig
from vepo_viz.train.data import PromptSource, TaskPrompt
from vepo_viz.train.jobs import RunPaths, write_status
from vepo_viz.train.policy import VLMPolicy, derive_seed, make_generator
from vepo_viz.train.rollout import RolloutBatch, rollout, score_pass, update
from vepo_viz.train.selection import kind_metrics, select_for_step, selection_metrics

EVAL_BATCH = 64
"""Held-out prompts decoded per generate call."""


@dataclass
class TrainResult:
    """What a finished (or stopped) call of `train` leaves behind."""

    run_dir: Path
    steps_done: int
    final_dir: Path | None
    """save_pretrained folder of the final model (None if the run stopped early)."""
    last_metrics: dict
    heldout_acc: float | None


class _StopFlag:
    """SIGTERM/SIGINT ask the loop to stop after the current step (a checkpoint is saved);
    a second signal exits at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}

    def __enter__(self) -> _StopFlag:
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (e.g. a test runner thread): no handlers
            self._previous = {}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise SystemExit(128 + signum)
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of 0-based step `step`: linear warmup, then constant."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr


def make_optimizer(policy, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def evaluate(policy, prompts: list[TaskPrompt], cfg: TrainConfig) -> dict[str, float]:
    """Greedy held-out accuracy, overall ("heldout_acc") and per family."""
    if not prompts:
        return {}
    hits: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, len(prompts), EVAL_BATCH):
        chunk = prompts[start : start + EVAL_BATCH]
        responses = policy.generate(
            chunk, n_per_prompt=1, max_new_tokens=cfg.max_new_tokens, temperature=0.0, seed=0
        )
        for prompt, ids in zip(chunk, responses, strict=True):
            _, correct, _ = prompt.reward(policy.decode(ids))
            hits[prompt.family or "all"].append(correct)
    n = sum(len(h) for h in hits.values())
    out = {"heldout_acc": sum(sum(h) for h in hits.values()) / n}
    if len(hits) > 1:
        out.update({f"heldout_acc_{fam}": sum(h) / len(h) for fam, h in sorted(hits.items())})
    return out


def _episode_metrics(batch: RolloutBatch, cfg: TrainConfig) -> dict[str, float]:
    eps = batch.episodes
    rewards = batch.rewards.view(-1, cfg.group_size)  # (P, G)
    return {
        "reward": float(batch.rewards.mean()),
        "reward_std": float(batch.rewards.std()) if len(eps) > 1 else 0.0,
        "accuracy": sum(e.correct for e in eps) / len(eps),
        "well_formed": sum(e.well_formed for e in eps) / len(eps),
        "response_len": sum(len(e.response_ids) for e in eps) / len(eps),
        "zero_adv_groups": float((rewards.max(1).values == rewards.min(1).values).float().mean()),
    }


def train_step(policy, optimizer, source: PromptSource, cfg: TrainConfig, step: int) -> dict:
    """One GRPO step (0-based `step`); returns its metrics (timings included)."""
    t0 = time.perf_counter()
    for group in optimizer.param_groups:
        group["lr"] = lr_at(cfg, step)
    episodes = rollout(policy, source.step_prompts(step), cfg, step)
    batch = RolloutBatch.build(policy, episodes, cfg)
    t_rollout = time.perf_counter()

    diagnostics = cfg.diagnostics_every > 0 and step % cfg.diagnostics_every == 0
    counterfactual = cfg.needs_counterfactual or diagnostics
    signals, logp_ref = score_pass(policy, batch, cfg, step, counterfactual)
    selection = select_for_step(cfg, signals, make_generator(derive_seed(cfg.seed, "select", step)))
    t_score = time.perf_counter()

    metrics = update(policy, optimizer, batch, signals, selection, cfg, logp_ref)
    t_update = time.perf_counter()

    sample = episodes[0]
    return {
        "step": step + 1,
        **_episode_metrics(batch, cfg),
        **metrics,
        **selection_metrics(signals, selection, cfg.alpha),
        **kind_metrics([e.kinds for e in episodes], selection.selected, signals.mask),
        "lr": lr_at(cfg, step),
        "rollout_s": t_rollout - t0,
        "score_s": t_score - t_rollout,
        "update_s": t_update - t_score,
        "step_s": t_update - t0,
        "sample": sample.text,
        "sample_reward": sample.reward,
    }


def _latest_checkpoint(paths: RunPaths) -> Path | None:
    found = sorted(paths.checkpoints.glob("step_*/trainer_state.pt"))
    return found[-1].parent if found else None


def save_checkpoint(policy, optimizer, paths: RunPaths, step: int, elapsed: float, cfg) -> Path:
    """checkpoints/step_NNNNNN/: model (or adapter) + processor + trainer_state.pt, written
    to a temporary folder first so a kill mid-save never leaves a half checkpoint."""
    final = paths.checkpoints / f"step_{step:06d}"
    tmp = paths.checkpoints / f".tmp_step_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save(tmp)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "config": cfg.to_dict(),
        },
        tmp / "trainer_state.pt",
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    kept = sorted(paths.checkpoints.glob("step_*"))
    for old in kept[: -cfg.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past `step` (written by a run killed after its last checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
    path.write_text("".join(k + "\n" for k in kept))


def _jsonable(record: dict) -> dict:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }


def train(
    cfg: TrainConfig,
    policy=None,
    progress: bool = True,
    stop_at: int | None = None,
) -> TrainResult:
    """Run (or resume) the GRPO run `cfg` describes, writing everything under cfg.out.

    Args:
        policy: a ready policy for a fresh run; None loads cfg.model (or, resuming, the
            newest checkpoint).
        progress: print one line per step.
        stop_at: return right after this many steps are done, without a checkpoint or a
            final model, as if the process had been killed there (tests of resume).
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    paths = RunPaths(Path(cfg.out))
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(cfg.to_toml())
    write_status(paths, state="starting", pid=os.getpid(), steps=cfg.steps, step=0)
    try:
        return _train(cfg, paths, policy, progress, stop_at)
    except BaseException as error:
        state = "stopped" if isinstance(error, KeyboardInterrupt | SystemExit) else "failed"
        write_status(paths, state=state, message=f"{type(error).__name__}: {error}")
        raise


def _train(cfg, paths: RunPaths, policy, progress: bool, stop_at: int | None) -> TrainResult:
    ckpt = _latest_checkpoint(paths) if cfg.resume else None
    if ckpt is not None and policy is not None:
        raise ValueError("pass a ready policy only for a fresh run; resuming loads the checkpoint")
    start, elapsed = 0, 0.0
    if policy is None:
        lora_resume = ckpt is not None and (ckpt / "adapter_config.json").exists()
        source = str(ckpt) if ckpt is not None and not lora_resume else None
        policy = VLMPolicy.load(cfg, source=source)
        if lora_resume:
            policy.load_adapter(ckpt)
    optimizer = make_optimizer(policy, cfg)
    if ckpt is not None:
        state = torch.load(ckpt / "trainer_state.pt", weights_only=False, map_location="cpu")
        optimizer.load_state_dict(state["optimizer"])
        start, elapsed = int(state["step"]), float(state["elapsed"])
        _truncate_metrics(paths.metrics, start)
        if progress:
            print(f"resumed from {ckpt} at step {start}", flush=True)
    elif paths.metrics.exists():
        paths.metrics.unlink()  # a fresh run: no stale curves

    source = PromptSource(cfg)
    heldout = source.heldout()
    describe = policy.describe() if hasattr(policy, "describe") else {}
    write_status(paths, state="running", step=start, model_info=describe)
    log = paths.metrics.open("a")

    def emit(record: dict) -> None:
        log.write(json.dumps(_jsonable(record)) + "\n")
        log.flush()

    last: dict = {}
    acc: float | None = None
    t_start = time.perf_counter() - elapsed
    with _StopFlag() as stop:
        if start == 0 and heldout:
            t = time.perf_counter()
            ev = evaluate(policy, heldout, cfg)
            emit({"step": 0, **ev, "eval_s": time.perf_counter() - t})
            acc = ev.get("heldout_acc")
        for step in range(start, cfg.steps):
            record = train_step(policy, optimizer, source, cfg, step)
            done = step + 1
            record["elapsed_s"] = time.perf_counter() - t_start
            # CPU time of this process so far (on a shared machine the wall clock mostly
            # measures waiting for a core; this is the work itself). Restarts on resume.
            record["process_cpu_s"] = time.process_time()
            emit(record)
            last = record
            if progress:
                print(_progress_line(record, cfg), flush=True)
            if stop_at is not None and done >= stop_at:
                log.close()
                return TrainResult(paths.root, done, None, last, acc)
            is_last = done == cfg.steps
            if heldout and (is_last or (cfg.eval_every and done % cfg.eval_every == 0)):
                t = time.perf_counter()
                ev = evaluate(policy, heldout, cfg)
                emit({"step": done, **ev, "eval_s": time.perf_counter() - t})
                acc = ev.get("heldout_acc")
                if progress:
                    print(f"step {done}: held-out accuracy {acc:.3f}", flush=True)
            due = cfg.ckpt_every and done % cfg.ckpt_every == 0
            if due or is_last or stop.requested:
                save_checkpoint(policy, optimizer, paths, done, time.perf_counter() - t_start, cfg)
            write_status(paths, state="running", step=done)
            if stop.requested and not is_last:
                log.close()
                write_status(paths, state="stopped", step=done, message="stopped by request")
                return TrainResult(paths.root, done, None, last, acc)
    log.close()
    final = policy.save(paths.final, merged=True)
    summary = {"config": cfg.to_dict(), "steps": cfg.steps, "heldout_acc": acc, **describe}
    summary["wall_s"] = time.perf_counter() - t_start
    (final / "vepo_train.json").write_text(json.dumps(summary, indent=2))
    write_status(paths, state="finished", step=cfg.steps, final=str(final))
    return TrainResult(paths.root, cfg.steps, final, last, acc)


def _progress_line(r: dict, cfg: TrainConfig) -> str:
    return (
        f"step {r['step']}/{cfg.steps} reward {r['reward']:.3f} acc {r['accuracy']:.2f} "
        f"sel {r['selected_fraction']:.2f} H sel/all {r['entropy_selected']:.3f}/"
        f"{r['entropy_all']:.3f} loss {r['loss']:+.4f} {r['step_s']:.1f}s"
    )
