"""`vepo-viz train` on TRL: a TrainConfig run through VEPOGRPOTrainer, into a run folder.

    result = train(TrainConfig(selection="vepo", steps=40, out="runs/train/a"))

The run folder is the one jobs.py, curves.py and the Train tab read (see jobs.RunPaths):
config.toml, status.json (starting / running / stopped / finished / failed), metrics.jsonl
(one line per step with today's metric names where TRL has the equivalent, one line per
held-out evaluation), checkpoints/checkpoint-N/ (TRL/HF checkpoints: model or adapter,
optimizer, scheduler, RNG state), final/ (a plain model folder; LoRA merged) and, with
trace_every, traces/step-N.jsonl (selection traces: train/traces.py).

Prompts come from PromptSource (step s trains on
step_prompts(s), TRL's shuffling off); the reward is the suite's verifier (1.0 correct,
0.1 well-formed, 0.0 malformed). A run folder with a checkpoint resumes from the newest
one, and SIGTERM (jobs.stop_run) stops after the current step with a checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig
from trl.trainer.callbacks import TrainerCallback  # transformers', as TRL's callbacks use it

from vepo_viz.errors import VepoInputError
from vepo_viz.train.advice import heldout_drop_warning, zero_advantage_warning
from vepo_viz.train.config import AUTO_LORA_PARAMS, TrainConfig
from vepo_viz.train.data import PromptSource
from vepo_viz.train.jobs import (
    PARENT_PID_ENV,
    RunFolderError,
    RunPaths,
    io_problem,
    read_metrics,
    read_status,
    write_status,
)
from vepo_viz.train.run_guard import (
    CHECKPOINT_CONFIG,
    check_resume,
    check_threads,
    failure,
    guard_saves,
    latest_checkpoint,
)
from vepo_viz.train.trl_data import REWARD_FUNCS, build_dataset, evaluate
from vepo_viz.train.trl_plugin import VEPOGRPOConfig, VEPOGRPOTrainer

_PRINTERS = ("PrinterCallback", "ProgressCallback")
"""transformers' callbacks that print TRL's raw log dicts (replaced by one line per step)."""

EMBEDDED_NAMES = ("tiny", "embedded")
"""Values of `model` meaning the embedded tiny model."""

METRIC_NAMES = {
    "reward": "reward",
    "reward_std": "reward_std",
    "rewards/correct/mean": "accuracy",
    "rewards/well_formed/mean": "well_formed",
    "completions/mean_length": "response_len",
    "frac_reward_zero_std": "zero_adv_groups",
    "loss": "loss",
    "grad_norm": "grad_norm",
    "learning_rate": "lr",
    "kl": "kl",
    "clip_ratio/region_mean": "clip_fraction",
    "entropy": "entropy_policy",
    "vepo/selected_fraction": "selected_fraction",
    "vepo/entropy_selected": "entropy_selected",
    "vepo/entropy_all": "entropy_all",
    "vepo/jsd_selected": "jsd_selected",
    "vepo/jsd_all": "jsd_all",
    "vepo/vis_selected": "vis_selected",
    "vepo/vis_all": "vis_all",
}
"""TRL log key -> metrics.jsonl column (the names curves.py and the repro read); other TRL keys are
written as TRL names them."""


@dataclass
class TrainResult:
    """What a finished (or stopped) call of `train` leaves behind."""

    run_dir: Path
    steps_done: int
    final_dir: Path | None
    """save_pretrained folder of the final model (None if the run stopped early)."""
    last_metrics: dict
    heldout_acc: float | None


# ---- settings ------------------------------------------------------------------------


def trl_args(cfg: TrainConfig, output_dir: str | Path, **overrides: Any) -> VEPOGRPOConfig:
    """The VEPOGRPOConfig of `cfg` (the one place TrainConfig names meet TRL's).

    One generation batch per optimizer step: prompts_per_step x group_size completions,
    split into micro-batches of cfg.micro_batch sequences whose gradients TRL accumulates
    (steps_per_generation = gradient_accumulation_steps; the "dapo" loss divides by the
    token count of the whole generation batch, so the update equals the unsplit one);
    ppo_epochs optimizer steps reuse it (TRL's num_iterations). cfg.trl (the [trl] table:
    any other GRPOConfig field, e.g. use_vllm) wins over the mapping, and `overrides`
    (e.g. report_to, use_cpu) over both. The selection settings pass as they are: a scope
    or rule training cannot honour is refused by the config (rules.selection_problems),
    and TRL's own entropy quantile is the [trl] table's top_entropy_quantile.
    """
    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    ckpt_every = cfg.ckpt_every or cfg.steps
    values = dict(
        output_dir=str(output_dir),
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=cpu,
        bf16=cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and not cpu),
        report_to=_report_to(cfg.report_to),
        disable_tqdm=True,
        logging_steps=1,
        save_strategy="steps",
        save_steps=ckpt_every,
        save_total_limit=cfg.keep_checkpoints,
        max_steps=cfg.steps * cfg.ppo_epochs,
        per_device_train_batch_size=cfg.micro_batch,
        gradient_accumulation_steps=cfg.rollout_size // cfg.micro_batch,
        steps_per_generation=cfg.rollout_size // cfg.micro_batch,
        num_generations=cfg.group_size,
        num_iterations=cfg.ppo_epochs,
        shuffle_dataset=False,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant_with_warmup" if cfg.warmup_steps else "constant",
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        beta=cfg.kl_beta,
        epsilon=cfg.clip_eps,
        epsilon_high=cfg.clip_eps_high,
        scale_rewards="group" if cfg.adv_norm == "std" else "none",
        loss_type="dapo",
        reward_weights=[1.0, 0.0, 0.0],  # verifier_reward; correct and well_formed: logged only
        selection=cfg.selection,
        **VEPOGRPOConfig.selection_fields(cfg.scoring, cfg.perturb_config),
        perturb="" if cfg.perturb is None else cfg.perturb.mode,  # "": the rule's reference
        loss_mode=cfg.loss_mode,
        weight_lambda=cfg.weight_lambda,
        vppo_rescale=cfg.vppo_rescale,
        trace_every=cfg.trace_every,
        trace_samples=cfg.trace_samples,
        trace_dir=str(cfg.out),
    )
    # transformers >= 5.x names it activation checkpointing (the old names still work).
    name = "activation" if "activation_checkpointing" in _field_names() else "gradient"
    values[f"{name}_checkpointing"] = cfg.gradient_checkpointing
    values[f"{name}_checkpointing_kwargs"] = {"use_reentrant": False}
    check_trl_table(cfg.trl)
    return VEPOGRPOConfig(**{**values, **cfg.trl, **overrides})


RESERVED_TRL_KEYS = ("output_dir", "logging_dir", "push_to_hub", "hub_model_id", "hub_token",
                     "hub_strategy", "hub_private_repo", "resume_from_checkpoint", "deepspeed",
                     "fsdp", "fsdp_config")  # fmt: skip
"""GRPOConfig fields a [trl] table may not set: the run folder is `out`, the hub is not
ours to push to, and DeepSpeed / FSDP come from the accelerate config file."""


def check_trl_table(table: dict[str, Any]) -> None:
    """Refuse [trl] keys that are not GRPOConfig fields, that a TrainConfig field or the
    plug-in's own settings own, or that are reserved (see RESERVED_TRL_KEYS)."""
    grpo = {f.name for f in dataclasses.fields(GRPOConfig)}
    ours = _field_names() - grpo
    errors = []
    for key in table:
        if key in ours:
            errors.append(f"{key!r} is a VEPO setting: set it outside the [trl] table")
        elif key in RESERVED_TRL_KEYS:
            errors.append(f"{key!r} cannot be set from [trl] (see trl_train.RESERVED_TRL_KEYS)")
        elif key not in grpo:
            close = difflib.get_close_matches(key, sorted(grpo), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{key!r} is not a field of trl's GRPOConfig{hint}")
    if errors:
        raise VepoInputError("invalid [trl] table: " + "; ".join(errors))


def _report_to(value: str) -> list[str] | str:
    """TrainConfig.report_to ("none", "all", or "a,b") as GRPOConfig.report_to."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if names in ([], ["none"]):
        return []
    return "all" if names == ["all"] else names


def _field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(VEPOGRPOConfig)}


# ---- the callback ----------------------------------------------------------------------


class RunFolderCallback(TrainerCallback):
    """metrics.jsonl, status.json, held-out evaluation and stop requests of one run."""

    def __init__(
        self,
        cfg: TrainConfig,
        paths: RunPaths,
        evaluate_fn,
        *,
        progress: bool,
        stop_at: int | None,
        fresh: bool,
        elapsed: float = 0.0,
    ) -> None:
        self.cfg, self.paths, self.evaluate_fn = cfg, paths, evaluate_fn
        self.progress, self.stop_at, self.fresh = progress, stop_at, fresh
        self.trainer: VEPOGRPOTrainer | None = None
        self.stop_requested = False
        self.cut = False
        self.last: dict = {}
        self.heldout_acc: float | None = None
        self._t_start = time.perf_counter() - elapsed
        self._t_step = 0.0
        self._step_s = 0.0
        self._synced = False
        self._warned = False
        self._warned_drop = False
        self._history: list[dict] = []  # logged steps of this process (zero-advantage window)
        self._previous: dict = {}
        parent = os.environ.get(PARENT_PID_ENV, "")
        self.parent_pid = int(parent) if parent.isdigit() else None
        """The app that started this run (jobs.start_run(stop_with_parent=True)), or None."""
        self.parent_gone = False

    # ---- signals (jobs.stop_run sends SIGTERM) ----

    def install_signals(self) -> None:
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread: no handlers
            self._previous = {}

    def restore_signals(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        if self.stop_requested:
            raise SystemExit(128 + signum)
        self.stop_requested = True

    # ---- files ----

    def emit(self, record: dict) -> None:
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        with self.paths.metrics.open("a") as log:
            log.write(json.dumps(clean) + "\n")

    def run_eval(self, model, step: int) -> None:
        t = time.perf_counter()
        ev = self.evaluate_fn(model)
        if not ev:
            return
        self.emit({"step": step, **ev, "eval_s": time.perf_counter() - t})
        self.heldout_acc = ev.get("heldout_acc")
        if self.progress:
            print(f"step {step}: held-out accuracy {self.heldout_acc:.3f}", flush=True)
            drop = (
                None if self._warned_drop else heldout_drop_warning(read_metrics(self.paths.root))
            )
            if drop:  # once per run: the Train tab shows it for the latest evaluation
                print(drop, flush=True)
                self._warned_drop = True

    # ---- TrainerCallback hooks ----

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.fresh:
            self.run_eval(model, 0)

    def on_step_begin(self, args, state, control, **kwargs):
        if not self._synced and self.trainer is not None:
            # A resumed run continues the counterfactual seeds of the uninterrupted one.
            self.trainer._generation_step = state.global_step // max(1, args.num_iterations)
            self._synced = True
        self._t_step = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._step_s = time.perf_counter() - self._t_step
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self.stop_requested = self.parent_gone = True  # the app exited or was killed
        if self.stop_requested and state.global_step < state.max_steps:
            control.should_save = True
            control.should_training_stop = True
        if self.stop_at is not None and state.global_step >= self.stop_at:
            control.should_training_stop = True
            self.cut = True

    def on_save(self, args, state, control, **kwargs):
        """The checkpoint keeps the config it was made with (a resume compares against it)."""
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            (folder / CHECKPOINT_CONFIG).write_text(self.cfg.to_toml())

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        logs = logs or {}
        if "reward" not in logs:  # the end-of-training summary
            return
        done = state.global_step
        record = {"step": done, **{METRIC_NAMES.get(k, k): v for k, v in logs.items()}}
        if self.cfg.selection == "all":
            record.setdefault("selected_fraction", 1.0)
        record.update(
            step_s=self._step_s,
            elapsed_s=time.perf_counter() - self._t_start,
            process_cpu_s=time.process_time(),
        )
        self.emit(record)
        self.last = record
        if self.progress:
            print(_progress_line(record, state.max_steps), flush=True)
            self._history.append(record)
            warning = None if self._warned else zero_advantage_warning(self._history)
            if warning:  # once per run: the Train tab shows it for the latest steps
                print(warning, flush=True)
                self._warned = True
        every = self.cfg.eval_every
        if not self.cut and (done == state.max_steps or (every and done % every == 0)):
            self.run_eval(model, done)
        write_status(self.paths, state="running", step=done, elapsed_s=record["elapsed_s"])


def _progress_line(r: dict, steps: int) -> str:
    def f(key: str) -> str:
        v = r.get(key)
        return "-" if v is None else f"{v:.3f}"

    return (
        f"step {r['step']}/{steps} reward {f('reward')} acc {f('accuracy')} "
        f"sel {f('selected_fraction')} H sel/all {f('entropy_selected')}/{f('entropy_all')} "
        f"loss {f('loss')} {r['step_s']:.1f}s"
    )


# ---- checkpoints -----------------------------------------------------------------------


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


# ---- the entry point -------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    *,
    progress: bool = True,
    stop_at: int | None = None,
    resume_changed: bool = False,
    **trl_overrides: Any,
) -> TrainResult:
    """Run (or resume) the GRPO run `cfg` describes on TRL, writing everything under cfg.out.

    Args:
        progress: print one line per step.
        stop_at: return right after this many optimizer steps, without a final model, as
            if the process had been killed there (tests of resume).
        resume_changed: resume the newest checkpoint even when `cfg` differs from the
            config it was made with (else VepoInputError listing the differences).
        trl_overrides: GRPOConfig fields that win over `trl_args` and cfg.trl (e.g.
            report_to).

    A run folder that cannot be written (not a directory, no permission, disk full, also
    while saving a checkpoint) raises RunFolderError; status.json then says "failed" and
    why, as for any exception the run dies of.
    """
    paths = RunPaths(Path(cfg.out))
    try:  # before any model is loaded
        check_trl_table(cfg.trl)
        check_threads(cfg)
        ckpt = latest_checkpoint(paths) if cfg.resume else None
        if ckpt is not None and not resume_changed:
            check_resume(cfg, paths, ckpt)
    except VepoInputError as error:
        if read_status(paths.root).get("pid") == os.getpid():  # started by jobs.start_run
            write_status(paths, state="failed", message=str(error))
        raise
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.config.write_text(cfg.to_toml())
        write_status(paths, state="starting", pid=os.getpid(), steps=cfg.steps, step=0, message="")
    except OSError as error:
        raise RunFolderError(
            f"cannot write the run folder {cfg.out}: {io_problem(error)}"
        ) from error
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, paths, ckpt, progress, stop_at, trl_overrides)
    except BaseException as error:
        reason, io = failure(error, paths)
        state = "stopped" if isinstance(error, KeyboardInterrupt | SystemExit) else "failed"
        try:
            write_status(paths, state=state, message=reason)
        except OSError:  # the disk is still full: the message at least reaches the log
            print(f"status.json not written: {state}: {reason}", flush=True)
        if io:
            raise RunFolderError(reason) from error
        raise


def _load(cfg: TrainConfig):
    """(vlm, peft_config or None, finetune name) for cfg.model."""
    from vepo_viz.models import load_model
    from vepo_viz.models.lora import lora_config

    name = None if cfg.model in EMBEDDED_NAMES else cfg.model
    dtype = None if cfg.dtype == "auto" else cfg.dtype
    vlm = load_model(name, device=cfg.device, dtype=dtype, cache=False)
    n_params = sum(p.numel() for p in vlm.model.parameters())
    lora = cfg.finetune == "lora" or (cfg.finetune == "auto" and n_params > AUTO_LORA_PARAMS)
    if not lora:
        return vlm, None, "full"
    peft = lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets, vlm.family)
    return vlm, peft, "lora"


def _train(cfg, paths: RunPaths, ckpt, progress: bool, stop_at, overrides: dict) -> TrainResult:
    elapsed = 0.0
    if ckpt is not None:
        state = json.loads((ckpt / "trainer_state.json").read_text())
        _truncate_metrics(paths.metrics, int(state["global_step"]))
        elapsed = float(read_status(paths.root).get("elapsed_s", 0.0) or 0.0)
        if progress:
            print(f"resumed from {ckpt} at step {state['global_step']}", flush=True)
    elif paths.metrics.exists():
        paths.metrics.unlink()  # a fresh run: no stale curves

    vlm, peft, finetune = _load(cfg)
    source = PromptSource(cfg)
    heldout = source.heldout()
    max_pixels = vlm.max_image_pixels
    callback = RunFolderCallback(
        cfg,
        paths,
        lambda model: evaluate(model, vlm.processor, heldout, cfg, max_pixels),
        progress=progress,
        stop_at=stop_at,
        fresh=ckpt is None,
        elapsed=elapsed,
    )
    trainer = VEPOGRPOTrainer(
        model=vlm.model,
        processing_class=vlm.processor,
        reward_funcs=REWARD_FUNCS,
        args=trl_args(cfg, paths.checkpoints, **overrides),
        train_dataset=build_dataset(cfg, source, max_pixels),
        peft_config=peft,
        callbacks=[callback],
    )
    callback.trainer = trainer
    guard_saves(trainer)
    for printer in [c for c in trainer.callback_handler.callbacks if type(c).__name__ in _PRINTERS]:
        trainer.remove_callback(printer)  # the callback prints one line per step instead
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    info = {"finetune": finetune, "trainable_params": trainable, "total_params": total}
    write_status(paths, state="running", step=0, model_info=info, trainer="trl")
    callback.install_signals()
    try:
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    finally:
        callback.restore_signals()
    done = trainer.state.global_step
    write_status(paths, elapsed_s=time.perf_counter() - callback._t_start)
    if callback.cut:
        return TrainResult(paths.root, done, None, callback.last, callback.heldout_acc)
    if callback.stop_requested and done < trainer.state.max_steps:
        why = ": the app that started it exited" if callback.parent_gone else " by request"
        write_status(paths, state="stopped", step=done, message=f"stopped{why}")
        return TrainResult(paths.root, done, None, callback.last, callback.heldout_acc)
    final = _save_final(trainer, vlm.processor, paths.final)
    summary = {"config": cfg.to_dict(), "steps": done, "heldout_acc": callback.heldout_acc}
    summary.update(info, wall_s=time.perf_counter() - callback._t_start, trainer="trl")
    (final / "vepo_train.json").write_text(json.dumps(summary, indent=2))
    write_status(paths, state="finished", step=done, final=str(final))
    return TrainResult(paths.root, done, final, callback.last, callback.heldout_acc)


def _save_final(trainer: VEPOGRPOTrainer, processor, folder: Path) -> Path:
    """final/: a plain model folder (a LoRA adapter merged into its base)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
