"""Issue 14's display items without a browser: raw signals beside normalised ones, number
formats, labels, quiet PDF exports, no temp paths in errors, and Load restoring the inputs
and every counterfactual setting."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from tests.ui_fixtures import FakeBackend, fake_analysis
from vepo_viz.analysis import AnalysisSettings
from vepo_viz.perturb import PerturbConfig
from vepo_viz.render import data, export, figures
from vepo_viz.render.labels import fmt, model_label
from vepo_viz.ui import handlers as h
from vepo_viz.ui.app import build_app
from vepo_viz.ui.controls import ControlValues
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.labels import MAX_CHOICE_CHARS, SCOPE_INFO, TABLE_LABEL, scope_note
from vepo_viz.ui.session import Session, save_session

LONG_NUMBER = re.compile(r"\d\.?\d{7,}")


def tiny_signal():
    """An analysis whose JSD is float noise (3e-08) while v spans 0-1 (normalised)."""
    a = fake_analysis()
    return replace(a, jsd=np.full(len(a.tokens), 3e-8) * np.linspace(1, 2, len(a.tokens)))


def test_hover_shows_raw_jsd_and_gap_beside_v_and_s():
    a = tiny_signal()
    fig = figures.token_heatmap(a)
    for trace in fig.data:
        if trace.type != "bar" or not len(trace.x):
            continue
        assert (
            "%{hovertext}" in trace.hovertemplate.split("visual sensitivity v")[1].split("<br>")[0]
        )
        assert all("raw JSD" in t and "e-08" in t and "|dH|" in t for t in trace.hovertext)
        assert ":.4f" not in trace.hovertemplate  # 3e-08 would read 0.0000
    selection = [t for t in fig.data if t.name == "VEPO only (visual forking tokens)"]
    assert selection and selection[0].hovertemplate.startswith("<b>VEPO only")
    scatter = figures.entropy_scatter(a)
    assert all(len(t.hovertext) == len(t.x) for t in scatter.data)


def test_table_has_raw_signals_beside_v_and_s_and_keeps_tiny_values():
    a = tiny_signal()
    table = data.table(a)
    cols = list(table.columns)
    assert cols.index("jsd") + 1 == cols.index("abs_entropy_gap")
    assert cols.index("abs_entropy_gap") + 1 == cols.index("visual_sensitivity")
    assert (table["jsd"] > 0).all() and table["jsd"].iloc[0] == pytest.approx(3e-8)
    assert table["entropy"].round(4).equals(table["entropy"])


def test_numbers_are_formatted():
    assert fmt(0.00009099238377530128) == "9.10e-05"
    assert fmt(0.46) == "0.46" and fmt(3e-8) == "3.00e-08" and fmt(0.0) == "0"
    a = tiny_signal()
    title = figures.token_detail(a, 0).layout.title.text
    assert "JSD=3" in title and "|dH|=" in title and not LONG_NUMBER.search(title)


def test_summary_names_the_score_type():
    a = fake_analysis()
    assert "VEPO (D, alpha=0.70)" in data.summary_markdown(a)
    entropy = data.summary_markdown(a.rescore(score_type="entropy"))
    assert "VEPO (entropy" not in entropy and "score `entropy` picks" in entropy
    assert "VEPO ablation C (alpha=0.50)" in data.summary_markdown(
        a.rescore(score_type="C", alpha=0.5)
    )


def test_scope_is_explained_and_the_note_says_when_all_three_agree():
    a = fake_analysis()
    assert "response" in SCOPE_INFO and "batch" in SCOPE_INFO and "quantile" in SCOPE_INFO
    assert "select the same tokens" in scope_note(a)
    tied = fake_analysis()
    n = len(tied.tokens)
    # every score ties: quantile keeps them all
    tied = replace(tied, scores=np.zeros(n), selected_vepo=np.zeros(n, dtype=bool))
    assert "differ" in scope_note(tied)


def test_app_labels_scope_info_table_and_short_score_types():
    demo = build_app(FakeBackend(), samples=[])
    blocks = list(demo.blocks.values())
    scope = next(b for b in blocks if getattr(b, "elem_id", None) == "vv-scope")
    assert scope.info == SCOPE_INFO
    table = next(b for b in blocks if getattr(b, "elem_id", None) == "vv-table")
    assert table.label == TABLE_LABEL and "click a header" not in table.label
    score_type = next(b for b in blocks if getattr(b, "elem_id", None) == "vv-score-type")
    assert all(len(label) <= MAX_CHOICE_CHARS for label, _ in score_type.choices)
    assert "(1-j)^a" in score_type.info  # the full formula is still on screen


def test_exports_name_no_machine_path():
    a = fake_analysis(model_id="/home/someone/checkpoints/qwen-vl-ft")
    tex = export.latex_snippet(a)
    page = export.html_document(a)
    for text in (tex, page):
        assert "/home/someone" not in text and "checkpoints" not in text and "qwen" in text
    assert model_label("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"
    from vepo_viz.tiny import DEFAULT_MODEL

    assert model_label(DEFAULT_MODEL) == "embedded"


def test_pdf_export_does_not_flood_the_log(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("fontTools").setLevel(logging.NOTSET)  # as a fresh server has it
    export.save_heatmap(fake_analysis(), tmp_path / "fig.pdf")
    assert not [r for r in caplog.records if r.name.startswith("fontTools")]


def test_errors_show_the_file_name_not_gradios_temp_path(tmp_path):
    import tempfile

    temp = f"{tempfile.gettempdir()}/gradio/0f3a9c2b7e/holiday photo.png"

    def broken():
        raise OSError(f"cannot identify image file '{temp}'")

    with pytest.raises(gr.Error) as info:
        user_errors(broken)()
    assert "gradio/" not in info.value.message and "photo.png" in info.value.message


def test_colour_scale_is_a_session_display_option(tmp_path):
    session = Session(base=fake_analysis(), current=fake_analysis())
    session, heatmap = h.recolor(session, "rank")
    assert session.color_scale == "rank" and heatmap.layout.coloraxis.cmax == 1.0
    _, view = h.rescore(session, 0.2, 0.7, "D", "response")
    assert view.heatmap.layout.coloraxis.colorbar.ticktext == ("lowest", "highest")
    tex = h.export_file(session, "tex")
    assert "highest" in open(tex, encoding="utf-8").read()
    with pytest.raises(ValueError, match="colour scale"):
        h.recolor(session, "log")


def test_load_restores_the_image_and_every_counterfactual_setting(tmp_path):
    perturb = PerturbConfig(mode="patch", patch_size=9, patch_prob=0.3, n_draws=2, seed=4)
    settings = AnalysisSettings(perturb=perturb, scoring={"ratio": 0.4}, seed=4)
    assert ControlValues.of(settings).settings() == settings
    image = Image.new("RGB", (112, 112), (10, 200, 30))
    analysis = replace(fake_analysis(settings=settings), image=image)
    path = save_session(Session(base=analysis, current=analysis))

    demo = build_app(FakeBackend(), samples=[])
    load = next(f for f in demo.fns.values() if f.api_name == "load")
    out = load.fn(path, None)
    by_id = {getattr(c, "elem_id", None): v for c, v in out.items()}
    image = by_id["vv-image"]
    assert isinstance(image, Image.Image)
    assert np.array_equal(np.asarray(image), np.asarray(analysis.image))
    by_label = {getattr(c, "label", None): v for c, v in out.items()}
    assert by_label["patch size"] == 9 and by_label["patch probability"] == 0.3
    assert by_label["mode"] == "patch"
