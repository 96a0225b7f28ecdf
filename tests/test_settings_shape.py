"""One shape for settings: ScoringConfig and PerturbConfig hold every scoring and
counterfactual default once; AnalysisSettings and TrainConfig compose them, VEPOGRPOConfig
and the UI take their defaults from them, and saved settings keep their flat shape."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from vepo_viz.analysis_settings import AnalysisSettings
from vepo_viz.errors import VepoInputError
from vepo_viz.perturb import PerturbConfig
from vepo_viz.scoring import SCORING_KEYS, ScoringConfig
from vepo_viz.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).parent / "legacy"

SETTING_NAMES = {
    "score_type",
    "alpha",
    "ratio",
    "scope",
    "sigma",
    "n_draws",
    "patch_size",
    "patch_prob",
    "blur_radius",
    "perturb_seed",
}
"""Names of ScoringConfig / PerturbConfig settings, wherever they are a parameter or field."""

OWNERS = {"ScoringConfig", "PerturbConfig"}
OTHER_MEANING = {"TokenAnalysis.patch_size"}
"""Same name, another quantity: the model's ViT patch size a result was made with."""


def literal_defaults(source: str, where: str) -> list[str]:
    """'where:line name = value' for each parameter or class field named in SETTING_NAMES
    whose default is a literal (a number or string typed again), outside the owners."""

    def literal(node: ast.AST | None) -> bool:
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "field":
            node = next((k.value for k in node.keywords if k.arg == "default"), None)
        if isinstance(node, ast.UnaryOp):
            node = node.operand
        return isinstance(node, ast.Constant) and node.value is not None

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = [
                *zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True),
                *zip(a.kwonlyargs, a.kw_defaults, strict=True),
            ]
            found += [
                f"{where}:{d.lineno} {arg.arg} = {ast.unparse(d)}"
                for arg, d in pairs
                if arg.arg in SETTING_NAMES and literal(d)
            ]
        elif isinstance(node, ast.ClassDef) and node.name not in OWNERS:
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and stmt.target.id in SETTING_NAMES
                    and f"{node.name}.{stmt.target.id}" not in OTHER_MEANING
                    and literal(stmt.value)
                ):
                    found.append(f"{where}:{stmt.lineno} {node.name}.{stmt.target.id}")
    return found


def test_the_scan_sees_a_default_typed_again():
    """The probe itself: a second literal default is caught, the owners' are not."""
    source = (
        "def f(x, alpha=0.7, *, scope='response'): pass\n"
        "class S:\n    ratio: float = field(default=0.2)\n    sigma: float = DEFAULT_SIGMA\n"
        "class ScoringConfig:\n    alpha: float = 0.7\n"
    )
    assert literal_defaults(source, "x.py") == [
        "x.py:1 alpha = 0.7",
        "x.py:1 scope = 'response'",
        "x.py:3 S.ratio",
    ]


def test_every_scoring_and_view_default_is_written_once():
    found = []
    for path in sorted((ROOT / "vepo_viz").rglob("*.py")):
        found += literal_defaults(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], "defaults typed again (take them from ScoringConfig/PerturbConfig)"


PATCHES = {
    "vepo_viz/scoring.py": [
        ("DEFAULT_ALPHA = 0.7\n", "DEFAULT_ALPHA = 0.55\n"),
        ("DEFAULT_RATIO = 0.2\n", "DEFAULT_RATIO = 0.35\n"),
        ('Registry("score type", reference="D")', 'Registry("score type", reference="C")'),
    ],
    "vepo_viz/perturb.py": [
        ("DEFAULT_SIGMA = 2.0\n", "DEFAULT_SIGMA = 1.25\n"),
        ("DEFAULT_PATCH_SIZE = 14\n", "DEFAULT_PATCH_SIZE = 10\n"),
        ("DEFAULT_BLUR_RADIUS = 6.0\n", "DEFAULT_BLUR_RADIUS = 4.5\n"),
    ],
}
PATCHED = {
    "score_type": "C",
    "alpha": 0.55,
    "ratio": 0.35,
    "sigma": 1.25,
    "patch_size": 10,
    "blur_radius": 4.5,
}

PROBE = r"""
import inspect, json
from vepo_viz import scoring
from vepo_viz.analysis_settings import AnalysisSettings
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.trl_plugin import VEPOGRPOConfig
from vepo_viz.ui.controls import ControlValues

a, t, c = AnalysisSettings(), TrainConfig(), ControlValues()
trl = {k: f.default for k, f in VEPOGRPOConfig.__dataclass_fields__.items()}
seen = {}
for name in ("score_type", "alpha", "ratio"):
    seen[name] = [getattr(a.scoring, name), getattr(t.scoring, name), trl[name], getattr(c, name)]
for name in ("sigma", "patch_size", "blur_radius"):
    seen[name] = [getattr(a.perturb, name), getattr(t.perturb_config, name), trl[name],
                  getattr(c, name)]
sig = inspect.signature
seen["alpha"] += [sig(scoring.score_tokens).parameters["alpha"].default,
                  sig(scoring.visual_sensitivity).parameters["alpha"].default]
seen["ratio"].append(sig(scoring.select_tokens).parameters["ratio"].default)
seen["score_type"].append(sig(scoring.score_tokens).parameters["score_type"].default)
print(json.dumps(seen))
"""


def test_changing_a_config_default_changes_every_consumer(tmp_path):
    """A copy of the package with other defaults in ScoringConfig's and PerturbConfig's
    modules: AnalysisSettings, TrainConfig, VEPOGRPOConfig, the UI controls and the
    scoring functions all follow (none keeps a copy of the old value)."""
    copy = tmp_path / "vepo_viz"
    shutil.copytree(ROOT / "vepo_viz", copy, ignore=shutil.ignore_patterns("*.safetensors"))
    for name, edits in PATCHES.items():
        path = tmp_path / name
        text = path.read_text(encoding="utf-8")
        for old, new in edits:
            assert text.count(old) == 1, f"{name} no longer has {old!r}: update PATCHES"
            text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    for name, values in seen.items():
        assert values == [PATCHED[name]] * len(values), name


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
