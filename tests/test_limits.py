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


SAMPLE = "sample_data/images/color-1.png"


@pytest.fixture(scope="module")
def embedded():
    from tests.ui_fixtures import embedded_model_ready
    from vepo_viz.models import load_model

    if not embedded_model_ready():
        pytest.skip("needs the embedded model")
    return load_model(None, device="cpu")


@pytest.mark.slow
def test_analyze_checks_the_time_budget_between_passes(embedded):
    from vepo_viz.analysis import analyze

    settings = AnalysisSettings(perturb=PerturbConfig(n_draws=2))
    with pytest.raises(VepoInputError, match=r"time budget of 1e-09 s .*counterfactual draw 1"):
        analyze(
            embedded, SAMPLE, "Color?", "Red.", settings, limits=RequestLimits(time_budget_s=1e-9)
        )
    with pytest.raises(VepoInputError, match=r"processed elements per view x 3 views"):
        limited = RequestLimits(max_image_elements=1000)
        analyze(embedded, SAMPLE, "Color?", "Red.", settings, limits=limited)
    with pytest.raises(VepoInputError, match="limits must be a RequestLimits"):
        analyze(embedded, SAMPLE, "Color?", "Red.", settings, limits={"max_draws": 1})


@pytest.mark.slow
def test_cli_limit_flags(capsys):
    from vepo_viz import cli

    argv = ["analyze", "--image", SAMPLE, "--question", "Color?", "--response", "Red."]
    assert cli.main([*argv, "--device", "cpu", "--draws", "3", "--limit-max-draws", "2"]) == 2
    assert "3 counterfactual draws K is more than the limit of 2" in capsys.readouterr().err
    assert cli.main([*argv, "--device", "cpu", "--limit-max-draws", "0"]) == 2
    assert "RequestLimits.max_draws=0 must be an int >= 1" in capsys.readouterr().err


def test_app_limit_flags():
    from vepo_viz.ui.launch import bounds_from_args, build_parser

    args = build_parser().parse_args(["--limit-max-draws", "4", "--cache-max-models", "2"])
    limits, cache = bounds_from_args(args)
    assert limits.max_draws == 4 and limits.max_new_tokens == RequestLimits().max_new_tokens
    assert cache == CacheSettings(max_models=2)
    with pytest.raises(VepoInputError, match="--queue-size"):
        bounds_from_args(build_parser().parse_args(["--queue-size", "0"]))
