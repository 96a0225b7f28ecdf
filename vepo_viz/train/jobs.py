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

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DEFAULT_RUNS_ROOT = Path("runs/train")
"""Where the Train tab starts runs and looks for them (relative to the working folder)."""

STATES = ("starting", "running", "stopped", "finished", "failed")


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
    tmp = paths.status.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(status, indent=2))
    os.replace(tmp, paths.status)
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
        "heldout_acc": None,
    }
    if not metrics.empty:
        if "reward" in metrics:
            rewards = metrics["reward"].dropna()
            row["reward"] = round(float(rewards.iloc[-1]), 3) if len(rewards) else None
        if "heldout_acc" in metrics:
            accs = metrics["heldout_acc"].dropna()
            row["heldout_acc"] = round(float(accs.iloc[-1]), 3) if len(accs) else None
    return row


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
    config_path: str | Path, extra_args: list[str] | None = None, python: str | None = None
) -> subprocess.Popen:
    """Start `python -m vepo_viz train --config config_path` as a separate process.

    Its output goes to log.txt in the run folder (the config's `out`). The process is its
    own session leader, so stopping the app does not stop the run.
    """
    from vepo_viz.train.config import TrainConfig

    cfg = TrainConfig.from_toml(config_path)
    paths = RunPaths(Path(cfg.out))
    paths.root.mkdir(parents=True, exist_ok=True)
    command = [python or sys.executable, "-m", "vepo_viz", "train", "--config", str(config_path)]
    command += list(extra_args or [])
    log = paths.log.open("ab")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
