"""Short texts the views and exports print: a model's name without this machine's paths,
and numbers formatted so that tiny values stay readable (3.0e-08, not 0.0000)."""

from __future__ import annotations

import math
from pathlib import Path

import vepo_viz

EMBEDDED_LABEL = "embedded"
"""What the embedded tiny model is called on screen and in exports."""

_EMBEDDED_DIR = Path(vepo_viz.__file__).resolve().parent / "tiny" / "model"


def model_label(model_id: object) -> str:
    """A model id fit to print in a shared file: hub ids as they are, a local folder by
    its name only (never an absolute path of this machine), the embedded model as
    "embedded"."""
    text = str(model_id or "").strip()
    if not text:
        return "?"
    looks_like_path = text.startswith(("/", "~", ".", "\\")) or (len(text) > 1 and text[1] == ":")
    if not looks_like_path and text.count("/") <= 1:
        return text  # a hub id such as Qwen/Qwen2.5-VL-3B-Instruct
    path = Path(text).expanduser()
    try:
        if path.resolve() == _EMBEDDED_DIR:
            return EMBEDDED_LABEL
    except OSError:
        pass
    return path.name or text.replace("\\", "/").rstrip("/").split("/")[-1] or "?"


def fmt(value: float, digits: int = 3) -> str:
    """`value` with `digits` significant digits: 0.46, 0.0034, 3.0e-08 (never 0.0000 for a
    small non-zero value, never 17 digits)."""
    x = float(value)
    if math.isnan(x):
        return "n/a"
    if x == 0 or math.isinf(x):
        return f"{x:g}"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits}g}"
    return f"{x:.{max(digits - 1, 0)}e}"


D3_FORMAT = ".3~g"
"""The plotly (d3-format) equivalent used in hover templates: 3 significant digits."""
