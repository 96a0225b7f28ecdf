"""Colours shared by the interactive figures and the paper exports.

Continuous signals use perceptually uniform, colour-blind-safe matplotlib maps (cividis by
default). The four selection categories use the Okabe-Ito palette, which stays distinct
under the common colour-vision deficiencies.
"""

from __future__ import annotations

import numpy as np

CATEGORIES: tuple[str, ...] = ("both", "vepo_only", "entropy_only", "neither")
"""Selection categories of a token, from (selected by VEPO, selected by entropy)."""

CATEGORY_LABELS: dict[str, str] = {
    "both": "both",
    "vepo_only": "VEPO only (visual forking tokens)",
    "entropy_only": "entropy only",
    "neither": "neither",
}

CATEGORY_COLORS: dict[str, str] = {
    "both": "#009E73",  # Okabe-Ito bluish green
    "vepo_only": "#E69F00",  # orange: the tokens entropy-only training misses
    "entropy_only": "#56B4E9",  # sky blue
    "neither": "#EEEEEE",  # light grey
}

COLORMAPS: tuple[str, ...] = ("cividis", "viridis", "magma", "plasma", "inferno")
"""Colour maps offered for the continuous signals (all perceptually uniform and
colour-blind safe); cividis is the default."""

DEFAULT_COLORMAP = "cividis"


def check_colormap(name: str) -> str:
    """`name` if it is one of COLORMAPS, else a ValueError that lists them."""
    if name not in COLORMAPS:
        raise ValueError(f"colour map {name!r} is not offered; choose one of {COLORMAPS}")
    return name


def rgba(values: np.ndarray, vmin: float, vmax: float, cmap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """(N, 4) RGBA in [0, 1] of `values` under `cmap` on [vmin, vmax] (NaN -> light grey)."""
    from matplotlib import colormaps

    values = np.asarray(values, dtype=np.float64)
    span = max(float(vmax) - float(vmin), 1e-12)
    unit = np.clip((values - vmin) / span, 0.0, 1.0)
    out = colormaps[check_colormap(cmap)](np.nan_to_num(unit, nan=0.0))
    out[np.isnan(values)] = (0.93, 0.93, 0.93, 1.0)
    return out


def hex_colors(rgba_n4: np.ndarray) -> list[str]:
    """'#rrggbb' strings of (N, 4) RGBA rows."""
    rgb = np.round(np.asarray(rgba_n4)[:, :3] * 255).astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]


def text_colors(rgba_n4: np.ndarray) -> list[str]:
    """Black or white, whichever reads better on each background (WCAG relative luminance)."""
    rgb = np.asarray(rgba_n4)[:, :3]
    linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    return ["#000000" if lum > 0.179 else "#ffffff" for lum in luminance]


def category_text_color(category: str) -> str:
    """Readable text colour on a category's background."""
    rgb = np.array([[int(CATEGORY_COLORS[category][i : i + 2], 16) / 255 for i in (1, 3, 5)]])
    return text_colors(np.concatenate([rgb, np.ones((1, 1))], axis=1))[0]


def plotly_colorscale(cmap: str = DEFAULT_COLORMAP, n: int = 11) -> list[list]:
    """A plotly colorscale sampled from a matplotlib colour map (identical colours)."""
    values = np.linspace(0.0, 1.0, n)
    colors = hex_colors(rgba(values, 0.0, 1.0, cmap))
    return [[float(v), c] for v, c in zip(values, colors, strict=True)]
