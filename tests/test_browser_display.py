"""Issue 14's display checks in a real browser (Chromium via Playwright, the embedded
model): the layout at 1440 and 800 px, hover numbers, an input error, Load then Analyze.

Skipped only when /usr/bin/chromium is missing (CI installs it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests import test_browser
from tests.test_browser import ARGS, CHROMIUM, TIMEOUT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}"),
]

app_url = test_browser.app_url
"""The served app (embedded model), one per module: the fixture of test_browser.py."""

MIN_TOKEN_TEXT_PX = 10.0
"""Smallest readable height of a token's text in the heatmap (it shrank to ~5 px)."""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str, width: int):
    context = browser.new_context(viewport={"width": width, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#vv-analyze")
    return page


def analyze_sample(page, index: int = 0) -> None:
    page.locator(f'#vv-samples [data-testid="dataset-cell-{index}-1"]').click()
    page.wait_for_function("() => document.querySelector('#vv-question textarea').value.length > 0")
    page.locator("#vv-analyze").click()
    wait_for_analysis(page)


def wait_for_analysis(page) -> None:
    page.wait_for_function(
        "() => document.querySelector('#vv-summary').innerText.includes('tokens')"
    )
    page.wait_for_selector("#vv-heatmap .js-plotly-plot .bars path", timeout=TIMEOUT_MS)


LAYOUT_JS = """() => {
  const heights = Array.from(document.querySelectorAll('#vv-heatmap text.bartext'))
    .map(t => t.getBoundingClientRect().height).sort((a, b) => a - b);
  const bars = Array.from(document.querySelectorAll('#vv-heatmap .cbtitle')).map(e => {
    const r = e.getBoundingClientRect();
    return {text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  });
  const input = document.querySelector('#vv-score-type input');
  const labels = Array.from(document.querySelectorAll('#vv-images [data-testid="block-label"]'))
    .map(label => {
      const block = label.closest('.block') || label.parentElement;
      const box = block.getBoundingClientRect();
      const lr = label.getBoundingClientRect();
      const buttons = Array.from(block.querySelectorAll('button'))
        .map(b => b.getBoundingClientRect())
        .filter(b => b.width > 0 && b.top < lr.bottom && b.bottom > lr.top && b.left >= lr.left);
      const firstButton = Math.min(box.right, ...buttons.map(b => b.left));
      return {text: label.innerText.trim(), fits: label.scrollWidth <= label.clientWidth + 1,
              right: lr.right, limit: firstButton};
    });
  return {median: heights[Math.floor(heights.length / 2)], n: heights.length, bars,
          scoreType: {scroll: input.scrollWidth, client: input.clientWidth, value: input.value},
          labels};
}"""


def overlap(a: dict, b: dict) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


@pytest.mark.parametrize("width", [1440, 800])
def test_layout_is_readable_at_1440_and_800_px(browser, app_url, width):
    page = open_page(browser, app_url, width)
    analyze_sample(page)
    page.wait_for_timeout(500)
    got = page.evaluate(LAYOUT_JS)
    page.context.close()
    assert got["n"] > 0
    assert got["median"] >= MIN_TOKEN_TEXT_PX, f"token text {got['median']:.1f} px at {width} px"
    bars = got["bars"]
    assert len(bars) == 3
    for i, a in enumerate(bars):
        for b in bars[i + 1 :]:
            assert not overlap(a, b), f"colour-bar titles {a['text']!r} and {b['text']!r} overlap"
    st = got["scoreType"]
    assert st["scroll"] <= st["client"], f"score type {st['value']!r} is cut off"
    titles = {label["text"]: label for label in got["labels"]}
    for name in ("clean image", "counterfactual"):
        label = titles[name]
        assert label["fits"] and label["right"] <= label["limit"] + 1, f"{name!r} is cut off"


def significant_digits(number: str) -> int:
    """3 for "0.00000478", 16 for "0.00009099238377530128" (an unformatted float)."""
    return len(number.replace(".", "").lstrip("0"))


def test_hover_shows_raw_signals_formatted(browser, app_url):
    page = open_page(browser, app_url, 1440)
    analyze_sample(page)
    centers = page.evaluate(
        """() => Array.from(document.querySelectorAll('#vv-heatmap g.trace.bars'))
            .flatMap(g => Array.from(g.querySelectorAll('.point path')).slice(0, 12))
            .map(p => { const r = p.getBoundingClientRect();
                        return [r.left + r.width / 2, r.top + r.height / 2]; })
            .filter(([x, y]) => x > 0 && y > 0)"""
    )
    texts = []
    for x, y in centers:  # a real mouse over each token box of every row
        page.mouse.move(x, y)
        page.wait_for_timeout(50)
        texts.append(
            page.evaluate(
                """() => Array.from(document.querySelectorAll('#vv-heatmap .hoverlayer text'))
                    .map(e => e.textContent).join(' ')"""
            )
        )
    texts = [t for t in texts if t]
    page.context.close()
    assert texts
    for text in texts:
        assert "raw JSD" in text and "|dH|" in text, text
        assert max(map(significant_digits, re.findall(r"\d+(?:\.\d+)?", text))) <= 6, text
    categories = ("both", "VEPO only", "entropy only", "neither")
    assert any(text.startswith(categories) for text in texts), texts[-1]


def test_input_error_keeps_the_last_result_and_toasts_once(browser, app_url):
    page = open_page(browser, app_url, 1440)
    analyze_sample(page)
    before = page.locator("#vv-summary").inner_text()
    page.locator("#vv-question textarea").fill("")
    page.locator("#vv-analyze").click()
    page.wait_for_selector("text=the question is empty")
    page.wait_for_timeout(1500)  # a second toast would have arrived by now
    toasts = page.locator('[data-testid="toast-body"]')
    n_toasts = toasts.count()
    views_visible = page.evaluate(
        """() => {
            const shown = el => el && el.getBoundingClientRect().height > 0 &&
                getComputedStyle(el).display !== 'none';
            const errors = Array.from(document.querySelectorAll('#vv-views span.error'))
                .filter(shown);
            return {errors: errors.length,
                    bars: document.querySelectorAll('#vv-heatmap .bars path').length};
        }"""
    )
    after = page.locator("#vv-summary").inner_text()
    page.context.close()
    assert n_toasts == 1
    assert views_visible["errors"] == 0 and views_visible["bars"] > 0
    assert after == before


def table_rows(page) -> list[list[str]]:
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('#vv-table tbody tr'))
            .map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim()))"""
    )


def heatmap_numbers(page) -> list:
    return page.evaluate(
        """() => {
            const gd = document.querySelector('#vv-heatmap .js-plotly-plot');
            return gd.data.map(t => [t.name, JSON.stringify(t.customdata)]);
        }"""
    )


SUMMARY_TRACKER = '#vv-summary [data-testid="status-tracker"]'
RUN_DONE_JS = f"""() => window.__vvSeen && !!document.querySelector('{SUMMARY_TRACKER}.hide')"""


def watch_run(page) -> None:
    """Note when the summary's status tracker shows a run (so a result equal to the one
    on screen can still be waited for)."""
    page.evaluate(
        f"""() => {{
            window.__vvSeen = false;
            new MutationObserver(() => {{
                if (document.querySelector('{SUMMARY_TRACKER}:not(.hide)')) window.__vvSeen = true;
            }}).observe(document.body, {{subtree: true, attributes: true, childList: true}});
        }}"""
    )


def without_timing(summary: str) -> str:
    return re.sub(r", \d+\.\d+ s;", ";", summary)


def test_load_then_analyze_reproduces_the_loaded_analysis(browser, app_url, tmp_path):
    page = open_page(browser, app_url, 1440)
    analyze_sample(page, 1)
    # non-default settings that Load must restore: ratio and the counterfactual's sigma
    ratio = page.locator('#vv-ratio input[data-testid="number-input"]')
    ratio.fill("0.4")
    ratio.press("Enter")
    page.wait_for_function("() => document.querySelector('#vv-summary').innerText.includes('40%')")
    page.get_by_text("Export for papers, save and load").click()
    page.locator("#vv-export-format").get_by_text("json", exact=True).click()
    page.locator("#vv-export").click()
    link = page.locator("#vv-export-file a[href]").first
    link.wait_for(timeout=TIMEOUT_MS)
    saved = tmp_path / "saved.json"
    saved.write_bytes(page.request.get(link.get_attribute("href")).body())
    assert json.loads(saved.read_text())["tokens"]
    page.context.close()

    page = open_page(browser, app_url, 1440)  # a fresh session: nothing analysed yet
    page.get_by_text("Export for papers, save and load").click()
    with page.expect_file_chooser() as chooser:
        page.locator("#vv-load").click()
    chooser.value.set_files(str(saved))
    wait_for_analysis(page)
    page.wait_for_function("() => document.querySelector('#vv-question textarea').value.length > 0")
    page.wait_for_selector("#vv-image img")  # the image input is filled again
    loaded = (page.locator("#vv-summary").inner_text(), table_rows(page), heatmap_numbers(page))

    watch_run(page)
    page.locator("#vv-analyze").click()  # Analyze right after Load works
    page.wait_for_function(RUN_DONE_JS)
    wait_for_analysis(page)
    page.wait_for_timeout(500)
    again = (page.locator("#vv-summary").inner_text(), table_rows(page), heatmap_numbers(page))
    page.context.close()
    assert without_timing(again[0]) == without_timing(loaded[0])
    assert "40%" in again[0]
    assert again[1] == loaded[1]
    assert again[2] == loaded[2]
