"""A real learning signal: GRPO raises the embedded tiny model's reward on an easy task.

Four fixed training prompts of one family, G sampled answers each per step: with a fixed
seed the share of correct samples must rise clearly within a few steps (GRPO makes the
rewarded answers more likely). Needs the embedded model (vepo_viz/tiny/model).

The embedded model answers every family but bar comparison almost always right at
temperature 1, which leaves GRPO nothing to raise; sampling hot (2.5) spreads the answers
(about 30% correct at the start), and GRPO must make the right ones more likely again
(measured: 0.30 -> 0.59 over 8 steps). On bar comparison, where it is at chance, 6-12 steps
at lr 1e-4 to 5e-4 did not raise the reward.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vepo_viz.tasks import export_jsonl
from vepo_viz.tiny import DEFAULT_MODEL
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.jobs import read_metrics
from vepo_viz.train.trainer import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(DEFAULT_MODEL) / "config.json").is_file(),
        reason="the embedded tiny model is not built (vepo_viz/tiny/model)",
    ),
]

FAMILY = "color"
DIFFICULTY = 1.0
N_PROMPTS = 4
STEPS = 8
LR = 3e-4
TEMPERATURE = 2.5


def test_grpo_improves_the_tiny_models_reward(tmp_path):
    data = export_jsonl(
        tmp_path / "data.jsonl",
        split="train",
        n_per_family=N_PROMPTS,
        families=[FAMILY],
        difficulty=DIFFICULTY,
    )
    cfg = TrainConfig(
        model="tiny",
        out=str(tmp_path / "run"),
        data=str(data),
        prompts_per_step=N_PROMPTS,
        group_size=8,
        steps=STEPS,
        lr=LR,
        seed=0,
        selection="vepo",
        n_eval=0,
        ckpt_every=0,
        max_new_tokens=24,
        temperature=TEMPERATURE,
        threads=1,
    )
    train(cfg, progress=False)
    accuracy = read_metrics(cfg.out)["accuracy"].dropna().tolist()
    first, last = sum(accuracy[:2]) / 2, sum(accuracy[-2:]) / 2
    assert last >= first + 0.15, f"sampled accuracy per step: {accuracy}"
