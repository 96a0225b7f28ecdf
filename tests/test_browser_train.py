"""A real browser starts the Train tab's default run (issue 15): the form as it opens,
with fewer steps and no held-out pass, through `python app.py` as a user runs it. The
run's first step must have something to learn from: the runs table shows the share of
groups whose sampled rewards differ ("signal_groups"), at least one half, and no
zero-advantage warning is shown beside the curves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.test_browser import ARGS, CHROMIUM, TIMEOUT_MS, pytestmark  # noqa: F401
from tests.ui_fixtures import embedded_model_ready, serve_app_process
from vepo_viz.train.advice import ZERO_ADVANTAGE_MESSAGE
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.jobs import RunPaths, read_metrics

RUN_S = 900
"""Longest wait for the one-step run (loading the model and TRL, one step of 4 x 16)."""


def table_rows(page) -> list[dict[str, str]]:
    """The Train tab's runs table, read from the DOM: one dict per row, by header."""
    return page.evaluate(
        """() => {
            const root = document.querySelector('#vv-train-table');
            if (!root) return [];
            const heads = [...root.querySelectorAll('th')].map((th) =>
                (th.title || th.textContent).trim());
            const rows = {};
            for (const cell of root.querySelectorAll('[role=gridcell][data-row]')) {
                const r = cell.getAttribute('data-row');
                const c = Number(cell.getAttribute('data-col'));
                (rows[r] = rows[r] || {})[heads[c]] = cell.textContent.trim();
            }
            return Object.values(rows);
        }"""
    )


@pytest.fixture()
def served(tmp_path, monkeypatch):
    if not embedded_model_ready():
        pytest.skip("the embedded tiny model is not built (vepo_viz/tiny/model)")
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", str(root))  # the run's `vepo-viz train` process
    runs = tmp_path / "runs"
    process, url = serve_app_process("embedded", extra_args=("--runs-dir", str(runs)))
    yield url, runs
    process.terminate()
    process.wait(timeout=60)


def test_default_train_tab_run_has_advantage_at_its_first_step(served):
    from playwright.sync_api import sync_playwright

    url, runs = served
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_role("tab", name="Train").click()
        name = page.locator("#vv-train-name textarea")
        name.fill("default")
        steps = page.locator('#vv-train-steps input[type="number"]')
        steps.fill("1")  # fewer steps: everything else is the form as it opened
        page.locator("#vv-train-extra textarea").fill("n_eval = 0")
        page.locator("#vv-train-start").click()
        message = page.locator("#vv-train-message")
        message.get_by_text("started").wait_for(timeout=TIMEOUT_MS)
        end = time.time() + RUN_S
        row: dict[str, str] = {}
        while time.time() < end:
            rows = [r for r in table_rows(page) if r.get("run") == "default"]
            row = rows[0] if rows else {}
            if row.get("state") in ("finished", "failed"):
                break
            page.wait_for_timeout(2000)
        run = runs / "default"
        log = RunPaths(run).log.read_text()[-2000:] if RunPaths(run).log.exists() else ""
        assert row.get("state") == "finished", (row, log)
        advice = page.locator("#vv-train-advice").inner_text()
        browser.close()
    # the form's defaults reached the run: only steps and n_eval were changed
    config, defaults = TrainConfig.load_run(run), TrainConfig()
    assert (config.steps, config.n_eval) == (1, 0)
    for key in ("families", "difficulty", "group_size", "prompts_per_step", "temperature", "lr"):
        assert getattr(config, key) == getattr(defaults, key), key
    shown = float(row["signal_groups"])
    first = read_metrics(run).dropna(subset=["zero_adv_groups"]).iloc[0]
    assert first["step"] == 1
    assert shown == pytest.approx(1.0 - first["zero_adv_groups"], abs=1e-3)
    assert shown >= 0.5, f"only {shown:.0%} of the first step's groups had nonzero advantage"
    assert ZERO_ADVANTAGE_MESSAGE not in advice
