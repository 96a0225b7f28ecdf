"""The Train tab's new-run form as plain functions: the form's values (and its TOML
"extra" box) into a TrainConfig under the serving policy, and the start of a run (under
the app's run limits, vepo_viz.train.app_runs: at most max_runs at once, only into the
runs folder)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from vepo_viz.errors import VepoInputError
from vepo_viz.train.app_runs import AppRuns
from vepo_viz.train.config import TrainConfig, config_changes
from vepo_viz.train.jobs import RunPaths
from vepo_viz.ui.policy import ServingPolicy

__all__ = ["form_config", "start_from_form"]

RUN_NAME = re.compile(r"\w[\w.-]{0,99}")
"""A run's name: its folder inside the runs folder (no separators, no leading dot)."""


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def form_config(
    runs_root: str | Path,
    name: str,
    model: str,
    selection: str,
    score_type: str,
    ratio: float,
    steps: float,
    prompts_per_step: float,
    group_size: float,
    lr: float,
    seed: float,
    families: list[str],
    difficulty: float,
    extra: str,
    *,
    policy: ServingPolicy | None = None,
) -> TrainConfig:
    """The TrainConfig of the form (extra: TOML lines that override any field). `policy`
    refuses a run it does not allow before the config (which checks paths) is built."""
    from vepo_viz.train.config import _tomllib

    name = (name or "").strip() if isinstance(name, str) else ""
    if not RUN_NAME.fullmatch(name):
        raise VepoInputError(
            "give the run a name (letters, digits, - and _, dots inside; no slashes; "
            "at most 100 characters)"
        )
    overrides: dict[str, Any] = {}
    if extra and extra.strip():
        tomllib = _tomllib()
        try:
            overrides = tomllib.loads(extra)
        except tomllib.TOMLDecodeError as error:
            raise VepoInputError(f"more settings: not valid TOML ({error})") from error

    def as_int(value, label):
        if not _finite(value) or value != int(value):  # 1.5 is refused, never rounded
            raise VepoInputError(f"{label} must be a whole number, got {value}")
        return int(value)

    def as_float(value, label):
        if not _finite(value):
            raise VepoInputError(f"{label} must be a number, got {value}")
        return float(value)

    values = {
        "out": str(Path(runs_root) / name),
        "model": (model or "tiny").strip(),
        "selection": selection,
        "score_type": score_type,
        "ratio": as_float(ratio, "ratio"),
        "steps": as_int(steps, "steps"),
        "prompts_per_step": as_int(prompts_per_step, "prompts per step"),
        "group_size": as_int(group_size, "group size"),
        "lr": as_float(lr, "learning rate"),
        "seed": as_int(seed, "seed"),
        "families": tuple(families or ()),
        "difficulty": as_float(difficulty, "difficulty"),
        **overrides,
    }
    if policy is not None:
        data = [str(values.get(k, "")) for k in ("data", "eval_data")]
        data_paths = [d for d in data if d not in ("", "suite")]
        policy.check_train_run(
            str(values["model"]),
            str(values["out"]),
            runs_root,
            data_paths,
            trl_table=values.get("trl") or {},
        )
    return TrainConfig.from_dict(values)


def start_from_form(
    runs_root: str | Path,
    *form,
    policy: ServingPolicy | None = None,
    runs: AppRuns | None = None,
) -> tuple[str, list[str]]:
    """Validate the form, write config.toml and start the run through `runs` (the app's
    AppRuns: its limits; default: one made for `runs_root`). (message, runs to select)."""
    if policy is not None:
        policy.check_train()  # before the form is even read
    cfg = form_config(runs_root, *form, policy=policy)
    runs = runs or AppRuns(runs_root)
    paths = RunPaths(Path(cfg.out))
    resumed = ""
    if paths.config.exists() and paths.checkpoints.exists():
        changes = config_changes(TrainConfig.load_run(paths.root), cfg)
        if changes:
            raise VepoInputError(
                f"a run named {paths.root.name} exists with other settings "
                f"({'; '.join(changes)}); pick another name (or start it with the same "
                "settings to resume it)"
            )
        resumed = " (resuming from its last checkpoint)"
    process = runs.start(cfg)
    return f"started **{paths.root.name}** (pid {process.pid}){resumed}", [paths.root.name]
