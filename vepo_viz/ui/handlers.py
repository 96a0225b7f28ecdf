"""The app's event handlers as plain functions (no gradio components in here).

Each handler takes the values of its input components and returns the values of its
outputs; `vepo_viz.ui.app` wires them to components. Model work goes through a `Backend`
(a fake one in the tests); everything else reads `TokenAnalysis` objects and calls
vepo_viz.render. Per-session data is the `Session` dict held in a gr.State: analyses and
a cache key, never tensors or models.

Errors: every handler is wrapped by `user_errors`, which turns a problem the user can fix
(VepoError, ValueError, bad files) into a readable gr.Error and anything else into a
short "unexpected error" message; the traceback goes to the server log, the app keeps
serving.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import math
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from vepo_viz.errors import VepoError, VepoInputError
from vepo_viz.render import data as rdata
from vepo_viz.render import export as rexport
from vepo_viz.render import figures as rfig
from vepo_viz.render.images import counterfactual_preview, perturb_config_of, processed_size
from vepo_viz.ui.backend import EMBEDDED, Backend, model_key

log = logging.getLogger("vepo_viz.ui")

MAX_BATCH_ROWS = 1000
"""Most examples one batch run in the app scores (the CLI has no limit)."""

APP_KEY = "vepo_viz_app"
"""Extra key of a JSON saved by the app (the image and the view); TokenAnalysis.load
ignores it, so app files stay loadable everywhere."""


class UserFacingError(Exception):
    """Raised by handlers for messages shown as-is (converted to gr.Error by the wrapper)."""


def user_errors(fn: Callable) -> Callable:
    """Turn any exception of `fn` into a readable gr.Error (the app keeps serving)."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (UserFacingError, VepoError) as error:
            raise gr.Error(str(error), print_exception=False) from error
        except (ValueError, KeyError, OSError) as error:
            log.info("rejected input in %s: %s", fn.__name__, error)
            raise gr.Error(f"{error}", print_exception=False) from error
        except MemoryError as error:
            raise gr.Error(
                "out of memory: try a shorter max new tokens, a smaller image or a smaller model",
                print_exception=False,
            ) from error
        except Exception as error:  # noqa: BLE001 - a user never sees a traceback
            log.error("unexpected error in %s:\n%s", fn.__name__, traceback.format_exc())
            raise gr.Error(
                f"unexpected error ({type(error).__name__}: {error}). The app is still running; "
                "the server log has the details.",
                print_exception=False,
            ) from error

    return wrapper


# ---- settings -------------------------------------------------------------------------


def _int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserFacingError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise UserFacingError(f"{name} must be a whole number, got {value!r}")
    number = int(number)
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise UserFacingError(f"{name} must be between {minimum}{upper}, got {number}")
    return number


def _float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserFacingError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise UserFacingError(f"{name} must be a finite number, got {value!r}")
    return number


@dataclass(frozen=True)
class Controls:
    """The Analyze tab's settings, as the components give them."""

    max_new_tokens: Any = 64
    temperature: Any = 1.0
    seed: Any = 0
    cf_mode: str = "gaussian"
    sigma: Any = 2.0
    n_draws: Any = 1
    ratio: Any = 0.2
    alpha: Any = 0.7
    score_type: str = "D"
    scope: str = "response"

    def settings(self):
        """AnalysisSettings (a VepoInputError with a readable message when invalid)."""
        from vepo_viz.analysis import AnalysisSettings

        perturb = {
            "mode": self.cf_mode,
            "sigma": _float("sigma", self.sigma),
            "n_draws": _int("number of draws K", self.n_draws, 1, 64),
            "seed": _int("seed", self.seed, 0),
        }
        return AnalysisSettings.from_dict(
            {
                "max_new_tokens": _int("max new tokens", self.max_new_tokens, 1, 4096),
                "temperature": _float("temperature", self.temperature),
                "seed": _int("seed", self.seed, 0),
                "perturb": perturb,
                "score_type": self.score_type,
                "alpha": _float("alpha", self.alpha),
                "ratio": _float("ratio", self.ratio),
                "scope": self.scope,
            }
        )


def scoring_args(ratio: Any, alpha: Any, score_type: str, scope: str) -> dict[str, Any]:
    """Validated rescore() arguments (VepoInputError on bad values)."""
    from vepo_viz.scoring import SCOPES, SCORE_TYPES

    ratio_f, alpha_f = _float("ratio", ratio), _float("alpha", alpha)
    if not 0.0 < ratio_f <= 1.0:
        raise VepoInputError(f"ratio must lie in (0, 1] (0.2 keeps the top 20%), got {ratio_f}")
    if not 0.0 <= alpha_f <= 1.0:
        raise VepoInputError(f"alpha must lie in [0, 1] (0.7 is the reference), got {alpha_f}")
    if score_type not in SCORE_TYPES:
        raise VepoInputError(f"unknown score type {score_type!r}; choose one of {SCORE_TYPES}")
    if scope not in SCOPES:
        raise VepoInputError(f"unknown scope {scope!r}; choose one of {SCOPES}")
    return {"score_type": score_type, "alpha": alpha_f, "ratio": ratio_f, "scope": scope}


# ---- session state --------------------------------------------------------------------


@dataclass
class Session:
    """What one browser session holds (in a gr.State): plain data only."""

    base: Any = None
    """The TokenAnalysis as computed (or loaded)."""
    current: Any = None
    """`base` re-scored with the selection controls' values (what the views show)."""
    key: str | None = None
    """Cache key of the inputs that produced `base` (None for a loaded file)."""
    image: Image.Image | None = None
    """The clean image at the size the processor received (for the image views)."""
    history: list[str] = field(default_factory=list)


def require(session: Session | None) -> Session:
    if session is None or session.current is None:
        raise UserFacingError(
            "no analysis yet: pick a sample (or upload an image), then press Analyze"
        )
    return session


def run_key(
    model: str | None, image_path: str, question: str, response: str | None, settings
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


# ---- rendering one analysis -----------------------------------------------------------


@dataclass
class View:
    """The outputs of the Analyze tab for one analysis."""

    summary: str
    heatmap: Any
    scatter: Any
    table: pd.DataFrame
    token_choices: list[tuple[str, int]]
    token: int | None
    detail: Any


def token_choices(analysis, frame: pd.DataFrame | None = None) -> list[tuple[str, int]]:
    frame = rdata.token_frame(analysis) if frame is None else frame
    marks = {"both": "B", "vepo_only": "V", "entropy_only": "E", "neither": " "}
    return [
        (f"{i:>3} [{marks[c]}] {d}", int(i))
        for i, d, c in zip(
            frame["index"].tolist(),
            frame["display"].tolist(),
            frame["category"].tolist(),
            strict=True,
        )
    ]


def default_token(analysis, frame: pd.DataFrame | None = None) -> int | None:
    """The most interesting token: the best-scored VEPO-only pick, else the best score."""
    frame = rdata.token_frame(analysis) if frame is None else frame
    if frame.empty:
        return None
    scores = frame["score"].to_numpy()
    vepo_only = (frame["category"] == "vepo_only").to_numpy()
    pool = np.flatnonzero(vepo_only) if vepo_only.any() else np.arange(len(frame))
    return int(pool[np.argmax(scores[pool])])


def render_view(analysis, token: int | None = None, chars_per_line: int = 72) -> View:
    """Every Analyze view of `analysis` (well under a second for a few hundred tokens)."""
    frame = rdata.token_frame(analysis)
    n = len(frame)
    if token is None or not (0 <= int(token) < n):
        token = default_token(analysis, frame)
    return View(
        summary=_header(analysis) + rdata.summary_markdown(analysis, frame),
        heatmap=rfig.token_heatmap(analysis, chars_per_line=chars_per_line, frame=frame),
        scatter=rfig.entropy_scatter(analysis, frame),
        table=rdata.table(analysis, frame=frame),
        token_choices=token_choices(analysis, frame),
        token=token,
        detail=rfig.token_detail(analysis, token, frame) if token is not None else None,
    )


def _header(analysis) -> str:
    how = "generated" if getattr(analysis, "generated", False) else "pasted/loaded"
    trunc = " (stopped at max new tokens)" if getattr(analysis, "truncated", False) else ""
    total = (getattr(analysis, "timing", {}) or {}).get("total")
    took = f", {total:.2f} s" if isinstance(total, int | float) else ""
    cf = perturb_config_of(analysis)
    return (
        f"Model `{_model_name(analysis.model_id)}`; response {how}{trunc}{took}; counterfactual "
        f"{cf.mode} (sigma {cf.sigma:g}, K={cf.n_draws}).  \n"
    )


def _model_name(model_id: str) -> str:
    """'embedded' for the embedded tiny model's folder, else the id as loaded."""
    from vepo_viz.tiny import DEFAULT_MODEL

    if model_id and Path(model_id).resolve() == Path(DEFAULT_MODEL).resolve():
        return EMBEDDED
    return model_id or "?"


def image_views(
    image: Image.Image | None, analysis, normalization=None
) -> tuple[Image.Image | None, Image.Image | None, str]:
    """(clean image, counterfactual preview, caption)."""
    if image is None:
        return None, None, "The image is not stored with this analysis."
    clean = processed_size(image, analysis)
    mean, std = normalization if normalization else (None, None)
    view, caption = counterfactual_preview(
        clean, perturb_config_of(analysis), image_mean=mean, image_std=std
    )
    return (
        clean,
        view,
        f"Left: the clean image the model saw ({clean.width}x{clean.height}). Right: {caption}.",
    )


# ---- Analyze ---------------------------------------------------------------------------


def analyze(
    backend: Backend,
    session: Session | None,
    image_path: str | None,
    question: str | None,
    response: str | None,
    model: str | None,
    controls: Controls,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[Session, View, tuple]:
    """Run (or reuse) the model analysis of the inputs; returns (session, view, images)."""
    from vepo_viz.models.images import load_image

    if not image_path:
        raise UserFacingError("no image: upload one or click a sample first")
    if not question or not question.strip():
        raise UserFacingError("the question is empty: ask something about the image")
    settings = controls.settings()
    pasted = response if response and response.strip() else None
    image = load_image(image_path)  # readable errors for broken or huge files
    key = run_key(model, image_path, question, pasted, settings)
    scoring = scoring_args(controls.ratio, controls.alpha, controls.score_type, controls.scope)
    if session is not None and session.key == key and session.base is not None:
        base = session.base  # same inputs: no model run, only re-score
    else:
        started = time.perf_counter()
        base = backend.analyze(model, image, question, pasted, settings, progress)
        log.info("analysed %d tokens in %.2fs", len(base.tokens), time.perf_counter() - started)
    current = base.rescore(**scoring)
    if progress:
        progress(0.9, "rendering")
    clean = processed_size(image, base)
    new = Session(base=base, current=current, key=key, image=clean)
    normalization = None
    if perturb_config_of(base).mode in ("gaussian", "no_image"):
        normalization = backend.image_normalization(model)
    return new, render_view(current), image_views(clean, base, normalization)


def rescore(
    session: Session | None, ratio, alpha, score_type, scope, token=None
) -> tuple[Session, View]:
    """Re-score the stored analysis with new selection settings (no model)."""
    session = require(session)
    args = scoring_args(ratio, alpha, score_type, scope)
    if rdata.scoring_of(session.current) != args:
        current = session.base.rescore(**args)
        if rdata.scoring_of(session.base) == args:
            current = session.base  # exactly the stored numbers
        session = Session(base=session.base, current=current, key=session.key, image=session.image)
    return session, render_view(session.current, token)


def detail(session: Session | None, token) -> Any:
    """Top candidates of one token under the clean and the perturbed image."""
    session = require(session)
    if token is None or token == "":
        return None
    return rfig.token_detail(
        session.current, _int("token", token, 0, len(session.current.tokens) - 1)
    )


def token_from_table(session: Session | None, row_value: list | None) -> int | None:
    """The token index of a clicked table row (its first column), or None."""
    if session is None or session.current is None or not row_value:
        return None
    try:
        return int(row_value[0])
    except (TypeError, ValueError):
        return None


# ---- save / load / export ----------------------------------------------------------------


def _out_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="vepo-viz-export-"))


def _stem(analysis) -> str:
    digest = (getattr(analysis, "image_digest", "") or "").split(":")[-1][:8] or "analysis"
    score_type = rdata.scoring_of(analysis)["score_type"]
    return f"vepo-{digest}-{score_type}"


def save_session(session: Session | None, include_image: bool = True) -> str:
    """A JSON file of the current analysis (TokenAnalysis format, plus the image)."""
    session = require(session)
    data = session.current.to_dict()
    extra: dict[str, Any] = {"base_settings": session.base.settings}
    if include_image and session.image is not None:
        buffer = io.BytesIO()
        session.image.save(buffer, format="PNG")
        extra["image_png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
    data[APP_KEY] = extra
    path = _out_dir() / f"{_stem(session.current)}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def load_session(file_path: str | None) -> tuple[Session, View, tuple]:
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
    extra = data.pop(APP_KEY, {}) or {}
    try:
        analysis = TokenAnalysis.from_dict(data)
    except (TypeError, ValueError, KeyError) as error:
        raise UserFacingError(
            f"{Path(file_path).name} is not a saved vepo-viz analysis: {error}"
        ) from None
    image = None
    if extra.get("image_png"):
        try:
            image = Image.open(io.BytesIO(base64.b64decode(extra["image_png"]))).convert("RGB")
        except (ValueError, OSError):
            image = None
    session = Session(base=analysis, current=analysis, key=None, image=image)
    return session, render_view(analysis), image_views(image, analysis)


def export_file(
    session: Session | None,
    fmt: str,
    *,
    signals: list[str] | None = None,
    width_in: Any = 6.5,
    font_family: str = "DejaVu Sans",
    font_size: Any = 9,
    dpi: Any = 300,
    cmap: str = "cividis",
    legend: bool = True,
    colorbar: bool = True,
    latex_signal: str = "score",
) -> str:
    """Write the current analysis as `fmt` (pdf, svg, png, tex, html, csv, json)."""
    session = require(session)
    fmt = (fmt or "").lower().strip(". ")
    if fmt not in rexport.EXPORT_FORMATS:
        raise UserFacingError(
            f"unknown export format {fmt!r}; choose one of {rexport.EXPORT_FORMATS}"
        )
    if fmt == "json":
        return save_session(session)
    options = rexport.FigureOptions(
        signals=tuple(signals) if signals else rexport.FigureOptions().signals,
        width_in=_float("width", width_in),
        font_family=font_family,
        font_size=_float("font size", font_size),
        dpi=_int("dpi", dpi, 30, 1200),
        cmap=cmap,
        legend=bool(legend),
        colorbar=bool(colorbar),
    )
    path = _out_dir() / f"{_stem(session.current)}.{fmt}"
    return str(rexport.export_analysis(session.current, path, options, latex_signal=latex_signal))


# ---- Compare -------------------------------------------------------------------------------

COMPARE_MODES: tuple[str, ...] = ("score type", "counterfactual mode", "model")


def compare(
    backend: Backend,
    session: Session | None,
    what: str,
    a: str,
    b: str,
    image_path: str | None,
    question: str | None,
    response: str | None,
    model: str | None,
    controls: Controls,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[str, Any, Any, Any]:
    """Two analyses that differ in one thing: (summary, difference figure, heatmap A, B).

    "score type" re-scores the current analysis (no model). The other two run the model
    twice on the SAME response (A's, or the pasted one), so the selections are compared
    token by token whenever the two tokenisers agree.
    """
    from vepo_viz.models.images import load_image

    if what not in COMPARE_MODES:
        raise UserFacingError(f"compare what? choose one of {COMPARE_MODES}")
    if not a or not b:
        raise UserFacingError("choose both A and B")
    if what == "score type":
        session = require(session)
        sc = rdata.scoring_of(session.current)
        left = session.base.rescore(
            score_type=a, alpha=sc["alpha"], ratio=sc["ratio"], scope=sc["scope"]
        )
        right = session.base.rescore(
            score_type=b, alpha=sc["alpha"], ratio=sc["ratio"], scope=sc["scope"]
        )
        label_a, label_b = f"score {a}", f"score {b}"
    else:
        if not image_path:
            raise UserFacingError("no image: upload one or click a sample first")
        if not question or not question.strip():
            raise UserFacingError("the question is empty: ask something about the image")
        image = load_image(image_path)
        pasted = response if response and response.strip() else None
        base = controls.settings()
        scoring = scoring_args(controls.ratio, controls.alpha, controls.score_type, controls.scope)

        def settings_for(mode: str):
            from dataclasses import replace

            return replace(base, perturb=replace(base.perturb, mode=mode))

        if what == "counterfactual mode":
            runs = [(model, settings_for(a)), (model, settings_for(b))]
            label_a, label_b = a, b
        else:
            runs = [(a, base), (b, base)]
            label_a, label_b = (model_key(a) or EMBEDDED), (model_key(b) or EMBEDDED)

        def step(i: int):
            def report(fraction: float, desc: str) -> None:
                if progress:
                    progress((i + fraction) / 2, f"{'AB'[i]}: {desc}")

            return report

        left = backend.analyze(runs[0][0], image, question, pasted, runs[0][1], step(0))
        right = backend.analyze(runs[1][0], image, question, left.response, runs[1][1], step(1))
        left, right = left.rescore(**scoring), right.rescore(**scoring)
    return compare_outputs(left, right, label_a, label_b)


def compare_outputs(left, right, label_a: str, label_b: str) -> tuple[str, Any, Any, Any]:
    from vepo_viz.results import selection_jaccard

    diff = rdata.selection_difference(left, right)
    heat_a = rfig.token_heatmap(left, title=f"A: {label_a}")
    heat_b = rfig.token_heatmap(right, title=f"B: {label_b}")
    sa, sb = rdata.summary(left), rdata.summary(right)
    lines = [
        f"| | A: {label_a} | B: {label_b} |",
        "|---|---|---|",
        f"| tokens | {sa.n_tokens} | {sb.n_tokens} |",
        f"| VEPO picks | {sa.n_vepo} | {sb.n_vepo} |",
        f"| overlap with entropy picks | {_pct(sa.overlap)} | {_pct(sb.overlap)} |",
        f"| VEPO picks with below-median entropy | {_pct(sa.vepo_low_entropy)} | {_pct(sb.vepo_low_entropy)} |",
    ]
    if diff is None:
        lines.append(
            "\nThe two responses are tokenised differently, so the selections cannot be compared "
            "token by token; see the two heatmaps."
        )
        return "\n".join(lines), None, heat_a, heat_b
    frame = rdata.token_frame(left)
    only_a = [
        f"{frame['display'].iloc[i]!r} (#{i})" for i in range(len(diff)) if diff[i] == "a_only"
    ]
    only_b = [
        f"{frame['display'].iloc[i]!r} (#{i})" for i in range(len(diff)) if diff[i] == "b_only"
    ]
    jaccard = selection_jaccard(left.selected_vepo, right.selected_vepo)
    lines.append(
        f"\n**Selections differ on {len(only_a) + len(only_b)} tokens** (Jaccard "
        f"{jaccard:.2f}). A only: {', '.join(only_a) or '-'}; "
        f"B only: {', '.join(only_b) or '-'}."
    )
    return "\n".join(lines), rfig.compare_figure(left, right, label_a, label_b), heat_a, heat_b


def _pct(x: float) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{100 * x:.0f}%"
