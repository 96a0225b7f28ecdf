"""A throwaway registry entry registered before `build_app` shows up in the app's
dropdowns and passes the app's validation: score types, counterfactual modes and
training selection rules reach the UI through their registries alone."""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image

from tests.ui_fixtures import FakeBackend
from vepo_viz.perturb import MODES, CounterfactualMode
from vepo_viz.scoring import SCORE_TYPES, ScoreType
from vepo_viz.train.rules import RULES, SelectionRule
from vepo_viz.ui import handlers as h
from vepo_viz.ui.app import build_app
from vepo_viz.ui.controls import ControlValues, mode_parameter_updates, scoring_args

THROWAWAY_SCORE = ScoreType(
    name="throwaway_score",
    description="a test entry: entropy only, normalised",
    fn=lambda x: x.h,
    needs_counterfactual=False,
)
THROWAWAY_MODE = CounterfactualMode(
    name="throwaway_mode",
    description="a test entry: the image unchanged",
    space="pixel",
    apply=lambda image, params, generator: image.copy(),
)
THROWAWAY_RULE = SelectionRule(
    name="throwaway_rule",
    description="a test entry: every token",
    select=RULES["all"].select,
)


def dropdown_values(demo: gr.Blocks) -> list[set[str]]:
    """The set of choice values of every dropdown of the app."""
    out = []
    for block in demo.blocks.values():
        if isinstance(block, gr.Dropdown):
            out.append({value for _, value in block.choices})
    return out


def offered(demo: gr.Blocks, name: str) -> int:
    """How many dropdowns offer `name`."""
    return sum(name in values for values in dropdown_values(demo))


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "scene.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(path)
    return str(path)


def test_throwaway_score_type_reaches_the_dropdowns_and_validation(image_path):
    assert THROWAWAY_SCORE.name not in SCORE_TYPES
    with SCORE_TYPES.registered(THROWAWAY_SCORE):
        demo = build_app(FakeBackend(), samples=[])
        # the Analyze tab's score type, Compare's A and B (and the Train tab's, if any)
        assert offered(demo, THROWAWAY_SCORE.name) >= 3
        values = ControlValues(score_type=THROWAWAY_SCORE.name)
        assert values.settings().scoring.score_type == THROWAWAY_SCORE.name
        assert scoring_args(0.2, 0.7, THROWAWAY_SCORE.name, "response")["score_type"] == (
            THROWAWAY_SCORE.name
        )
        session, view, _ = h.analyze(
            FakeBackend(), None, image_path, "What colour?", "", "embedded", values
        )
        assert session.current.scoring_args["score_type"] == THROWAWAY_SCORE.name
        assert view.summary
    demo = build_app(FakeBackend(), samples=[])
    assert offered(demo, THROWAWAY_SCORE.name) == 0
    with pytest.raises(ValueError, match="throwaway_score"):
        ControlValues(score_type=THROWAWAY_SCORE.name).settings()


def test_throwaway_counterfactual_mode_reaches_the_dropdowns_and_validation(image_path):
    assert THROWAWAY_MODE.name not in MODES
    with MODES.registered(THROWAWAY_MODE):
        demo = build_app(FakeBackend(), samples=[])
        assert offered(demo, THROWAWAY_MODE.name) >= 1  # the Analyze tab's mode
        settings = ControlValues(cf_mode=THROWAWAY_MODE.name).settings()
        assert settings.perturb.mode == THROWAWAY_MODE.name
        session, _, (clean, preview, caption) = h.analyze(
            FakeBackend(),
            None,
            image_path,
            "What colour?",
            "",
            "embedded",
            ControlValues(cf_mode=THROWAWAY_MODE.name),
        )
        assert clean is not None and caption
    with pytest.raises(ValueError, match="throwaway_mode"):
        ControlValues(cf_mode=THROWAWAY_MODE.name).settings()


def test_mode_parameters_show_and_hide_their_controls():
    demo = build_app(FakeBackend(), samples=[])
    sigma = next(b for b in demo.blocks.values() if isinstance(b, gr.Slider) and b.label == "sigma")
    assert sigma.visible  # the reference mode (gaussian) reads sigma

    class FakeControls:
        def mode_parameters(self):
            return {"sigma": sigma}

    with MODES.registered(THROWAWAY_MODE):  # reads no parameter
        (update,) = mode_parameter_updates(FakeControls(), THROWAWAY_MODE.name)
        assert update["visible"] is False
    (update,) = mode_parameter_updates(FakeControls(), "gaussian")
    assert update["visible"] is True


def test_throwaway_selection_rule_reaches_the_train_tab(tmp_path):
    from vepo_viz.ui import train_tab as tt

    assert THROWAWAY_RULE.name not in RULES
    with RULES.registered(THROWAWAY_RULE):
        demo = build_app(FakeBackend(), samples=[])
        # the Train tab's selection and the Group tab's two methods (A and B)
        assert offered(demo, THROWAWAY_RULE.name) == 3
        cfg = tt.form_config(
            tmp_path, "run", "tiny", THROWAWAY_RULE.name, "D", 0.2, 2, 2, 2, 1e-5, 0, [], 0.5, ""
        )
        assert cfg.selection == THROWAWAY_RULE.name
    demo = build_app(FakeBackend(), samples=[])
    assert offered(demo, THROWAWAY_RULE.name) == 0
