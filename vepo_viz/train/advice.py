"""Warnings about a run's learning signal, for the CLI's progress lines and the Train tab.

GRPO's advantage is a reward minus its group's mean: a group whose G sampled answers all
got the same reward contributes nothing. TRL logs the share of such groups per step
(`frac_reward_zero_std`, metrics column "zero_adv_groups"); when most groups of a step have
zero advantage the run learns (almost) nothing, and the user should make the task harder.
"""

from __future__ import annotations

ZERO_ADVANTAGE_SHARE = 0.5
"""Warn when more than this share of a step's groups have zero advantage."""

ZERO_ADVANTAGE_MESSAGE = (
    "every sampled answer got the same reward: nothing to learn from; "
    "raise the difficulty or the temperature"
)


def zero_advantage_warning(records) -> str | None:
    """The warning for metrics `records` (dicts, or a metrics DataFrame) whose latest
    step had zero advantage in most of its groups, else None."""
    if hasattr(records, "to_dict"):
        records = records.to_dict("records")
    steps = [r for r in records or [] if _number(r.get("zero_adv_groups")) is not None]
    if not steps:
        return None
    share = _number(steps[-1]["zero_adv_groups"])
    if share <= ZERO_ADVANTAGE_SHARE:
        return None
    return (
        f"warning: {share:.0%} of the groups of step {int(steps[-1].get('step', 0))} had "
        f"zero advantage ({ZERO_ADVANTAGE_MESSAGE})"
    )


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value
