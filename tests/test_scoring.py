"""vepo_viz.scoring against a naive float64 reference (tests/reference_impl.py) and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import reference_impl as ref
from vepo_viz.scoring import (
    EPS_NORM,
    SCOPES,
    SCORE_TYPES,
    ScoringConfig,
    TokenStats,
    _quantile,
    average_stats,
    normalize_per_response,
    sampled_token_logprobs,
    score_and_select,
    score_tokens,
    select_tokens,
    token_stats,
    visual_sensitivity,
    vppo_advantage_scale,
    vppo_token_dependency,
)

DETERMINISTIC_TYPES = [s for s in SCORE_TYPES if s != "random"]
FAST = settings(max_examples=25, deadline=None)


def random_logits(B=3, T=17, V=40, scale=3.0, seed=0, noise=1.0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(B, T, V, generator=g) * scale
    noisy = clean + noise * torch.randn(B, T, V, generator=g)
    return clean, noisy


def random_mask(B=3, T=17, seed=0, min_len=0):
    g = torch.Generator().manual_seed(seed + 1)
    lengths = torch.randint(min_len, T + 1, (B,), generator=g)
    return torch.arange(T)[None, :] < lengths[:, None]  # right padding


def stats_of(entropy, entropy_noisy, jsd, kl):
    def t(x):
        return torch.tensor([x], dtype=torch.float32)

    return TokenStats(t(entropy), t(entropy_noisy), t(jsd), t(kl))


# ------------------------------------------------------------------ statistics


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_stats_matches_reference(temperature):
    clean, noisy = random_logits(seed=1)
    stats = token_stats(clean, noisy, temperature=temperature)
    expected = ref.stats(clean, noisy, temperature)
    for got, want in zip(
        (stats.entropy, stats.entropy_noisy, stats.jsd, stats.kl), expected, strict=True
    ):
        assert got.dtype == torch.float32 and got.shape == (3, 17)
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        stats.entropy_gap.double(), expected[1] - expected[0], atol=1e-5, rtol=0
    )


def test_token_stats_precise_for_near_identical_distributions():
    # Most real tokens have JSD << H: the chunked formula sums p (log p - log m) term by
    # term, so its error stays at float32 rounding (~1e-7 nats), not at eps * H.
    clean, noisy = random_logits(B=1, T=16, V=5000, scale=4.0, noise=1e-2, seed=2)
    stats = token_stats(clean, noisy)
    _, _, jsd, kl = ref.stats(clean, noisy)
    assert float(jsd.max()) < 1e-4
    torch.testing.assert_close(stats.jsd.double(), jsd, atol=1e-7, rtol=0)
    torch.testing.assert_close(stats.kl.double(), kl, atol=1e-6, rtol=0)


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 16, 51, 1000])
def test_chunked_equals_unchunked(chunk_size):
    clean, noisy = random_logits(seed=3)
    full = token_stats(clean, noisy, chunk_size=3 * 17)
    chunked = token_stats(clean, noisy, chunk_size=chunk_size)
    for name in ("entropy", "entropy_noisy", "jsd", "kl"):
        torch.testing.assert_close(getattr(chunked, name), getattr(full, name), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_dtypes(dtype):
    clean, noisy = random_logits(seed=4)
    clean, noisy = clean.to(dtype), noisy.to(dtype)
    stats = token_stats(clean, noisy)
    expected = ref.stats(clean, noisy)  # reference on the same (rounded) values
    for got, want in zip(
        (stats.entropy, stats.entropy_noisy, stats.jsd, stats.kl), expected, strict=True
    ):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_non_contiguous_input():
    clean, noisy = random_logits(B=17, T=3, seed=5)
    clean_t, noisy_t = clean.transpose(0, 1), noisy.transpose(0, 1)  # (3, 17, V) views
    stats = token_stats(clean_t, noisy_t, chunk_size=4)
    torch.testing.assert_close(
        stats.jsd.double(), ref.stats(clean_t, noisy_t)[2], atol=1e-5, rtol=0
    )


@given(
    seed=st.integers(0, 10_000),
    V=st.integers(1, 60),
    scale=st.floats(0.0, 30.0),
    chunk=st.integers(1, 9),
)
@FAST
def test_stat_properties(seed, V, scale, chunk):
    clean, noisy = random_logits(B=2, T=5, V=V, scale=scale, seed=seed, noise=scale)
    stats = token_stats(clean, noisy, chunk_size=chunk)
    assert bool((stats.jsd >= 0).all()) and bool((stats.jsd <= math.log(2)).all())
    assert bool((stats.kl >= 0).all())
    assert bool((stats.entropy >= 0).all())
    assert bool((stats.entropy <= math.log(V) + 1e-6).all())
    # JSD is symmetric; equal inputs give 0.
    swapped = token_stats(noisy, clean, chunk_size=chunk)
    torch.testing.assert_close(swapped.jsd, stats.jsd, atol=1e-6, rtol=0)
    torch.testing.assert_close(swapped.entropy, stats.entropy_noisy)
    same = token_stats(clean, clean.clone(), chunk_size=chunk)
    assert float(same.jsd.abs().max()) <= 1e-6 and float(same.kl.abs().max()) <= 1e-6
    torch.testing.assert_close(same.entropy_gap, torch.zeros_like(same.entropy_gap))


def test_extreme_logits_stay_finite():
    clean = torch.zeros(1, 3, 6)
    clean[0, 0, 0] = 1e4  # one-hot after softmax
    clean[0, 1] = torch.tensor([-3e4, 3e4, 0, 0, 0, 0])
    noisy = clean.flip(-1)
    stats = token_stats(clean, noisy)
    for x in (stats.entropy, stats.entropy_noisy, stats.jsd, stats.kl):
        assert bool(torch.isfinite(x).all())
    assert float(stats.jsd[0, 0]) == pytest.approx(math.log(2), abs=1e-6)  # disjoint supports
    assert float(stats.entropy[0, 0]) == pytest.approx(0.0, abs=1e-6)
    assert float(stats.entropy[0, 2]) == pytest.approx(math.log(6), abs=1e-6)  # uniform


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("which", ["logits_clean", "logits_noisy"])
def test_non_finite_logits_rejected(bad, which):
    clean, noisy = random_logits(B=1, T=4, V=8)
    (clean if which == "logits_clean" else noisy)[0, 2, 5] = bad
    with pytest.raises(ValueError, match=rf"{which} contains 1 NaN/inf .*position 2"):
        token_stats(clean, noisy)


def test_bad_shapes_and_settings_rejected():
    clean, noisy = random_logits(B=1, T=4, V=8)
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        token_stats(clean[0], noisy[0])
    with pytest.raises(ValueError, match="same"):
        token_stats(clean, noisy[:, :3])
    with pytest.raises(ValueError, match="temperature"):
        token_stats(clean, noisy, temperature=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        token_stats(clean, noisy, chunk_size=0)
    with pytest.raises(ValueError, match="overflow"):
        token_stats(clean * 1e30, noisy, temperature=1e-10)


def test_empty_response():
    stats = token_stats(torch.zeros(2, 0, 5), torch.zeros(2, 0, 5))
    assert stats.entropy.shape == (2, 0)
    mask = torch.zeros(2, 0, dtype=torch.bool)
    assert select_tokens(score_tokens(stats, mask), mask).shape == (2, 0)


def test_average_stats():
    clean, noisy = random_logits(seed=6)
    _, noisy2 = random_logits(seed=7)
    a, b = token_stats(clean, noisy), token_stats(clean, noisy2)
    mean = average_stats([a, b])
    torch.testing.assert_close(mean.jsd, (a.jsd + b.jsd) / 2)
    torch.testing.assert_close(mean.entropy, a.entropy)
    assert average_stats([a]) is a


def test_sampled_token_logprobs():
    clean, _ = random_logits(seed=8)
    ids = torch.randint(0, 40, (3, 17), generator=torch.Generator().manual_seed(0))
    got = sampled_token_logprobs(clean, ids, temperature=0.8, chunk_size=5)
    want = torch.log_softmax(clean.double() / 0.8, -1).gather(-1, ids[..., None])[..., 0]
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=0)
    # differentiable
    leaf = clean.clone().requires_grad_()
    sampled_token_logprobs(leaf, ids).sum().backward()
    assert leaf.grad is not None and bool(torch.isfinite(leaf.grad).all())
    with pytest.raises(ValueError, match="padding"):
        sampled_token_logprobs(clean, torch.full((3, 17), -100))


# ------------------------------------------------------------------ scores


@pytest.mark.parametrize("score_type", DETERMINISTIC_TYPES)
@pytest.mark.parametrize("alpha", [0.7, 0.3])
def test_scores_and_selection_match_reference(score_type, alpha):
    clean, noisy = random_logits(B=4, T=23, V=50, seed=9)
    mask = random_mask(B=4, T=23, seed=9)
    mask[0] = False  # a row without valid tokens
    mask[1, :] = False
    mask[1, 4] = True  # a length-1 response, not at position 0
    stats = token_stats(clean, noisy)
    scores = score_tokens(stats, mask, score_type, alpha)
    want = ref.score(*ref.stats(clean, noisy), mask, score_type, alpha)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores.double(), want, atol=1e-4, rtol=0)
    assert bool((scores[~mask] == 0).all())
    for ratio in (0.2, 0.5):
        assert torch.equal(
            select_tokens(scores, mask, ratio, "response"), ref.select_response(want, mask, ratio)
        )
        assert torch.equal(
            select_tokens(scores, mask, ratio, "batch"), ref.select_batch(want, mask, ratio)
        )
        assert torch.equal(
            select_tokens(scores, mask, ratio, "quantile"),
            ref.select_quantile(scores, mask, ratio),
        )


# A 1 x 5 example with the last position padded (its huge values must not matter).
# H = [1, 3, 2, 5]           -> h^  = [0, 0.5, 0.25, 1]
# H' = [1.5, 2, 2.5, 5.25]   -> dH  = [0.5, -1, 0.5, 0.25]
#   |dH| -> d^  = [1/3, 1, 1/3, 0];   max(dH, 0) -> d+^ = [1, 0, 1, 0.5]
# JSD = [0.1, 0.3, 0.5, 0.2] -> j^  = [0, 0.5, 1, 0.25]
# KL = [0.4, 0.2, 1.0, 0.6]  -> k^  = [0.25, 0, 1, 0.5]
# alpha = 0.5, so (1-x)^a (1-y)^(1-a) = sqrt((1-x)(1-y)).
HAND_STATS = stats_of(
    [1, 3, 2, 5, 100], [1.5, 2, 2.5, 5.25, -50], [0.1, 0.3, 0.5, 0.2, 0.6], [0.4, 0.2, 1.0, 0.6, 9]
)
HAND_MASK = torch.tensor([[True, True, True, True, False]])
S = math.sqrt
HAND_EXPECTED = {
    # (1 - sqrt((1-j)(1-d))) * h
    "D": [0.0, 1 * 0.5, 1 * 0.25, (1 - S(0.75)) * 1],
    # 1 - (1-j)(1-h)(1-d+)
    "A": [1 - 1 * 1 * 0, 1 - 0.5 * 0.5 * 1, 1 - 0 * 0.75 * 0, 1 - 0.75 * 0 * 0.5],
    # (1 - (1-j)(1-h)) * d+
    "B": [0.0, 0.75 * 0, 1 * 1, 1 * 0.5],
    # (1 - sqrt((1-j)(1-d+))) * h
    "C": [0.0, (1 - S(0.5)) * 0.5, 1 * 0.25, (1 - S(0.75 * 0.5)) * 1],
    # 1 - sqrt((1-j)(1-d))
    "E": [1 - S(2 / 3), 1.0, 1.0, 1 - S(0.75)],
    # (0.5 j + 0.5 d) * h
    "F": [0.0, 0.75 * 0.5, (0.5 + 1 / 6) * 0.25, 0.125],
    # j d h
    "G": [0.0, 0.5 * 1 * 0.5, 1 * (1 / 3) * 0.25, 0.0],
    # (1 - sqrt((1-k)(1-d))) * h
    "H": [0.0, 1 * 0.5, 1 * 0.25, (1 - S(0.5)) * 1],
    "entropy": [1, 3, 2, 5],
    "jsd": [0.1, 0.3, 0.5, 0.2],
    "entropy_gap": [0.5, 1, 0.5, 0.25],
}


@pytest.mark.parametrize("score_type", DETERMINISTIC_TYPES)
def test_hand_computed_scores(score_type):
    got = score_tokens(HAND_STATS, HAND_MASK, score_type, alpha=0.5)
    want = np.array([HAND_EXPECTED[score_type] + [0.0]], dtype=np.float32)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)


def test_hand_computed_d_at_reference_alpha():
    j, d, h = (
        np.array([0, 0.5, 1, 0.25]),
        np.array([1 / 3, 1, 1 / 3, 0]),
        np.array([0, 0.5, 0.25, 1]),
    )
    v = 1 - (1 - j) ** 0.7 * (1 - d) ** 0.3
    got = score_tokens(HAND_STATS, HAND_MASK)  # defaults: "D", alpha 0.7
    np.testing.assert_allclose(got[0, :4].numpy(), v * h, atol=1e-6)
    np.testing.assert_allclose(
        visual_sensitivity(HAND_STATS, HAND_MASK, 0.7)[0, :4].numpy(), v, atol=1e-6
    )


def test_normalize_per_response():
    x = torch.tensor([[2.0, 4.0, 3.0, 99.0], [5.0, 5.0, 5.0, 5.0], [1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    got = normalize_per_response(x, mask)
    want = torch.tensor([[0.0, 1.0, 0.5, 0.0], [0.0] * 4, [0.0] * 4])
    torch.testing.assert_close(got, want)
    # a range below EPS_NORM is divided by EPS_NORM, then clamped
    tiny = torch.tensor([[0.0, EPS_NORM / 2]], dtype=torch.float64)
    torch.testing.assert_close(
        normalize_per_response(tiny, torch.ones(1, 2, dtype=torch.bool)), torch.tensor([[0.0, 0.5]])
    )


def test_random_scores_are_seeded():
    stats = token_stats(*random_logits(seed=10))
    mask = random_mask(seed=10)
    a = score_tokens(stats, mask, "random", generator=3)
    b = score_tokens(stats, mask, "random", generator=torch.Generator().manual_seed(3))
    c = score_tokens(stats, mask, "random", generator=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a[~mask] == 0).all()) and bool((a[mask] >= 0).all())
    state = torch.get_rng_state()
    score_tokens(stats, mask, "random")
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched


def test_score_errors():
    with pytest.raises(ValueError, match="score_type"):
        score_tokens(HAND_STATS, HAND_MASK, "Z")
    with pytest.raises(ValueError, match="alpha"):
        score_tokens(HAND_STATS, HAND_MASK, alpha=1.5)
    with pytest.raises(ValueError, match="shape"):
        score_tokens(HAND_STATS, HAND_MASK[:, :3])


# ------------------------------------------------------------------ selection


@given(
    seed=st.integers(0, 10_000),
    B=st.integers(1, 5),
    T=st.integers(1, 30),
    ratio=st.sampled_from([0.05, 0.2, 0.5, 0.7, 1.0]),
    n_levels=st.integers(1, 4),
)
@FAST
def test_selection_properties(seed, B, T, ratio, n_levels):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, n_levels, (B, T), generator=g).float()  # many ties
    mask = random_mask(B, T, seed)
    for scope in ("response", "batch"):
        selected = select_tokens(scores, mask, ratio, scope)
        assert not bool((selected & ~mask).any())
        assert torch.equal(selected, select_tokens(scores.clone(), mask.clone(), ratio, scope))
    selected = select_tokens(scores, mask, ratio, "response")
    n_valid = mask.sum(1)
    for b in range(B):
        k = max(1, math.ceil(ratio * int(n_valid[b]))) if n_valid[b] else 0
        assert int(selected[b].sum()) == k
    assert torch.equal(selected, ref.select_response(scores, mask, ratio))
    batch = select_tokens(scores, mask, ratio, "batch")
    n = int(mask.sum())
    assert int(batch.sum()) == (max(1, math.ceil(ratio * n)) if n else 0)
    assert torch.equal(batch, ref.select_batch(scores, mask, ratio))
    quantile = select_tokens(scores, mask, ratio, "quantile")
    assert not bool((quantile & ~mask).any())
    assert torch.equal(quantile, ref.select_quantile(scores, mask, ratio))


def test_tie_break_prefers_earlier_position():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.9, 0.5, 0.1, 0.5, 0.5, 0.5, 0.5]])
    mask = torch.ones(1, 10, dtype=torch.bool)
    # k = ceil(0.3 * 10) = 3: both 0.9s, then the earliest 0.5 (position 0)
    got = select_tokens(scores, mask, 0.3)
    assert got.nonzero()[:, 1].tolist() == [0, 1, 3]
    # batch scope: earlier response first, then earlier position
    scores2 = torch.full((2, 3), 0.5)
    got2 = select_tokens(scores2, torch.ones(2, 3, dtype=torch.bool), 0.5, "batch")
    assert got2.nonzero().tolist() == [[0, 0], [0, 1], [0, 2]]


def test_all_equal_length_one_and_empty_rows():
    scores = torch.zeros(3, 6)
    mask = torch.tensor(
        [[1, 1, 1, 1, 1, 1], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool
    )
    got = select_tokens(scores, mask, 0.2)
    assert got[0].nonzero().flatten().tolist() == [0, 1]  # k = ceil(1.2) = 2, earliest
    assert got[1].nonzero().flatten().tolist() == [2]  # length 1 -> k = 1
    assert not bool(got[2].any())
    assert not bool(select_tokens(scores, torch.zeros_like(mask), 0.2, "batch").any())
    assert not bool(select_tokens(scores, torch.zeros_like(mask), 0.2, "quantile").any())
    assert int(select_tokens(scores, mask, 0.2, "quantile").sum()) == 7  # all tie


def test_padding_never_selected_even_with_top_scores():
    scores = torch.tensor([[0.0, 0.1, 100.0, 100.0]])
    mask = torch.tensor([[True, True, False, False]])
    for scope in SCOPES:
        got = select_tokens(scores, mask, 1.0, scope)
        assert got.tolist() == [[True, True, False, False]]


def test_k_matches_reference_expression():
    # k = max(1, math.ceil(ratio * n)) exactly as the reference computes it (float64).
    scores = torch.rand(1, 300, generator=torch.Generator().manual_seed(0))
    for ratio in (0.05, 0.15, 0.2, 0.35, 0.7):
        for n in range(1, 300, 7):
            mask = torch.arange(300)[None, :] < n
            assert int(select_tokens(scores, mask, ratio).sum()) == max(1, math.ceil(ratio * n))


def test_selection_errors():
    scores = torch.tensor([[0.1, math.nan, 0.3]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="NaN/inf"):
        select_tokens(scores, mask)
    mask[0, 1] = False  # NaN on padding is fine
    assert select_tokens(scores, mask).tolist() == [[False, False, True]]
    with pytest.raises(ValueError, match="ratio"):
        select_tokens(scores, mask, ratio=0.0)
    with pytest.raises(ValueError, match="scope"):
        select_tokens(scores, mask, scope="micro")


def test_integer_and_float_masks_accepted():
    scores = torch.tensor([[0.1, 0.2, 0.3]])
    want = [[False, True, False]]
    assert select_tokens(scores, torch.tensor([[1, 1, 0]]), 0.5).tolist() == want
    assert select_tokens(scores, torch.tensor([[1.0, 1.0, 0.0]]), 0.5).tolist() == want
    with pytest.raises(ValueError, match="mask"):
        select_tokens(scores, torch.tensor([[0.5, 1.0, 0.0]]), 0.5)


def test_large_quantile_fallback_matches_torch():
    values = torch.rand(1001, generator=torch.Generator().manual_seed(0))
    for q in (0.0, 0.37, 0.8, 1.0):
        torch.testing.assert_close(_quantile(values, q, max_direct=0), torch.quantile(values, q))


def test_scoring_config():
    config = ScoringConfig()
    assert (config.score_type, config.alpha, config.ratio, config.scope) == (
        "D",
        0.7,
        0.2,
        "response",
    )
    for bad in (
        {"score_type": "d"},
        {"alpha": -0.1},
        {"ratio": 0},
        {"ratio": 1.5},
        {"scope": "global"},
        {"temperature": 0},
        {"seed": -1},
    ):
        with pytest.raises(ValueError, match="ScoringConfig"):
            ScoringConfig(**bad)
    stats = token_stats(*random_logits(seed=11))
    mask = random_mask(seed=11)
    scores, selected = score_and_select(stats, mask, ScoringConfig(score_type="entropy"))
    assert torch.equal(scores, score_tokens(stats, mask, "entropy"))
    assert torch.equal(selected, select_tokens(scores, mask))


# ------------------------------------------------------------------ VPPO


def test_vppo_dependency():
    logp_clean = torch.log(torch.tensor([[0.5, 0.2, 0.9, 0.3]]))
    logp_noisy = torch.log(torch.tensor([[0.5, 0.4, 0.1, 0.6]]))
    mask = torch.tensor([[True, True, True, False]])
    dep = vppo_token_dependency(logp_clean, logp_noisy, mask)
    r = np.log([1.0, 2.0, 1 / 9])
    want = np.exp(r) - 1 - r
    np.testing.assert_allclose(dep[0, :3].numpy(), want, rtol=1e-5)
    assert float(dep[0, 3]) == 0.0
    assert float(dep[0, 0]) == 0.0  # equal log-probs


@given(seed=st.integers(0, 10_000))
@FAST
def test_vppo_dependency_nonnegative(seed):
    g = torch.Generator().manual_seed(seed)
    a, b = -torch.rand(3, 9, generator=g) * 30, -torch.rand(3, 9, generator=g) * 30
    mask = random_mask(3, 9, seed)
    dep = vppo_token_dependency(a, b, mask)
    assert bool((dep >= 0).all()) and bool(torch.isfinite(dep).all())
    assert float(vppo_token_dependency(a, a.clone(), mask).abs().max()) == 0.0


def test_vppo_advantage_scale():
    dep = torch.tensor([[1.0, 3.0, 0.0], [1.0, 1.0, 1.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    # row means 2 and 1 (row 2 empty) -> batch mean 1.5
    torch.testing.assert_close(vppo_advantage_scale(dep, mask), torch.tensor([4 / 3, 2 / 3, 1.0]))
    torch.testing.assert_close(vppo_advantage_scale(torch.zeros(2, 3), mask[:2]), torch.ones(2))


# ------------------------------------------------------------------ one stored response


def _stored_response():
    """(T,) clean entropy and (K, T) per-draw statistics of one made-up response."""
    rng = np.random.default_rng(7)
    T, K = 10, 3
    entropy = rng.uniform(0, 3, T).astype(np.float32)
    h = (entropy[None] + rng.normal(0, 0.4, (K, T))).clip(0).astype(np.float32)
    j = rng.uniform(0, 0.3, (K, T)).astype(np.float32)
    k = (2 * j + rng.uniform(0, 0.1, (K, T))).astype(np.float32)
    return entropy, h, j, k


# What results.score_arrays (the dict it returned before ResponseScores) gave on
# `_stored_response`: score_response must reproduce it bit for bit, or saved analyses
# re-score differently from how they were made.
BEFORE = {
    (0.7, False): dict(
        scores=[0.6949169635772705, 0.13822120428085327, 0.39099201560020447,
                0.08466412127017975, 0.06145274639129639, 0.16090987622737885, 0.0,
                0.9148097038269043, 0.5774781703948975, 0.22293925285339355],
        selected_vepo=[0, 7, 8],
        selected_entropy=[1, 5, 7],
        visual_sensitivity=[1.0, 0.13822120428085327, 0.45266807079315186,
                            0.34334537386894226, 0.18586808443069458, 0.1652945727109909,
                            0.0, 1.0, 0.6505154371261597, 0.4297889769077301],
        selection_share=[1.0, 1 / 3, 1 / 3, 0.0, 0.0, 1 / 3, 0.0, 2 / 3, 1 / 3, 0.0],
        draw_jaccard=0.3,
    ),
    (0.5, True): dict(
        scores=[0.6949169635772705, 0.12422575056552887, 0.4783930778503418,
                0.095913827419281, 0.08261088281869888, 0.13483747839927673, 0.0,
                0.9148097038269043, 0.6559941172599792, 0.22217607498168945],
        selected_vepo=[2, 8, 9],
        selected_entropy=[1, 5, 7],
        visual_sensitivity=[1.0, 0.12422575056552887, 0.5538560152053833,
                            0.38896724581718445, 0.24986232817173004, 0.13851171731948853,
                            0.0, 1.0, 0.7389617562294006, 0.42831769585609436],
        selection_share=[0.0, 2 / 3, 1.0, 0.0, 0.0, 2 / 3, 0.0, 0.0, 2 / 3, 0.0],
        draw_jaccard=0.5,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("alpha", "skip"), list(BEFORE))
def test_score_response_returns_frozen_scores_equal_to_the_previous_numbers(alpha, skip):
    import dataclasses

    from vepo_viz.scoring import ResponseScores, ScoringConfig, score_response

    entropy, h, j, k = _stored_response()
    exclude = np.isin(np.arange(10), [0, 7]) if skip else None  # two of the top picks
    out = score_response(
        entropy=entropy, entropy_noisy=h.mean(0), jsd=j.mean(0), kl=k.mean(0),
        config=ScoringConfig(alpha=alpha, ratio=0.3),
        exclude=exclude, entropy_noisy_draws=h, jsd_draws=j, kl_draws=k,
    )  # fmt: skip
    assert isinstance(out, ResponseScores)
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.scores = out.scores * 0
    want = BEFORE[(alpha, skip)]
    for name in ("scores", "visual_sensitivity", "selection_share"):
        got = getattr(out, name)
        assert got.dtype == np.float32 and got.shape == (10,)
        np.testing.assert_array_equal(got, np.asarray(want[name], dtype=np.float32), name)
    for name in ("selected_vepo", "selected_entropy"):
        got = getattr(out, name)
        assert got.dtype == bool and np.flatnonzero(got).tolist() == want[name], name
    assert out.draw_jaccard == pytest.approx(want["draw_jaccard"], abs=1e-12)


def test_score_response_without_several_draws_has_no_stability():
    from vepo_viz.scoring import score_response

    entropy, h, j, k = _stored_response()
    means = dict(entropy=entropy, entropy_noisy=h.mean(0), jsd=j.mean(0), kl=k.mean(0))
    for draws in ({}, dict(entropy_noisy_draws=h[:1], jsd_draws=j[:1], kl_draws=k[:1])):
        out = score_response(**means, **draws)
        assert out.selection_share is None and out.draw_jaccard is None
    full = score_response(**means, entropy_noisy_draws=h, jsd_draws=j, kl_draws=k)
    alone = score_response(**means)  # the draws change only the stability fields
    np.testing.assert_array_equal(full.scores, alone.scores)
    np.testing.assert_array_equal(full.selected_vepo, alone.selected_vepo)
