"""The README's Python example of VEPOGRPOTrainer runs as written (one step, embedded model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vepo_viz.tiny import DEFAULT_MODEL

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


@pytest.mark.skipif(
    not (Path(DEFAULT_MODEL) / "config.json").is_file(), reason="the embedded model is not built"
)
def test_readme_trl_example_runs_one_step(tmp_path, monkeypatch):
    pytest.importorskip("trl")
    (code,) = [b for b in _python_blocks() if "VEPOGRPOTrainer" in b]
    monkeypatch.chdir(tmp_path)  # output_dir="runs/trl-demo" lands here
    code = code.replace('"sample_data/', f'"{ROOT / "sample_data"}/')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "runs" / "trl-demo" / "checkpoint-1" / "trainer_state.json").is_file()
    assert namespace["args"].selection == "vepo"
