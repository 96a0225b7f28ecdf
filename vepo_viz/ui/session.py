"""What one browser session holds (a `Session` in a gr.State), and saving/loading it.

A Session is plain data: the analysis as computed, the one the views show (re-scored),
the cache key of the model inputs and the image; never tensors or models. A saved
session is a TokenAnalysis JSON with an extra key (the image), loadable everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from vepo_viz.render.scales import DEFAULT_COLOR_SCALE
from vepo_viz.results import APP_KEY
from vepo_viz.ui import tempfiles
from vepo_viz.ui.backend import model_key
from vepo_viz.ui.errors import UserFacingError
from vepo_viz.ui.views import View, image_views, render_view

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.results import TokenAnalysis

"""Extra key of a JSON saved by the app (the image and the view); TokenAnalysis.load
ignores it, so app files stay loadable everywhere."""


@dataclass
class Session:
    """What one browser session holds (in a gr.State): plain data only."""

    base: TokenAnalysis | None = None
    """The TokenAnalysis as computed (or loaded)."""
    current: TokenAnalysis | None = None
    """`base` re-scored with the selection controls' values (what the views show)."""
    key: str | None = None
    """Cache key of the inputs that produced `base` (None for a loaded file)."""
    image: Image.Image | None = None
    """The clean image at the size the processor received (for the image views)."""
    history: list[str] = field(default_factory=list)
    color_scale: str = DEFAULT_COLOR_SCALE
    """How the heatmap and the exports colour values (render.scales; display only)."""


def require(session: Session | None) -> Session:
    if session is None or session.current is None:
        raise UserFacingError(
            "no analysis yet: pick a sample (or upload an image), then press Analyze"
        )
    return session


def run_key(
    model: str | None,
    image_path: str,
    question: str,
    response: str | None,
    settings: AnalysisSettings,
) -> str:
    """Identifies the model inputs of a run: same key, same numbers (seeded)."""
    digest = hashlib.sha256(Path(image_path).read_bytes()).hexdigest()
    data = settings.to_dict()
    for k in ("score_type", "alpha", "ratio", "scope"):
        data.pop(k, None)
    payload = json.dumps(
        [model_key(model), digest, question, response, data], sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def out_dir() -> Path:
    """A new temporary folder for a file the user downloads (in the session's folder,
    deleted when the session ends: vepo_viz.ui.tempfiles)."""
    return tempfiles.new_dir("export")


def file_stem(analysis: TokenAnalysis) -> str:
    digest = analysis.image_digest.split(":")[-1][:8] or "analysis"
    score_type = analysis.settings.scoring.score_type
    return f"vepo-{digest}-{score_type}"


def save_session(session: Session | None, include_image: bool = True) -> str:
    """A JSON file of the current analysis (TokenAnalysis format, plus the image)."""
    session = require(session)
    data = session.current.to_dict(include_image=include_image)
    data[APP_KEY] = {"base_settings": session.base.settings.to_dict()}
    path = out_dir() / f"{file_stem(session.current)}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def load_session(
    file_path: str | None, color_scale: str = DEFAULT_COLOR_SCALE
) -> tuple[Session, View, tuple]:
    """A saved analysis back into the app, exactly as saved (no model)."""
    from vepo_viz.results import TokenAnalysis

    if not file_path:
        raise UserFacingError("choose a saved analysis (.json) to load")
    try:
        data = json.loads(Path(file_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserFacingError(f"{Path(file_path).name} is not a JSON file: {error}") from None
    if not isinstance(data, dict):
        raise UserFacingError(f"{Path(file_path).name} is not a saved vepo-viz analysis")
    try:
        analysis = TokenAnalysis.from_dict(data)
    except (TypeError, ValueError, KeyError) as error:
        raise UserFacingError(
            f"{Path(file_path).name} is not a saved vepo-viz analysis: {error}"
        ) from None
    if analysis.image is not None and analysis.counterfactual_image is None:
        from vepo_viz.analysis import add_views  # a file saved before results held previews

        analysis = add_views(analysis)
    session = Session(
        base=analysis, current=analysis, key=None, image=analysis.image, color_scale=color_scale
    )
    return session, render_view(analysis, color_scale=color_scale), image_views(analysis)


def restored_image(analysis: TokenAnalysis) -> Image.Image | None:
    """The image to put back in the Image input after Load: the clean image as the
    processor received it (Analyze on it reproduces the analysis), None if not stored."""
    image = analysis.image
    return image.copy() if image is not None else None
