"""GRPO training that updates only the selected tokens (VEPO, entropy 80/20, VPPO, random, all).

    from vepo_viz.train import TrainConfig, train
    result = train(TrainConfig(selection="vepo", steps=40, out="runs/train/vepo"))

The same runs start from the command line (`vepo-viz train --config run.toml`) and from
the app's Train tab (a background process each). Layout: config.py (settings), data.py
(prompts), policy.py (the training state around the models.VLM adapter), rollout.py
(rollout / score pass / update), selection.py and grpo.py (pure math), trainer.py (the
loop), jobs.py (run folders and processes), curves.py (plots), repro.py (the
mini-reproduction).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "evaluate",
    "group_advantages",
    "grpo_loss",
    "select_for_step",
    "start_run",
    "stop_run",
    "read_metrics",
    "list_runs",
]

_LAZY = {
    "TrainConfig": "vepo_viz.train.config",
    "TrainResult": "vepo_viz.train.trainer",
    "train": "vepo_viz.train.trainer",
    "evaluate": "vepo_viz.train.trainer",
    "group_advantages": "vepo_viz.train.grpo",
    "grpo_loss": "vepo_viz.train.grpo",
    "select_for_step": "vepo_viz.train.selection",
    "start_run": "vepo_viz.train.jobs",
    "stop_run": "vepo_viz.train.jobs",
    "read_metrics": "vepo_viz.train.jobs",
    "list_runs": "vepo_viz.train.jobs",
}

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.train.config import TrainConfig
    from vepo_viz.train.grpo import group_advantages, grpo_loss
    from vepo_viz.train.jobs import list_runs, read_metrics, start_run, stop_run
    from vepo_viz.train.selection import select_for_step
    from vepo_viz.train.trainer import TrainResult, evaluate, train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vepo_viz.train' has no attribute {name!r}")
