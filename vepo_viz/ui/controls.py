"""The Analyze tab's settings controls: one bundle of components, one typed conversion.

`Controls` holds the ten settings components (generation, counterfactual, selection);
every event that needs the settings takes its inputs from it (`api_inputs`, whose keyword
names are the app's API parameter names) and turns the values back into a
`ControlValues`, whose `settings()` is an `AnalysisSettings` built through the
dataclasses' own validation. Choices come from the registries when the app is built,
and the defaults from `AnalysisSettings()`: nothing here is a second table.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, fields
from typing import Any

from vepo_viz.analysis import AnalysisSettings
from vepo_viz.perturb import MODES, PerturbConfig
from vepo_viz.scoring import SCOPES, SCORE_TYPES, ScoringConfig
from vepo_viz.settings import build_config
from vepo_viz.ui.errors import UserFacingError
from vepo_viz.ui.labels import SCOPE_INFO, score_type_choices, score_type_info

DEFAULTS = AnalysisSettings()
"""The defaults every control starts at (the VEPO reference)."""

API_SUFFIX = "_value"
"""Suffix of a control's API parameter name (`ratio` -> `ratio_value`)."""

EXTRA_MODE_FIELDS = ("patch_size", "patch_prob", "blur_radius")
"""PerturbConfig parameters of the modes other than sigma, in their controls' order (after
the selection controls, so the API's earlier parameters keep their places)."""

SCORING_FIELDS = ("ratio", "alpha", "score_type", "scope")
"""The ScoringConfig fields the selection controls set (re-scoring, no model), in the
order of their controls and of the /rescore API's parameters."""


def whole_number(
    name: str, value: Any, minimum: int | None = None, maximum: int | None = None
) -> int:
    """`value` (a component's number, often a float) as an int, or a readable error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserFacingError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise UserFacingError(f"{name} must be a whole number, got {value!r}")
    number = int(number)
    low = minimum if minimum is not None else -math.inf
    high = maximum if maximum is not None else math.inf
    if not low <= number <= high:
        upper = f" and {maximum}" if maximum is not None else ""
        raise UserFacingError(f"{name} must be between {minimum}{upper}, got {number}")
    return number


def number(name: str, value: Any) -> float:
    """`value` as a finite float, or a readable error."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UserFacingError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise UserFacingError(f"{name} must be a finite number, got {value!r}")
    return out


def typed(cls: type, **values: Any) -> Any:
    """`cls(**values)`, its validation's ValueError as a VepoInputError (same message)."""
    return build_config(cls, values)


def rescore_args(config: ScoringConfig) -> dict[str, Any]:
    """The selection of `config` as `TokenAnalysis.rescore` takes it."""
    return {name: getattr(config, name) for name in SCORING_FIELDS}


def scoring_args(ratio: Any, alpha: Any, score_type: str, scope: str) -> dict[str, Any]:
    """Validated rescore() arguments, checked by ScoringConfig (VepoInputError if bad)."""
    config = typed(
        ScoringConfig,
        score_type=score_type,
        alpha=number("alpha", alpha),
        ratio=number("ratio", ratio),
        scope=scope,
    )
    return rescore_args(config)


@dataclass(frozen=True)
class ControlValues:
    """The values of the `Controls`, typed (`from_api` converts what the components give:
    a slider's 64.0 for an int, ...). Its defaults are `AnalysisSettings()`'s, and
    `settings()` builds the one AnalysisSettings (with its ScoringConfig) they mean."""

    max_new_tokens: int = DEFAULTS.max_new_tokens
    temperature: float = DEFAULTS.temperature
    seed: int = DEFAULTS.seed
    cf_mode: str = DEFAULTS.perturb.mode
    sigma: float = DEFAULTS.perturb.sigma
    n_draws: int = DEFAULTS.perturb.n_draws
    ratio: float = DEFAULTS.scoring.ratio
    alpha: float = DEFAULTS.scoring.alpha
    score_type: str = DEFAULTS.scoring.score_type
    scope: str = DEFAULTS.scoring.scope
    patch_size: int = DEFAULTS.perturb.patch_size
    patch_prob: float = DEFAULTS.perturb.patch_prob
    blur_radius: float = DEFAULTS.perturb.blur_radius

    @classmethod
    def from_api(cls, values: dict[str, Any]) -> ControlValues:
        """From an event's keyword values ({"ratio_value": 0.2, ...}): each converted to
        its field's type, or a readable error (UserFacingError) naming the control."""
        kinds = typing.get_type_hints(cls)
        out = {}
        for key, value in values.items():
            name = key.removesuffix(API_SUFFIX)
            label = _LABELS.get(name, name.replace("_", " "))
            kind = kinds.get(name)
            if kind is None:
                raise UserFacingError(f"unknown setting {key!r}")
            if kind is int:
                out[name] = whole_number(label, value)
            elif kind is float:
                out[name] = number(label, value)
            else:
                out[name] = value  # a dropdown's choice, checked by its config
        return cls(**out)

    @classmethod
    def of(cls, settings: AnalysisSettings | dict[str, Any]) -> ControlValues:
        """The controls that reproduce `settings` (an analysis' typed or saved settings)."""
        if not isinstance(settings, AnalysisSettings):
            settings = AnalysisSettings.from_saved(settings or {})
        perturb = settings.perturb
        return cls(
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            seed=settings.seed,
            cf_mode=perturb.mode,
            sigma=perturb.sigma,
            n_draws=perturb.n_draws,
            **rescore_args(settings.scoring),
            **{name: getattr(perturb, name) for name in EXTRA_MODE_FIELDS},
        )

    def scoring(self) -> dict[str, Any]:
        """The selection settings as validated rescore() arguments."""
        return scoring_args(self.ratio, self.alpha, self.score_type, self.scope)

    def settings(self) -> AnalysisSettings:
        """AnalysisSettings (a VepoInputError with a readable message when invalid)."""
        perturb = typed(
            PerturbConfig,
            mode=self.cf_mode,
            sigma=self.sigma,
            n_draws=self.n_draws,
            seed=self.seed,
            **{name: getattr(self, name) for name in EXTRA_MODE_FIELDS},
        )
        return typed(
            AnalysisSettings,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed,
            perturb=perturb,
            scoring={name: getattr(self, name) for name in SCORING_FIELDS},  # built once
        )


_LABELS = {
    "cf_mode": "counterfactual mode",
    "n_draws": "number of draws K",
    "patch_prob": "patch probability",
}
"""A control's name in messages, where its field's name (underscores as spaces) is not it."""


@dataclass(frozen=True)
class Controls:
    """The Analyze tab's settings components (field order = the API's parameter order)."""

    max_new_tokens: Any
    temperature: Any
    seed: Any
    cf_mode: Any
    sigma: Any
    n_draws: Any
    ratio: Any
    alpha: Any
    score_type: Any
    scope: Any
    patch_size: Any
    patch_prob: Any
    blur_radius: Any

    def inputs(self) -> list[Any]:
        """The components, in field order."""
        return [getattr(self, f.name) for f in fields(self)]

    def api_inputs(self) -> dict[str, Any]:
        """{API parameter name: component}, for an event's `inputs_kwargs`."""
        return {f.name + API_SUFFIX: getattr(self, f.name) for f in fields(self)}

    def selection(self) -> list[Any]:
        """The components that only re-score (no model)."""
        return [getattr(self, name) for name in SCORING_FIELDS]

    def selection_api_inputs(self) -> dict[str, Any]:
        return {name + API_SUFFIX: getattr(self, name) for name in SCORING_FIELDS}

    def rerun_events(self) -> list[Any]:
        """Events of the controls that re-run the model (a released slider, ...)."""
        return [
            self.cf_mode.input,
            self.sigma.release,
            self.n_draws.release,
            self.max_new_tokens.release,
            self.temperature.release,
            self.seed.submit,
            self.patch_size.release,
            self.patch_prob.release,
            self.blur_radius.release,
        ]

    def load_outputs(self) -> list[Any]:
        """The components the /load API sets, in the order of its outputs."""
        order = ("ratio", "alpha", "score_type", "scope", "cf_mode", "sigma", "n_draws")
        rest = ("max_new_tokens", "temperature", "seed", *EXTRA_MODE_FIELDS)
        return [getattr(self, n) for n in (*order, *rest)]

    def show(self, values: ControlValues) -> dict[Any, Any]:
        """{component: value} that sets every control to `values`."""
        return {getattr(self, f.name): getattr(values, f.name) for f in fields(self)}

    def mode_parameters(self) -> dict[str, Any]:
        """{PerturbConfig field: component} of the counterfactual modes' parameters."""
        return {"sigma": self.sigma, **{n: getattr(self, n) for n in EXTRA_MODE_FIELDS}}


def mode_parameter_updates(controls: Controls, mode: str) -> list[Any]:
    """gr.update(visible=...) per `mode_parameters` component: shown if `mode` reads it."""
    import gradio as gr

    entry = MODES.get(mode)
    if entry is None:
        return [gr.skip() for _ in controls.mode_parameters()]
    return [gr.update(visible=name in entry.parameters) for name in controls.mode_parameters()]


def build_controls(default_model: str) -> tuple[Controls, Any]:
    """Lay out the settings accordions; returns (the Controls, the model textbox)."""
    import gradio as gr

    with gr.Accordion("Selection (re-scores instantly, no model)", open=True):
        ratio = gr.Slider(
            0.05,
            1.0,
            value=DEFAULTS.scoring.ratio,
            step=0.05,
            label="ratio (share of tokens kept)",
            elem_id="vv-ratio",
        )
        alpha = gr.Slider(
            0.0,
            1.0,
            value=DEFAULTS.scoring.alpha,
            step=0.05,
            label="alpha (JSD vs |entropy gap|)",
            elem_id="vv-alpha",
        )
        score_type = gr.Dropdown(
            score_type_choices(SCORE_TYPES),
            value=DEFAULTS.scoring.score_type,
            label="score type",
            info=score_type_info(SCORE_TYPES, DEFAULTS.scoring.score_type),
            elem_id="vv-score-type",
        )
        scope = gr.Dropdown(
            list(SCOPES),
            value=DEFAULTS.scoring.scope,
            label="scope",
            info=SCOPE_INFO,
            elem_id="vv-scope",
        )
    with gr.Accordion("Model and generation", open=False):
        model = gr.Textbox(
            value=default_model,
            label="model",
            info="'embedded' (the tiny model), a local folder, or a hub id "
            "such as Qwen/Qwen2.5-VL-3B-Instruct; press Enter to re-run",
            elem_id="vv-model",
        )
        max_new_tokens = gr.Slider(
            1, 1024, value=DEFAULTS.max_new_tokens, step=1, label="max new tokens"
        )
        temperature = gr.Slider(
            0.0, 2.0, value=DEFAULTS.temperature, step=0.05, label="temperature (0 = greedy)"
        )
        seed = gr.Number(value=DEFAULTS.seed, precision=0, minimum=0, label="seed")
    with gr.Accordion("Counterfactual image", open=False):
        mode = DEFAULTS.perturb.mode
        cf_mode = gr.Dropdown(MODES.choices(), value=mode, label="mode")
        sigma = gr.Slider(
            0.0,
            5.0,
            value=DEFAULTS.perturb.sigma,
            step=0.1,
            label="sigma",
            visible="sigma" in MODES[mode].parameters,
            elem_id="vv-sigma",
        )
        patch_size, patch_prob, blur_radius = _mode_sliders(mode)
        n_draws = gr.Slider(1, 16, value=DEFAULTS.perturb.n_draws, step=1, label="draws K")
    controls = Controls(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        cf_mode=cf_mode,
        sigma=sigma,
        n_draws=n_draws,
        ratio=ratio,
        alpha=alpha,
        score_type=score_type,
        scope=scope,
        patch_size=patch_size,
        patch_prob=patch_prob,
        blur_radius=blur_radius,
    )
    return controls, model


_MODE_SLIDERS = {
    "patch_size": (1, 128, 1, "patch size"),
    "patch_prob": (0.0, 1.0, 0.05, "patch probability"),
    "blur_radius": (0.0, 32.0, 0.5, "blur radius"),
}
"""Slider (minimum, maximum, step, label) of each EXTRA_MODE_FIELDS parameter."""


def _mode_sliders(mode: str) -> tuple[Any, ...]:
    """The patch and blur modes' parameter sliders (EXTRA_MODE_FIELDS order), shown when
    `mode` reads them."""
    import gradio as gr

    reads = MODES[mode].parameters
    return tuple(
        gr.Slider(
            low,
            high,
            value=getattr(DEFAULTS.perturb, name),
            step=step,
            label=label,
            visible=name in reads,
        )
        for name, (low, high, step, label) in ((n, _MODE_SLIDERS[n]) for n in EXTRA_MODE_FIELDS)
    )
