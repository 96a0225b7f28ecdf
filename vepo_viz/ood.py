"""Is an input unlike what the embedded model knows? Warnings said before its result.

The embedded tiny model (4.9M parameters, Qwen2-VL architecture) was trained only on the
procedural suite (vepo_viz.tasks): 112x112 synthetic images, a flat light-gray background
with a few shapes, bars or digits, and the five families' question templates. On a photo
or a free question it still answers and every number is still computed, but they mean
nothing; these checks say so. Real VLMs get no warnings (their domain is not known here).
The suite's own images and questions are the reference: nothing is listed twice.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

BACKGROUND_MIN_SHARE = 0.5
"""Least share of the pixels that the most common (quantised) colour must cover: the
suite's flat background covers at least 80% of every image (measured over 600 examples
of all families and difficulties); photos and noise have no such colour (a few %)."""

BACKGROUND_MIN_LEVEL = 200
"""Least value (0-255) of every channel of that colour: the suite's background is a light
gray (235-255)."""

QUANTUM = 8
"""Colours are compared in steps of 8 levels, so a re-saved (JPEG, resized) suite image
keeps its background."""

TEMPLATE_SEEDS = 16
"""Examples per family and difficulty whose questions make the template set."""

EMBEDDED_DESCRIPTION = (
    "The embedded model is a 4.9M-parameter model of the Qwen2-VL architecture, trained "
    "only on this project's 112x112 synthetic images (five families: color, compare, "
    "count, spatial, read). It shows how the tool works; its numbers on other images or "
    "questions mean nothing. For real results, type a transformers VLM (a hub id such as "
    "`Qwen/Qwen2.5-VL-3B-Instruct`, or a local folder) into the Model box, or start the "
    "app with `vepo-viz app --model ...`."
)
"""The scope banner of the Analyze and About tabs (and the README)."""


def is_embedded(model_id: str | None) -> bool:
    """True when `model_id` is the embedded tiny model's folder."""
    from vepo_viz.models import EMBEDDED_MODEL

    if not model_id:
        return False
    try:
        return Path(model_id).resolve() == Path(EMBEDDED_MODEL).resolve()
    except (OSError, ValueError):
        return False


def input_warnings(model_id: str | None, image: Image.Image, question: str) -> list[str]:
    """Why (image, question) is unlike the embedded model's suite; [] for other models
    and for suite-like inputs."""
    if not is_embedded(model_id):
        return []
    return image_warnings(image) + question_warnings(question)


def image_warnings(image: Image.Image) -> list[str]:
    """Size and background checks of an RGB image against the suite's."""
    from vepo_viz.tasks.base import IMAGE_SIZE

    out = []
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        out.append(
            f"the image is {image.width}x{image.height} px; the embedded model was trained "
            f"only on the suite's {IMAGE_SIZE}x{IMAGE_SIZE} synthetic images"
        )
    share, level = background(image)
    if share < BACKGROUND_MIN_SHARE or level < BACKGROUND_MIN_LEVEL:
        out.append(
            f"the image does not look like the suite's: its most common colour covers "
            f"{share:.1%} of it (the suite's flat light background covers at least 80%)"
        )
    return out


def background(image: Image.Image) -> tuple[float, int]:
    """(share of pixels, darkest channel 0-255) of the most common quantised colour."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8).reshape(-1, 3) // QUANTUM  # (N, 3)
    if rgb.size == 0:
        return 0.0, 0
    codes = (rgb[:, 0].astype(np.int64) * 64 + rgb[:, 1]) * 64 + rgb[:, 2]  # (N,)
    counts = np.bincount(codes)
    mode = int(counts.argmax())
    level = min(mode // 4096, (mode // 64) % 64, mode % 64) * QUANTUM
    return float(counts[mode]) / len(codes), int(level)


def question_warnings(question: str) -> list[str]:
    """A warning when the question matches none of the suite's question templates."""
    if skeleton(question) in suite_templates():
        return []
    from vepo_viz.tasks import make_example

    example = make_example("color", 0).question
    return [
        "the question matches none of the suite's question templates (for example "
        f'"{example}"); the embedded model knows only those'
    ]


def skeleton(question: str) -> str:
    """The question with the suite's colour, shape and number words replaced by slots,
    lower-cased, whitespace collapsed: equal for two questions of one template."""
    from vepo_viz.tasks.draw import COLORS, SHAPES

    text = " ".join(str(question).lower().split())
    text = re.sub(r"\b(?:" + "|".join(COLORS) + r")\b", "<color>", text)
    text = re.sub(r"\b(?:" + "|".join(SHAPES) + r")s?\b", "<shape>", text)
    return re.sub(r"\b\d+\b", "<n>", text)


@lru_cache(maxsize=1)
def suite_templates() -> frozenset[str]:
    """Skeletons of the questions the suite asks (from its own examples)."""
    from vepo_viz.tasks import FAMILIES, make_example

    return frozenset(
        skeleton(make_example(family, seed, difficulty).question)
        for family in FAMILIES
        for difficulty in (0.0, 0.5, 1.0)
        for seed in range(TEMPLATE_SEEDS)
    )
