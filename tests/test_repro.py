"""The mini-reproduction script (vepo_viz.repro) on the TRL trainer: its --help, and
a tiny grid (one rule, one seed, two steps) end to end: data export, the run, the summary,
the extra evaluation and the selection profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vepo_viz.tiny import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]


def test_help_works():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "vepo_viz.repro", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--rules" in done.stdout and "--pool-per-family" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    not (Path(DEFAULT_MODEL) / "config.json").is_file(),
    reason="the embedded tiny model is not built (vepo_viz/tiny/model)",
)
def test_tiny_grid_end_to_end(tmp_path, monkeypatch):
    from vepo_viz.repro import run as repro
    from vepo_viz.train.jobs import read_status

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the grid's `vepo-viz train` processes
    monkeypatch.setattr(repro, "POLL_S", 0.5)
    out = tmp_path / "repro"
    argv = ["--init", "tiny", "--out", str(out), "--rules", "vepo", "--seeds", "0"]
    argv += ["--steps", "2", "--jobs", "1", "--families", "color"]
    argv += ["--pool-per-family", "4", "--heldout-per-family", "2", "--profile", "2"]
    argv += ["--scan", "1"]
    argv += ["--set", "prompts_per_step=2", "group_size=2", "max_new_tokens=12", "eval_every=0"]
    assert repro.main(argv) == 0
    assert read_status(out / "vepo-s0")["state"] == "finished"
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"]["vepo-s0"]
    assert run["steps"] == 2 and 0 <= run["acc_end"] <= 1
    assert run["entropy_selected"] is not None and run["vis_selected"] is not None
    assert set(summary["extra_eval"]["pool"]["runs"]) == {"init", "vepo-s0"}
    profile = summary["profile"]
    assert profile["n_responses"] == 4 and 0 < profile["vepo"]["selected_fraction"] < 1
    assert "| vepo |" in repro.markdown_table(summary)
    # the scan: every suite family, one prompt x G responses, with entropy and vepo added
    from vepo_viz.repro.doc import scan_table
    from vepo_viz.tasks import FAMILIES

    scan = summary["scan"]
    assert list(scan) == list(FAMILIES)
    for family, r in scan.items():
        assert r["n_responses"] == 2 and {"entropy", "vepo"} <= set(r), family
    table = scan_table(scan).splitlines()
    assert len(table) == 2 + len(FAMILIES) and all(f"| {f} |" in scan_table(scan) for f in scan)
