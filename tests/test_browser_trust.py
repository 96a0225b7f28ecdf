"""A real browser on the sigma-0 case (issue 14): the counterfactual changes nothing, so
the app warns above the result and marks every token as having no visual signal; the
embedded model's scope banner and the patch-grid caption are on screen."""

from __future__ import annotations

import re

from tests.test_browser import TIMEOUT_MS, app_url, page, pytestmark  # noqa: F401

VERDICT = "the counterfactual did not change the prediction"


def table_column(page, name: str) -> list[str]:  # noqa: F811
    """The cells of one column of the per-token table, read from the DOM (gradio's
    grid: a header cell titled `name`, body cells with data-col)."""
    return page.evaluate(
        """(name) => {
            const root = document.querySelector('#vv-table');
            const head = [...root.querySelectorAll('th')].find((th) => th.title === name);
            if (!head) return [];
            const col = head.getAttribute('data-heading');
            return [...root.querySelectorAll(`[role=gridcell][data-col="${col}"]`)].map(
                (cell) => cell.textContent.trim());
        }""",
        name,
    )


def caption_text(page) -> str:  # noqa: F811
    return page.evaluate(
        "() => [...document.querySelectorAll('.vv-caption')].map((e) => e.textContent).join(' ')"
    )


def test_sigma_zero_warns_and_marks_no_visual_signal(page):  # noqa: F811
    assert page.locator("#vv-scope-analyze").is_visible()
    assert "4.9M-parameter" in page.locator("#vv-scope-analyze").inner_text()
    page.locator('#vv-samples [data-testid="dataset-cell-0-1"]').click()
    page.wait_for_function("() => document.querySelector('#vv-question textarea').value.length > 0")
    page.get_by_text("Counterfactual image").click()
    sigma = page.locator('#vv-sigma input[data-testid="number-input"]')
    sigma.fill("0")
    sigma.press("Tab")  # the slider commits a typed value on blur (Enter does nothing)
    # the range input shares the component's value: 0 there means the value took
    page.wait_for_function(
        "() => document.querySelector('#vv-sigma input[type=range]').value === '0'"
    )
    page.locator("#vv-analyze").click()
    # the analysis is done when its summary names sigma 0 (a failure shows what is there)
    done = "() => /sigma\\s0\\b/.test(document.querySelector('#vv-summary').innerText)"
    try:
        page.wait_for_function(done, timeout=TIMEOUT_MS)
    except Exception as error:  # noqa: BLE001 - add what the page shows to the failure
        summary = page.locator("#vv-summary").inner_text()
        toasts = page.locator(".toast-body").all_inner_texts()
        raise AssertionError(
            f"no sigma-0 analysis: summary {summary!r}, toasts {toasts}"
        ) from error
    warning = page.locator("#vv-summary .vv-warning")
    assert warning.is_visible() and VERDICT in warning.inner_text()
    summary = page.locator("#vv-summary").inner_text()
    assert re.search(r"sigma\s0\b", summary), summary
    n_tokens = int(re.search(r"(\d+) tokens", summary).group(1))
    assert f"{n_tokens} of {n_tokens} tokens at the floor" in summary
    assert "stability: unknown" in summary
    # no token is marked as having visual signal: the table's at_floor is true everywhere
    page.wait_for_function(
        "() => document.querySelectorAll('#vv-table [role=gridcell]').length > 0"
    )
    cells = table_column(page, "at_floor")
    assert cells and all(c.lower() == "true" for c in cells), cells
    assert "8x8 patch grid" in caption_text(page)
