"""Warnings about a run's learning signal, for the CLI's progress lines and the Train tab.

GRPO's advantage is a reward minus its group's mean: a group whose G sampled answers all
got the same reward contributes nothing. TRL logs the share of such groups per step
(`frac_reward_zero_std`, metrics column "zero_adv_groups"); when most groups of the recent
steps have zero advantage the run learns (almost) nothing, and the user should make the
task harder. A step has few groups (prompts_per_step), so one step's share is noisy: the
warning reads the mean over the last WINDOW steps.

The other way a run goes wrong is an update that hurts: greedy held-out accuracy falling
from where it started by more than its sampling noise (HELDOUT_DROP_SE standard errors of
the difference of two binomial accuracies over the held-out set) says the learning rate is
too high for the data (docs/mini_reproduction.md measures this on the embedded model).
"""

from __future__ import annotations

import math

ZERO_ADVANTAGE_SHARE = 0.5
"""Warn when more than this share of the recent steps' groups have zero advantage."""

WINDOW = 5
"""Steps whose zero-advantage shares are averaged (fewer at the start of a run)."""

ZERO_ADVANTAGE_MESSAGE = (
    "every sampled answer got the same reward: nothing to learn from; "
    "raise the difficulty or the temperature"
)

HELDOUT_DROP_SE = 2.0
"""Warn when held-out accuracy is this many standard errors below its start."""

HELDOUT_DROP_MESSAGE = (
    "the updates are hurting what the model could already do; "
    "lower the learning rate (lr) or stop earlier"
)


def _records(records) -> list[dict]:
    if hasattr(records, "to_dict"):
        records = records.to_dict("records")
    return list(records or [])


def zero_advantage_warning(records, window: int = WINDOW) -> str | None:
    """The warning for metrics `records` (dicts, or a metrics DataFrame) whose last
    `window` logged steps had zero advantage in most of their groups, else None."""
    steps = [r for r in _records(records) if _number(r.get("zero_adv_groups")) is not None]
    if not steps:
        return None
    recent = steps[-window:]
    share = sum(_number(r["zero_adv_groups"]) for r in recent) / len(recent)
    if share <= ZERO_ADVANTAGE_SHARE:
        return None
    last = int(recent[-1].get("step", 0))
    span = f"step {last}" if len(recent) == 1 else f"steps {int(recent[0].get('step', 0))}-{last}"
    return f"warning: {share:.0%} of the groups of {span} had zero advantage ({ZERO_ADVANTAGE_MESSAGE})"


def heldout_drop_warning(records, n_heldout: int | None = None) -> str | None:
    """The warning for metrics whose latest greedy held-out accuracy is more than
    HELDOUT_DROP_SE standard errors (of the difference, over n_heldout examples; default
    the "heldout_n" the run logged) below the first, else None."""
    evals = [r for r in _records(records) if _number(r.get("heldout_acc")) is not None]
    if len(evals) < 2:
        return None
    n_heldout = int(n_heldout or _number(evals[0].get("heldout_n")) or 0)
    if n_heldout < 1:
        return None
    start, now = _number(evals[0]["heldout_acc"]), _number(evals[-1]["heldout_acc"])
    # both accuracies are estimates over n_heldout examples: the standard error of their
    # difference (a floor of 1/n keeps 0% or 100% from having no noise at all)
    var = sum(max(p * (1.0 - p), 1.0 / n_heldout) for p in (start, now))
    se = math.sqrt(var / n_heldout)
    if start - now <= HELDOUT_DROP_SE * se:
        return None
    return (
        f"warning: held-out accuracy fell from {start:.3f} (step "
        f"{int(evals[0].get('step', 0))}) to {now:.3f} (step {int(evals[-1].get('step', 0))}), "
        f"more than {HELDOUT_DROP_SE:g} standard errors over {n_heldout} examples "
        f"({HELDOUT_DROP_MESSAGE})"
    )


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value
