"""What a training run checks before it resumes, and what it says when it dies.

- `check_resume`: a checkpoint keeps the config it was made with (checkpoint-N/
  vepo_config.toml); resuming it with other settings (outside config.RESUME_SAFE) is
  refused with the list of differences, unless the caller asks (--resume-changed).
- `guard_saves`: a checkpoint save that fails (disk full, permission) names its step and
  leaves no half-written checkpoint-N (which would hold the space and cannot be resumed).
- `failure`: the reason status.json gives when a run dies of an exception, and whether it
  is an I/O failure (rc 2 on the command line, not a bug).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vepo_viz.errors import VepoInputError
from vepo_viz.train.config import RESUME_SAFE, TrainConfig, config_changes
from vepo_viz.train.jobs import RunPaths, io_problem

CHECKPOINT_CONFIG = "vepo_config.toml"
"""The TrainConfig a checkpoint was made with, inside checkpoint-N/."""


def latest_checkpoint(paths: RunPaths) -> Path | None:
    """The newest complete TRL checkpoint (checkpoint-N with trainer_state.json)."""
    found = [p.parent for p in paths.checkpoints.glob("checkpoint-*/trainer_state.json")]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


RESUME_SAFE_SHOWN = tuple(k for k in RESUME_SAFE if k != "out")


def check_resume(cfg: TrainConfig, paths: RunPaths, ckpt: Path) -> None:
    """Refuse to resume `ckpt` with a config that differs from the one it was made with
    (outside config.RESUME_SAFE): the differences, and what to do, in the message."""
    source = ckpt / CHECKPOINT_CONFIG
    source = source if source.is_file() else paths.config  # checkpoints of older versions
    if not source.is_file():
        return
    try:
        changes = config_changes(TrainConfig.from_toml(source), cfg)
    except VepoInputError as error:
        changes = [f"(the checkpoint's config no longer reads: {error})"]
    if changes:
        raise VepoInputError(
            f"{paths.root} has a checkpoint at step {ckpt.name.rsplit('-', 1)[-1]} made with "
            "other settings:\n  - " + "\n  - ".join(changes) + "\nResume with the "
            "checkpoint's settings, train into a new --out, or pass --resume-changed to go on "
            "from the checkpoint with the new settings anyway (settings a resume may change: "
            f"{', '.join(RESUME_SAFE_SHOWN)})"
        )


def check_threads(cfg: TrainConfig) -> None:
    cores = os.cpu_count() or 1
    if cfg.threads > cores:
        raise VepoInputError(
            f"threads={cfg.threads} is more than this machine's {cores} CPU cores: use at most "
            f"{cores} (0 = torch's default)"
        )


def failure(error: BaseException, paths: RunPaths) -> tuple[str, bool]:
    """(the reason status.json gives, whether it is an I/O failure) of a run's exception."""
    problem = io_problem(error, paths.root)
    if problem is None:
        return f"{type(error).__name__}: {error}", False
    ckpt = latest_checkpoint(paths)
    since = ckpt.name if ckpt is not None else "the start (no checkpoint yet)"
    what = "writing the run folder"
    if isinstance(error, CheckpointError):
        what = f"saving checkpoint-{error.step}"
    return (
        f"{what} failed: {problem}. Free some space (or fix the folder) and run the same "
        f"command again: it resumes from {since}",
        True,
    )


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved (its cause is the writer's error)."""

    def __init__(self, step: int, cause: BaseException) -> None:
        super().__init__(f"saving checkpoint-{step} failed: {cause}")
        self.step = step


def guard_saves(trainer) -> None:
    """A failed checkpoint save raises CheckpointError (naming the step) and leaves no
    half-written checkpoint-N behind: it would hold disk space and cannot be resumed."""
    save = trainer._save_checkpoint

    def guarded(model, trial):
        step = trainer.state.global_step
        try:
            return save(model, trial)
        except Exception as error:
            folder = Path(trainer.args.output_dir) / f"checkpoint-{step}"
            if not (folder / "trainer_state.json").exists():
                shutil.rmtree(folder, ignore_errors=True)
            raise CheckpointError(step, error) from error

    trainer._save_checkpoint = guarded
