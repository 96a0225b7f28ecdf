"""Aggregate plotly figures of a scored dataset (one row per token): entropy against
visual sensitivity, and per family the share of each selection's picks below their
response's median entropy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from vepo_viz.render.colors import CATEGORIES, CATEGORY_COLORS, CATEGORY_LABELS
from vepo_viz.render.token_rows import FigureBuilder

BATCH_TOKEN_COLUMNS = ("entropy", "visual_sensitivity", "selected_vepo", "selected_entropy")
"""Columns a per-token batch frame needs for `batch_figures` (plus optional example/family)."""


def batch_figures(
    tokens: pd.DataFrame, max_points: int = 4000, seed: int = 0
) -> dict[str, go.Figure]:
    """Aggregate plots of a scored dataset (one row per token).

    - "scatter": entropy vs visual sensitivity of all tokens (a seeded sample of at most
      max_points), coloured by selection category;
    - "low_entropy": per family, the share of each selection's tokens whose entropy is
      below their response's median: the low-entropy tokens entropy-only misses.
    """
    missing = [c for c in BATCH_TOKEN_COLUMNS if c not in tokens]
    if missing:
        raise ValueError(f"batch token table lacks columns {missing}")
    frame = tokens.copy()
    if "family" not in frame:
        frame["family"] = "all"
    example = "example" if "example" in frame else None
    frame["category"] = _categories_of(frame)
    if example:
        median = frame.groupby(example)["entropy"].transform("median")
    else:
        median = pd.Series(np.median(frame["entropy"]), index=frame.index)
    frame["low_entropy"] = frame["entropy"] < median

    sample = frame
    if len(frame) > max_points:
        sample = frame.sample(n=max_points, random_state=seed)
    scatter = FigureBuilder()
    for cat in CATEGORIES:
        part = sample[sample["category"] == cat]
        scatter.add_trace(
            dict(
                type="scatter",
                x=part["entropy"],
                y=part["visual_sensitivity"],
                mode="markers",
                name=CATEGORY_LABELS[cat],
                marker={
                    # light grey "neither" would vanish on white without a border
                    "color": "#c4c4c4" if cat == "neither" else CATEGORY_COLORS[cat],
                    "size": 6,
                    "opacity": 0.7,
                },
                hovertemplate="H=%{x:.3f}, v=%{y:.3f}<extra>" + CATEGORY_LABELS[cat] + "</extra>",
            )
        )
    scatter.update_layout(
        title={"text": f"all tokens ({len(frame)}; {len(sample)} shown)", "x": 0.01},
        height=400,
        plot_bgcolor="white",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"title": {"text": "entropy H (nats)"}, "gridcolor": "#eeeeee"},
        yaxis={"title": {"text": "visual sensitivity v"}, "gridcolor": "#eeeeee"},
        legend={"orientation": "h", "y": -0.2},
    )

    shares = low_entropy_shares(frame)
    bars = FigureBuilder()
    for col, name, color in (
        ("vepo", "VEPO picks", CATEGORY_COLORS["vepo_only"]),
        ("entropy", "entropy picks", CATEGORY_COLORS["entropy_only"]),
        ("all", "all tokens", "#999999"),
    ):
        bars.add_trace(
            dict(
                type="bar",
                x=shares["family"],
                y=shares[col],
                name=name,
                marker={"color": color},
                text=[f"{v:.0%}" for v in shares[col]],
                textposition="outside",
            )
        )
    bars.update_layout(
        barmode="group",
        title={"text": "share of tokens with below-median entropy", "x": 0.01},
        height=400,
        plot_bgcolor="white",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        yaxis={"range": [0, 1.1], "tickformat": ".0%", "gridcolor": "#eeeeee"},
        legend={"orientation": "h", "y": -0.2},
    )
    return {"scatter": scatter.build(), "low_entropy": bars.build()}


def _categories_of(frame: pd.DataFrame) -> np.ndarray:
    v = frame["selected_vepo"].to_numpy(dtype=bool)
    e = frame["selected_entropy"].to_numpy(dtype=bool)
    return np.select([v & e, v & ~e, ~v & e], ["both", "vepo_only", "entropy_only"], "neither")


def low_entropy_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Per family (and "all"): share of below-median-entropy tokens among VEPO picks,
    entropy picks and all tokens. `frame` needs a boolean low_entropy column."""

    def shares(part: pd.DataFrame) -> dict[str, float]:
        low = part["low_entropy"].to_numpy(dtype=bool)
        v = part["selected_vepo"].to_numpy(dtype=bool)
        e = part["selected_entropy"].to_numpy(dtype=bool)
        return {
            "vepo": float(low[v].mean()) if v.any() else math.nan,
            "entropy": float(low[e].mean()) if e.any() else math.nan,
            "all": float(low.mean()) if len(low) else math.nan,
            "n_tokens": len(part),
        }

    rows = [{"family": fam, **shares(part)} for fam, part in frame.groupby("family", sort=True)]
    if len(rows) != 1 or rows[0]["family"] != "all":
        rows.append({"family": "all", **shares(frame)})
    return pd.DataFrame(rows)
