"""A real browser logs in to `python app.py --auth-file USERS` (a hashed password made by
`python -m vepo_viz.ui.auth hash`) and analyses a sample with the real model; a wrong
password first gets gradio's refusal and no app.

Skipped only when /usr/bin/chromium is missing (CI installs it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_browser import ARGS, CHROMIUM, TIMEOUT_MS
from tests.ui_fixtures import embedded_model_ready, serve_app_process

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "reviewer", "s3cret pass"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def app_url(tiny_model_dir, tmp_path_factory):
    line = subprocess.run(
        [sys.executable, "-m", "vepo_viz.ui.auth", "hash", "--user", USER, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=120,
    ).stdout.strip()
    assert line.startswith(f"{USER}:pbkdf2_sha256$") and PASSWORD not in line
    users = tmp_path_factory.mktemp("secrets") / "users.txt"
    users.write_text(line + "\n")
    model = "embedded" if embedded_model_ready() else str(tiny_model_dir("qwen2_vl"))
    process, url = serve_app_process(model, extra_args=("--auth-file", str(users)))
    yield url
    process.terminate()
    process.wait(timeout=30)


def log_in(page, user: str, password: str) -> None:
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def test_log_in_and_analyze_a_sample(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        page.get_by_role("button", name="Login").wait_for()
        log_in(page, USER, "wrong password")
        page.get_by_text("Incorrect Credentials").wait_for()
        assert page.locator("#vv-analyze").count() == 0

        log_in(page, USER, PASSWORD)
        page.wait_for_selector("#vv-analyze")
        page.locator('#vv-samples [data-testid="dataset-cell-0-1"]').click()
        page.wait_for_function(
            "() => document.querySelector('#vv-question textarea').value.length > 0"
        )
        page.locator("#vv-analyze").click()
        page.wait_for_function(
            "() => document.querySelector('#vv-summary').innerText.includes('tokens')"
        )
        page.wait_for_selector("#vv-heatmap .js-plotly-plot .bars path")
        assert "top 20%" in page.locator("#vv-summary").inner_text()
        assert page.locator("#vv-warning").count() == 0  # 127.0.0.1 with a login: no banner
        page.get_by_role("tab", name="About").click()
        assert "login: required" in page.locator("#vv-policy").inner_text()
        browser.close()
