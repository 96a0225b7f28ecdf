"""Colour scales: how a signal's values become positions on the colour map (display only).

Real VEPO scores are heavy-tailed (on the sample data: median ~1e-9, maximum 0.003-0.13),
so a fixed 0-1 scale paints the whole score row the darkest colour. Three scales:

- "response" (default): linear from the response's minimum to its maximum. The colour
  bar keeps real units and the largest values stand out; float noise stays noise.
- "absolute": a fixed range where the signal has one (0-1 signals on [0, 1], JSD on
  [0, ln 2]), else [0, max]: the same colour means the same value across responses.
- "rank": the token's rank within the response (0 = lowest, 1 = highest, ties share
  their mean rank): the order top-k selection uses, blind to magnitudes.

The numbers themselves (hover, table, saved results) never change with the scale.
"""

from __future__ import annotations

import math

import numpy as np

COLOR_SCALES: dict[str, str] = {
    "response": "per response: linear from this response's min to its max",
    "absolute": "absolute: fixed range (0-1 signals on [0, 1], JSD on [0, ln 2])",
    "rank": "rank within the response (0 = lowest, 1 = highest)",
}
"""Colour scales of the continuous rows: name -> one line for the UI's choices."""

DEFAULT_COLOR_SCALE = "response"
"""Per response: every score row uses the full colour map (see the module docstring)."""

LN2 = math.log(2.0)
"""Upper bound of the JSD in nats (its absolute scale)."""


def check_color_scale(name: str) -> str:
    """`name` if it is one of COLOR_SCALES, else a ValueError that lists them."""
    if name not in COLOR_SCALES:
        raise ValueError(
            f"colour scale {name!r} is not offered; choose one of {tuple(COLOR_SCALES)}"
        )
    return name


def color_scale_choices() -> list[tuple[str, str]]:
    """(label, name) pairs for a UI dropdown."""
    return [(label, name) for name, label in COLOR_SCALES.items()]


def ranks(values: np.ndarray) -> np.ndarray:
    """(T,) rank of each value in [0, 1] (mean rank for ties; NaN stays NaN)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    x = values[finite]
    if x.size == 0:
        return out
    if x.size == 1:
        out[finite] = 1.0
        return out
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    first = np.searchsorted(sorted_x, x, side="left")
    last = np.searchsorted(sorted_x, x, side="right") - 1
    out[finite] = (first + last) / 2 / (x.size - 1)
    return out


def scaled(
    values: np.ndarray, signal: str, unit: str, scale: str
) -> tuple[np.ndarray, float, float]:
    """(colour values, vmin, vmax) of a signal's (T,) values under the colour scale."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    scale = check_color_scale(scale)
    if scale == "rank":
        return ranks(values), 0.0, 1.0
    if scale == "response":
        return values, lo, (hi if hi > lo else lo + 1e-12 + abs(lo) * 1e-6)
    if unit == "0-1":
        return values, 0.0, max(1.0, hi)
    if signal == "jsd":
        return values, 0.0, max(LN2, hi)
    vmin = min(0.0, lo)
    return values, vmin, (hi if hi > vmin else vmin + 1.0)


def scale_note(scale: str) -> str:
    """A few words for a colour bar's title ("" for the default)."""
    return {"response": "", "absolute": "absolute", "rank": "rank"}[check_color_scale(scale)]
