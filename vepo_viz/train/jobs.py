"""Training runs as background processes: run folders, status, metrics, start and stop.

A run folder (the config's `out`) holds:

    config.toml      the full config the run was started with
    status.json      state (starting/running/stopped/finished/failed), pid, step, final
    metrics.jsonl    one JSON line per step ({"step": s, "reward": ...}) and per
                     evaluation ({"step": s, "heldout_acc": ...})
    log.txt          stdout + stderr of a process started by `start_run`
    checkpoints/     checkpoint-N/ (TRL's: model, or a LoRA adapter, + processor,
                     optimizer, scheduler, RNG state, trainer_state.json)
    final/           the finished model (save_pretrained; LoRA merged), openable in the
                     Analyze tab like any checkpoint

The app and the command line use the same files, so a run started from a terminal shows
up in the Train tab and vice versa.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vepo_viz.errors import VepoError

DEFAULT_RUNS_ROOT = Path("runs/train")
"""Where the Train tab starts runs and looks for them (relative to the working folder)."""

STATES = ("starting", "running", "stopped", "finished", "failed")

PARENT_PID_ENV = "VEPO_VIZ_STOP_WITH_PARENT"
"""Set by `start_run(stop_with_parent=True)` to the starting process's pid: the run stops
(after its step, with a checkpoint) once that process is gone, even if it was killed."""


class RunFolderError(VepoError, OSError):
    """The run folder cannot be written: not a directory, no permission, disk full."""


_IO_PROBLEMS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "not a directory",
    errno.EEXIST: "a file is in the way",
    errno.EISDIR: "a folder is in the way",
}


def io_problem(error: BaseException, folder: str | Path | None = None) -> str | None:
    """A short description of the I/O failure behind `error` (its chain included), or None
    when it is not one. torch and safetensors report a failed write as RuntimeError or
    their own type: those count when their text says so."""
    chain = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for seen in chain:
        if isinstance(seen, OSError) and (seen.errno is not None or seen.strerror):
            what = _IO_PROBLEMS.get(seen.errno, seen.strerror or "I/O error")
            where = f" ({seen.filename})" if seen.filename else ""
            return f"{what}{where}"
    for seen in chain:
        text = str(seen)
        if any(s in text for s in ("No space left", "file write failed", "IoError")):
            return "disk full" if _disk_full(folder) else f"write failed ({text[:200]})"
    return None


def _disk_full(folder: str | Path | None, margin: int = 16 * 2**20) -> bool:
    try:
        return folder is not None and shutil.disk_usage(folder).free < margin
    except OSError:
        return False


@dataclass(frozen=True)
class RunPaths:
    """File layout of one run folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "log.txt"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final(self) -> Path:
        return self.root / "final"


def write_status(paths: RunPaths, **fields) -> dict:
    """Merge `fields` into status.json (atomically: write a temp file, then rename)."""
    status = read_status(paths.root)
    status.update(fields)
    status["updated"] = time.time()
    paths.root.mkdir(parents=True, exist_ok=True)
    # One temp file per writer (the app and the run both write): a reader sees the old
    # status or the new one, never half of one, and no writer renames another's file.
    tmp = paths.root / f".status.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        tmp.write_text(json.dumps(status, indent=2))
        os.replace(tmp, paths.status)
    finally:
        tmp.unlink(missing_ok=True)
    return status


def read_status(run_dir: str | Path) -> dict:
    """status.json of a run ({} if none). A "running" run whose process is gone is
    reported as "stopped" (killed without a chance to say so)."""
    path = RunPaths(Path(run_dir)).status
    try:
        status = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if status.get("state") in ("starting", "running") and not _alive(status.get("pid")):
        status["state"] = "stopped"
        status.setdefault("message", "the process is gone (killed?); resume with the same config")
    return status


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (one row per line; NaN where a line lacks a column).
    Lines cut short by a running writer are skipped."""
    path = RunPaths(Path(run_dir)).metrics
    rows = []
    try:
        text = path.read_text()
    except OSError:
        return pd.DataFrame()
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return pd.DataFrame(rows)


def list_runs(root: str | Path = DEFAULT_RUNS_ROOT) -> list[Path]:
    """Run folders under `root` (those with a config.toml), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p.parent for p in root.glob("*/config.toml")]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def run_summary(run_dir: str | Path) -> dict:
    """One row of the Train tab's run table."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    metrics = read_metrics(run_dir)
    row = {
        "run": run_dir.name,
        "state": status.get("state", "?"),
        "step": f"{status.get('step', 0)}/{status.get('steps', '?')}",
        "reward": None,
        "signal_groups": None,
        "heldout_acc": None,
    }
    row["reward"] = _last(metrics, "reward")
    flat = _last(metrics, "zero_adv_groups")
    row["signal_groups"] = None if flat is None else round(1.0 - flat, 3)
    row["heldout_acc"] = _last(metrics, "heldout_acc")
    return row


def _last(metrics: pd.DataFrame, column: str) -> float | None:
    """The last logged value of `column`, to 3 decimals (None: never logged)."""
    if column not in metrics:
        return None
    values = metrics[column].dropna()
    return round(float(values.iloc[-1]), 3) if len(values) else None


def openable_model(run_dir: str | Path) -> Path | None:
    """The folder to open in the Analyze tab: final/ when finished, else the newest
    checkpoint-N (None if there is none yet). A LoRA checkpoint holds only an adapter;
    `models.load_model` opens it as its base model with the adapter merged in."""
    paths = RunPaths(Path(run_dir))
    if (paths.final / "config.json").exists():
        return paths.final
    for ckpt in sorted(paths.checkpoints.glob("checkpoint-*"), key=_step_of, reverse=True):
        if (ckpt / "config.json").exists() or (ckpt / "adapter_config.json").exists():
            return ckpt
    return None


def _step_of(checkpoint: Path) -> int:
    tail = checkpoint.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def start_run(
    config_path: str | Path,
    extra_args: list[str] | None = None,
    python: str | None = None,
    stop_with_parent: bool = False,
) -> subprocess.Popen:
    """Start `python -m vepo_viz train --config config_path` as a separate process.

    Its output goes to log.txt in the run folder (the config's `out`). The process is its
    own session leader, so a Ctrl-C in the app's terminal does not reach it; with
    `stop_with_parent` it stops (after its step, with a checkpoint) once this process is
    gone (see PARENT_PID_ENV).
    """
    from vepo_viz.train.config import TrainConfig

    cfg = TrainConfig.from_toml(config_path)
    paths = RunPaths(Path(cfg.out))
    paths.root.mkdir(parents=True, exist_ok=True)
    command = [python or sys.executable, "-m", "vepo_viz", "train", "--config", str(config_path)]
    command += list(extra_args or [])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(PARENT_PID_ENV, None)
    if stop_with_parent:
        env[PARENT_PID_ENV] = str(os.getpid())
    log = paths.log.open("ab")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    log.close()
    write_status(paths, state="starting", pid=process.pid, steps=cfg.steps, step=0)
    return process


def stop_run(run_dir: str | Path) -> str:
    """Ask a run's process to stop (SIGTERM: it saves a checkpoint-N after the current
    step and exits). Returns a message for the user."""
    status = read_status(run_dir)
    pid = status.get("pid")
    if status.get("state") not in ("starting", "running") or not _alive(pid):
        return f"{Path(run_dir).name} is not running ({status.get('state', 'no status')})"
    if not _is_training_process(pid):
        return f"{Path(run_dir).name}: process {pid} is not a vepo-viz training run; not stopped"
    os.kill(pid, signal.SIGTERM)
    return f"{Path(run_dir).name}: stopping after the current step (a checkpoint is saved)"


def _is_training_process(pid: int) -> bool:
    """Guard against a recycled pid: the process must be a vepo-viz train command."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return True  # no /proc (macOS): trust status.json
    return "vepo" in cmdline and "train" in cmdline
