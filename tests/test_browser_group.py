"""The Group tab in a real browser (Debian's Chromium, Playwright) against the served app
with the embedded model: choose a suite sample, analyze a group of 8, see rewards,
advantages and a credit row per response, switch a method, export the figure as PDF."""

from __future__ import annotations

import pytest

from tests.test_browser import CHROMIUM, TIMEOUT_MS, Path, app_url, browser_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def page(app_url):  # noqa: F811 - the served app of tests/test_browser.py
    with browser_page(app_url) as page:
        page.get_by_role("tab", name="Group").click()
        page.wait_for_selector("#vv-group-run")
        yield page


def _credit_cells(page, method: str) -> list[str]:
    return page.eval_on_selector_all(
        f'#vv-group-out td.vv-credit[data-method="{method}"]',
        "cells => cells.map(c => c.innerHTML)",
    )


def test_group_of_8_rows_switch_method_export_pdf(page, tmp_path):
    # a suite sample fills the image, question and answer
    page.locator("#vv-group-sample input").click()
    page.locator('[role=option][aria-label="read-3"]').click()
    page.wait_for_function(
        "() => document.querySelector('#vv-group-answer textarea').value === '41'"
    )
    size = page.locator("#vv-group-size input")
    assert size.input_value() == "8"

    page.locator("#vv-group-run").click()
    page.wait_for_selector("#vv-group-out tr.vv-group-row", timeout=TIMEOUT_MS)
    rows = page.locator("#vv-group-out tr.vv-group-row")
    assert rows.count() == 8
    rewards = page.eval_on_selector_all(
        "#vv-group-out td.vv-reward", "cells => cells.map(c => c.innerText)"
    )
    advantages = page.eval_on_selector_all(
        "#vv-group-out td.vv-advantage", "cells => cells.map(c => c.innerText)"
    )
    assert len(rewards) == len(advantages) == 8
    assert all(r.split()[0] in ("1", "0.1", "0") for r in rewards)
    assert all(a.startswith(("+", "-")) for a in advantages)
    assert len(_credit_cells(page, "entropy")) == 8 and len(_credit_cells(page, "vepo")) == 8
    summary = page.locator("#vv-group-out .vv-group-summary").inner_text()
    assert "right" in summary

    # switch method B from VEPO to "all": re-scored in the page, no model call
    page.locator("#vv-group-method-b input").click()
    page.locator('[role=option][aria-label^="all:"]').click()
    page.wait_for_function(
        "() => document.querySelectorAll('#vv-group-out td.vv-credit[data-method=\"all\"]').length === 8"
    )
    assert not _credit_cells(page, "vepo")

    # export the figure as PDF
    with page.expect_download() as download:
        page.locator("#vv-group-export").click()
        page.locator("#vv-group-file a[download]").first.click()
    path = tmp_path / "group.pdf"
    download.value.save_as(path)
    assert path.read_bytes().startswith(b"%PDF") and path.stat().st_size > 5_000
