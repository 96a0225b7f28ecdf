"""RULES: the token-selection rules of training, one table (the Train tab's choices, the
`vepo-viz train --selection` help and the config validation all read it), and the one
place training selects through: the TRL plug-in calls a rule's `select`, the
mini-reproduction (vepo_viz.repro) and tests call `select_for_step`.

A rule maps the rollout batch's per-token signals to the tokens a step trains on. It is
pure: a config (read for its `scoring` and `vppo_rescale` only), `TokenSignals` and a
generator in, a `Selection` out, through the app's own `scoring` functions
(`score_tokens`, `select_tokens`; VPPO: the `vppo_*` functions), exactly what the Analyze
tab shows for the same response.

Shapes: N sequences, T response positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vepo_viz.lazy import torch
from vepo_viz.perturb import MODES
from vepo_viz.registry import Registry
from vepo_viz.scoring import (
    SCORE_TYPES,
    TokenStats,
    score_tokens,
    select_tokens,
    vppo_advantage_scale,
    vppo_token_dependency,
)

SCALE_REWARDS: tuple[str, ...] = ("group", "batch", "none")
"""TRL's GRPOConfig.scale_rewards values (trl 1.16: "group" is its default)."""


@dataclass(frozen=True, eq=False)
class TokenSignals:
    """Per-token quantities of the rollout policy over the sampled responses (no grad)."""

    mask: torch.Tensor
    """(N, T) bool, valid response tokens."""
    logp_old: torch.Tensor
    """(N, T) float32 log-probs of the sampled tokens under the rollout policy (clean image)."""
    entropy: torch.Tensor
    """(N, T) float32 entropy of the clean next-token distribution."""
    stats: TokenStats | None = None
    """Clean-vs-counterfactual statistics (None when no counterfactual pass ran)."""
    logp_noisy: torch.Tensor | None = None
    """(N, T) log-probs of the sampled tokens with the counterfactual image (VPPO)."""
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    """{name: (N, T)} the engine's registered hidden-state signals (mean over draws)."""


@dataclass(frozen=True, eq=False)
class Selection:
    """The tokens a step trains on and, for VPPO, the per-response advantage scale."""

    selected: torch.Tensor
    """(N, T) bool, a subset of the mask."""
    scores: torch.Tensor | None
    """(N, T) float32 scores the top-ratio cut was taken on (None for "all")."""
    advantage_scale: torch.Tensor | None = None
    """(N,) float32 multiplier of each response's advantage (VPPO), else None."""


@dataclass(frozen=True)
class SelectionRule:
    """One entry of RULES."""

    name: str
    """What `TrainConfig.selection` takes."""
    description: str
    """One line for the UI's choices, the CLI's help and the docs."""
    select: Callable[[Any, TokenSignals, torch.Generator], Selection]
    """(cfg, signals, generator) -> Selection. `cfg` has `scoring` (a ScoringConfig:
    score_type, alpha, ratio, scope) and `vppo_rescale`, as TrainConfig and VEPOGRPOConfig
    do; `generator` is seeded per step by the trainer."""
    counterfactual: bool | Callable[[Any], bool] = False
    """Whether the rule reads the counterfactual pass (a function of cfg if it depends on
    its settings, e.g. on the score type)."""
    perturb: str = MODES.reference
    """The counterfactual mode the rule uses when the config names none (its reference)."""
    score_types: Callable[[Any], bool] | None = None
    """Which SCORE_TYPES entries `cfg.scoring.score_type` may name for this rule (None: it
    reads no score type)."""

    def needs_counterfactual(self, cfg: Any) -> bool:
        return self.counterfactual(cfg) if callable(self.counterfactual) else self.counterfactual


def _entropy_only_stats(entropy: torch.Tensor) -> TokenStats:
    """TokenStats carrying only the entropy (what the entropy and random scores read)."""
    zeros = torch.zeros_like(entropy)
    return TokenStats(entropy=entropy, entropy_noisy=entropy, jsd=zeros, kl=zeros)


def _top(cfg, signals: TokenSignals, scores: torch.Tensor) -> Selection:
    return Selection(
        selected=select_tokens(scores, signals.mask, cfg.scoring.ratio, cfg.scoring.scope),
        scores=scores,
    )


def _all(cfg, signals: TokenSignals, generator: torch.Generator) -> Selection:
    return Selection(selected=signals.mask.clone(), scores=None)


def _baseline(score_type: str):
    """A rule that scores by a built-in score type needing no counterfactual pass."""

    def select(cfg, signals: TokenSignals, generator: torch.Generator) -> Selection:
        stats = signals.stats or _entropy_only_stats(signals.entropy)
        return _top(
            cfg, signals, score_tokens(stats, signals.mask, score_type, generator=generator)
        )

    return select


def _vepo(cfg, signals: TokenSignals, generator: torch.Generator) -> Selection:
    if signals.stats is None:
        raise ValueError("the vepo rule needs the counterfactual statistics (signals.stats)")
    sc = cfg.scoring
    return _top(cfg, signals, score_tokens(signals.stats, signals.mask, sc.score_type, sc.alpha))


def _vppo(cfg, signals: TokenSignals, generator: torch.Generator) -> Selection:
    if signals.logp_noisy is None:
        raise ValueError("the vppo rule needs the counterfactual log-probs (signals.logp_noisy)")
    scores = vppo_token_dependency(signals.logp_old, signals.logp_noisy, signals.mask)
    scale = vppo_advantage_scale(scores, signals.mask) if cfg.vppo_rescale else None
    selected = select_tokens(scores, signals.mask, cfg.scoring.ratio, cfg.scoring.scope)
    return Selection(selected=selected, scores=scores, advantage_scale=scale)


TRAIN_SCOPES: tuple[str, ...] = ("response", "batch")
"""The `scope` values (of scoring.SCOPES) training honours: the top ratio of each response
(the reference) or one cut over the rollout batch of every process. The Analyze tab's
"quantile" is not one of them; TRL's own entropy quantile is a setting of its own
(selection "all" with top_entropy_quantile in the [trl] table)."""


def selection_problems(cfg: Any) -> list[str]:
    """What training cannot honour in a TrainConfig's selection settings, each a sentence
    that says what to use instead (the config's validation reports them; nothing is
    mapped to something else): a scope outside TRAIN_SCOPES, and TRL's own
    top_entropy_quantile ([trl] table) under a rule that selects tokens itself."""
    problems, scoring = [], cfg.scoring
    if scoring.scope not in TRAIN_SCOPES:
        problems.append(
            f"scope={scoring.scope!r} is not a training scope: training keeps the top ratio of "
            'each response (scope="response", the reference) or of the whole batch '
            '(scope="batch"); for TRL\'s own entropy quantile set selection="all" and '
            f"top_entropy_quantile in the [trl] table (--trl top_entropy_quantile={scoring.ratio})"
        )
    quantile = cfg.trl.get("top_entropy_quantile") if isinstance(cfg.trl, dict) else None
    if isinstance(quantile, int | float) and quantile < 1 and cfg.selection != "all":
        problems.append(
            f"top_entropy_quantile={quantile!r} in [trl] is TRL's own entropy selection, "
            f"applied in its loss on top of the {cfg.selection!r} rule's: the run would train "
            "on the tokens both keep while its logs describe the rule's alone; use it with "
            'selection="all", or leave it out'
        )
    return problems


def vepo_score_type(entry) -> bool:
    """Score types the "vepo" rule accepts: those that read the counterfactual pass (the
    two baselines without one, entropy and random, have rules of their own)."""
    return entry.needs_counterfactual


RULES: Registry[SelectionRule] = Registry("selection rule", reference="vepo")
"""Token-selection rules, in the order the Train tab lists them. Add one with
`RULES.register(SelectionRule(...))`."""

for _rule in (
    SelectionRule("all", "every valid token (plain GRPO)", _all),
    SelectionRule("entropy", "top ratio by entropy (80/20 forking tokens)", _baseline("entropy")),
    SelectionRule(
        "vepo",
        "top ratio by a VEPO score (score_type; D = reference)",
        _vepo,
        counterfactual=lambda cfg: SCORE_TYPES[cfg.scoring.score_type].needs_counterfactual,
        score_types=vepo_score_type,
    ),
    SelectionRule(
        "vppo",
        "top ratio by VPPO's sampled-token dependency, advantages rescaled",
        _vppo,
        counterfactual=True,
        perturb="patch",
    ),
    SelectionRule("random", "top ratio by a uniform random score (seeded)", _baseline("random")),
):
    RULES.register(_rule)
del _rule


def select_for_step(cfg: Any, signals: TokenSignals, generator: torch.Generator) -> Selection:
    """Apply the rule cfg.selection (an entry of RULES) to the rollout batch's signals.

    `cfg` is a TrainConfig (or anything with selection, scoring and vppo_rescale);
    `generator` drives the "random" rule only (seeded per step by the trainer).
    """
    return RULES[cfg.selection].select(cfg, signals, generator)
