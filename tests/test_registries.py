"""Each registry is the one table its surfaces read: a throwaway entry, registered for one
test, appears in the CLI help and flags, passes config validation, and is what the code
then runs (a score type in `score_tokens`, a counterfactual mode in `analyze`, a selection
rule in `select_for_step`, a VLM family in `load_model` and `analyze`).

The UI's choices are tested with the UI (tests/test_ui_*.py).
"""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from vepo_viz import cli, registry
from vepo_viz.analysis import AnalysisSettings, analyze
from vepo_viz.commands import common
from vepo_viz.models import load_model
from vepo_viz.models.families import FAMILIES, Family
from vepo_viz.perturb import MODES, CounterfactualMode, PerturbConfig
from vepo_viz.registry import Registry
from vepo_viz.scoring import SCORE_TYPES, ScoreType, ScoringConfig, TokenStats, score_tokens
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.rules import RULES, Selection, SelectionRule, TokenSignals, select_for_step

QUESTION = "What colour is the square?"
RESPONSE = "The square is red."


def command_help(name: str) -> str:
    """`vepo-viz <name> --help`, from a parser built now (so it reads the tables now)."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(subparsers.choices[name].format_help().split())  # unwrapped


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def random_stats(b: int = 2, t: int = 7, seed: int = 0) -> TokenStats:
    gen = torch.Generator().manual_seed(seed)
    entropy = torch.rand(b, t, generator=gen) * 3  # (B, T)
    return TokenStats(
        entropy=entropy,
        entropy_noisy=entropy + torch.rand(b, t, generator=gen),
        jsd=torch.rand(b, t, generator=gen) * 0.1,
        kl=torch.rand(b, t, generator=gen) * 0.2,
    )


def test_registry_docstring_names_every_registry_where_it_lives():
    """registry.py's list of extension points is the registries that exist, each under the
    module that owns it."""
    package = Path(registry.__file__).parent
    defined = set()
    for path in package.rglob("*.py"):
        module = ".".join(path.relative_to(package).with_suffix("").parts)
        for name in re.findall(r"^(\w+): Registry\[", path.read_text(), re.M):
            defined.add(f"{module}.{name}")
    named = set(re.findall(r"`((?:\w+\.)+[A-Z_]+)`", registry.__doc__))
    assert {"train.rules.RULES", "scoring.SCORE_TYPES"} <= defined
    assert named == defined
    for dotted in named:
        module, _, name = dotted.rpartition(".")
        table = getattr(importlib.import_module(f"vepo_viz.{module}"), name)
        assert isinstance(table, Registry), dotted


# -- score types ------------------------------------------------------------------------

LOW_ENTROPY = ScoreType(
    "low_entropy",
    "throwaway: the most confident tokens (uses the existing entropy signal)",
    lambda x: -x.stats.entropy.double(),
    needs_counterfactual=False,
)


def test_score_type_reaches_cli_help_and_flags():
    with SCORE_TYPES.registered(LOW_ENTROPY):
        for command in ("analyze", "batch"):
            assert "low_entropy" in command_help(command).split("--score-type", 1)[1]
        args = parse(
            "analyze", "--image", "a.png", "--question", "q", "--score-type", "low_entropy"
        )
        assert common.settings_from_args(args).scoring.score_type == "low_entropy"
    assert "low_entropy" not in command_help("analyze")


def test_score_type_reaches_config_validation_and_scoring():
    stats = random_stats()
    mask = torch.ones(stats.shape, dtype=torch.bool)
    mask[1, 5:] = False
    with pytest.raises(ValueError, match="low_entropy"):
        ScoringConfig(score_type="low_entropy")
    with SCORE_TYPES.registered(LOW_ENTROPY):
        assert ScoringConfig(score_type="low_entropy").score_type == "low_entropy"
        assert (
            AnalysisSettings(scoring={"score_type": "low_entropy"}).scoring.score_type
            == "low_entropy"
        )
        scores = score_tokens(stats, mask, "low_entropy")  # (B, T)
        want = torch.where(mask, -stats.entropy, 0.0)
        assert torch.equal(scores, want)


def test_score_type_reaches_rescore():
    from tests.fake import synthetic_analysis

    result = synthetic_analysis(12, seed=3)
    with SCORE_TYPES.registered(LOW_ENTROPY):
        rescored = result.rescore(score_type="low_entropy", ratio=0.25)
    np.testing.assert_array_equal(rescored.scores, -result.entropy)
    picked = np.sort(np.argsort(result.entropy)[:3])  # the 3 lowest-entropy tokens
    np.testing.assert_array_equal(np.flatnonzero(rescored.selected_vepo), picked)


# -- counterfactual modes ---------------------------------------------------------------

SAME_IMAGE = CounterfactualMode(
    "same_image",
    "throwaway: the clean pixel_values, unchanged",
    "normalized",
    lambda pixel_values, params, gen: pixel_values.clone(),
)


def test_mode_reaches_cli_help_and_flags():
    with MODES.registered(SAME_IMAGE):
        for command in ("analyze", "batch"):
            assert "same_image" in command_help(command).split("--perturb ", 1)[1]
        args = parse("batch", "data.jsonl", "--perturb", "same_image", "--draws", "2")
        settings = common.settings_from_args(args)
        assert settings.perturb.mode == "same_image" and settings.perturb.n_draws == 2


def test_mode_reaches_config_validation_and_analysis(qwen, scene):
    with pytest.raises(ValueError, match="same_image"):
        PerturbConfig(mode="same_image")
    with MODES.registered(SAME_IMAGE):
        settings = AnalysisSettings(perturb=PerturbConfig(mode="same_image"))
        result = analyze(qwen, scene, QUESTION, response=RESPONSE, settings=settings)
    # The counterfactual is the clean input: every clean-vs-counterfactual signal is 0 up
    # to float rounding (two forward passes), far below what the reference mode gives.
    assert len(result) > 0
    np.testing.assert_allclose(result.jsd, 0.0, atol=1e-7)
    np.testing.assert_allclose(result.entropy_gap, 0.0, atol=1e-5)
    reference = analyze(qwen, scene, QUESTION, response=RESPONSE)
    assert float(reference.jsd.max()) > 1e-4


# -- selection rules --------------------------------------------------------------------


def _first_token(cfg, signals: TokenSignals, generator: torch.Generator) -> Selection:
    selected = torch.zeros_like(signals.mask)
    selected[:, 0] = signals.mask[:, 0]  # (N, T): the first response token only
    return Selection(selected=selected, scores=None)


FIRST_TOKEN = SelectionRule(
    "first_token", "throwaway: the first token of each response", _first_token
)


def test_rule_reaches_train_help():
    with RULES.registered(FIRST_TOKEN):
        assert "first_token" in command_help("train").split("--selection", 1)[1]


def test_rule_reaches_config_validation_and_selection():
    with pytest.raises(Exception, match="first_token"):
        TrainConfig(selection="first_token")
    n, t = 3, 6
    mask = torch.ones(n, t, dtype=torch.bool)
    mask[2, :] = False  # an empty response
    entropy = torch.rand(n, t, generator=torch.Generator().manual_seed(0))  # (N, T)
    signals = TokenSignals(mask=mask, logp_old=-entropy, entropy=entropy)
    with RULES.registered(FIRST_TOKEN):
        cfg = TrainConfig(selection="first_token")
        assert cfg.selection == "first_token"
        selection = select_for_step(cfg, signals, torch.Generator().manual_seed(1))
    want = torch.zeros(n, t, dtype=torch.bool)
    want[:2, 0] = True
    assert torch.equal(selection.selected, want)


# -- VLM families -----------------------------------------------------------------------


@contextmanager
def standing_in(registry: Registry, entry) -> Iterator:
    """`entry` takes the place of the registry's entry of the same name inside the block
    (same position), and the original comes back after it."""
    names = registry.names()
    at = names.index(entry.name)
    moved = [registry.unregister(name) for name in names[at:]]  # the entry and those after
    try:
        for e in (entry, *moved[1:]):
            registry.register(e)
        yield entry
    finally:
        for name in names[at:]:
            if registry.get(name) is not None:
                registry.unregister(name)
        for e in moved:
            registry.register(e)
    assert registry.names() == names


def _about_text() -> str:
    """The Markdown of the About tab of an app built now."""
    import gradio as gr

    from tests.ui_fixtures import FakeBackend
    from vepo_viz.ui.app import build_app

    demo = build_app(FakeBackend())
    return "\n".join(
        b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.value
    )


def test_family_entry_is_what_loading_and_analysis_use(tiny_model_dir, scene):
    """A Family entry for the model_type of a tiny random model (here standing in for the
    built-in qwen2_vl one) is all that loading and analysis read about the family: its
    processor class, label, LoRA targets."""
    builtin = FAMILIES["qwen2_vl"]
    marked = type("ThrowawayProcessor", (builtin.processor(),), {})
    entry = Family(
        "qwen2_vl",
        "Throwaway-VL",
        "patches",
        "throwaway: a family entry under test",
        processor=lambda: marked,
        lora_targets=r".*language_model.*\.q_proj",
    )
    folder = tiny_model_dir("qwen2_vl")
    with standing_in(FAMILIES, entry):
        assert "throwaway: a family entry under test" in FAMILIES.markdown()  # the docs
        assert "Throwaway-VL" in command_help("analyze").split("--model", 1)[1]  # CLI help
        assert "throwaway: a family entry under test" in _about_text()  # the app
        vlm = load_model(folder, device="cpu", cache=False)
        assert vlm.family is entry
        assert isinstance(vlm.processor, marked)
        assert vlm.family.lora_targets == r".*language_model.*\.q_proj"
        assert "Throwaway-VL" in repr(vlm)
        result = analyze(vlm, scene, QUESTION, response=RESPONSE)
    assert FAMILIES["qwen2_vl"] is builtin
    assert result.family == "qwen2_vl" and len(result) > 0
    reference = analyze(load_model(folder, device="cpu"), scene, QUESTION, response=RESPONSE)
    np.testing.assert_array_equal(result.jsd, reference.jsd)  # same processor, same numbers
