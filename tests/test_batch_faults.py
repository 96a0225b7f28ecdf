"""Batch resume under faults: kill -9 mid-run then resume gives the same Parquet as an
uninterrupted run; changed rows are scored again, never reused; other data is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.data_fixtures import suite_rows, write_forms
from vepo_viz import cli
from vepo_viz.batch import progress_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SLOW_CLI = """
import sys, time
import vepo_viz.analysis as analysis
real = analysis.analyze
def slow(*args, **kwargs):
    time.sleep(0.4)  # time for the test to kill the run between two rows
    return real(*args, **kwargs)
analysis.analyze = slow
from vepo_viz import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir):
    return str(tiny_model_dir("qwen2_vl"))


def _argv(data, out, model_dir):
    return ["batch", str(data), "--out", str(out), "--model", model_dir, "--max-new-tokens", "4"]


def _n_done(out: Path) -> int:
    path = progress_path(out)
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines()[1:] if line.endswith("}"))


def test_kill_9_during_batch_then_resume_gives_identical_results(model_dir, tmp_path, capsys):
    forms = write_forms(tmp_path / "data", suite_rows(n_per_family=2))
    data = forms["parquet"]  # inline images: the resume reads the rows again
    whole = tmp_path / "whole.parquet"
    assert cli.main(_argv(data, whole, model_dir)) == 0
    killed = tmp_path / "killed.parquet"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *_argv(data, killed, model_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and _n_done(killed) < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = _n_done(killed)
    assert 2 <= n_done < 6 and not killed.exists(), "the run was not killed mid-way"
    capsys.readouterr()
    assert cli.main(_argv(data, killed, model_dir)) == 0
    err = capsys.readouterr().err
    assert f"6 examples: {n_done} already scored" in err
    pd.testing.assert_frame_equal(pd.read_parquet(killed), pd.read_parquet(whole))


def test_changed_data_under_batch_resume_is_rescored(model_dir, tmp_path, capsys):
    forms = write_forms(tmp_path / "data", suite_rows())
    data = forms["jsonl"]
    out = tmp_path / "scores.parquet"
    assert cli.main(_argv(data, out, model_dir)) == 0
    before = pd.read_parquet(out)
    # the same rows (same ids: row-0..2), row-1's image redrawn and row-2's question edited
    Image.new("RGB", (112, 112), "white").save(data.parent / "images" / "1.png")
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    lines[2]["question"] = "What number is in the blue box?"
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    capsys.readouterr()
    assert cli.main(_argv(data, out, model_dir)) == 0
    err = capsys.readouterr().err
    assert "1 already scored, 2 changed since scored, 2 to go" in err
    after = pd.read_parquet(out)
    fresh = tmp_path / "fresh.parquet"
    assert cli.main(_argv(data, fresh, model_dir)) == 0
    pd.testing.assert_frame_equal(after, pd.read_parquet(fresh))  # nothing old reused
    old0, new0 = (f[f["example_id"] == "row-0"] for f in (before, after))
    pd.testing.assert_frame_equal(old0, new0)  # the unchanged row was kept
    assert set(after[after["example_id"] == "row-2"]["question"]) == {lines[2]["question"]}

    # another input file into the same --out: refused, saying what to do
    code = cli.main(_argv(forms["parquet"], out, model_dir))
    err = capsys.readouterr().err
    assert code == 2 and "other data" in err and "--restart" in err and "--out" in err
