"""Noise floor, selection stability, out-of-distribution warnings and the notebook display
(issue 14): information beside the reference scores, never a change of them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fake import synthetic_analysis
from vepo_viz import floor, ood, scoring
from vepo_viz.results import TokenAnalysis

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).parent / "legacy"


def one_over_f_noise(size: int = 112, seed: int = 0):
    """A photo-like RGB image: 1/f (natural-statistics) noise in each channel."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None] ** 2)
    radius[0, 0] = 1.0
    channels = [
        np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) / radius)) for _ in range(3)
    ]
    img = np.stack(channels, -1)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return Image.fromarray(img.astype(np.uint8))


# ---- the floor (pure) ---------------------------------------------------------------


def test_floor_is_the_largest_null_value_or_the_float_floor():
    small = floor.estimate_floor(np.full(5, 1e-9), np.full(5, 1e-7))
    assert (small.jsd, small.abs_entropy_gap) == (floor.JSD_FLOAT_FLOOR, floor.GAP_FLOAT_FLOOR)
    big = floor.estimate_floor(np.array([1e-9, 3e-4, 2e-5]), np.array([-2e-3, 1e-6, 0.0]))
    assert big.jsd == pytest.approx(3e-4) and big.abs_entropy_gap == pytest.approx(2e-3)
    assert big.method == "null_pass" and floor.estimate_floor().method == "float"


def test_at_floor_needs_both_signals_at_the_floor():
    level = floor.NoiseFloor(jsd=1e-4, abs_entropy_gap=1e-3)
    mask = floor.at_floor(
        np.array([0.0, 1e-4, 2e-4, 0.0]), np.array([0.0, -1e-3, 0.0, 5e-3]), level
    )
    assert mask.tolist() == [True, True, False, False]
    assert floor.verdict(mask) is None and not floor.below_floor(np.zeros(0, bool))
    assert floor.verdict(np.ones(3, bool)) == floor.VERDICT


def test_float_floor_covers_the_rounding_of_identical_logits():
    z = torch.randn(1, 16, 151_936) * 0.3  # near-uniform: the worst case measured
    stats = scoring.token_stats(z, z.clone())
    mask = floor.at_floor(stats.jsd[0].numpy(), stats.entropy_gap[0].numpy(), floor.NoiseFloor())
    assert mask.all()


# ---- results fields -----------------------------------------------------------------


def null_result(n: int = 12) -> TokenAnalysis:
    """A response whose counterfactual changed nothing: JSD and dH at float noise."""
    rng = np.random.default_rng(1)
    entropy = rng.uniform(0, 3, n).astype(np.float32)
    noisy = entropy + rng.uniform(-1e-6, 1e-6, n).astype(np.float32)
    return synthetic_analysis(
        n,
        jsd=rng.uniform(0, 3e-8, n).astype(np.float32),
        entropy_noisy=noisy,
        entropy=entropy,
        entropy_gap=noisy - entropy,
    )


def test_null_counterfactual_is_marked_but_scores_stay_as_defined():
    result = null_result().rescore()  # scores from these arrays, reference definition
    assert result.at_floor.all() and result.below_floor
    assert result.floor_verdict == floor.VERDICT
    # the reference normalisation still spans 0-1 and still selects: left as defined
    assert result.visual_sensitivity.max() > 0.5 and result.selected_vepo.sum() >= 1
    skipping = result.rescore(skip_floor=True)
    assert skipping.selected_vepo.sum() == 0  # opt-in: nothing at the floor is picked
    np.testing.assert_array_equal(skipping.scores, result.scores)
    np.testing.assert_array_equal(skipping.selected_entropy, result.selected_entropy)
    assert skipping.settings.skip_floor and not result.settings.skip_floor


def test_skip_floor_selects_among_tokens_with_signal():
    result = synthetic_analysis(10)
    mask = np.zeros(10, bool)
    mask[[0, 3, 4]] = True
    result = replace(result, at_floor=mask)
    picked = result.rescore(ratio=0.5, skip_floor=True).selected_vepo
    assert not (picked & mask).any() and picked.sum() == 4  # ceil(0.5 * 7)


def test_floor_fields_round_trip_and_old_files_load(tmp_path):
    level = floor.NoiseFloor(jsd=2e-6, abs_entropy_gap=4e-5, method="null_pass")
    result = replace(null_result(), noise_floor=level)
    path = result.save(tmp_path / "a.json")
    data = json.loads(path.read_text())
    assert data["below_floor"] is True and data["floor_verdict"] == floor.VERDICT
    back = TokenAnalysis.load(path)
    assert back.noise_floor == result.noise_floor
    np.testing.assert_array_equal(back.at_floor, result.at_floor)
    old = TokenAnalysis.load(LEGACY / "analysis_v1.json")
    assert old.noise_floor.method == "float" and old.at_floor.shape == (len(old),)
    assert old.selection_share is None and old.draw_jaccard is None and old.n_draws == 0


# ---- stability ----------------------------------------------------------------------


def test_selection_stability_share_and_jaccard():
    sel = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    share, jaccard = scoring.selection_stability(sel)
    np.testing.assert_allclose(share.numpy(), [1, 2 / 3, 1 / 3, 0])
    assert jaccard == pytest.approx((1 / 3 + 1 + 1 / 3) / 3)
    assert np.isnan(scoring.selection_stability(sel[:1])[1])


def test_stability_from_draws_round_trips_and_is_unknown_with_one_draw(tmp_path):
    base = synthetic_analysis(12)
    rng = np.random.default_rng(3)
    draws = {
        "entropy_noisy_draws": base.entropy_noisy + rng.normal(0, 0.3, (3, 12)),
        "jsd_draws": rng.uniform(0, 0.2, (3, 12)),
        "kl_draws": rng.uniform(0, 0.4, (3, 12)),
    }
    result = TokenAnalysis(**{**base.__dict__, **draws, "at_floor": None}).rescore()
    assert result.n_draws == 3 and result.selection_share.shape == (12,)
    assert 0 <= result.draw_jaccard <= 1
    back = TokenAnalysis.load(result.save(tmp_path / "s.json"))
    np.testing.assert_array_equal(back.selection_share, result.selection_share)
    assert back.draw_jaccard == result.draw_jaccard
    single = {k: v[:1] for k, v in draws.items()}
    one = TokenAnalysis(**{**base.__dict__, **single}).rescore()
    assert one.selection_share is None and one.draw_jaccard is None


# ---- the real pipeline --------------------------------------------------------------


def test_sigma_zero_is_below_the_floor_and_sigma_two_is_not(qwen, scene):
    from vepo_viz import AnalysisSettings, analyze
    from vepo_viz.perturb import PerturbConfig

    null = analyze(
        qwen,
        scene,
        "What is red?",
        settings=AnalysisSettings(max_new_tokens=8, perturb=PerturbConfig(sigma=0.0)),
    )
    assert null.noise_floor.method == "null_pass" and null.below_floor
    pasted = analyze(
        qwen,
        scene,
        "What is red?",
        "the square is red",
        AnalysisSettings(perturb=PerturbConfig(sigma=0.0)),
    )
    assert pasted.noise_floor.method == "float" and pasted.below_floor
    real = analyze(
        qwen,
        scene,
        "What is red?",
        "the square is red",
        AnalysisSettings(perturb=PerturbConfig(sigma=2.0, n_draws=3)),
    )
    assert not real.below_floor and real.n_draws == 3
    assert real.selection_share is not None and real.draw_jaccard is not None
    assert real.patch_grid is not None and real.patch_size > 0


# ---- out of distribution -------------------------------------------------------------


def test_suite_input_gets_no_warning_and_photo_like_input_does():
    from vepo_viz.models import EMBEDDED_MODEL
    from vepo_viz.tasks import make_example

    row = json.loads((ROOT / "sample_data" / "samples.jsonl").read_text().splitlines()[0])
    from PIL import Image

    suite_image = Image.open(ROOT / "sample_data" / row["image"]).convert("RGB")
    assert ood.input_warnings(EMBEDDED_MODEL, suite_image, row["question"]) == []
    for family in ("color", "compare", "count", "spatial", "read"):
        ex = make_example(family, 101)
        assert ood.input_warnings(EMBEDDED_MODEL, ex.image, ex.question) == [], family
    noise = ood.input_warnings(EMBEDDED_MODEL, one_over_f_noise(), row["question"])
    assert len(noise) == 1 and "does not look like the suite" in noise[0]
    question = ood.input_warnings(EMBEDDED_MODEL, suite_image, "What color is the jacket?")
    assert len(question) == 1 and "templates" in question[0]
    assert ood.input_warnings("some/real-vlm", one_over_f_noise(), "Anything?") == []


def test_matplotlib_sample_photo_is_out_of_distribution():
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    from vepo_viz.models import EMBEDDED_MODEL

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as opened:
        photo = opened.convert("RGB")
    warnings = ood.input_warnings(EMBEDDED_MODEL, photo, "What color is the jacket?")
    assert any("512x600" in w for w in warnings) and len(warnings) == 3


# ---- notebook ------------------------------------------------------------------------


def test_repr_html_is_self_contained_with_hover_titles():
    result = null_result().rescore()
    markup = result._repr_html_()
    assert markup.count('class="vv-token vv-floor"') == len(result)
    assert "title=" in markup and "JSD = " in markup and floor.VERDICT in markup
    assert "<script" not in markup and "http" not in markup


def test_show_displays_through_ipython_or_returns_html(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    result = synthetic_analysis(6)
    assert result.show() is None and result._repr_html_() in shown[0].data
    import builtins

    real_import = builtins.__import__

    def no_ipython(name, *args, **kwargs):
        if name.startswith("IPython"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipython)
    assert result.show() == result._repr_html_()


# ---- what the app and the CLI show ----------------------------------------------------


def test_app_view_warns_above_a_null_result_and_tables_the_floor():
    from vepo_viz.ui.views import render_view

    view = render_view(null_result().rescore())
    assert view.summary.startswith('<div class="vv-warning"') and floor.VERDICT in view.summary
    assert "12 of 12 tokens at the floor" in view.summary
    assert "stability: unknown with one counterfactual draw" in view.summary
    assert view.table["at_floor"].all()
    plain = render_view(synthetic_analysis(12))
    assert "vv-warning" not in plain.summary


def test_app_view_shows_stability_with_several_draws():
    from vepo_viz.ui.views import render_view

    base = synthetic_analysis(12)
    rng = np.random.default_rng(4)
    draws = {
        "entropy_noisy_draws": base.entropy_noisy + rng.normal(0, 0.3, (4, 12)),
        "jsd_draws": rng.uniform(0, 0.2, (4, 12)),
        "kl_draws": rng.uniform(0, 0.4, (4, 12)),
    }
    result = TokenAnalysis(**{**base.__dict__, **draws}).rescore()
    view = render_view(result)
    assert "Selection stability over K=4 draws: Jaccard between draws" in view.summary
    np.testing.assert_allclose(view.table["selection_share"], result.selection_share, atol=1e-4)


def test_caption_says_what_the_model_saw():
    from vepo_viz.ui.views import image_views

    result = synthetic_analysis(4, patch_grid=(8, 6), patch_size=14)
    from PIL import Image

    result = replace(result, image=Image.new("RGB", (112, 84), "white"))
    assert image_views(result)[2].endswith(
        "The model saw 112x84 px as an 8x6 patch grid of 14 px patches."
    )


def test_cli_warns_first_and_prints_floor_and_stability(capsys, qwen, tmp_path):
    from tests.fake import draw_scene
    from vepo_viz.cli import main

    image = tmp_path / "scene.png"
    draw_scene().save(image)
    rc = main(
        [
            "analyze",
            "--model",
            qwen.model_id,
            "--image",
            str(image),
            "--question",
            "Red?",
            "--response",
            "the square is red",
            "--sigma",
            "0",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith(f"WARNING: {floor.VERDICT}")
    assert "tokens at the floor" in out and "stability: unknown" in out
    assert json.loads((tmp_path / "r.json").read_text())["floor_verdict"] == floor.VERDICT


def test_heatmap_hover_marks_floor_tokens():
    # Every row's tooltip of a floor token says so, beside its raw JSD and |dH|.
    from vepo_viz.render.hover import FLOOR_NOTE
    from vepo_viz.ui.views import render_view

    null = render_view(null_result().rescore()).heatmap
    texts = [t for trace in null.data for t in (trace.hovertext or ())]
    assert texts and all(FLOOR_NOTE in t for t in texts)
    plain = render_view(synthetic_analysis(12)).heatmap
    assert not any(FLOOR_NOTE in t for trace in plain.data for t in (trace.hovertext or ()))
