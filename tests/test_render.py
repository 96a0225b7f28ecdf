"""render/: the per-token table, summary numbers and plotly figures (no model)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.ui_fixtures import fake_analysis
from vepo_viz.analysis import AnalysisSettings
from vepo_viz.render import data, figures
from vepo_viz.results import low_entropy_share, selection_overlap_fraction


@pytest.fixture(scope="module")
def analysis():
    return fake_analysis(seed=3)


def test_token_frame_has_every_value_and_consistent_categories(analysis):
    frame = data.token_frame(analysis)
    assert len(frame) == len(analysis.tokens)
    np.testing.assert_array_equal(frame["entropy"], analysis.entropy.astype(np.float64))
    np.testing.assert_array_equal(frame["score"], analysis.scores.astype(np.float64))
    np.testing.assert_allclose(frame["abs_entropy_gap"], np.abs(analysis.entropy_gap))
    v, e = analysis.selected_vepo, analysis.selected_entropy
    cats = frame["category"].to_numpy()
    assert (cats == "both").sum() == (v & e).sum()
    assert (cats == "vepo_only").sum() == (v & ~e).sum()
    assert (cats == "entropy_only").sum() == (~v & e).sum()
    assert (cats == "neither").sum() == (~v & ~e).sum()
    assert list(frame["top1"]) == [row[0] for row in analysis.top_tokens]


def test_summary_numbers_match_the_definitions(analysis):
    s = data.summary(analysis)
    assert s.n_vepo == analysis.selected_vepo.sum() == math.ceil(0.2 * len(analysis.tokens))
    assert s.overlap == pytest.approx(
        selection_overlap_fraction(analysis.selected_vepo, analysis.selected_entropy)
    )
    assert s.vepo_low_entropy == pytest.approx(
        low_entropy_share(analysis.selected_vepo, analysis.entropy)
    )
    assert s.entropy_low_entropy == 0.0  # top-20% by entropy is never below the median
    md = data.summary_markdown(analysis)
    assert f"picks **{s.n_vepo}**" in md and "below-median entropy" in md


def test_summary_by_hand():
    """4 tokens, ratio 0.5: entropy picks the two highest H, VEPO a low-H visual token."""
    a = fake_analysis("A B C D", settings=AnalysisSettings(scoring={"ratio": 0.5}))
    a.entropy[:] = [3.0, 2.0, 0.1, 0.2]
    a.selected_entropy[:] = [True, True, False, False]
    a.selected_vepo[:] = [True, False, True, False]
    s = data.summary(a)
    assert (s.n_both, s.n_vepo_only, s.n_entropy_only) == (1, 1, 1)
    assert s.overlap == 0.5 and s.jaccard == pytest.approx(1 / 3)
    assert s.vepo_low_entropy == 0.5  # 0.1 < median 1.1; 3.0 is not
    assert s.median_entropy == pytest.approx(1.1)


def test_table_is_rounded_and_shows_whitespace():
    a = fake_analysis(tokens=["Hi", " ", "\n", " there"])
    table = data.table(a)
    assert list(table["token"])[1:3] == ["\u2423", "\u21b5"]
    assert table["entropy"].round(4).equals(table["entropy"])


def test_wrap_lines_respects_width_and_newlines():
    tokens = ["aaaa"] * 10 + ["b\n", "c"]
    lines = figures.wrap_lines([data.display_token(t) for t in tokens], tokens, 20)
    assert [i for line in lines for i in line] == list(range(12))
    for line in lines:
        width = sum(len(data.display_token(tokens[i])) + figures.TOKEN_PAD for i in line)
        assert width <= 20 + 4 or len(line) == 1
    assert lines[-1] == [11] and 10 in lines[-2]  # "b\n" ends its line
    with pytest.raises(ValueError, match="chars_per_line"):
        figures.wrap_lines(["a"], ["a"], 2)


def test_token_heatmap_rows_hover_and_legend(analysis):
    fig = figures.token_heatmap(analysis)
    n = len(analysis.tokens)
    bars = [t for t in fig.data if t.type == "bar"]
    continuous = [t for t in bars if t.marker.coloraxis]
    assert len(continuous) == 3  # entropy, visual sensitivity, score
    assert all(len(t.x) == n for t in continuous)
    np.testing.assert_allclose(continuous[0].marker.color, analysis.entropy, rtol=1e-6)
    categorical = [t for t in bars if not t.marker.coloraxis]
    assert {t.name for t in categorical} >= {"both", "VEPO only (visual forking tokens)"}
    assert sum(len(t.x) for t in categorical) == n
    # hover carries every number of the token
    template = continuous[0].hovertemplate
    for word in ("entropy H", "noisy entropy", "JSD", "KL", "visual sensitivity", "score s"):
        assert word in template
    custom = np.asarray(continuous[0].customdata)
    assert custom.shape == (n, 12)
    np.testing.assert_allclose(custom[:, 5].astype(float), analysis.jsd, rtol=1e-6)


def test_heatmap_wraps_long_responses_and_changes_with_ratio():
    long = fake_analysis("The red square is left of the blue circle. " * 12)
    fig = figures.token_heatmap(long, chars_per_line=40)
    short = figures.token_heatmap(fake_analysis("The red square."), chars_per_line=40)
    assert fig.layout.height > 3 * short.layout.height
    wide = long.rescore(ratio=0.6)
    count = lambda f, name: sum(len(t.x) for t in f.data if t.name == name)  # noqa: E731
    names = ("both", "VEPO only (visual forking tokens)")
    assert sum(count(figures.token_heatmap(wide), n) for n in names) == wide.selected_vepo.sum()
    assert wide.selected_vepo.sum() > long.selected_vepo.sum()


def test_scatter_detail_and_compare(analysis):
    n = len(analysis.tokens)
    scatter = figures.entropy_scatter(analysis)
    assert sum(len(t.x) for t in scatter.data) == n
    detail = figures.token_detail(analysis, 2)
    clean, noisy = detail.data
    np.testing.assert_allclose(clean.x, analysis.top_probs[2], rtol=1e-6)
    np.testing.assert_allclose(noisy.x, analysis.top_probs_noisy[2], rtol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        figures.token_detail(analysis, n)
    other = analysis.rescore(score_type="entropy")
    diff = data.selection_difference(analysis, other)
    assert set(diff) <= {"both", "a_only", "b_only", "neither"}
    assert (diff == "both").sum() == (analysis.selected_vepo & other.selected_vepo).sum()
    fig = figures.compare_figure(analysis, other, "D", "entropy")
    assert "D only" in {t.name for t in fig.data}
    with pytest.raises(ValueError, match="different tokens"):
        figures.compare_figure(analysis, fake_analysis("Other words here."))


def test_batch_figures_per_family():
    frames = []
    for i, fam in enumerate(["color", "count", "color"]):
        frame = fake_analysis(seed=i).to_dataframe()
        frame["example"], frame["family"] = f"ex{i}", fam
        frames.append(frame)
    tokens = pd.concat(frames, ignore_index=True)
    figs = figures.batch_figures(tokens)
    assert sum(len(t.x) for t in figs["scatter"].data) == len(tokens)
    bars = figs["low_entropy"].data[0]
    assert list(bars.x) == ["color", "count", "all"]
    assert all(0 <= y <= 1 for y in bars.y)
    with pytest.raises(ValueError, match="lacks columns"):
        figures.batch_figures(tokens.drop(columns=["entropy"]))


def test_views_of_results_without_images():
    from pathlib import Path

    from vepo_viz.analysis import add_views
    from vepo_viz.render.images import NO_IMAGE, views_of
    from vepo_viz.results import TokenAnalysis

    legacy = Path(__file__).parent / "legacy"
    assert views_of(TokenAnalysis.load(legacy / "analysis_v1.json")) == (None, None, NO_IMAGE)
    app = TokenAnalysis.load(legacy / "app_session_v1.json")
    clean, view, caption = views_of(app)
    assert clean is app.image and view is None and "no counterfactual preview" in caption
    viewed = add_views(app)  # an old app file's image gets its preview (CLIP's normalisation)
    assert viewed is not app and app.counterfactual_image is None  # a new result
    clean, view, caption = views_of(viewed)
    assert view.size == clean.size and caption.endswith(f"{viewed.counterfactual_caption}.")


def test_render_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, vepo_viz.render, vepo_viz.render.images; "
        "print('torch' in sys.modules, 'vepo_viz.perturb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
