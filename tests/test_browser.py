"""A real browser (Debian's Chromium driven by Playwright) against the served app, with a
real model: pick a sample, Analyze, see the heatmap, change the ratio, click a token,
export a PDF. Also writes docs/screenshot.png (the README's screenshot).

Skipped only when /usr/bin/chromium is missing (CI installs it).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ui_fixtures import embedded_model_ready, serve_app_process

CHROMIUM = os.environ.get("VEPO_VIZ_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"
TIMEOUT_MS = 120_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def app_url(tiny_model_dir):
    model = "embedded" if embedded_model_ready() else str(tiny_model_dir("qwen2_vl"))
    process, url = serve_app_process(model)
    yield url
    process.terminate()
    process.wait(timeout=30)


@contextmanager
def browser_page(url: str):
    """A Chromium page (1440 x 1000, downloads on) opened at `url`; closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(
            viewport={"width": 1440, "height": 1000}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(app_url):
    with browser_page(app_url) as page:
        page.wait_for_selector("#vv-analyze")
        yield page


def selection_counts(page) -> dict[str, int]:
    """Tokens per selection category, read from the heatmap's plotly traces."""
    return page.evaluate(
        """() => {
            const gd = document.querySelector('#vv-heatmap .js-plotly-plot');
            const out = {};
            for (const t of gd.data) {
                if (t.type === 'bar' && !(t.marker && t.marker.coloraxis)) {
                    out[t.name] = (out[t.name] || 0) + (t.text ? t.text.length : 0);
                }
            }
            return out;
        }"""
    )


def summary_text(page) -> str:
    return page.locator("#vv-summary").inner_text()


def test_sample_analyze_rescore_click_export(page):
    # pick a sample: fills the image and the question
    page.locator('#vv-samples [data-testid="dataset-cell-0-1"]').click()
    question = page.locator("#vv-question textarea")
    page.wait_for_function("() => document.querySelector('#vv-question textarea').value.length > 0")
    assert question.input_value().endswith("?")

    # Analyze with the real model, wait for the heatmap
    page.locator("#vv-analyze").click()
    page.wait_for_function(
        "() => document.querySelector('#vv-summary').innerText.includes('tokens')"
    )
    # the first plot loads plotly.js (a few MB of script): wait for the drawn bars
    page.wait_for_selector("#vv-heatmap .js-plotly-plot .bars path", timeout=TIMEOUT_MS)
    before = summary_text(page)
    n_tokens = int(re.search(r"(\d+) tokens", before).group(1))
    counts = selection_counts(page)
    assert sum(counts.values()) == n_tokens
    vepo_before = counts.get("both", 0) + counts.get("VEPO only (visual forking tokens)", 0)
    assert "top 20%" in before

    # change the ratio: re-scored without the model, the selection grows
    ratio = page.locator('#vv-ratio input[data-testid="number-input"]')
    ratio.fill("0.6")
    ratio.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#vv-summary').innerText.includes('top 60%')"
    )
    counts = selection_counts(page)
    vepo_after = counts.get("both", 0) + counts.get("VEPO only (visual forking tokens)", 0)
    assert vepo_after > vepo_before or vepo_after == n_tokens
    assert vepo_after == -(-6 * n_tokens // 10)  # ceil(0.6 T)

    # the README's screenshot (after the ratio change, so that all four categories show)
    page.wait_for_selector("#vv-scatter .js-plotly-plot .scatterlayer path")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOT), full_page=False)
    assert SCREENSHOT.stat().st_size > 20_000

    # clicking a token in the heatmap selects it in the detail view
    index = min(2, n_tokens - 1)
    page.evaluate(
        """(i) => {
            const gd = document.querySelector('#vv-heatmap .js-plotly-plot');
            gd.emit('plotly_click', {points: [{customdata: [i]}]});
        }""",
        index,
    )
    page.wait_for_function(
        """(i) => {
            const title = document.querySelector('#vv-detail .gtitle');
            return title && title.textContent.startsWith('#' + i + ' ');
        }""",
        arg=index,
    )

    # export a PDF and check the file
    page.get_by_text("Export for papers, save and load").click()
    page.locator("#vv-export").click()
    link = page.locator("#vv-export-file a[href]").first
    link.wait_for(timeout=TIMEOUT_MS)
    href = link.get_attribute("href")
    assert href and href.endswith(".pdf")
    blob = page.request.get(href).body()
    assert blob.startswith(b"%PDF") and len(blob) > 5_000
