"""The raw signals beside the normalised ones, as short texts for tooltips.

v and s are min-max normalised per response (the reference definition), so v = 0.46 can
come from a JSD of 3e-08: every tooltip that shows v and s also shows the raw JSD and
|entropy gap| they were normalised from.
"""

from __future__ import annotations

import pandas as pd

from vepo_viz.render.labels import fmt


def raw_signal(jsd: float, abs_gap: float) -> str:
    """ "normalised; raw JSD 3.0e-08, |dH| 1.2e-07 nats" for one token."""
    return f"normalised; raw JSD {fmt(jsd)}, |dH| {fmt(abs_gap)} nats"


FLOOR_NOTE = "at the noise floor: no visual signal"
"""Said of a token whose JSD and |dH| are within the analysis's noise floor."""


def raw_signals(frame: pd.DataFrame) -> list[str]:
    """(T,) `raw_signal` of every token of a token_frame, with FLOOR_NOTE where the
    frame's `at_floor` column (vepo_viz.floor) marks the token."""
    floor = frame["at_floor"].tolist() if "at_floor" in frame else [False] * len(frame)
    pairs = zip(frame["jsd"].tolist(), frame["abs_entropy_gap"].tolist(), floor, strict=True)
    return [raw_signal(j, g) + (f"; {FLOOR_NOTE}" if at else "") for j, g, at in pairs]
