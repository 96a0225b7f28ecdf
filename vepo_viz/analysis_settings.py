"""`AnalysisSettings`: everything that determines an analysis besides its inputs.

A frozen dataclass (generation, counterfactual views, scoring) that `analyze` takes and
`TokenAnalysis.settings` keeps as the typed object; it becomes a dict only when a result
is saved. Its own module so that `results` (which loads it) and `analysis` (which runs
it) can both import it without importing each other. Re-exported as
`vepo_viz.analysis.AnalysisSettings` and `vepo_viz.AnalysisSettings`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from vepo_viz import scoring
from vepo_viz.errors import VepoInputError
from vepo_viz.perturb import MAX_SEED, PerturbConfig
from vepo_viz.settings import LegacyMapping, build_config


@dataclass(frozen=True)
class AnalysisSettings(LegacyMapping):
    """Everything that determines an analysis besides model, image, question and response.

    Defaults are the VEPO reference: sampled at temperature 1, one Gaussian view with
    sigma 2 in normalised pixel space, score type D with alpha 0.7, top 20% per response.
    `settings["score_type"]`, `settings["perturb"]["seed"]` read fields too (LegacyMapping:
    the legacy dict view of the time results carried a dict).
    """

    max_new_tokens: int = 64
    """Most tokens generated when no response is given."""
    temperature: float = 1.0
    """Sampling temperature; 0 = greedy decoding. Also tau of p = softmax(z / tau) and q
    (the reference scores at the sampling temperature; greedy scores at tau = 1)."""
    top_p: float = 1.0
    """Nucleus of sampling, in (0, 1] (1 = plain sampling, as in the reference)."""
    seed: int = 0
    """Seed of sampling and of the "random" score type (at most perturb.MAX_SEED)."""
    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    """The counterfactual views (mode, sigma, n_draws K, seed, ...)."""
    score_type: str = field(default="D", metadata={"registry": scoring.SCORE_TYPES})
    """Score of the VEPO selection; "D" is VEPO."""
    alpha: float = 0.7
    """Weight of JSD vs |dH| in the visual-sensitivity noisy-OR."""
    ratio: float = 0.2
    """Share of tokens selected, in (0, 1]."""
    scope: str = field(default="response", metadata={"choices": scoring.SCOPES})
    """Selection scope: per response (reference), whole batch or batch quantile; on one
    response they select nearly the same tokens."""
    score_temperature: float | None = None
    """Temperature tau of the scoring softmax, if it should differ from the sampling
    temperature (unset: the sampling temperature, 1 when greedy)."""
    chunk_size: int | None = None
    """Positions per output-head chunk (unset: picked from the vocabulary size and the
    device). Any value gives the same numbers up to float rounding."""
    top_k: int = 5
    """Clean candidates kept per position (with their noisy probabilities)."""
    floor_pass: bool = True
    """Measure the noise floor with one extra teacher-forced pass on the clean image when
    the response is generated (vepo_viz.floor); False = the float floor only, one pass
    cheaper. Pasted responses need no extra pass. The scores do not depend on it."""
    skip_floor: bool = False
    """VEPO selection skips tokens at the noise floor (no visual signal beyond rounding);
    False = the reference selection. Scores and the entropy baseline are unchanged."""

    def __post_init__(self) -> None:
        if isinstance(self.perturb, dict):
            object.__setattr__(
                self, "perturb", build_config(PerturbConfig, self.perturb, "perturb")
            )
        if not isinstance(self.perturb, PerturbConfig):
            raise VepoInputError("AnalysisSettings.perturb must be a PerturbConfig")
        _check_int("max_new_tokens", self.max_new_tokens, 1)
        _check_int("seed", self.seed, 0, MAX_SEED)
        _check_int("top_k", self.top_k, 1)
        for name in ("floor_pass", "skip_floor"):
            if not isinstance(getattr(self, name), bool):
                raise VepoInputError(f"AnalysisSettings.{name} must be True or False")
        if self.chunk_size is not None:
            _check_int("chunk_size", self.chunk_size, 1)
        t = _check_float("temperature", self.temperature)
        if t < 0:
            raise VepoInputError(
                f"AnalysisSettings.temperature={t} must be >= 0 (0 = greedy, 1 = reference)"
            )
        p = _check_float("top_p", self.top_p)
        if not 0 < p <= 1:
            raise VepoInputError(f"AnalysisSettings.top_p={p} must lie in (0, 1] (1 = off)")
        if self.score_temperature is not None:
            st = _check_float("score_temperature", self.score_temperature)
            if st <= 0:
                raise VepoInputError(
                    f"AnalysisSettings.score_temperature={st} must be > 0 (or None)"
                )
        try:
            self.scoring  # noqa: B018 - validates score_type, alpha, ratio, scope
        except ValueError as error:
            raise VepoInputError(str(error).replace("ScoringConfig", "AnalysisSettings")) from error

    @property
    def tau(self) -> float:
        """Temperature of the scored distributions."""
        if self.score_temperature is not None:
            return float(self.score_temperature)
        return float(self.temperature) if self.temperature > 0 else 1.0

    @property
    def scoring(self) -> scoring.ScoringConfig:
        return scoring.ScoringConfig(
            score_type=self.score_type,
            alpha=float(self.alpha),
            ratio=float(self.ratio),
            scope=self.scope,
            temperature=self.tau,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisSettings:
        return build_config(cls, data, "AnalysisSettings")

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> AnalysisSettings:
        """The settings of a saved result: like `from_dict`, but keys this version does
        not know (from another version) are left out, so any saved analysis loads."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        perturb = known.get("perturb")
        if isinstance(perturb, dict):
            fields_ = PerturbConfig.__dataclass_fields__
            known["perturb"] = {k: v for k, v in perturb.items() if k in fields_}
        return cls.from_dict(known)


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise VepoInputError(f"AnalysisSettings.{name}={value!r} must be an int >= {minimum}")
    if maximum is not None and value > maximum:
        raise VepoInputError(
            f"AnalysisSettings.{name}={value} must lie in [{minimum}, {maximum:,}]"
        )


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise VepoInputError(f"AnalysisSettings.{name}={value!r} must be a finite number")
    return float(value)
