"""The Train tab and background runs: form validation, run table, curves, a real
background process that is stopped (SIGTERM) and then resumed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from tests.ui_fixtures import TRAIN_FORM
from vepo_viz.errors import VepoInputError
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.curves import PANELS, matplotlib_curves, plotly_curves
from vepo_viz.train.jobs import RunPaths, list_runs, read_metrics, read_status, write_status
from vepo_viz.ui import train_tab as tt

FORM = TRAIN_FORM


def _fake_run(root: Path, name: str, n_steps: int = 4, state: str = "finished") -> Path:
    paths = RunPaths(root / name)
    paths.root.mkdir(parents=True)
    paths.config.write_text(TrainConfig(out=str(paths.root)).to_toml())
    rows = [{"step": 0, "heldout_acc": 0.2}]
    for s in range(1, n_steps + 1):
        rows.append(
            {
                "step": s,
                "reward": 0.1 * s,
                "entropy_selected": 1.0,
                "entropy_all": 0.5,
                "vis_selected": 0.6,
                "vis_all": 0.3,
                "kl": 0.0,
                "approx_kl": 0.0,
                "clip_fraction": 0.0,
                "step_s": 1.0,
                "selected_fraction": 0.2,
                "zero_adv_groups": 1.0 - 0.25 * s,
            }
        )
    rows.append({"step": n_steps, "heldout_acc": 0.4})
    paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 9, "rew')
    write_status(paths, state=state, pid=os.getpid(), steps=n_steps, step=n_steps)
    return paths.root


def test_tab_builds_inside_blocks(tmp_path):
    _fake_run(tmp_path, "a")
    with gr.Blocks() as demo:
        model_box = gr.Textbox()
        with gr.Tabs() as tabs:
            with gr.Tab("Analyze", id="analyze"):
                pass
            with gr.Tab("Train", id="train"):
                tab = tt.build_train_tab(model_box=model_box, tabs=tabs, runs_root=tmp_path)
    assert isinstance(tab.curves, gr.Plot) and isinstance(tab.timer, gr.Timer)
    assert tab.runs.value == ["a"]
    assert demo is not None


def test_app_builds_the_tab_with_its_settings(tmp_path, monkeypatch):
    """build_app passes the Train tab everything it takes, by name: the Analyze tab's model
    box, the tabs, the runs folder (default jobs.DEFAULT_RUNS_ROOT), the policy and the
    run limits."""
    from tests.ui_fixtures import FakeBackend
    from vepo_viz.train.app_runs import RunLimits
    from vepo_viz.train.jobs import DEFAULT_RUNS_ROOT
    from vepo_viz.ui import app
    from vepo_viz.ui.policy import ServingPolicy

    _fake_run(tmp_path, "a")
    demo = app.build_app(FakeBackend(), samples=[], runs_root=tmp_path)
    runs = [c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "vv-train-runs"]
    assert [r.value for r in runs] == [["a"]]  # the tab reads the given runs folder

    calls = []
    monkeypatch.setattr(app, "build_train_tab", lambda **kw: calls.append(kw))
    policy, limits = ServingPolicy(), RunLimits(max_runs=3, keep_runs=True)
    app.build_app(FakeBackend(), samples=[], policy=policy, run_limits=limits)
    (kw,) = calls
    assert set(kw) == {"model_box", "tabs", "runs_root", "policy", "run_limits"}
    assert isinstance(kw["model_box"], gr.Textbox) and isinstance(kw["tabs"], gr.Tabs)
    assert kw["runs_root"] == DEFAULT_RUNS_ROOT
    assert kw["policy"] is policy and kw["run_limits"] is limits


def test_form_config_and_its_errors(tmp_path):
    cfg = tt.form_config(tmp_path, **{**FORM, "extra": 'kl_beta = 0.01\nloss_mode = "weight"'})
    assert cfg.out == str(tmp_path / "r1") and cfg.kl_beta == 0.01 and cfg.families == ("color",)
    with pytest.raises(VepoInputError, match="give the run a name"):
        tt.form_config(tmp_path, **{**FORM, "name": "../x"})
    with pytest.raises(VepoInputError, match="not valid TOML"):
        tt.form_config(tmp_path, **{**FORM, "extra": "kl_beta = ="})
    with pytest.raises(VepoInputError, match="group_size=1"):
        tt.form_config(tmp_path, **{**FORM, "group_size": 1})
    with pytest.raises(VepoInputError, match="steps must be a whole number"):
        tt.form_config(tmp_path, **{**FORM, "steps": 2.5})
    # the form offers no scope; one typed in the extra settings is what training honours
    assert tt.form_config(tmp_path, **{**FORM, "extra": 'scope = "batch"'}).scoring.scope == "batch"
    with pytest.raises(VepoInputError, match="scope='quantile' is not a training scope"):
        tt.form_config(tmp_path, **{**FORM, "extra": 'scope = "quantile"'})


def test_table_curves_log_and_open_in_analyze(tmp_path):
    _fake_run(tmp_path, "a")
    _fake_run(tmp_path, "b", n_steps=2, state="running")
    assert {p.name for p in list_runs(tmp_path)} == {"a", "b"}
    table = tt.runs_table(tmp_path, ["b"])
    assert list(table["run"]) == ["b", "a"]
    assert table.iloc[1]["reward"] == pytest.approx(0.4) and table.iloc[1]["heldout_acc"] == 0.4
    # the latest step's share of groups with nonzero advantage (a: step 4 of 4, b: 2 of 2)
    assert table.iloc[1]["signal_groups"] == 1.0 and table.iloc[0]["signal_groups"] == 0.5
    df = read_metrics(tmp_path / "a")
    assert len(df) == 6  # the cut last line is skipped
    fig = tt.curves_figure(tmp_path, ["a", "b"])
    names = {t.name for t in fig.data}
    assert names == {"a", "b"}
    assert len(fig.layout.annotations) == len(PANELS)
    assert tt.analyze_target(tmp_path, ["a"])[0] is None  # no model saved in a fake run
    assert "select a run" in tt.stop_selected(tmp_path, [])
    # A "running" run whose process is gone reads as stopped.
    write_status(RunPaths(tmp_path / "b"), pid=2**22 + 12345)
    assert read_status(tmp_path / "b")["state"] == "stopped"


@pytest.mark.slow
def test_matplotlib_curves(tmp_path):
    run = _fake_run(tmp_path, "a")
    out = matplotlib_curves({"a": read_metrics(run)}, tmp_path / "fig.png")
    assert out.stat().st_size > 1000
    assert plotly_curves({"empty": pd.DataFrame()}) is not None


def _wait(predicate, timeout: float, what: str, run_dir: Path):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.5)
    log = RunPaths(run_dir).log
    tail = log.read_text()[-1500:] if log.exists() else "(no log)"
    raise AssertionError(
        f"timed out waiting for {what}; status {read_status(run_dir)}; log:\n{tail}"
    )


@pytest.mark.slow
def test_background_run_stop_resume_and_open(tmp_path):
    from tests.tiny_random import build_tiny_vlm

    model = build_tiny_vlm("qwen2_vl", tmp_path / "model")
    form = {
        **FORM,
        "model": str(model),
        "steps": 400,
        "extra": "max_new_tokens = 4\nn_eval = 0\nthreads = 1\nckpt_every = 1000",
    }
    runs = tmp_path / "runs"
    message, chosen = tt.start_from_form(runs, *form.values())
    assert chosen == ["r1"] and "started" in message
    paths = RunPaths(runs / "r1")
    try:
        _wait(lambda: len(read_metrics(paths.root)) >= 2, 300, "two steps", paths.root)
        assert read_status(paths.root)["state"] == "running", read_status(paths.root)
        with pytest.raises(VepoInputError, match="already running"):
            tt.start_from_form(runs, *form.values())
        assert "stopping" in tt.stop_selected(runs, ["r1"])
        _wait(lambda: read_status(paths.root)["state"] == "stopped", 300, "the stop", paths.root)
    finally:
        pid = read_status(paths.root).get("pid")
        if read_status(paths.root).get("state") == "running":  # pragma: no cover
            os.kill(pid, signal.SIGKILL)
    status = read_status(paths.root)
    step = status["step"]
    assert (paths.checkpoints / f"checkpoint-{step}").is_dir()  # saved on stop
    folder, text = tt.analyze_target(runs, ["r1"])
    assert folder == str(paths.checkpoints / f"checkpoint-{step}") and "Analyze" in text

    # Running the same config again resumes from that checkpoint and finishes.
    from vepo_viz.train.trl_train import train

    cfg = TrainConfig.load_run(paths.root).replace(steps=step + 1)
    result = train(cfg, progress=False)
    assert result.final_dir is not None and result.steps_done == step + 1
    assert read_status(paths.root)["state"] == "finished"
    steps = read_metrics(paths.root)["step"]
    assert steps.max() == step + 1 and steps.is_unique


def test_repro_summary_table_and_mean_curves(tmp_path):
    from vepo_viz.repro import run as repro

    for rule in ("entropy", "vepo"):
        for seed in (0, 1):
            run = _fake_run(tmp_path, f"{rule}-s{seed}")
            lines = RunPaths(run).metrics.read_text().splitlines()[:-1]  # drop the cut line
            final = {"step": 4, "heldout_acc": 0.5 + 0.1 * seed + (0.05 if rule == "vepo" else 0)}
            RunPaths(run).metrics.write_text("\n".join(lines[:-1] + [json.dumps(final)]) + "\n")
    summary = repro.summarise(tmp_path, ["entropy", "vepo"], [0, 1])
    assert summary["rules"]["vepo"]["acc_end_mean"] == pytest.approx(0.6)
    assert summary["rules"]["entropy"]["acc_end_std"] == pytest.approx(0.0707, abs=1e-3)
    table = repro.markdown_table(summary)
    assert "| vepo | 0.200 | 0.600 ± 0.071 |" in table
    curves = repro.mean_curves(tmp_path, ["entropy", "vepo"], [0, 1])
    assert set(curves) == {"entropy", "vepo"} and curves["vepo"]["reward"].notna().sum() == 4
    assert repro._parse_sets(["lr=1e-4", "families=['color']", "perturb=gaussian"]) == {
        "lr": 1e-4,
        "families": ["color"],
        "perturb": "gaussian",
    }
