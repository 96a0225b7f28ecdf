"""The Train tab's new-run form as plain functions: the form's values (and its TOML
"extra" box) into a TrainConfig under the serving policy, and the start of a run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from vepo_viz.errors import VepoInputError
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.jobs import RunPaths, read_status, start_run
from vepo_viz.ui.policy import ServingPolicy

__all__ = ["form_config", "start_from_form"]


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

    name = (name or "").strip()
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise VepoInputError("give the run a name (letters, digits, - and _; no slashes)")
    overrides: dict[str, Any] = {}
    if extra and extra.strip():
        tomllib = _tomllib()
        try:
            overrides = tomllib.loads(extra)
        except tomllib.TOMLDecodeError as error:
            raise VepoInputError(f"more settings: not valid TOML ({error})") from error

    def as_int(value, label):
        if value is None or float(value) != int(value):
            raise VepoInputError(f"{label} must be a whole number, got {value}")
        return int(value)

    values = {
        "out": str(Path(runs_root) / name),
        "model": (model or "tiny").strip(),
        "selection": selection,
        "score_type": score_type,
        "ratio": float(ratio),
        "steps": as_int(steps, "steps"),
        "prompts_per_step": as_int(prompts_per_step, "prompts per step"),
        "group_size": as_int(group_size, "group size"),
        "lr": float(lr),
        "seed": as_int(seed, "seed"),
        "families": tuple(families or ()),
        "difficulty": float(difficulty),
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
    runs_root: str | Path, *form, policy: ServingPolicy | None = None
) -> tuple[str, list[str]]:
    """Validate the form, write config.toml and start the run. (message, runs to select)."""
    if policy is not None:
        policy.check_train()  # before the form is even read
    cfg = form_config(runs_root, *form, policy=policy)
    paths = RunPaths(Path(cfg.out))
    status = read_status(paths.root)
    if status.get("state") in ("starting", "running"):
        raise VepoInputError(
            f"run {paths.root.name} is already running; stop it or pick a new name"
        )
    resumed = ""
    if paths.config.exists():
        previous = TrainConfig.load_run(paths.root)
        if previous.to_dict() != cfg.to_dict() and paths.checkpoints.exists():
            raise VepoInputError(
                f"a run named {paths.root.name} exists with other settings; pick another name "
                "(or start it with the same settings to resume it)"
            )
        if paths.checkpoints.exists():
            resumed = " (resuming from its last checkpoint)"
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(cfg.to_toml())
    process = start_run(paths.config)
    threading.Thread(target=process.wait, daemon=True).start()  # reap it when it exits
    return f"started **{paths.root.name}** (pid {process.pid}){resumed}", [paths.root.name]
