"""GRPO training that updates only the selected tokens (VEPO, entropy 80/20, VPPO, random,
all): TRL's GRPOTrainer with vepo-viz's token selection as a plug-in.

    from vepo_viz.train import TrainConfig, train
    result = train(TrainConfig(selection="vepo", steps=40, out="runs/train/vepo"))

The same runs start from the command line (`vepo-viz train --config run.toml`, or
`accelerate launch -m vepo_viz train ...`) and from the app's Train tab (a background
process each). Layout: config.py (settings), rules.py (the RULES registry: the
selection rules, the one module training selects through), trl_plugin.py (VEPOGRPOTrainer /
VEPOGRPOConfig), trl_data.py and data.py (prompts, rewards, held-out evaluation),
trl_train.py (a TrainConfig run into a run folder), jobs.py (run folders and
processes), curves.py (plots). The mini-reproduction built on it is vepo_viz.repro.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "VEPOGRPOTrainer",
    "VEPOGRPOConfig",
    "RULES",
    "select_for_step",
    "start_run",
    "stop_run",
    "read_metrics",
    "list_runs",
]

_LAZY = {
    "TrainConfig": "vepo_viz.train.config",
    "TrainResult": "vepo_viz.train.trl_train",
    "train": "vepo_viz.train.trl_train",
    "VEPOGRPOTrainer": "vepo_viz.train.trl_plugin",
    "VEPOGRPOConfig": "vepo_viz.train.trl_plugin",
    "RULES": "vepo_viz.train.rules",
    "select_for_step": "vepo_viz.train.rules",
    "start_run": "vepo_viz.train.jobs",
    "stop_run": "vepo_viz.train.jobs",
    "read_metrics": "vepo_viz.train.jobs",
    "list_runs": "vepo_viz.train.jobs",
}

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.train.config import TrainConfig
    from vepo_viz.train.jobs import list_runs, read_metrics, start_run, stop_run
    from vepo_viz.train.rules import RULES, select_for_step
    from vepo_viz.train.trl_plugin import VEPOGRPOConfig, VEPOGRPOTrainer
    from vepo_viz.train.trl_train import TrainResult, train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vepo_viz.train' has no attribute {name!r}")
