"""RequestLimits: each bound refuses with a message naming the setting and its flag; the
model's context is read from its config; the time budget is checked between passes."""

from __future__ import annotations

import pytest

from vepo_viz.analysis_settings import AnalysisSettings
from vepo_viz.errors import VepoInputError
from vepo_viz.limits import (
    CacheSettings,
    Deadline,
    RequestLimits,
    check_context,
    check_unicode,
)
from vepo_viz.perturb import MAX_SEED, PerturbConfig, make_generator


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_question_chars", 0),
        ("max_response_chars", -1),
        ("max_new_tokens", 1.5),
        ("max_draws", True),
        ("max_image_elements", "many"),
        ("time_budget_s", -1.0),
        ("time_budget_s", float("inf")),
    ],
)
def test_limits_reject_bad_values(field, value):
    with pytest.raises(VepoInputError, match=f"RequestLimits.{field}"):
        RequestLimits(**{field: value})


@pytest.mark.parametrize("field, value", [("max_models", 0), ("max_gb", -2), ("max_gb", True)])
def test_cache_settings_reject_bad_values(field, value):
    with pytest.raises(VepoInputError, match=f"CacheSettings.{field}"):
        CacheSettings(**{field: value})


def test_text_bounds_name_the_setting_and_flag():
    limits = RequestLimits(max_question_chars=10, max_response_chars=20)
    limits.check_text("q" * 10, "r" * 20)
    with pytest.raises(VepoInputError, match=r"question is 11 characters.*limit of 10") as e:
        limits.check_text("q" * 11, None)
    assert "--limit-max-question-chars" in str(e.value)
    with pytest.raises(VepoInputError, match=r"response is 21 characters.*--limit-max-response"):
        limits.check_text("q", "r" * 21)


def test_lone_surrogates_are_a_message_not_a_type_error():
    check_unicode("question", "caf\u00e9 \U0001f600")  # valid text passes
    with pytest.raises(VepoInputError, match=r"lone surrogate U\+D800 at character 3"):
        check_unicode("question", "abc\ud800")
    with pytest.raises(VepoInputError, match="response holds a lone surrogate U\\+DCFF"):
        RequestLimits().check_text("fine", "x\udcff")


def test_settings_bounds():
    limits = RequestLimits(max_new_tokens=8, max_draws=2)
    ok = AnalysisSettings(max_new_tokens=8, perturb=PerturbConfig(n_draws=2))
    limits.check_settings(ok, generating=True)
    many_tokens = AnalysisSettings(max_new_tokens=9)
    with pytest.raises(VepoInputError, match=r"max new tokens 9 .*limit of 8"):
        limits.check_settings(many_tokens, generating=True)
    limits.check_settings(many_tokens, generating=False)  # a pasted response: not used
    with pytest.raises(VepoInputError, match=r"3 counterfactual draws K .*--limit-max-draws"):
        limits.check_settings(AnalysisSettings(perturb=PerturbConfig(n_draws=3)), False)


def test_image_elements_count_every_view():
    limits = RequestLimits(max_image_elements=1000)
    limits.check_image(500, 2)
    with pytest.raises(VepoInputError, match=r"500 processed elements per view x 3 views"):
        limits.check_image(500, 3)


def test_context_check():
    check_context(100, 412, 512, generating=True)
    check_context(100, 10**6, None, generating=False)  # context not known: nothing to check
    with pytest.raises(VepoInputError, match=r"Lower max new tokens to at most 412"):
        check_context(100, 413, 512, generating=True)
    with pytest.raises(VepoInputError, match=r"Shorten the response to at most 412 tokens"):
        check_context(100, 413, 512, generating=False)


def test_deadline_uses_its_clock():
    now = [0.0]
    deadline = Deadline(5.0, clock=lambda: now[0])
    now[0] = 5.0
    deadline.check("draw 1")
    now[0] = 5.5
    with pytest.raises(VepoInputError, match=r"time budget of 5 s .*before draw 2, after 5.5 s"):
        deadline.check("draw 2")
    Deadline(0, clock=lambda: now[0] * 1000).check("x")  # 0 = no budget


def test_seeds_past_max_seed_are_refused_clearly():
    make_generator(MAX_SEED, 1_000_002)  # the largest seed's last draw fits torch's 64 bits
    with pytest.raises(VepoInputError, match="PerturbConfig.seed=9223372036854775808"):
        PerturbConfig(seed=2**63)
    with pytest.raises(VepoInputError, match=r"AnalysisSettings.seed=.* must lie in \[0, "):
        AnalysisSettings(seed=2**64)
    with pytest.raises(VepoInputError, match="MAX_SEED"):
        make_generator(MAX_SEED + 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sigma": -1},
        {"sigma": float("nan")},
        {"patch_prob": 2.0},
        {"blur_radius": -1.0},
        {"n_draws": 0},
        {"mode": "bogus"},
        {"sigma": "2"},
    ],
)
def test_perturb_config_raises_the_projects_error(kwargs):
    with pytest.raises(VepoInputError, match="PerturbConfig"):
        PerturbConfig(**kwargs)
