"""The task families. Each is `make(rng, difficulty) -> fields of an Example`.

difficulty in [0, 1]: higher means smaller objects, closer quantities, more clutter.

Objects sit one per cell of a 4 x 4 grid of 28 px cells, jittered inside the cell (bars
stand one per column). meta["cells"] records what each cell holds, row-major: None, or a
dict with its colour, shape ("bar" and "box" included), the number in a box and the height
of a bar in pixels. The embedded model's vision stage learns from these labels.
"""

from __future__ import annotations

import random
import re

from vepo_viz.tasks.base import CONNECTIVES, GRID, IMAGE_SIZE, Segment
from vepo_viz.tasks.draw import CELL, COLORS, SHAPES, canvas, draw_shape, font, grid_place

T, V, F, A = "template", "visual", "free", "answer"


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _cells(objects: dict[int, dict]) -> list[dict | None]:
    """meta["cells"]: each grid cell's object (colour, shape, number, height) or None."""
    return [objects.get(i) for i in range(GRID * GRID)]


def _obj(color: str, shape: str, number: int | None = None, height: float | None = None):
    return {"color": color, "shape": shape, "number": number, "height": height}


def _closing(rng: random.Random, answer: str) -> list[Segment]:
    return [
        Segment(" " + rng.choice(CONNECTIVES), F),
        Segment(", the answer is", T),
        Segment(" " + answer, A),
        Segment(".", T),
    ]


def color(rng: random.Random, d: float) -> dict:
    """What colour is the <shape>? Several small shapes, each shape type once."""
    n = rng.randint(3, 4)
    shapes = rng.sample(SHAPES, n)
    r = _lerp(9, 5, d)
    img, draw = canvas(rng, clutter=int(_lerp(5, 40, d)))
    cols = [rng.choice(list(COLORS)) for _ in shapes]
    objects = {}
    for shape, col, (cell, x, y) in zip(shapes, cols, grid_place(rng, n, r), strict=True):
        draw_shape(draw, shape, x, y, r, COLORS[col])
        objects[cell] = _obj(col, shape)
    shape, col = shapes[0], cols[0]
    opener = rng.choice(["I look at the", "Looking at the"])
    segs = [
        Segment(opener, F),
        Segment(f" {shape}.", T),
        Segment(" It is", T),
        Segment(f" {col}", V),
        Segment(".", T),
    ]
    return dict(
        image=img,
        question=f"What color is the {shape}?",
        answer=col,
        segments=segs + _closing(rng, col),
        answer_space=tuple(COLORS),
        meta={"cells": _cells(objects)},
    )


def bar_levels(rng: random.Random, n: int, gap: int, top: int = 9) -> list[int]:
    """n distinct bar levels in 1..top, any two at least `gap` apart, in random order.

    Uniform over the valid sets and loop-free: n sorted draws from a range shrunk by the
    gaps, then spread out again.
    """
    if (n - 1) * gap >= top:
        raise ValueError(f"{n} levels {gap} apart do not fit in 1..{top}")
    picks = sorted(rng.sample(range(1, top + 1 - (n - 1) * (gap - 1)), n))
    levels = [p + i * (gap - 1) for i, p in enumerate(picks)]
    rng.shuffle(levels)
    return levels


BAR_UNIT = 10
"""Pixels per bar level: a bar of level L is L * BAR_UNIT px tall (levels 1-9)."""


def compare(rng: random.Random, d: float) -> dict:
    """Which of two thin bars in a small bar chart is taller? One bar per grid column.

    Bar heights are levels 1-9 in units of BAR_UNIT px. The target reads both levels off
    the image (the visual facts), then compares the two numbers in text: each step is a
    single look-up of one bar, which a small model learns, where a one-step "taller" asks
    it to compare two image tokens at once (the previous recipe stayed at chance on that).
    """
    n = rng.randint(2, 4)
    cols = rng.sample(list(COLORS), n)
    width = round(_lerp(9, 4, d))
    levels = bar_levels(rng, n, gap=round(_lerp(2, 1, d)))
    heights = [BAR_UNIT * lv for lv in levels]
    img, draw = canvas(rng, clutter=int(_lerp(0, 25, d)))
    base = IMAGE_SIZE - 10
    draw.line([(6, base), (IMAGE_SIZE - 6, base)], fill=(90, 90, 90), width=1)
    columns = sorted(rng.sample(range(GRID), n))
    slack = CELL / 2 - width / 2 - 2
    objects = {}
    for col, h, column in zip(cols, heights, columns, strict=True):
        x = (column + 0.5) * CELL + rng.uniform(-slack, slack)
        draw.rectangle([x - width / 2, base - h, x + width / 2, base - 1], fill=COLORS[col])
        for row in range(GRID):  # the cells the bar covers (at least 3 px of it)
            if min(base, (row + 1) * CELL) - max(base - h, row * CELL) >= 3:
                objects[row * GRID + column] = _obj(col, "bar", height=h)
    a, b = rng.sample(range(n), 2)
    ca, cb = cols[a], cols[b]
    winner = ca if heights[a] > heights[b] else cb
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    rel = "taller" if heights[first] > heights[second] else "shorter"
    either = f" (?:{re.escape(ca)}|{re.escape(cb)})"  # the order is the free choice

    def named(i: int) -> Segment:
        return Segment(f" {cols[i]}", T, match=either)

    segs = [
        Segment("The", T),
        Segment(f" {cols[first]}", F),
        Segment(" bar is", T),
        Segment(f" {levels[first]}", V),
        Segment(", the", T),
        named(second),
        Segment(" bar is", T),
        Segment(f" {levels[second]}", V),
        Segment(". The", T),
        named(first),
        Segment(" bar is", T),
        Segment(f" {rel}", A),  # drawn from the two levels already in the text
        Segment(" than the", T),
        named(second),
        Segment(" bar.", T),
    ]
    return dict(
        image=img,
        question=f"Which bar is taller, the {ca} one or the {cb} one?",
        answer=winner,
        segments=segs + _closing(rng, winner),
        answer_space=tuple(COLORS),
        meta={"cells": _cells(objects)},
    )


def count(rng: random.Random, d: float) -> dict:
    """How many <color> <shape>s are there? 1-6 targets among distractors."""
    k = rng.randint(1, 6)
    shape = rng.choice(SHAPES)
    col = rng.choice(list(COLORS))
    n_distract = rng.randint(0, int(_lerp(2, 5, d)))
    r = _lerp(7, 4.5, d)
    img, draw = canvas(rng, clutter=int(_lerp(0, 30, d)))
    objects = {}
    for i, (cell, x, y) in enumerate(grid_place(rng, k + n_distract, r)):
        s, c = shape, col
        if i >= k:  # a distractor differs in shape or colour
            if rng.random() < 0.5:
                s = rng.choice([o for o in SHAPES if o != shape])
            else:
                c = rng.choice([o for o in COLORS if o != col])
        draw_shape(draw, s, x, y, r, COLORS[c])
        objects[cell] = _obj(c, s)
    noun = f"{col} {shape}s"
    verb = "is" if k == 1 else "are"
    segs = [
        Segment(rng.choice(["I count the", "Counting the"]), F),
        Segment(f" {noun}.", T),
        Segment(" There", T),
        Segment(f" {verb}", V),
        Segment(f" {k}", V),
        Segment(".", T),
    ]
    return dict(
        image=img,
        question=f"How many {noun} are there?",
        answer=str(k),
        segments=segs + _closing(rng, str(k)),
        answer_space=tuple(str(i) for i in range(10)),
        meta={"cells": _cells(objects)},
    )


def spatial(rng: random.Random, d: float) -> dict:
    """Is object A left/right of (or above/below) object B?

    The target reads each object's column (row), 1-4 on the grid, off the image, then
    compares the two numbers in text, as the bar comparison does with levels.
    """
    r = _lerp(8, 5, d)
    n = 2 + rng.randint(0, int(_lerp(1, 3, d)))
    pairs = rng.sample([(s, c) for s in SHAPES for c in COLORS], n)
    img, draw = canvas(rng, clutter=int(_lerp(0, 30, d)))
    axis = rng.choice(["horizontal", "vertical"])
    min_sep = 1 if rng.random() < d else 2  # grid columns (rows) between the two objects
    axis_of = (lambda c: c % GRID) if axis == "horizontal" else (lambda c: c // GRID)
    while True:
        cells = rng.sample(range(GRID * GRID), n)
        if abs(axis_of(cells[0]) - axis_of(cells[1])) >= min_sep:
            break
    objects = {}
    for (shape, col), (cell, x, y) in zip(pairs, grid_place(rng, n, r, cells), strict=True):
        draw_shape(draw, shape, x, y, r, COLORS[col])
        objects[cell] = _obj(col, shape)
    a = f"{pairs[0][1]} {pairs[0][0]}"
    b = f"{pairs[1][1]} {pairs[1][0]}"
    # the objects stay inside their cells, so the grid index orders them on the axis
    index = [axis_of(c) + 1 for c in cells[:2]]
    if axis == "horizontal":
        rel = "left" if index[0] < index[1] else "right"
        q = f"Is the {a} left or right of the {b}?"
        where, tail = " is in column", " of the"
    else:
        rel = "above" if index[0] < index[1] else "below"
        q = f"Is the {a} above or below the {b}?"
        where, tail = " is in row", " the"
    segs = [
        Segment("The", T),
        Segment(f" {a}", T),
        Segment(where, T),
        Segment(f" {index[0]}", V),
        Segment(", the", T),
        Segment(f" {b}", T),
        Segment(where, T),
        Segment(f" {index[1]}", V),
        Segment(". The", T),
        Segment(f" {a}", T),
        Segment(" is", T),
        Segment(f" {rel}", A),  # drawn from the two positions already in the text
        Segment(tail, T),
        Segment(f" {b}.", T),
    ]
    return dict(
        image=img,
        question=q,
        answer=rel,
        segments=segs + _closing(rng, rel),
        answer_space=("left", "right", "above", "below"),
        meta={"cells": _cells(objects)},
    )


def read(rng: random.Random, d: float) -> dict:
    """What number is in the <color> box? Small two-digit numbers in coloured boxes."""
    n = rng.randint(2, 3)
    cols = rng.sample(list(COLORS), n)
    nums = rng.sample(range(10, 100), n)
    size = round(_lerp(13, 9, d))
    img, draw = canvas(rng, clutter=int(_lerp(0, 25, d)))
    w, h = size * 1.6, size * 1.2
    fnt = font(size)
    objects = {}
    for col, num, (cell, x, y) in zip(cols, nums, grid_place(rng, n, w / 2 + 2), strict=True):
        objects[cell] = _obj(col, "box", number=num)
        draw.rectangle(
            [x - w / 2 - 2, y - h / 2 - 2, x + w / 2 + 2, y + h / 2 + 2],
            outline=COLORS[col],
            width=2,
        )
        draw.text((x, y), str(num), fill=(20, 20, 20), font=fnt, anchor="mm")
    col, num = cols[0], str(nums[0])
    segs = [
        Segment("The", T),
        Segment(f" {col}", T),
        Segment(" box shows", T),
        Segment(f" {num}", V),
        Segment(".", T),
    ]
    return dict(
        image=img,
        question=f"What number is in the {col} box?",
        answer=num,
        segments=segs + _closing(rng, num),
        answer_space=tuple(str(i) for i in range(10, 100)),
        meta={"cells": _cells(objects)},
    )


FAMILIES = {"color": color, "compare": compare, "count": count, "spatial": spatial, "read": read}
