"""Paper exports: PDF/SVG/PNG heatmaps, LaTeX (compiled when pdflatex exists), HTML,
CSV/JSON, and the counterfactual image preview."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.ui_fixtures import fake_analysis
from vepo_viz.perturb import counterfactual_preview
from vepo_viz.render import export
from vepo_viz.results import TokenAnalysis

NASTY = [
    "Cost",
    " $5",
    " &",
    " 50%",
    " {x_1}",
    " #3",
    " a^2",
    " ~",
    " \\frac",
    " <b>",
    ' "q"',
    " |y|",
    " 3×4",
    " ≥",
    " é",
    " 漢",
    "\n",
    " --",
    " [1]",
    " `x'",
]


@pytest.fixture(scope="module")
def analysis():
    return fake_analysis(seed=5)


@pytest.fixture(scope="module")
def nasty():
    return fake_analysis(tokens=NASTY)


def test_pdf_svg_png_files(tmp_path, analysis):
    pdf = export.export_analysis(analysis, tmp_path / "h.pdf")
    blob = pdf.read_bytes()
    assert blob.startswith(b"%PDF") and len(blob) > 5000
    assert b"/FontFile2" in blob  # TrueType embedded (fonttype 42)
    svg = export.export_analysis(analysis, tmp_path / "h.svg").read_text()
    assert "<svg" in svg and ">diamond<" in svg  # text stays text (svg.fonttype none)
    options = export.FigureOptions(width_in=4.0, dpi=100, font_size=8)
    png = export.export_analysis(analysis, tmp_path / "h.png", options)
    with Image.open(png) as im:
        assert im.width == 400  # width in inches x dpi


def test_figure_options_wrap_legend_colorbar(tmp_path):
    long = fake_analysis("The red square is left of the blue circle. " * 10)
    narrow = export.heatmap_figure(long, export.FigureOptions(width_in=3.0))
    wide = export.heatmap_figure(long, export.FigureOptions(width_in=9.0))
    assert narrow.get_size_inches()[0] == pytest.approx(3.0)
    assert narrow.get_size_inches()[1] > 2 * wide.get_size_inches()[1]  # wrapped over lines
    with_bars = export.heatmap_figure(long, export.FigureOptions())
    without = export.heatmap_figure(long, export.FigureOptions(colorbar=False, legend=False))
    assert len(with_bars.axes) == 1 + 3 and len(without.axes) == 1
    assert with_bars.axes[0].get_legend() is not None and without.axes[0].get_legend() is None
    single = export.heatmap_figure(long, export.FigureOptions(signals=("entropy",)))
    assert single.get_size_inches()[1] < with_bars.get_size_inches()[1]
    texts = [t.get_text() for t in single.axes[0].texts]
    assert texts.count("red") == long.tokens.count(" red")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width_in": 0.2}, "width"),
        ({"font_size": 1}, "font size"),
        ({"dpi": 5}, "dpi"),
        ({"cmap": "jet"}, "colour map"),
        ({"font_family": "No Such Font 123"}, "not installed"),
        ({"signals": ("nope",)}, "unknown panel"),
        ({"signals": ()}, "at least one"),
    ],
)
def test_figure_options_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        export.FigureOptions(**kwargs)


def test_fonts_and_colormaps_offered():
    fonts = export.available_fonts()
    assert "DejaVu Sans" in fonts and "serif" in fonts
    for cmap in ("cividis", "viridis"):
        export.FigureOptions(cmap=cmap)


def test_latex_escape_every_special_character():
    assert export.latex_escape("$&%#_{}") == r"\$\&\%\#\_\{\}"
    assert export.latex_escape("\\") == r"\textbackslash{}"
    assert export.latex_escape("^~") == r"\textasciicircum{}\textasciitilde{}"
    assert export.latex_escape("<>|") == r"\textless{}\textgreater{}\textbar{}"
    assert export.latex_escape("--") == "-{}-{}"
    assert export.latex_escape("é") == "é"
    assert export.latex_escape("漢") == "[U+6F22]"
    assert export.latex_escape("3×4") == r"3\ensuremath{\times}4"
    # nothing unescaped survives: every special is preceded by a backslash or inside {}
    escaped = export.latex_escape("".join(NASTY))
    assert not re.search(r"(?<!\\)[$&%#_]", escaped)


def test_latex_snippet_structure(nasty):
    snippet = export.latex_snippet(nasty, "score", legend=False)
    boxes = re.findall(r"\\colorbox\[RGB\]\{(\d+),(\d+),(\d+)\}", snippet)
    assert len(boxes) == len(NASTY)
    assert all(0 <= int(c) <= 255 for box in boxes for c in box)
    unescaped = snippet.replace(r"\{", "").replace(r"\}", "")
    assert unescaped.count("{") == unescaped.count("}")  # balanced groups
    assert "\\usepackage{xcolor}" in snippet  # the comment says what to load
    selection = export.latex_snippet(nasty, "selection")
    assert "VEPO only" in selection
    doc = export.latex_snippet(nasty, standalone=True)
    assert doc.startswith("\\documentclass") and doc.rstrip().endswith("\\end{document}")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
@pytest.mark.parametrize("signal", ["score", "selection"])
def test_latex_snippet_compiles(tmp_path, nasty, signal):
    (tmp_path / "doc.tex").write_text(export.latex_snippet(nasty, signal, standalone=True))
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "doc.pdf").read_bytes().startswith(b"%PDF")


def test_html_is_standalone_and_escaped(tmp_path, nasty):
    page = export.html_document(nasty)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert page.count('class="tok"') == 4 * len(NASTY)  # 3 signals + selection
    assert "visual sensitivity = " in page  # numbers in each token's tooltip
    path = export.export_analysis(nasty, tmp_path / "a.html")
    assert path.read_text(encoding="utf-8") == page


def test_csv_and_json_round_trip(tmp_path, analysis):
    csv = pd.read_csv(export.export_analysis(analysis, tmp_path / "a.csv"))
    assert len(csv) == len(analysis.tokens)
    np.testing.assert_allclose(csv["jsd"], analysis.jsd, rtol=1e-6)
    loaded = TokenAnalysis.load(export.export_analysis(analysis, tmp_path / "a.json"))
    np.testing.assert_array_equal(loaded.scores, analysis.scores)
    assert loaded.tokens == analysis.tokens and loaded.settings == analysis.settings
    with pytest.raises(ValueError, match="export format"):
        export.export_analysis(analysis, tmp_path / "a.docx")


def _image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode", ["gaussian_pixel", "black", "blur", "patch"])
def test_pixel_mode_preview_is_the_exact_view(mode):
    from vepo_viz.perturb import PerturbConfig, perturb_image

    config = PerturbConfig(mode=mode, sigma=0.5, seed=3)
    view, caption = counterfactual_preview(_image(), config)
    expected = perturb_image(
        _image(), mode, sigma=0.5, generator=config.generator(0), patch_size=14
    )
    assert np.array_equal(np.asarray(view), np.asarray(expected))
    assert "exact" in caption


def test_normalised_mode_previews():
    from vepo_viz.perturb import PerturbConfig

    image = Image.new("RGB", (64, 64), (128, 128, 128))
    view, caption = counterfactual_preview(
        image, PerturbConfig(mode="gaussian", sigma=0.2), image_std=[0.1, 0.1, 0.1]
    )
    spread = np.asarray(view, dtype=np.float64) / 255 - 128 / 255
    assert spread.std() == pytest.approx(0.2 * 0.1, rel=0.1)  # sigma x std in pixel units
    assert "clamped" in caption
    flat, caption = counterfactual_preview(
        image, PerturbConfig(mode="no_image"), image_mean=[0.5, 0.25, 1.0]
    )
    assert np.asarray(flat)[0, 0].tolist() == [128, 64, 255]
    assert "mean" in caption
