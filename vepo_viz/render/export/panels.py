"""One panel of a paper export, shared by the figure, LaTeX and HTML formats: per token,
the face and ink colours of a signal (on its colour scale) or of the selection category."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vepo_viz.render.colors import (
    CATEGORIES,
    CATEGORY_COLORS,
    CATEGORY_LABELS,
    hex_colors,
    rgba,
    text_colors,
)
from vepo_viz.render.data import SELECTION_ROW, signal_scale
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE, scale_note

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from vepo_viz.results import TokenAnalysis


@dataclass
class Panel:
    """One row of an export: a title and, per token, a face and an ink colour."""

    key: str
    title: str
    face: list[str]
    ink: list[str]
    vmin: float = 0.0
    vmax: float = 1.0
    continuous: bool = True
    legend: list[tuple[str, str]] = field(default_factory=list)
    rank: bool = False
    """Coloured by rank (vmin/vmax are the lowest and highest rank, not values)."""

    def end_labels(self) -> tuple[str, str]:
        """The texts at the two ends of the panel's colour bar."""
        if self.rank:
            return "lowest", "highest"
        return f"{self.vmin:.2g}", f"{self.vmax:.2g}"


def make_panel(
    analysis: TokenAnalysis,
    frame: pd.DataFrame,
    key: str,
    cmap: str,
    color_scale: str = DEFAULT_COLOR_SCALE,
) -> Panel:
    """The colours and title of one panel: a continuous signal (on `color_scale`, see
    render.scales) or the selection row."""
    if key == SELECTION_ROW:
        face = [CATEGORY_COLORS[c] for c in frame["category"]]
        ink = text_colors(hex_to_rgba(face))
        ratio = analysis.settings.scoring.ratio
        return Panel(
            key=key,
            title=f"Selected tokens (top {ratio:.0%}): VEPO vs entropy-only",
            face=face,
            ink=ink,
            continuous=False,
            legend=[(CATEGORY_COLORS[c], CATEGORY_LABELS[c]) for c in CATEGORIES],
        )
    label, unit, values, vmin, vmax = signal_scale(frame, key, analysis, color_scale)
    colors = rgba(values, vmin, vmax, cmap)
    unit_text = "" if unit == "0-1" else f" ({unit})"
    if scale_note(color_scale):
        unit_text += f", colour: {scale_note(color_scale)}"
    return Panel(
        key=key,
        title=f"{label[0].upper()}{label[1:]}{unit_text}",
        face=hex_colors(colors),
        ink=text_colors(colors),
        vmin=vmin,
        vmax=vmax,
        rank=color_scale == "rank",
    )


def hex_to_rgba(colors: Sequence[str]) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] + [1.0] for c in colors])
