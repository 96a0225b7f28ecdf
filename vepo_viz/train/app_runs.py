"""Training runs the app owns: how many may run at once, where they write, when they stop.

A run started from the Train tab is a separate process (jobs.start_run) that uses the
server's CPUs, GPUs and disk, so the server, not the client, decides:

- at most `RunLimits.max_runs` live runs in the runs folder at once (1 on a CPU-only
  machine); a Start beyond that is refused with a message;
- a run writes only into a folder directly inside the runs folder (`confined_out`: the
  path resolved, symlinks followed), whatever its TOML says;
- the runs the app started stop when the app exits (SIGTERM at exit; a run whose app
  died without exiting stops after its step), each with a checkpoint to resume from,
  unless `RunLimits.keep_runs`.

The command line (`vepo-viz train`) is not limited by any of this: it writes where told.
"""

from __future__ import annotations

import atexit
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from vepo_viz.errors import VepoInputError
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.jobs import RunPaths, read_status, start_run, stop_run
from vepo_viz.train.run_guard import check_threads

MAX_RUNS_LIMIT = 64
"""The largest max_runs accepted."""


def auto_max_runs() -> int:
    """max_runs = 0 ("auto"): one run per visible GPU, 1 without one."""
    import torch

    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


@dataclass(frozen=True)
class RunLimits:
    """What the runs started from the app may use (app.py flags --max-runs, --keep-runs)."""

    max_runs: int = 0
    """Training runs that may run at once in the runs folder (those started from a terminal
    count too); a Start beyond this is refused. 0 = auto: 1 on a CPU-only machine, one per
    GPU otherwise."""
    keep_runs: bool = False
    """Leave the runs started from the app running when the app exits. By default they
    stop (after their current step, with a checkpoint; starting them again resumes)."""

    def __post_init__(self) -> None:
        value = self.max_runs
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= MAX_RUNS_LIMIT
        ):
            raise VepoInputError(
                f"max_runs={value!r} must be an integer in [0, {MAX_RUNS_LIMIT}] (0 = auto)"
            )
        if not isinstance(self.keep_runs, bool):
            raise VepoInputError(f"keep_runs={self.keep_runs!r} must be true or false")

    @property
    def resolved_max_runs(self) -> int:
        return self.max_runs or auto_max_runs()


def confined_out(out: str | Path, runs_root: str | Path) -> Path:
    """`out` resolved (symlinks followed), when it is a folder directly inside `runs_root`;
    else VepoInputError. The message repeats what the user gave, not server paths."""
    root = Path(runs_root).resolve()
    resolved = Path(out).resolve()
    if resolved.parent != root or resolved.name in ("", ".", ".."):
        raise VepoInputError(
            f"out={str(out)!r}: a run started from the app writes only into its own folder "
            "in the runs folder, named by the run name; remove `out` from the settings"
        )
    return resolved


def live_runs(runs_root: str | Path) -> list[str]:
    """Names of the runs in `runs_root` whose process is starting or running."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    names = [p.parent.name for p in root.glob("*/status.json")]
    return sorted(n for n in names if read_status(root / n).get("state") in ("starting", "running"))


class AppRuns:
    """The runs one app starts: the concurrency limit, and their stop at exit."""

    def __init__(self, runs_root: str | Path, limits: RunLimits | None = None) -> None:
        self.runs_root = Path(runs_root)
        self.limits = limits or RunLimits()
        self._lock = threading.Lock()
        self._started: dict[Path, subprocess.Popen] = {}
        if not self.limits.keep_runs:
            atexit.register(self.stop_all)

    def start(self, cfg: TrainConfig) -> subprocess.Popen:
        """Write cfg's config.toml and start its run, unless its folder is not directly
        inside the runs folder, it is running already, or max_runs runs are live
        (VepoInputError, each with what to do)."""
        run_dir = confined_out(cfg.out, self.runs_root)
        check_threads(cfg)  # the run would refuse it at once
        with self._lock:  # two clients pressing Start at once: one of them is refused
            live = live_runs(self.runs_root)
            if run_dir.name in live:
                raise VepoInputError(
                    f"run {run_dir.name} is already running; stop it or pick a new name"
                )
            limit = self.limits.resolved_max_runs
            if len(live) >= limit:
                shown = ", ".join(live[:5]) + (" ..." if len(live) > 5 else "")
                raise VepoInputError(
                    f"{len(live)} training run(s) already running ({shown}); this server runs "
                    f"at most {limit} at once: wait for one to finish or stop it "
                    "(whoever runs the app can raise the limit with --max-runs)"
                )
            paths = RunPaths(run_dir)
            paths.root.mkdir(parents=True, exist_ok=True)
            paths.config.write_text(cfg.to_toml())
            process = start_run(paths.config, stop_with_parent=not self.limits.keep_runs)
            self._started[run_dir] = process
        threading.Thread(target=process.wait, daemon=True).start()  # reap it when it exits
        return process

    def running(self) -> list[Path]:
        """Run folders this app started whose process is still alive."""
        return [d for d, p in self._started.items() if p.poll() is None]

    def stop_all(self) -> list[str]:
        """Ask every live run this app started to stop (SIGTERM: a checkpoint, then exit)."""
        return [stop_run(d) for d in self.running() if RunPaths(d).status.exists()]
