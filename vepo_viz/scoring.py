"""VEPO token scoring: per-token statistics, score types, top-k selection, VPPO weights.

Everything here is pure tensor math (tensors and a config in, tensors out): no model, no
processor, no I/O; `score_response` wraps it for one stored response (numpy in, a frozen
`ResponseScores` out: what `analyze` and `TokenAnalysis.rescore` store). The UI, the CLI, dataset scoring and training all call these same
functions, so every number the app shows is computed once, here. Definitions follow
shared/PAPER.md (the reference code of Jin et al. 2026); the reference is the default of
every setting and each departure is a named setting.

Memory: the reference materialises about six (B, T, V) float32 tensors. `token_stats`
walks the flattened (B*T, V) rows in chunks, upcasts one chunk at a time to float32 and
works in log space, so its extra memory is O(chunk x V) whatever T is.

Shapes: B responses, T response positions (position t holds the distribution that predicts
response token t), V vocabulary entries.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

from vepo_viz.errors import VepoInputError
from vepo_viz.lazy import no_grad, torch
from vepo_viz.registry import Registry

# Named shape aliases (documentation only; all are torch.Tensor).
LogitsBTV: TypeAlias = "torch.Tensor"  # (B, T, V) float logits, any float dtype
FloatBT: TypeAlias = "torch.Tensor"  # (B, T) float32
BoolBT: TypeAlias = "torch.Tensor"  # (B, T) bool
LongBT: TypeAlias = "torch.Tensor"  # (B, T) int64 token ids
FloatB: TypeAlias = "torch.Tensor"  # (B,) float32

LN2 = math.log(2.0)

EPS_NORM = 1e-8
"""Floor of (max - min) in the per-response min-max normalisation (1e-8, as the reference).
A response whose signal is constant (range below EPS_NORM) normalises to all zeros."""

EPS_DIV = 1e-12
"""Floor of denominators of means (VPPO advantage scale), so an all-zero batch stays finite."""

K3_LOG_RATIO_MAX = 20.0
"""|log q/p| is clamped to this before exp in the VPPO k3 estimator (verl's low_var_kl
clamps its log-ratio the same way), so one extreme token cannot overflow float32. exp(20) ~ 5e8; real tokens stay far
below it."""

CHUNK_ELEMENTS_CPU = 2**19
"""Default chunk size of `token_stats` on CPU, in (row x vocab) elements: ~2 MB of float32
per workspace buffer (3 rows at V = 151,936). Measured at T = 2,048, V = 151,936, one
thread (benchmarks/scoring_memory.py --part speed): 2-3 rows per chunk run ~1.4x faster
than 13 (2**21), whose six workspaces no longer fit the caches."""

CHUNK_ELEMENTS_CUDA = 2**24
"""Default chunk size on accelerators: ~64 MB of float32 per workspace buffer (110 rows at
V = 151,936), about 320 MB in all; large chunks keep kernel launches few."""

SCOPES: tuple[str, ...] = ("response", "batch", "quantile")
"""Accepted `scope` values of `select_tokens`; the first, per response, is the reference."""

DEFAULT_ALPHA = 0.7
"""Reference weight of JSD vs |dH| in the visual-sensitivity noisy-OR (types D, C, E, F,
H): the one place it is written (ScoringConfig, the functions here, AnalysisSettings,
TrainConfig and VEPOGRPOConfig all take it from here)."""

DEFAULT_RATIO = 0.2
"""Reference share of tokens kept (the top 20% per response)."""


# --------------------------------------------------------------------------------------
# Per-token statistics
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TokenStats:
    """Per-token statistics of a clean and a counterfactual pass (all float32 (B, T), nats).

    Position t is the next-token distribution that predicts response token t. Values at
    padding positions are computed like any other and carry no meaning: pass a mask to
    everything downstream.
    """

    entropy: FloatBT
    """H_t = -sum_v p log p of the clean distribution p_t."""
    entropy_noisy: FloatBT
    """H'_t of the counterfactual (perturbed-image) distribution q_t."""
    jsd: FloatBT
    """JSD(p_t, q_t) in [0, ln 2]."""
    kl: FloatBT
    """KL(p_t || q_t) = KL(clean || noisy) >= 0."""

    def __post_init__(self) -> None:
        shape = self.entropy.shape
        if self.entropy.dim() != 2:
            raise ValueError(f"TokenStats fields must be (B, T); got entropy {tuple(shape)}")
        for name in ("entropy_noisy", "jsd", "kl"):
            other = getattr(self, name).shape
            if other != shape:
                raise ValueError(
                    f"TokenStats.{name} has shape {tuple(other)}, expected {tuple(shape)} "
                    "like .entropy"
                )

    @property
    def entropy_gap(self) -> FloatBT:
        """dH_t = H'_t - H_t, signed (the scores use |dH| or max(dH, 0))."""
        return self.entropy_noisy - self.entropy

    @property
    def shape(self) -> torch.Size:
        return self.entropy.shape

    def to(self, device: torch.device | str) -> TokenStats:
        """A copy with every field on `device`."""
        return TokenStats(
            entropy=self.entropy.to(device),
            entropy_noisy=self.entropy_noisy.to(device),
            jsd=self.jsd.to(device),
            kl=self.kl.to(device),
        )


def average_stats(draws: Sequence[TokenStats]) -> TokenStats:
    """Mean over K counterfactual draws of the same clean pass (K > 1 lowers variance).

    H' (hence dH), JSD and KL are averaged over draws; H comes from the clean pass and must
    be the same in every draw. The reference uses one draw, where this is the identity.
    """
    if len(draws) == 0:
        raise ValueError("average_stats needs at least one TokenStats")
    if len(draws) == 1:
        return draws[0]
    first = draws[0]
    for k, stats in enumerate(draws[1:], start=1):
        if stats.shape != first.shape:
            raise ValueError(
                f"draw {k} has shape {tuple(stats.shape)}, draw 0 has {tuple(first.shape)}"
            )

    def mean(name: str) -> FloatBT:
        return torch.stack([getattr(s, name) for s in draws]).mean(0)  # (K, B, T) -> (B, T)

    return TokenStats(
        entropy=first.entropy,
        entropy_noisy=mean("entropy_noisy"),
        jsd=mean("jsd"),
        kl=mean("kl"),
    )


def default_chunk_rows(vocab_size: int, device: torch.device | str = "cpu") -> int:
    """Rows per chunk for `token_stats` / `sampled_token_logprobs` (see CHUNK_ELEMENTS_*)."""
    elements = CHUNK_ELEMENTS_CPU if torch.device(device).type == "cpu" else CHUNK_ELEMENTS_CUDA
    return max(1, elements // max(1, vocab_size))


def _check_logits(name: str, logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() != 3:
        raise ValueError(
            f"{name} must be (B, T, V) logits, got shape {tuple(logits.shape)}; "
            "add a batch dimension with .unsqueeze(0) for a single response"
        )
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {logits.dtype}")
    if logits.shape[-1] == 0:
        raise ValueError(f"{name} has an empty vocabulary dimension")


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return temperature


def _check_chunk_rows(chunk_size: int | None, vocab_size: int, device: torch.device) -> int:
    if chunk_size is None:
        return default_chunk_rows(vocab_size, device)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int (rows per chunk), got {chunk_size!r}")
    return chunk_size


def _raise_non_finite(tensors: dict[str, torch.Tensor], temperature: float) -> None:
    """Name the first input holding NaN/inf (called only once a result came out non-finite)."""
    for name, logits in tensors.items():
        bad = ~torch.isfinite(logits)  # (B, T, V)
        if bool(bad.any()):
            n_bad = int(bad.sum())
            b, t, v = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"{name} contains {n_bad} NaN/inf value(s) (first at batch {b}, position {t}, "
                f"vocab id {v}); pass finite logits (e.g. replace -inf from logit processors "
                "with a large negative number such as torch.finfo(dtype).min / 2)"
            )
    raise ValueError(
        f"logits overflow to inf after dividing by temperature={temperature}; "
        "use a larger temperature or float32 logits"
    )


def log_softmax_into(
    z: torch.Tensor, inv_temperature: float, scaled: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """log softmax(z / tau) of (n, V) logits into `out` (float32), through the `scaled`
    workspace when z needs an upcast or a temperature (float32 z at tau = 1 is read as
    it is: the copy would be exact, and it costs a pass over memory)."""
    if z.dtype == torch.float32 and inv_temperature == 1.0:
        return torch.log_softmax(z, dim=-1, out=out)
    scaled.copy_(z)  # upcast to float32
    if inv_temperature != 1.0:
        scaled.mul_(inv_temperature)
    return torch.log_softmax(scaled, dim=-1, out=out)


def max_entropy(vocab_size: int) -> float:
    """ln V, the largest entropy of a distribution over V tokens (the clamp of H, H')."""
    return math.log(vocab_size)


def pair_stats(
    p: torch.Tensor,
    logp: torch.Tensor,
    q: torch.Tensor,
    logq: torch.Tensor,
    tmp: torch.Tensor,
    tmp2: torch.Tensor,
) -> torch.Tensor:
    """(3, n) H', JSD(p, q) and KL(p || q) of n rows, from both distributions and their
    logs (n, V) float32, computed once by the caller. Log space; no cancellation.

    p, logp and logq are left unchanged (one clean distribution is compared with many
    views); q, tmp and tmp2 are workspaces (their contents are overwritten). H of p is
    `-(p * logp).sum(-1)`, the same expression as H' of q here. Not clamped: the caller
    checks finiteness and clamps to the mathematical ranges (`clamp_stats`).
    """
    out = torch.empty(3, p.shape[0], dtype=torch.float32, device=p.device)
    torch.sum(torch.mul(q, logq, out=tmp), dim=-1, out=out[0]).neg_()  # H'
    torch.sum(torch.sub(logp, logq, out=tmp).mul_(p), dim=-1, out=out[2])  # KL(p || q)
    # log m = log((p + q) / 2) without forming m: stays finite when p and q underflow.
    logm = torch.logaddexp(logp, logq, out=tmp).sub_(LN2)
    # Sum p (log p - log m) term by term (not -H/2 - H'/2 + H_m): no cancellation when
    # JSD << H, which is most tokens.
    jsd_p = torch.sub(logp, logm, out=tmp2).mul_(p).sum(dim=-1)  # (n,)
    jsd_q = logq.sub_(logm).mul_(q).sum(dim=-1)  # (n,)
    torch.add(jsd_p, jsd_q, out=out[1]).mul_(0.5)
    return out


def entropy_of(p: torch.Tensor, logp: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """(n,) H = -sum p log p of n rows (n, V) float32 (tmp: a workspace)."""
    return torch.sum(torch.mul(p, logp, out=tmp), dim=-1).neg_()


def clamp_stats(
    entropy: torch.Tensor, entropy_noisy: torch.Tensor, jsd: torch.Tensor, kl: torch.Tensor, V: int
) -> None:
    """Remove float32 rounding outside the mathematical ranges (|error| ~ 1e-7), in place."""
    entropy.clamp_(0.0, max_entropy(V))
    entropy_noisy.clamp_(0.0, max_entropy(V))
    jsd.clamp_(0.0, LN2)
    kl.clamp_(min=0.0)


def _stats_chunk(
    zc: torch.Tensor,
    zn: torch.Tensor,
    inv_temperature: float,
    work: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """H, H', JSD and KL of one chunk of n rows into out (4, n); log space, float32.

    work is a (6, >= n, V) float32 workspace reused across chunks: every op writes into
    it (out=, in-place), so the loop allocates nothing per chunk and never faults fresh
    pages in from the OS.
    """
    n = zc.shape[0]
    a, b, logp, logq, tmp, tmp2 = (w[:n] for w in work)  # each (n, V)
    log_softmax_into(zc, inv_temperature, a, logp)
    log_softmax_into(zn, inv_temperature, b, logq)
    p = torch.exp(logp, out=a)  # the scaled logits are no longer needed
    q = torch.exp(logq, out=b)
    out[0] = entropy_of(p, logp, tmp)  # H
    noisy = pair_stats(p, logp, q, logq, tmp, tmp2)  # (3, n): H', JSD, KL
    out[1], out[2], out[3] = noisy[0], noisy[1], noisy[2]


@no_grad
def token_stats(
    logits_clean: LogitsBTV,
    logits_noisy: LogitsBTV,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> TokenStats:
    """Per-token H, H', JSD and KL(clean || noisy) of two teacher-forced passes.

    Args:
        logits_clean: (B, T, V) logits with the clean image, any float dtype.
        logits_noisy: (B, T, V) logits with the counterfactual image, same shape.
        temperature: tau; both distributions are softmax(z / tau) (1.0 in the reference).
        chunk_size: rows of the flattened (B*T, V) logits handled at once; None picks one
            from the vocabulary size and device (`default_chunk_rows`). Any value gives the
            same result up to float32 rounding; extra memory is about 6 x chunk x V floats.

    Returns:
        TokenStats of float32 (B, T) tensors on the logits' device, in nats.

    Raises:
        ValueError: on shape mismatch, bad temperature or NaN/inf in either input.
    """
    _check_logits("logits_clean", logits_clean)
    _check_logits("logits_noisy", logits_noisy)
    if logits_clean.shape != logits_noisy.shape:
        raise ValueError(
            f"logits_clean {tuple(logits_clean.shape)} and logits_noisy "
            f"{tuple(logits_noisy.shape)} must have the same (B, T, V) shape: both passes "
            "teacher-force the same response tokens"
        )
    temperature = _check_temperature(temperature)
    B, T, V = logits_clean.shape
    rows = _check_chunk_rows(chunk_size, V, logits_clean.device)

    flat_clean = logits_clean.reshape(B * T, V)  # (N, V), a view when contiguous
    flat_noisy = logits_noisy.reshape(B * T, V)  # (N, V)
    device = logits_clean.device
    out = torch.empty(4, B * T, dtype=torch.float32, device=device)  # (4, N): H, H', JSD, KL
    work = torch.empty(6, min(rows, B * T), V, dtype=torch.float32, device=device)
    inv_temperature = 1.0 / temperature
    for start in range(0, B * T, rows):
        stop = min(start + rows, B * T)
        _stats_chunk(
            flat_clean[start:stop],
            flat_noisy[start:stop],
            inv_temperature,
            work,
            out[:, start:stop],
        )
    del work

    if not bool(torch.isfinite(out).all()):
        _raise_non_finite({"logits_clean": logits_clean, "logits_noisy": logits_noisy}, temperature)

    clamp_stats(out[0], out[1], out[2], out[3], V)
    out = out.view(4, B, T)  # (4, B, T)
    return TokenStats(entropy=out[0], entropy_noisy=out[1], jsd=out[2], kl=out[3])


def sampled_token_logprobs(
    logits: LogitsBTV,
    token_ids: LongBT,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> FloatBT:
    """log softmax(z_t / tau)[o_t] of the given tokens, chunk by chunk: (B, T) float32.

    Differentiable (the trainer calls it on the current policy's logits). Padding
    positions need some valid id (e.g. 0); mask their results downstream.
    """
    _check_logits("logits", logits)
    B, T, V = logits.shape
    if token_ids.shape != (B, T):
        raise ValueError(
            f"token_ids must be (B, T) = {(B, T)} like the logits, got {tuple(token_ids.shape)}"
        )
    if token_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"token_ids must be an integer tensor, got {token_ids.dtype}")
    if token_ids.numel() and (int(token_ids.min()) < 0 or int(token_ids.max()) >= V):
        raise ValueError(
            f"token_ids must lie in [0, {V}); got range [{int(token_ids.min())}, "
            f"{int(token_ids.max())}]. Replace padding ids (e.g. -100) with 0 and mask them"
        )
    temperature = _check_temperature(temperature)
    rows = _check_chunk_rows(chunk_size, V, logits.device)

    flat = logits.reshape(B * T, V)  # (N, V)
    ids = token_ids.reshape(B * T, 1).long()  # (N, 1)
    parts = []
    for start in range(0, B * T, rows):
        z = flat[start : start + rows].float() / temperature  # (n, V)
        picked = z.gather(-1, ids[start : start + rows]).squeeze(-1)  # (n,)
        parts.append(picked - torch.logsumexp(z, dim=-1))  # (n,)
    if not parts:
        return torch.zeros(B, T, dtype=torch.float32, device=logits.device)
    out = torch.cat(parts).view(B, T)  # (B, T)
    if not bool(torch.isfinite(out.detach()).all()):
        _raise_non_finite({"logits": logits.detach()}, temperature)
    return out


# --------------------------------------------------------------------------------------
# Normalisation and scores
# --------------------------------------------------------------------------------------


def _as_mask(mask: torch.Tensor, shape: torch.Size, name: str = "mask") -> BoolBT:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a (B, T) bool tensor, got {type(mask).__name__}")
    if mask.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return mask
    as_bool = mask != 0
    if mask.is_complex() or not bool((mask[as_bool] == 1).all()):
        raise ValueError(f"{name} must be bool (or 0/1 numbers), got {mask.dtype} values")
    return as_bool


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not (0.0 <= alpha <= 1.0):
        raise ValueError(
            f"alpha must lie in [0, 1] ({DEFAULT_ALPHA} in the reference), got {alpha}"
        )
    return alpha


def normalize_per_response(x: FloatBT, mask: BoolBT, eps: float = EPS_NORM) -> FloatBT:
    """Per-row min-max over valid tokens: (x - min) / max(max - min, eps), clamped to [0, 1].

    x: (B, T); mask: (B, T) bool. Returns float32 (B, T), 0 on padding and on rows without
    valid tokens; a constant row maps to 0. Computed in float64.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (B, T), got shape {tuple(x.shape)}")
    mask = _as_mask(mask, x.shape)
    x64 = x.double()
    if x.shape[1] == 0:
        return x64.float()
    has_valid = mask.any(dim=1, keepdim=True)  # (B, 1)
    x_min = torch.where(mask, x64, math.inf).amin(dim=1, keepdim=True)  # (B, 1)
    x_max = torch.where(mask, x64, -math.inf).amax(dim=1, keepdim=True)  # (B, 1)
    x_min = torch.where(has_valid, x_min, 0.0)
    x_max = torch.where(has_valid, x_max, 0.0)
    span = (x_max - x_min).clamp_min(eps)  # (B, 1)
    out = ((x64 - x_min) / span).clamp(0.0, 1.0)  # (B, T)
    return torch.where(mask, out, 0.0).float()


def _noisy_or(j: torch.Tensor, d: torch.Tensor, alpha: float) -> torch.Tensor:
    """Weighted noisy-OR 1 - (1 - j)^alpha (1 - d)^(1 - alpha) of two [0, 1] signals."""
    return 1.0 - (1.0 - j).pow(alpha) * (1.0 - d).pow(1.0 - alpha)


def visual_sensitivity(stats: TokenStats, mask: BoolBT, alpha: float = DEFAULT_ALPHA) -> FloatBT:
    """v_t = 1 - (1 - j^)^alpha (1 - d^)^(1 - alpha), the visual factor of type D.

    j^ = norm(JSD), d^ = norm(|dH|), per response. (B, T) float32, 0 on padding.
    """
    alpha = _check_alpha(alpha)
    mask = _as_mask(mask, stats.shape)
    j = normalize_per_response(stats.jsd, mask).double()
    d = normalize_per_response(stats.entropy_gap.abs(), mask).double()
    return torch.where(mask, _noisy_or(j, d, alpha), 0.0).float()


def _as_generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    seed = 0 if generator is None else generator
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"generator must be a torch.Generator or a seed int >= 0, got {seed!r}")
    return torch.Generator().manual_seed(seed)


class ScoreInputs:
    """What a score type's function reads: the statistics, the mask, alpha and a generator,
    with the per-response min-max normalised signals computed once, on first use.

    Names follow `score_tokens`: j (JSD), h (entropy), d (|dH|), d_plus (max(dH, 0)),
    k (KL(p||q)), each float64 (B, T), normalised per response.
    """

    def __init__(
        self, stats: TokenStats, mask: BoolBT, alpha: float, generator: torch.Generator | int | None
    ) -> None:
        self.stats, self.mask, self.alpha = stats, mask, alpha
        self._generator = generator
        self._cache: dict[str, torch.Tensor] = {}

    def _norm(self, key: str, x: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = normalize_per_response(x(), self.mask).double()
        return self._cache[key]

    @property
    def j(self) -> torch.Tensor:
        return self._norm("j", lambda: self.stats.jsd)

    @property
    def h(self) -> torch.Tensor:
        return self._norm("h", lambda: self.stats.entropy)

    @property
    def d(self) -> torch.Tensor:
        return self._norm("d", lambda: self.stats.entropy_gap.abs())

    @property
    def d_plus(self) -> torch.Tensor:
        return self._norm("d_plus", lambda: self.stats.entropy_gap.clamp_min(0.0))

    @property
    def k(self) -> torch.Tensor:
        return self._norm("k", lambda: self.stats.kl)

    def generator(self) -> torch.Generator:
        return _as_generator(self._generator)


@dataclass(frozen=True)
class ScoreType:
    """One entry of SCORE_TYPES: a per-token score computed from `ScoreInputs`."""

    name: str
    """What `score_type=` takes ("D", "entropy", ...)."""
    description: str
    """One line for the UI's choices, the CLI's help and the docs."""
    fn: Callable[[ScoreInputs], torch.Tensor]
    """ScoreInputs -> (B, T) scores (any float dtype; `score_tokens` masks and casts)."""
    needs_counterfactual: bool = True
    """False when the score reads no clean-vs-counterfactual signal (entropy, random):
    training rules built on it skip the counterfactual pass."""


def _random_scores(x: ScoreInputs) -> torch.Tensor:
    gen = x.generator()
    score = torch.rand(x.stats.shape, generator=gen, device=gen.device, dtype=torch.float64)
    return score.to(x.stats.entropy.device)  # (B, T)


SCORE_TYPES: Registry[ScoreType] = Registry("score type", reference="D")
"""Accepted `score_type` values, in the order the UI lists them; "D" is the VEPO reference.
Add one with `SCORE_TYPES.register(ScoreType(...))`; see `score_tokens` for the formulas."""

for _entry in (
    ScoreType(
        "D",
        "VEPO (reference): (1 - (1-j)^a (1-d)^(1-a)) * h",
        lambda x: _noisy_or(x.j, x.d, x.alpha) * x.h,
    ),
    ScoreType(
        "A",
        "ablation A: 1 - (1-j)(1-h)(1-d+)",
        lambda x: 1.0 - (1.0 - x.j) * (1.0 - x.h) * (1.0 - x.d_plus),
    ),
    ScoreType(
        "B",
        "ablation B: (1 - (1-j)(1-h)) * d+",
        lambda x: (1.0 - (1.0 - x.j) * (1.0 - x.h)) * x.d_plus,
    ),
    ScoreType(
        "C",
        "ablation C: D with d+ = norm(max(dH, 0))",
        lambda x: _noisy_or(x.j, x.d_plus, x.alpha) * x.h,
    ),
    ScoreType(
        "E", "ablation E: D without the entropy factor", lambda x: _noisy_or(x.j, x.d, x.alpha)
    ),
    ScoreType(
        "F",
        "ablation F: (a*j + (1-a)*d) * h (linear mix)",
        lambda x: (x.alpha * x.j + (1.0 - x.alpha) * x.d) * x.h,
    ),
    ScoreType("G", "ablation G: j * d * h", lambda x: x.j * x.d * x.h),
    ScoreType(
        "H",
        "ablation H: D with norm(KL(p||q)) instead of JSD",
        lambda x: _noisy_or(x.k, x.d, x.alpha) * x.h,
    ),
    ScoreType(
        "entropy",
        "entropy only (80/20 forking tokens)",
        lambda x: x.stats.entropy.double(),
        needs_counterfactual=False,
    ),
    ScoreType("jsd", "JSD only (raw)", lambda x: x.stats.jsd.double()),
    ScoreType(
        "entropy_gap", "|entropy gap| only (raw)", lambda x: x.stats.entropy_gap.double().abs()
    ),
    ScoreType("random", "uniform random (seeded)", _random_scores, needs_counterfactual=False),
):
    SCORE_TYPES.register(_entry)
del _entry


def score_tokens(
    stats: TokenStats,
    mask: BoolBT,
    score_type: str = SCORE_TYPES.reference,
    alpha: float = DEFAULT_ALPHA,
    generator: torch.Generator | int | None = None,
) -> FloatBT:
    """Per-token selection scores, (B, T) float32, exactly 0 where mask is False.

    With j^ = norm(JSD), h^ = norm(H), d^ = norm(|dH|), d+^ = norm(max(dH, 0)) and
    k^ = norm(KL(p||q)), each min-max normalised per response (`normalize_per_response`),
    and a = alpha, the built-in SCORE_TYPES are:

    - "D" (reference VEPO): (1 - (1-j^)^a (1-d^)^(1-a)) * h^
    - "A": 1 - (1-j^)(1-h^)(1-d+^)
    - "B": (1 - (1-j^)(1-h^)) * d+^
    - "C": D with d^ replaced by d+^ (only entropy increases count)
    - "E": D without the entropy factor: 1 - (1-j^)^a (1-d^)^(1-a)
    - "F": linear instead of geometric mix: (a j^ + (1-a) d^) * h^
    - "G": j^ * d^ * h^
    - "H": D with j^ replaced by k^
    - "entropy": raw H (the 80/20 baseline); "jsd": raw JSD; "entropy_gap": raw |dH|
    - "random": uniform [0, 1) from `generator` (a torch.Generator, or a seed; None
      means seed 0, so results are reproducible; the global RNG is never used).

    PAPER.md names F only as "linear mix instead of geometric"; the reading above keeps
    D's weights and entropy factor. Scores are computed in float64 and returned float32.
    """
    if score_type not in SCORE_TYPES:
        raise ValueError(f"score_type: {SCORE_TYPES.unknown_message(score_type)}")
    alpha = _check_alpha(alpha)
    mask = _as_mask(mask, stats.shape)
    score = SCORE_TYPES[score_type].fn(ScoreInputs(stats, mask, alpha, generator))  # (B, T)
    return torch.where(mask, score.double(), 0.0).float()


# --------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------


def _check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not (0.0 < ratio <= 1.0):
        raise ValueError(
            f"ratio must lie in (0, 1] ({DEFAULT_RATIO} keeps the top {DEFAULT_RATIO:.0%}), "
            f"got {ratio}"
        )
    return ratio


def _n_keep(ratio: float, n_valid: torch.Tensor) -> torch.Tensor:
    """k = max(1, ceil(ratio * n)) for n > 0, else 0. The product is taken in float64, so k
    equals the reference's Python `math.ceil(ratio * n)` bit for bit."""
    k = torch.ceil(ratio * n_valid.double()).long().clamp_min(1)
    return torch.where(n_valid > 0, k, 0)


def _rank_desc(keys: torch.Tensor) -> torch.Tensor:
    """Rank of each entry along the last dim: higher key first, then earlier index."""
    order = torch.sort(keys, dim=-1, descending=True, stable=True).indices  # (..., n)
    positions = torch.arange(keys.shape[-1], device=keys.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)  # (..., n)


QUANTILE_MAX_ELEMENTS = 2**24
"""torch.quantile refuses larger inputs; above it `_quantile` sorts and interpolates itself."""


def _quantile(
    values: torch.Tensor, q: float, max_direct: int = QUANTILE_MAX_ELEMENTS
) -> torch.Tensor:
    """torch.quantile(values, q) (linear interpolation), also above its size limit."""
    if values.numel() <= max_direct:
        return torch.quantile(values, q)
    sorted_values = torch.sort(values).values
    pos = q * (values.numel() - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, values.numel() - 1)
    return torch.lerp(sorted_values[lo], sorted_values[hi], pos - lo)


def select_tokens(
    scores: FloatBT,
    mask: BoolBT,
    ratio: float = DEFAULT_RATIO,
    scope: str = SCOPES[0],
) -> BoolBT:
    """Tokens to train on: (B, T) bool, never True on padding.

    - "response" (reference): per row keep k = max(1, ceil(ratio * n_valid)) tokens;
      rows without valid tokens select nothing.
    - "batch": exact top-k over all valid tokens of the batch, k = max(1, ceil(ratio * N)).
    - "quantile": keep valid tokens with score >= torch.quantile(valid scores, 1 - ratio),
      the semantics of a popular trainer's top-entropy quantile (ties at the threshold are
      all kept, so it may keep more than ratio).

    Ties (top-k scopes) are broken deterministically by a stable sort: higher score first,
    then the EARLIER position (in "batch", the earlier row-major index: earlier response,
    then earlier position). Identical across runs and devices.

    Raises:
        ValueError: on a bad ratio/scope or NaN/inf scores at valid positions.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose one of {SCOPES}")
    ratio = _check_ratio(ratio)
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, T), got shape {tuple(scores.shape)}")
    mask = _as_mask(mask, scores.shape)
    if not bool(torch.isfinite(scores[mask]).all()):
        raise ValueError("scores contain NaN/inf at valid positions; selection needs finite scores")

    if scope == "quantile":
        valid_scores = scores[mask].float()  # (N_valid,)
        if valid_scores.numel() == 0:
            return torch.zeros_like(mask)
        threshold = _quantile(valid_scores, 1.0 - ratio)
        return mask & (scores.float() >= threshold)

    # Padding sorts last: valid scores are finite, padding is -inf.
    keys = scores.float().masked_fill(~mask, -math.inf)  # (B, T)
    if scope == "response":
        k = _n_keep(ratio, mask.sum(dim=1))  # (B,)
        selected = _rank_desc(keys) < k[:, None]  # (B, T)
    else:  # "batch"
        k = _n_keep(ratio, mask.sum())  # ()
        selected = (_rank_desc(keys.reshape(-1)) < k).view_as(mask)  # (B, T)
    return selected & mask


@dataclass(frozen=True)
class ScoringConfig:
    """Settings of scoring and selection; the defaults are the VEPO reference.

    The one home of these defaults: AnalysisSettings and TrainConfig hold a ScoringConfig,
    VEPOGRPOConfig takes its field defaults from it. Bad values raise VepoInputError (a
    ValueError) saying what to do."""

    score_type: str = field(default=SCORE_TYPES.reference, metadata={"registry": SCORE_TYPES})
    """Score of the VEPO selection (an entry of SCORE_TYPES); "D" is VEPO, "entropy" the
    80/20 baseline."""
    alpha: float = DEFAULT_ALPHA
    """Weight of JSD vs |dH| in the visual-sensitivity noisy-OR (types D, C, E, F, H)."""
    ratio: float = DEFAULT_RATIO
    """Share of tokens selected, in (0, 1]."""
    scope: str = field(default=SCOPES[0], metadata={"choices": SCOPES})
    """Selection scope: per response (reference), whole batch or batch quantile; on one
    response they select nearly the same tokens."""
    temperature: float = 1.0
    """tau of softmax(z / tau) for both passes (the sampling temperature)."""
    seed: int = 0
    """Seed of the "random" score type."""

    def __post_init__(self) -> None:
        for name in ("alpha", "ratio", "temperature"):  # numpy or int in, a float kept
            if _is_real(getattr(self, name)):
                object.__setattr__(self, name, float(getattr(self, name)))
        if self.score_type not in SCORE_TYPES:
            raise VepoInputError(
                f"ScoringConfig.score_type: {SCORE_TYPES.unknown_message(self.score_type)}"
            )
        if not (_is_real(self.alpha) and 0.0 <= self.alpha <= 1.0):
            raise VepoInputError(
                f"ScoringConfig.alpha={self.alpha!r} must lie in [0, 1] (default {DEFAULT_ALPHA})"
            )
        if not (_is_real(self.ratio) and 0.0 < self.ratio <= 1.0):
            raise VepoInputError(
                f"ScoringConfig.ratio={self.ratio!r} must be a number in (0.0, 1.0] "
                f"({DEFAULT_RATIO} keeps the top {DEFAULT_RATIO:.0%})"
            )
        if self.scope not in SCOPES:
            raise VepoInputError(
                f"ScoringConfig.scope={self.scope!r} is not one of {', '.join(SCOPES)}"
            )
        t = self.temperature
        if not (_is_real(t) and math.isfinite(t) and t > 0):
            raise VepoInputError(
                f"ScoringConfig.temperature={self.temperature!r} must be > 0 (1.0 in the reference)"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise VepoInputError(f"ScoringConfig.seed={self.seed!r} must be an int >= 0")


SCORING_KEYS: tuple[str, ...] = ("score_type", "alpha", "ratio", "scope")
"""The ScoringConfig fields a user chooses: the flat keys of saved settings and run files,
the CLI flags, the arguments of `TokenAnalysis.rescore`. Its temperature and seed are the
analysis' (or the run's) own."""


def _is_real(value: object) -> bool:
    """A real number (int, float, numpy scalar; not bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def score_and_select(
    stats: TokenStats,
    mask: BoolBT,
    config: ScoringConfig | None = None,
    exclude: BoolBT | None = None,
) -> tuple[FloatBT, BoolBT]:
    """`score_tokens` then `select_tokens` with one config: (scores, selected), both (B, T).

    `exclude` (B, T) bool marks tokens that may not be selected (e.g. those at the noise
    floor, vepo_viz.floor): the scores and their normalisation still use `mask`, only
    the top-k is taken over `mask & ~exclude` (k from that count; a row with nothing left
    selects nothing). None = the reference selection.
    """
    config = config or ScoringConfig()
    scores = score_tokens(stats, mask, config.score_type, config.alpha, generator=config.seed)
    candidates = mask if exclude is None else mask & ~_as_mask(exclude, mask.shape, "exclude")
    return scores, select_tokens(scores, candidates, config.ratio, config.scope)


def selection_stability(selected_kt: torch.Tensor) -> tuple[torch.Tensor, float]:
    """How stable a selection is over K counterfactual draws, each scored on its own.

    Args:
        selected_kt: (K, T) bool, the selection made from each draw's statistics alone.

    Returns:
        share: (T,) float32, the share of draws in which each token is selected;
        jaccard: mean Jaccard |a & b| / |a | b| over the K (K - 1) / 2 pairs of draws
            (pairs that both select nothing are left out; nan when K < 2 or no pair is left).
    """
    if selected_kt.dim() != 2:
        raise ValueError(f"selected_kt must be (K, T), got shape {tuple(selected_kt.shape)}")
    sel = selected_kt.bool()
    share = sel.float().mean(dim=0)  # (T,)
    inter = (sel[:, None] & sel[None]).sum(-1)  # (K, K)
    union = (sel[:, None] | sel[None]).sum(-1)  # (K, K)
    pairs = torch.triu(torch.ones_like(union, dtype=torch.bool), diagonal=1) & (union > 0)
    if not bool(pairs.any()):
        return share, math.nan
    return share, float((inter[pairs].double() / union[pairs].double()).mean())


# --------------------------------------------------------------------------------------
# One response's stored statistics (numpy in, numpy out)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ResponseScores:
    """Scores, selections and visual sensitivity of one response (`score_response`).

    numpy arrays, (T,) each: what `TokenAnalysis` stores beside its statistics.
    """

    visual_sensitivity: np.ndarray
    """(T,) float32 v_t, per-response normalised (`visual_sensitivity`)."""
    scores: np.ndarray
    """(T,) float32 selection score of the config's score type."""
    selected_vepo: np.ndarray
    """(T,) bool: the top-ratio tokens by `scores` (minus any excluded)."""
    selected_entropy: np.ndarray
    """(T,) bool: the top-ratio tokens by entropy alone (the 80/20 baseline)."""
    selection_share: np.ndarray | None = None
    """(T,) float32 share of the K draws whose own statistics select each token (the
    `scores` selection); None when fewer than 2 draws are given."""
    draw_jaccard: float | None = None
    """Mean Jaccard between the selections of pairs of draws (None when K < 2)."""


def score_response(
    *,
    entropy: np.ndarray,
    entropy_noisy: np.ndarray,
    jsd: np.ndarray,
    kl: np.ndarray,
    config: ScoringConfig | None = None,
    exclude: np.ndarray | None = None,
    entropy_noisy_draws: np.ndarray | None = None,
    jsd_draws: np.ndarray | None = None,
    kl_draws: np.ndarray | None = None,
) -> ResponseScores:
    """Scores, selections and visual sensitivity of one response from its (T,) statistics.

    The single place where `analyze` and `TokenAnalysis.rescore` score, so a re-score
    with the analysis' own settings (`config`: its `settings.scoring`; None = the
    reference) reproduces it bit for bit. `exclude` (T,) bool:
    tokens the `scores` selection skips (AnalysisSettings.skip_floor; scores unchanged).
    `*_draws` (K, T): the per-draw statistics; with all three given and K >= 2 each draw
    is scored and selected on its own (`selection_stability`).
    """
    config = config if config is not None else ScoringConfig()
    stats = _row_stats(entropy, entropy_noisy, jsd, kl)
    mask = torch.ones(stats.shape, dtype=torch.bool)  # (1, T)
    skip = None if exclude is None else torch.from_numpy(np.asarray(exclude, dtype=bool))[None]
    scores, selected = score_and_select(stats, mask, config, exclude=skip)  # (1, T) each
    entropy_scores = score_tokens(stats, mask, "entropy")  # (1, T)
    selected_entropy = select_tokens(entropy_scores, mask, config.ratio, config.scope)
    sensitivity = visual_sensitivity(stats, mask, config.alpha)  # (1, T)
    share, jaccard = None, None
    draws = (entropy_noisy_draws, jsd_draws, kl_draws)
    if all(d is not None for d in draws) and len(jsd_draws) >= 2:
        per_draw = [
            score_and_select(_row_stats(entropy, h, j, k), mask, config, exclude=skip)[1][0]
            for h, j, k in zip(*draws, strict=True)
        ]  # K x (T,)
        share_t, jaccard = selection_stability(torch.stack(per_draw))  # (T,), float
        share = share_t.numpy()
    return ResponseScores(
        visual_sensitivity=sensitivity[0].numpy(),
        scores=scores[0].numpy(),
        selected_vepo=selected[0].numpy(),
        selected_entropy=selected_entropy[0].numpy(),
        selection_share=share,
        draw_jaccard=jaccard,
    )


def _row_stats(
    entropy: np.ndarray, entropy_noisy: np.ndarray, jsd: np.ndarray, kl: np.ndarray
) -> TokenStats:
    """(T,) numpy statistics as the (1, T) float32 TokenStats of one response."""

    def row(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]  # (1, T)

    return TokenStats(
        entropy=row(entropy), entropy_noisy=row(entropy_noisy), jsd=row(jsd), kl=row(kl)
    )


# --------------------------------------------------------------------------------------
# VPPO (sampled-token dependency)
# --------------------------------------------------------------------------------------


def vppo_token_dependency(logp_clean: FloatBT, logp_noisy: FloatBT, mask: BoolBT) -> FloatBT:
    """VPPO visual dependency of each sampled token: the k3 estimator of KL(clean || noisy).

    r = log q(o_t) - log p(o_t) (noisy minus clean log-prob of the sampled token, clamped
    to +-K3_LOG_RATIO_MAX); k3 = exp(r) - 1 - r >= 0, unbiased for KL(p || q) under
    o_t ~ p. (B, T) float32, 0 on padding.
    """
    if logp_clean.shape != logp_noisy.shape or logp_clean.dim() != 2:
        raise ValueError(
            f"logp_clean {tuple(logp_clean.shape)} and logp_noisy {tuple(logp_noisy.shape)} "
            "must both be (B, T)"
        )
    mask = _as_mask(mask, logp_clean.shape)
    r = (logp_noisy.double() - logp_clean.double()).clamp(-K3_LOG_RATIO_MAX, K3_LOG_RATIO_MAX)
    k3 = (torch.expm1(r) - r).clamp_min(0.0)  # (B, T)
    return torch.where(mask, k3, 0.0).float()


def vppo_advantage_scale(dependency: FloatBT, mask: BoolBT) -> FloatB:
    """Per-response advantage multiplier from mean visual dependency: (B,) float32.

    scale_b = mean_t dep[b, t] / mean over responses of that mean (responses with valid
    tokens only), so the batch-average scale is 1 and the update's overall size does not
    change. Rows without valid tokens, or a batch whose dependencies are all zero, get 1.
    """
    if dependency.dim() != 2:
        raise ValueError(f"dependency must be (B, T), got shape {tuple(dependency.shape)}")
    mask = _as_mask(mask, dependency.shape)
    n_valid = mask.sum(dim=1)  # (B,)
    has_valid = n_valid > 0
    dep = torch.where(mask, dependency.double(), 0.0)
    row_mean = dep.sum(dim=1) / n_valid.clamp_min(1)  # (B,)
    if not bool(has_valid.any()):
        return torch.ones(dependency.shape[0], dtype=torch.float32, device=dependency.device)
    batch_mean = row_mean[has_valid].mean()
    if float(batch_mean) <= EPS_DIV:
        return torch.ones(dependency.shape[0], dtype=torch.float32, device=dependency.device)
    scale = torch.where(has_valid, row_mean / batch_mean, 1.0)
    return scale.float()
