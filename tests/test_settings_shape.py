"""One shape for settings: ScoringConfig and PerturbConfig hold every scoring and
counterfactual default once; AnalysisSettings and TrainConfig compose them, VEPOGRPOConfig
and the UI take their defaults from them, and saved settings keep their flat shape."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from vepo_viz.analysis_settings import AnalysisSettings
from vepo_viz.errors import VepoInputError
from vepo_viz.perturb import PerturbConfig
from vepo_viz.scoring import SCORING_KEYS, ScoringConfig
from vepo_viz.train.config import TrainConfig

LEGACY = Path(__file__).parent / "legacy"


# ---- AnalysisSettings: composed in memory, flat when saved ---------------------------


def test_analysis_settings_compose_the_configs():
    settings = AnalysisSettings()
    assert settings.perturb == PerturbConfig()
    assert settings.scoring == ScoringConfig()
    assert not any(hasattr(settings, key) for key in SCORING_KEYS), "one place: .scoring"
    given = AnalysisSettings(scoring=ScoringConfig(score_type="C", alpha=0.4), seed=3)
    assert AnalysisSettings(scoring={"score_type": "C", "alpha": 0.4}, seed=3) == given
    with pytest.raises(VepoInputError, match="scoring must be a ScoringConfig"):
        AnalysisSettings(scoring="D")


def test_the_scoring_temperature_and_seed_are_the_analysis_own():
    settings = AnalysisSettings(temperature=0.5, seed=7)
    assert (settings.scoring.temperature, settings.scoring.seed) == (0.5, 7)
    greedy = AnalysisSettings(temperature=0.0, scoring=ScoringConfig(temperature=3.0, seed=1))
    assert (greedy.scoring.temperature, greedy.scoring.seed) == (1.0, 0)
    assert AnalysisSettings(score_temperature=2.0).scoring.temperature == 2.0
    with pytest.raises(VepoInputError, match="replace_scoring takes"):
        settings.replace_scoring(temperature=2.0)


def test_settings_are_saved_flat_as_before_and_read_back():
    settings = AnalysisSettings(
        temperature=0.7,
        seed=5,
        perturb=PerturbConfig(mode="blur", blur_radius=3.0),
        scoring=ScoringConfig(score_type="entropy", ratio=0.3, scope="batch"),
        score_temperature=1.5,
        skip_floor=True,
    )
    saved = settings.to_dict()
    legacy = json.loads((LEGACY / "app_session_v1.json").read_text())["settings"]
    assert list(saved)[: len(legacy)] == list(legacy), "the saved keys keep their order"
    assert "scoring" not in saved and saved["ratio"] == 0.3 and saved["perturb"]["mode"] == "blur"
    assert json.loads(json.dumps(saved)) == saved
    assert AnalysisSettings.from_dict(saved) == settings
    nested = {k: v for k, v in saved.items() if k not in SCORING_KEYS}
    nested["scoring"] = {k: saved[k] for k in SCORING_KEYS}
    assert AnalysisSettings.from_dict(nested) == settings
    with pytest.raises(VepoInputError, match="either flat or in `scoring`"):
        AnalysisSettings.from_dict({**nested, "alpha": 0.5})


@pytest.mark.parametrize("name", ["analysis_v1.json", "app_session_v1.json"])
def test_older_flat_settings_load(name):
    data = json.loads((LEGACY / name).read_text())["settings"]
    settings = AnalysisSettings.from_saved({**data, "a_key_of_another_version": 1})
    assert {k: getattr(settings.scoring, k) for k in SCORING_KEYS} == {
        k: data[k] for k in SCORING_KEYS
    }
    assert settings["score_type"] == data["score_type"] and "alpha" in settings
    assert settings.to_dict()["alpha"] == data["alpha"]


def test_numbers_are_kept_as_floats():
    import numpy as np

    config = ScoringConfig(alpha=np.float32(0.5), ratio=1)
    assert type(config.alpha) is float and type(config.ratio) is float
    json.dumps(AnalysisSettings(scoring=config).to_dict())
    with pytest.raises(VepoInputError, match="alpha"):
        ScoringConfig(alpha="0.5")


# ---- TrainConfig and the UI ---------------------------------------------------------


def test_train_config_reads_through_its_configs():
    cfg = TrainConfig.from_dict({"alpha": 0.4, "score_type": "C", "sigma": 1.5})
    assert (cfg.scoring.alpha, cfg.scoring.score_type, cfg.perturb_config.sigma) == (0.4, "C", 1.5)
    assert not any(hasattr(cfg, k) for k in (*SCORING_KEYS, "sigma", "n_draws", "perturb_mode"))
    flat = cfg.to_dict()
    assert (flat["alpha"], flat["score_type"], flat["sigma"]) == (0.4, "C", 1.5)


def test_control_values_are_typed_and_built_once():
    from vepo_viz.ui.controls import API_SUFFIX, ControlValues

    kinds = typing.get_type_hints(ControlValues)
    assert set(kinds.values()) <= {int, float, str}, kinds
    raw = {"max_new_tokens": 12.0, "n_draws": 2.0, "alpha": "0.4", "ratio": 1, "seed": 3.0}
    values = ControlValues.from_api({k + API_SUFFIX: v for k, v in raw.items()})
    assert (values.max_new_tokens, values.n_draws, values.seed) == (12, 2, 3)
    assert type(values.max_new_tokens) is int and (values.alpha, values.ratio) == (0.4, 1.0)
    settings = values.settings()
    assert settings.scoring.alpha == 0.4 and settings.perturb.n_draws == 2
    assert ControlValues.of(settings) == values
    assert ControlValues.of(settings.to_dict()) == values
