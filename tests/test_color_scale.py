"""The colour-scale option (render.scales): per response / absolute / rank, in the plotly
views and every export, and the acceptance check of issue 14: at default settings the
score row of the exported PNG and PDF spans at least half of the colour map on every
sample of sample_data/, measured from the rendered pixels."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from tests.ui_fixtures import embedded_model_ready, fake_analysis
from vepo_viz.render import export, figures
from vepo_viz.render.colors import DEFAULT_COLORMAP
from vepo_viz.render.data import token_frame
from vepo_viz.render.export.panels import make_panel
from vepo_viz.render.scales import COLOR_SCALES, DEFAULT_COLOR_SCALE, ranks, scaled

MIN_SPAN = 0.5
"""The acceptance threshold: share of the colour map the score row must cover."""


def heavy_tailed(seed: int = 0):
    """A fake analysis whose scores look like the embedded model's: ~1e-9 to ~1e-2."""
    a = fake_analysis(seed=seed)
    n = len(a.tokens)
    rng = np.random.default_rng(seed)
    return replace(a, scores=10.0 ** rng.uniform(-11, -2, n))


def lut(cmap: str = DEFAULT_COLORMAP) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255


def map_positions(rgb: np.ndarray, cmap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Colour-map position in [0, 1] of each (N, 3) 0-255 colour (nearest of 256 entries);
    asserts that every colour is one of the map's (so we measured a box, not ink)."""
    table = lut(cmap)
    dist = np.linalg.norm(rgb[:, None, :].astype(float) - table[None], axis=2)
    assert dist.min(axis=1).max() < 8, "sampled a pixel that is not a colour-map colour"
    return dist.argmin(axis=1) / 255


def score_box_pixels(analysis, image: np.ndarray, options) -> np.ndarray:
    """(T, 3) colour of each score-panel box, read from a raster `image` of the figure:
    the left padding strip of each box, where no glyph is drawn."""
    fig = export.heatmap_figure(analysis, options)
    ax = fig.axes[0]
    n = len(analysis.tokens)
    k = options.signals.index("score")
    boxes = ax.patches[k * n : (k + 1) * n]
    width_pt, height_pt = ax.get_xlim()[1], ax.get_ylim()[0]
    h_px, w_px = image.shape[:2]
    pad_pt = 0.18 * options.font_size
    out = []
    for box in boxes:
        x = (box.get_x() + 0.4 * pad_pt) / width_pt * w_px
        y = (box.get_y() + box.get_height() / 2) / height_pt * h_px
        out.append(image[int(round(y)), int(round(x)), :3])
    return np.asarray(out)


def span(positions: np.ndarray) -> float:
    return float(positions.max() - positions.min())


def test_scales_and_ranks():
    values = np.array([1e-9, 1e-3, 1e-3, 0.1, np.nan])
    np.testing.assert_allclose(ranks(values)[:4], [0, 0.5, 0.5, 1])
    assert np.isnan(ranks(values)[4])
    colour, lo, hi = scaled(values, "score", "0-1", "response")
    assert (lo, hi) == (1e-9, 0.1) and colour is not None
    assert scaled(values, "score", "0-1", "absolute")[1:] == (0.0, 1.0)
    assert scaled(values, "jsd", "nats", "absolute")[2] == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="colour scale"):
        scaled(values, "score", "0-1", "log")
    with pytest.raises(ValueError, match="colour scale"):
        export.FigureOptions(color_scale="log")
    assert DEFAULT_COLOR_SCALE in COLOR_SCALES


def test_default_score_row_uses_the_whole_map_in_app_and_exports():
    a = heavy_tailed()
    fig = figures.token_heatmap(a)
    axes = fig.layout.coloraxis3  # entropy, visual sensitivity, score
    assert axes.cmax == pytest.approx(a.scores.max()) and axes.cmin == pytest.approx(a.scores.min())
    panel = make_panel(a, token_frame(a), "score", DEFAULT_COLORMAP)
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in panel.face])
    assert span(map_positions(rgb)) >= 0.99


def test_rank_and_absolute_scales_everywhere(tmp_path):
    a = heavy_tailed()
    rank = figures.token_heatmap(a, color_scale="rank")
    np.testing.assert_allclose(sorted(rank.data[2].marker.color), np.linspace(0, 1, len(a.tokens)))
    assert rank.layout.coloraxis3.colorbar.ticktext == ("lowest", "highest")
    absolute = figures.token_heatmap(a, color_scale="absolute")
    assert (absolute.layout.coloraxis3.cmin, absolute.layout.coloraxis3.cmax) == (0.0, 1.0)
    # the hover numbers are the raw values under every scale
    np.testing.assert_allclose(rank.data[2].customdata[:, 8].astype(float), a.scores)
    tex = export.latex_snippet(a, "score", color_scale="rank")
    assert "lowest" in tex and "highest" in tex
    page = export.html_document(a, ("score",), color_scale="absolute")
    assert "colour: absolute" in page
    compare = figures.compare_figure(a, a, color_scale="rank")
    assert compare.layout.coloraxis.cmax == 1.0
    for fmt in ("png", "svg", "tex", "html"):
        path = export.export_analysis(
            a, tmp_path / f"r.{fmt}", export.FigureOptions(color_scale="rank")
        )
        assert path.stat().st_size > 100


def test_latex_default_is_not_near_identical_dark():
    a = heavy_tailed()
    tex = export.latex_snippet(a, legend=False)
    rgb = np.array(
        [
            [int(v) for v in m.groups()]
            for m in re.finditer(r"colorbox\[RGB\]\{(\d+),(\d+),(\d+)\}", tex)
        ]
    )
    assert len(rgb) == len(a.tokens)
    assert span(map_positions(rgb)) >= MIN_SPAN


@pytest.fixture(scope="module")
def sample_analyses():
    """The embedded model's analysis of every sample in sample_data/ (default settings)."""
    if not embedded_model_ready():
        pytest.skip("the embedded model's weights are not in place")
    import vepo_viz
    from vepo_viz.tiny import DEFAULT_MODEL
    from vepo_viz.ui.samples import load_samples

    model = vepo_viz.load_model(DEFAULT_MODEL, device="cpu")
    samples = load_samples()
    assert len(samples) >= 10
    return {s.image_path: vepo_viz.analyze(model, s.image_path, s.question) for s in samples}


@pytest.mark.slow
def test_exported_png_and_pdf_score_row_spans_half_the_map(sample_analyses, tmp_path):
    from PIL import Image

    pdfium = pytest.importorskip("pypdfium2")
    options = export.FigureOptions()  # default settings
    for i, (name, analysis) in enumerate(sample_analyses.items()):
        png = export.export_analysis(analysis, tmp_path / f"{i}.png")
        image = np.asarray(Image.open(png).convert("RGB"))
        png_span = span(map_positions(score_box_pixels(analysis, image, options)))
        assert png_span >= MIN_SPAN, f"{name}: PNG score row spans {png_span:.2f} of the map"

        pdf = export.export_analysis(analysis, tmp_path / f"{i}.pdf")
        page = pdfium.PdfDocument(str(pdf))[0]
        raster = np.asarray(page.render(scale=options.dpi / 72).to_pil().convert("RGB"))
        pdf_span = span(map_positions(score_box_pixels(analysis, raster, options)))
        assert pdf_span >= MIN_SPAN, f"{name}: PDF score row spans {pdf_span:.2f} of the map"

        tex = export.latex_snippet(analysis, legend=False)
        boxes = re.findall(r"colorbox\[RGB\]\{(\d+),(\d+),(\d+)\}", tex)
        tex_span = span(map_positions(np.array(boxes, dtype=float)))
        assert tex_span >= MIN_SPAN, f"{name}: LaTeX boxes span {tex_span:.2f} of the map"
