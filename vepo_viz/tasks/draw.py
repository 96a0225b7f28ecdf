"""PIL drawing helpers for the task suite: small shapes, bars, digits, clutter."""

from __future__ import annotations

import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from vepo_viz.tasks.base import GRID, IMAGE_SIZE

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (150, 60, 190),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")


def canvas(rng: random.Random, clutter: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A light background with `clutter` faint gray specks (distractors for the eye)."""
    shade = rng.randint(235, 255)
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (shade, shade, shade))
    draw = ImageDraw.Draw(img)
    for _ in range(clutter):
        x, y = rng.randrange(IMAGE_SIZE), rng.randrange(IMAGE_SIZE)
        g = rng.randint(150, 210)
        draw.rectangle([x, y, x + 1, y + 1], fill=(g, g, g))
    return img, draw


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    """Draw `shape` of radius r centred on (cx, cy)."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        s = r * 0.85
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


CELL = IMAGE_SIZE // GRID
"""Side of a grid cell in pixels (28): one merged image token of the embedded model."""


def cell_of(x: float, y: float) -> int:
    """Row-major index of the grid cell holding pixel (x, y)."""
    return int(y // CELL) * GRID + int(x // CELL)


def grid_place(
    rng: random.Random, n: int, half: float, cells: list[int] | None = None
) -> list[tuple[int, float, float]]:
    """(cell, x, y) centres for n objects of half-size `half`, each inside its own cell.

    The objects sit in distinct cells of the 4 x 4 grid (random cells unless given), jittered
    as far as the cell allows. One object per cell is how the layout meets the embedded
    model, whose image tokens are exactly these 28 px cells.
    """
    if half > CELL / 2:
        raise ValueError(f"an object of half-size {half} does not fit a {CELL} px cell")
    cells = list(cells) if cells is not None else rng.sample(range(GRID * GRID), n)
    slack = max(0.0, CELL / 2 - half - 1.5)
    out = []
    for c in cells:
        row, col = divmod(c, GRID)
        x = (col + 0.5) * CELL + rng.uniform(-slack, slack)
        y = (row + 0.5) * CELL + rng.uniform(-slack, slack)
        out.append((c, x, y))
    return out


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` px (no system fonts needed, same on every machine)."""
    return ImageFont.load_default(size=size)
