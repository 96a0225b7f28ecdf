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


def raw_signals(frame: pd.DataFrame) -> list[str]:
    """(T,) `raw_signal` of every token of a token_frame."""
    return [
        raw_signal(j, g)
        for j, g in zip(frame["jsd"].tolist(), frame["abs_entropy_gap"].tolist(), strict=True)
    ]
