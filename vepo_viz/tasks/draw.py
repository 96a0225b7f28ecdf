"""PIL drawing helpers for the task suite: small shapes, bars, digits, clutter."""

from __future__ import annotations

import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from vepo_viz.tasks.base import IMAGE_SIZE

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


def place(rng: random.Random, n: int, r: float, margin: float = 3.0, tries: int = 400):
    """n non-overlapping centres for objects of radius r inside the canvas."""
    pts: list[tuple[float, float]] = []
    lo, hi = r + margin, IMAGE_SIZE - r - margin
    for _ in range(tries):
        if len(pts) == n:
            break
        p = (rng.uniform(lo, hi), rng.uniform(lo, hi))
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 > (2 * r + margin) ** 2 for q in pts):
            pts.append(p)
    if len(pts) < n:
        raise RuntimeError("could not place objects; lower n or radius")
    return pts


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` px (no system fonts needed, same on every machine)."""
    return ImageFont.load_default(size=size)
