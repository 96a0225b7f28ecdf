"""TokenAnalysis as data: exact JSON round trip, DataFrame, re-scoring without a model,
summary helpers. No model needed (synthetic analyses)."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import numpy as np
import pytest
import torch

import vepo_viz
from tests.fake import synthetic_analysis
from vepo_viz import scoring
from vepo_viz.results import (
    BOOL_ARRAYS,
    FLOAT_ARRAYS,
    TokenAnalysis,
    low_entropy_share,
    selection_jaccard,
    selection_overlap_fraction,
)


def assert_same(a: TokenAnalysis, b: TokenAnalysis) -> None:
    for name in FLOAT_ARRAYS + ("top_probs", "top_probs_noisy"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float32, name
        assert x.tobytes() == y.tobytes(), name  # bit-exact
    for name in BOOL_ARRAYS + ("token_ids", "offsets", "top_ids"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("response", "tokens", "top_tokens", "question", "model_id", "settings"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.image_size == b.image_size and a.image_digest == b.image_digest


def test_json_round_trip_is_exact(tmp_path):
    result = synthetic_analysis(30, seed=3)
    # Values that need all float32 digits.
    result.jsd[0] = np.float32(1 / 3)
    result.entropy[1] = np.nextafter(np.float32(2.0), np.float32(3.0))
    path = result.save(tmp_path / "sub" / "result.json")
    loaded = TokenAnalysis.load(path)
    assert_same(result, loaded)
    assert loaded.timing == result.timing and loaded.versions == result.versions


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a saved TokenAnalysis"):
        TokenAnalysis.load(bad)
    with pytest.raises(ValueError, match="cannot read"):
        TokenAnalysis.load(tmp_path / "missing.json")


def test_dataframe_has_one_row_per_token():
    result = synthetic_analysis(12)
    frame = result.to_dataframe()
    assert len(frame) == 12
    for column in ("position", "token", "entropy", "jsd", "abs_entropy_gap", "scores"):
        assert column in frame
    assert frame["selected_vepo"].dtype == bool
    assert frame["token"].tolist() == result.tokens
    assert np.allclose(frame["abs_entropy_gap"], np.abs(result.entropy_gap))


def test_rescore_matches_scoring_and_leaves_original():
    result = synthetic_analysis(40, seed=1)
    again = result.rescore()
    assert again is not result
    assert_same(result, again)

    other = result.rescore(score_type="A", alpha=0.5, ratio=0.3)
    assert other.settings["score_type"] == "A" and result.settings["score_type"] == "D"
    stats = scoring.TokenStats(
        entropy=torch.from_numpy(result.entropy)[None],
        entropy_noisy=torch.from_numpy(result.entropy_noisy)[None],
        jsd=torch.from_numpy(result.jsd)[None],
        kl=torch.from_numpy(result.kl)[None],
    )
    mask = torch.ones(1, 40, dtype=torch.bool)
    expected = scoring.score_tokens(stats, mask, "A", 0.5)
    assert np.array_equal(other.scores, expected[0].numpy())
    assert np.array_equal(
        other.selected_vepo, scoring.select_tokens(expected, mask, 0.3)[0].numpy()
    )
    assert other.selected_vepo.sum() == math.ceil(0.3 * 40)

    by_entropy = result.rescore(score_type="entropy")
    assert np.array_equal(by_entropy.selected_vepo, by_entropy.selected_entropy)
    with pytest.raises(ValueError, match="score_type"):
        result.rescore(score_type="nope")


def test_summary_helpers_on_hand_examples():
    a = np.array([1, 1, 0, 0, 1], dtype=bool)
    b = np.array([1, 0, 1, 0, 1], dtype=bool)
    assert selection_jaccard(a, b) == pytest.approx(2 / 4)
    assert selection_overlap_fraction(a, b) == pytest.approx(2 / 3)
    assert math.isnan(selection_jaccard(np.zeros(3, bool), np.zeros(3, bool)))
    entropy = np.array([0.1, 0.2, 0.3, 0.4, 0.5])  # median 0.3
    assert low_entropy_share(a, entropy) == pytest.approx(2 / 3)  # 0.1, 0.2 of 0.1, 0.2, 0.5
    assert math.isnan(low_entropy_share(np.zeros(5, bool), entropy))
    result = synthetic_analysis(20)
    summary = result.summary()
    assert summary["n_tokens"] == 20 and 0 <= summary["overlap_jaccard"] <= 1


def test_constructor_checks_lengths():
    result = synthetic_analysis(5)
    with pytest.raises(ValueError, match="expected"):
        synthetic_analysis(5, entropy=np.zeros(4))
    with pytest.raises(ValueError, match="one entry per token"):
        synthetic_analysis(5, tokens=result.tokens[:3])


def test_results_import_stays_light():
    code = (
        "import sys, vepo_viz.results; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_loading_saving_and_summarising_a_result_never_import_torch(tmp_path):
    """results.py is plain data: only `rescore` (vepo_viz.scoring) brings torch in."""
    code = (
        "import sys; from vepo_viz.results import TokenAnalysis, summary; "
        f"r = TokenAnalysis.load({str(LEGACY / 'app_session_v1.json')!r}); "
        f"r.save({str(tmp_path / 'r.json')!r}); summary(r); r.to_dataframe(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
    tree = ast.parse(Path(vepo_viz.results.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.split(".")[0] == "torch"}  # not even in a function


def test_a_result_is_frozen_and_a_changed_view_is_a_new_object():
    result = synthetic_analysis(8)
    scores = result.scores.copy()
    for name, value in (("scores", np.zeros(8)), ("image", None), ("question", "other")):
        with pytest.raises(FrozenInstanceError):
            setattr(result, name, value)
    with pytest.raises(FrozenInstanceError):
        del result.tokens
    rescored = result.rescore(ratio=0.5)
    assert rescored is not result and rescored.settings.scoring.ratio == 0.5
    assert result.settings.scoring.ratio == 0.2 and np.array_equal(result.scores, scores)
    asked = replace(result, question="Which shape is red?")  # replace re-validates
    assert asked.question == "Which shape is red?" and result.question != asked.question
    assert asked.scores.dtype == np.float32 and asked.token_ids.dtype == np.int64
    with pytest.raises(ValueError, match="expected"):
        replace(result, jsd=np.zeros(3))


# ---- what the views need: images, normalisation, typed settings ---------------------

LEGACY = Path(__file__).parent / "legacy"
"""Files written by vepo-viz before results carried images and typed settings."""


def _with_views(result: TokenAnalysis) -> TokenAnalysis:
    from tests.fake import draw_scene

    return replace(
        result,
        image=draw_scene(),
        image_normalization=((0.5, 0.25, 0.125), (0.3, 0.2, 0.1)),
        counterfactual_image=draw_scene().rotate(90, expand=True),
        counterfactual_caption="exact view used (draw 1 of 1): black",
    )


def test_images_normalization_and_caption_round_trip_exactly(tmp_path):
    result = _with_views(synthetic_analysis(10, seed=4))
    loaded = TokenAnalysis.load(result.save(tmp_path / "r.json"))
    assert_same(result, loaded)
    for name in ("image", "counterfactual_image"):
        a, b = getattr(result, name), getattr(loaded, name)
        assert b.mode == "RGB" and b.size == a.size
        assert np.array_equal(np.asarray(a), np.asarray(b)), name  # lossless PNG
    assert loaded.image_normalization == result.image_normalization
    assert loaded.counterfactual_caption == result.counterfactual_caption
    data = result.to_dict()
    assert isinstance(data["image_png"], str) and isinstance(data["settings"], dict)
    json.dumps(data)  # plain JSON

    light = TokenAnalysis.load(result.save(tmp_path / "light.json", include_image=False))
    assert light.image is None and light.counterfactual_image is None
    assert "image_png" not in result.to_dict(include_image=False)
    assert light.image_normalization == result.image_normalization
    assert_same(result, light)


def test_settings_are_typed_with_the_legacy_dict_view():
    from vepo_viz.analysis import AnalysisSettings as FromAnalysis
    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.perturb import PerturbConfig

    assert FromAnalysis is AnalysisSettings is vepo_viz.AnalysisSettings
    result = synthetic_analysis(12)
    assert isinstance(result.settings, AnalysisSettings)
    assert isinstance(result.settings.perturb, PerturbConfig)
    assert result.settings["score_type"] == result.settings.scoring.score_type == "D"
    assert result.settings["perturb"]["seed"] == 0 and result.settings.get("nope", 1) == 1
    assert "alpha" in result.settings and "nope" not in result.settings
    with pytest.raises(KeyError):
        result.settings["nope"]
    other = result.rescore(ratio=0.5, scope="batch")
    assert other.settings == result.settings.replace_scoring(ratio=0.5, scope="batch")
    assert other.settings.scoring.ratio == 0.5 and result.settings.scoring.ratio == 0.2
    assert result.to_dict()["settings"] == result.settings.to_dict()


def test_a_file_saved_before_still_loads():
    old = TokenAnalysis.load(LEGACY / "analysis_v1.json")
    assert len(old) == 8 and old.image is None and old.counterfactual_image is None
    assert old.image_normalization is None and old.counterfactual_caption == ""
    assert old.settings["score_type"] == "D" and old.settings.scoring.ratio == 0.2
    # The app's files kept the clean image in their own key: it is read from there.
    app = TokenAnalysis.load(LEGACY / "app_session_v1.json")
    assert app.image is not None and app.image.size == app.image_size
    assert app.counterfactual_image is None


def test_settings_of_another_version_load_without_unknown_keys():
    data = synthetic_analysis(6).to_dict()
    data["settings"]["future_knob"] = 3
    data["settings"]["perturb"]["future_param"] = 1.5
    loaded = TokenAnalysis.from_dict(data)
    assert "future_knob" not in loaded.settings.to_dict()


def test_one_summary_for_every_view():
    from vepo_viz.render import data as rdata
    from vepo_viz.results import Summary, summary

    result = synthetic_analysis(25, seed=5)
    s = summary(result)
    assert isinstance(s, Summary) and rdata.summary(result) == s
    assert s.jaccard == selection_jaccard(result.selected_vepo, result.selected_entropy)
    assert s.overlap == selection_overlap_fraction(result.selected_vepo, result.selected_entropy)
    assert s.vepo_low_entropy == low_entropy_share(result.selected_vepo, result.entropy)
    assert s.n_vepo_low_entropy == round(s.vepo_low_entropy * s.n_vepo)
    legacy = result.summary()
    assert legacy["overlap_jaccard"] == s.jaccard and legacy["low_entropy_share"] == (
        s.vepo_low_entropy
    )
