"""The Train tab's "Selection traces" panel (vepo_viz.ui.traces_panel): its handlers draw
a run's traced completions as token heatmaps and two runs side by side at one step; the
app wires it with API names; a real browser picks a run's step and sees the heatmaps."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
import pytest

from tests.ui_fixtures import fake_analysis, free_port
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.traces import save_traces
from vepo_viz.ui import traces_panel as tp


def _run(root: Path, name: str, steps: list[int], rule: str = "vepo", n: int = 3) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(TrainConfig(out=str(folder)).to_toml())
    for step in steps:
        records = [
            ({"row": b, "rule": rule, "advantage": 0.5 - b, "note": ""}, fake_analysis(seed=b))
            for b in range(n)
        ]
        save_traces(folder, step, records)
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    _run(tmp_path, "vepo-run", [2, 4, 6], n=5)
    _run(tmp_path, "all-run", [2, 4], rule="all")
    folder = tmp_path / "untraced"
    folder.mkdir()
    (folder / "config.toml").write_text(TrainConfig(out=str(folder)).to_toml())
    return tmp_path


def _heatmap_tokens(figure) -> int:
    return sum(len(t.text) for t in figure.data if t.type == "bar" and t.text is not None)


def test_runs_and_steps(root):
    assert sorted(tp.traced_runs(root)) == ["all-run", "vepo-run"]
    assert tp.steps_of(root, "vepo-run") == [2, 4, 6]
    assert tp.steps_of(root, "untraced") == [] and tp.steps_of(root, "../etc") == []


def test_one_run_at_a_step_gives_one_heatmap_per_completion(root):
    caption, figures = tp.trace_heatmaps(root, "vepo-run", 4)
    assert len(figures) == tp.SLOTS  # 5 traced, the first SLOTS shown
    assert "step 4" in caption and "4 of 5" in caption and "vepo" in caption
    for b, figure in enumerate(figures):
        assert isinstance(figure, type(tp.rfig.token_heatmap(fake_analysis())))
        assert figure.layout.title.text.startswith(f"completion {b}, advantage")
        assert figure.layout.title.text.endswith("selected")
        assert _heatmap_tokens(figure) > 0
    caption, figures = tp.trace_heatmaps(root, "vepo-run", "5")
    assert figures == [] and "no trace at step 5" in caption and "2, 4, 6" in caption
    assert tp.trace_heatmaps(root, "untraced", 2)[1] == []
    assert "no run named" in tp.trace_heatmaps(root, "../x", 2)[0]


def test_two_runs_side_by_side_at_the_same_step(root):
    a, figs_a, b, figs_b = tp.side_by_side(root, "vepo-run", "all-run", 2)
    assert len(figs_a) == 4 and len(figs_b) == 3
    assert "vepo-run" in a and "all-run" in b and "step 2" in b
    a, figs_a, b, figs_b = tp.side_by_side(root, "vepo-run", "all-run", 6)
    assert len(figs_a) == 4 and figs_b == [] and "no trace at step 6" in b
    assert tp.side_by_side(root, "vepo-run", tp.NONE, 2)[2:] == ("", [])


def test_panel_events_and_api_names(root):
    with gr.Blocks() as demo:
        panel = tp.build_traces_panel(root)
    names = {d["api_name"] for d in demo.config["dependencies"] if d.get("api_name")}
    assert {"trace_steps", "trace_show", "trace_runs"} <= names
    assert sorted(panel.run.choices) == sorted([(n, n) for n in ("all-run", "vepo-run")])
    assert len(panel.plots) == len(panel.other_plots) == tp.SLOTS


def test_the_train_tab_has_the_panel(tmp_path):
    from vepo_viz.ui.train_tab import build_train_tab

    with gr.Blocks() as demo:
        build_train_tab(runs_root=tmp_path)
    names = {d["api_name"] for d in demo.config["dependencies"] if d.get("api_name")}
    assert "trace_show" in names


CHROMIUM = os.environ.get("VEPO_VIZ_CHROMIUM", "/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")
def test_browser_picks_a_runs_step_and_sees_the_heatmaps(root):
    from playwright.sync_api import sync_playwright

    from tests.test_browser import ARGS

    with gr.Blocks() as demo:
        tp.build_traces_panel(root)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Selection traces").click()
            _pick(page, "#vv-traces-run", "vepo-run")
            page.wait_for_selector("#vv-traces-a-0 .js-plotly-plot")
            assert "step 6" in page.inner_text("#vv-traces-a-info")  # the newest step
            _pick(page, "#vv-traces-step", "2")
            page.wait_for_function(
                "() => document.querySelector('#vv-traces-a-info').innerText.includes('step 2')"
            )
            _pick(page, "#vv-traces-other", "all-run")
            page.wait_for_selector("#vv-traces-b-0 .js-plotly-plot")
            assert "all-run" in page.inner_text("#vv-traces-b-info")
            bars = page.evaluate(
                """() => document.querySelector('#vv-traces-a-0 .js-plotly-plot')
                    .data.filter(t => t.type === 'bar').length"""
            )
            assert bars > 0
            browser.close()
    finally:
        demo.close()


def _pick(page, elem_id: str, value: str) -> None:
    page.click(f"{elem_id} input")
    page.get_by_role("option", name=value, exact=True).click()
