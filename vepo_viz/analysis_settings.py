"""`AnalysisSettings`: everything that determines an analysis besides its inputs.

A frozen dataclass (generation, and the `PerturbConfig` and `ScoringConfig` it composes)
that `analyze` takes and `TokenAnalysis.settings` keeps as the typed object; it becomes a
dict only when a result is saved. Its own module so that `results` (which loads it) and
`analysis` (which runs it) can both import it without importing each other. Re-exported
as `vepo_viz.analysis.AnalysisSettings` and `vepo_viz.AnalysisSettings`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vepo_viz.errors import VepoInputError
from vepo_viz.perturb import MAX_SEED, PerturbConfig
from vepo_viz.scoring import SCORING_KEYS, ScoringConfig
from vepo_viz.settings import LegacyMapping, build_config


@dataclass(frozen=True)
class AnalysisSettings(LegacyMapping):
    """Everything that determines an analysis besides model, image, question and response.

    Generation and noise-floor fields of its own, and two configs it composes, as
    TrainConfig does: `perturb` (the counterfactual views) and `scoring` (score type,
    alpha, ratio, scope); their defaults are theirs (the VEPO reference). Saved flat, as
    results always were (`to_dict`: score_type, alpha, ratio and scope beside the other
    keys, perturb a table); `from_dict` reads that, the older files' subsets of it, or a
    `scoring` table. `settings["score_type"]`, `settings["perturb"]["seed"]` read fields
    too (LegacyMapping: the legacy dict view of the time results carried a flat dict).
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
    """The counterfactual views (mode, sigma, n_draws K, seed, ...); a dict of its fields
    is taken too."""
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    """The selection: score_type, alpha, ratio, scope (flat keys in files and flags); a
    dict of them is taken too. Its temperature and seed are this analysis' own (`tau`
    and `seed`, set here whatever was given)."""
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

    _legacy_keys: ClassVar[dict[str, str]] = dict.fromkeys(SCORING_KEYS, "scoring")

    def __post_init__(self) -> None:
        if isinstance(self.perturb, dict):
            object.__setattr__(
                self, "perturb", build_config(PerturbConfig, self.perturb, "perturb")
            )
        for name, cls in (("perturb", PerturbConfig), ("scoring", ScoringConfig)):
            if not isinstance(getattr(self, name), cls | dict):
                raise VepoInputError(
                    f"AnalysisSettings.{name} must be a {cls.__name__} (or a dict of its fields)"
                )
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
        own = {"temperature": self.tau, "seed": self.seed}
        if isinstance(self.scoring, dict):  # built once, with this analysis' own values
            scoring = build_config(ScoringConfig, {**self.scoring, **own}, "scoring")
            object.__setattr__(self, "scoring", scoring)
        elif (self.scoring.temperature, self.scoring.seed) != tuple(own.values()):
            object.__setattr__(self, "scoring", dataclasses.replace(self.scoring, **own))

    @property
    def tau(self) -> float:
        """Temperature of the scored distributions."""
        if self.score_temperature is not None:
            return float(self.score_temperature)
        return float(self.temperature) if self.temperature > 0 else 1.0

    def replace_scoring(self, **changes: Any) -> AnalysisSettings:
        """These settings with other selection choices (score_type, alpha, ratio, scope),
        checked by ScoringConfig."""
        unknown = sorted(set(changes) - set(SCORING_KEYS))
        if unknown:
            raise VepoInputError(
                f"replace_scoring takes {', '.join(SCORING_KEYS)}, not {', '.join(unknown)} "
                "(the scoring temperature and seed are the analysis' own: replace those)"
            )
        if not changes:
            return self
        return dataclasses.replace(self, scoring=dataclasses.replace(self.scoring, **changes))

    def to_dict(self) -> dict[str, Any]:
        """The saved form: every field, the selection choices flat among them (score_type,
        alpha, ratio, scope, as saved results always had them), perturb as a table."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "scoring":
                out.update({key: getattr(value, key) for key in SCORING_KEYS})
            elif f.name == "perturb":
                out[f.name] = dataclasses.asdict(value)
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisSettings:
        """Settings of `to_dict`'s flat form (or with a `scoring` table or ScoringConfig
        instead of the flat selection keys); a key it does not know is refused."""
        data = dict(data)
        flat = {key: data.pop(key) for key in SCORING_KEYS if key in data}
        if flat:
            if "scoring" in data:
                raise VepoInputError(
                    f"AnalysisSettings: give {', '.join(flat)} either flat or in `scoring`, "
                    "not both"
                )
            data["scoring"] = flat
        return build_config(cls, data, "AnalysisSettings")

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> AnalysisSettings:
        """The settings of a saved result: like `from_dict`, but keys this version does
        not know (from another version) are left out, so any saved analysis loads."""
        known = {
            k: v for k, v in data.items() if k in cls.__dataclass_fields__ or k in SCORING_KEYS
        }
        for name, config in (("perturb", PerturbConfig), ("scoring", ScoringConfig)):
            if isinstance(known.get(name), dict):
                fields_ = config.__dataclass_fields__
                known[name] = {k: v for k, v in known[name].items() if k in fields_}
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
