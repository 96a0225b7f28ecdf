"""The training demo has something to learn from: the Train tab's default run (started
through a real Gradio server with gradio_client, fewer steps) has nonzero advantage in at
least half of its groups at the first step, and a setting without any (an easy family at
difficulty 0) gets the zero-advantage warning on the CLI and in the Train tab."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vepo_viz.tiny import DEFAULT_MODEL
from vepo_viz.train.advice import ZERO_ADVANTAGE_MESSAGE, zero_advantage_warning
from vepo_viz.train.jobs import RunPaths, read_metrics, read_status

needs_model = pytest.mark.skipif(
    not (Path(DEFAULT_MODEL) / "config.json").is_file(),
    reason="the embedded tiny model is not built (vepo_viz/tiny/model)",
)


def test_warning_only_when_most_groups_have_zero_advantage():
    assert zero_advantage_warning([]) is None
    assert zero_advantage_warning([{"step": 1, "reward": 0.5}]) is None  # not logged
    assert zero_advantage_warning([{"step": 1, "zero_adv_groups": 0.5}]) is None
    warning = zero_advantage_warning(
        [{"step": 1, "zero_adv_groups": 1.0}, {"step": 2, "zero_adv_groups": 0.75}]
    )
    assert ZERO_ADVANTAGE_MESSAGE in warning and "75%" in warning and "step 2" in warning
    # the latest step decides: a run that found its signal again is not warned
    assert (
        zero_advantage_warning(
            [{"step": 1, "zero_adv_groups": 1.0}, {"step": 2, "zero_adv_groups": 0.25}]
        )
        is None
    )


def test_train_tab_advice_reads_each_selected_run(tmp_path):
    from vepo_viz.ui.train_tab import advice_text

    for name, share in (("flat", 1.0), ("learns", 0.0)):
        paths = RunPaths(tmp_path / name)
        paths.root.mkdir(parents=True)
        paths.metrics.write_text(
            json.dumps({"step": 1, "reward": 1.0, "zero_adv_groups": share}) + "\n"
        )
    text = advice_text(tmp_path, ["flat", "learns"])
    assert "**flat**" in text and ZERO_ADVANTAGE_MESSAGE in text and "learns" not in text
    assert advice_text(tmp_path, ["learns"]) == "" and advice_text(tmp_path, None) == ""


@pytest.mark.slow
@needs_model
def test_a_setting_without_advantage_is_warned(tmp_path, capsys):
    """Colour questions at difficulty 0: every sampled answer is right, every group flat."""
    from vepo_viz.train.config import TrainConfig
    from vepo_viz.train.trl_train import train
    from vepo_viz.ui.train_tab import advice_text

    cfg = TrainConfig(
        out=str(tmp_path / "flat"),
        families=("color",),
        difficulty=0.0,
        temperature=1.0,
        steps=1,
        prompts_per_step=2,
        group_size=4,
        n_eval=0,
        ckpt_every=0,
        threads=1,
    )
    train(cfg, progress=True)
    assert read_metrics(cfg.out)["zero_adv_groups"].dropna().iloc[0] == 1.0
    assert ZERO_ADVANTAGE_MESSAGE in capsys.readouterr().out  # the CLI's progress output
    assert ZERO_ADVANTAGE_MESSAGE in advice_text(tmp_path, ["flat"])  # the Train tab


@pytest.mark.slow
@needs_model
def test_default_train_tab_run_has_advantage_at_its_first_step(tmp_path, monkeypatch):
    """The form's defaults (what a user sees when the tab opens), one step, through the
    app's /on_start handler on a real server."""
    import gradio as gr
    from gradio_client import Client

    from tests.ui_fixtures import free_port
    from vepo_viz.ui.train_tab import build_train_tab

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", str(root))  # the run's `vepo-viz train` process
    runs = tmp_path / "runs"
    with gr.Blocks() as demo:
        tab = build_train_tab(runs_root=runs)
    form = [tab.name, tab.model, tab.selection, tab.score_type, tab.ratio, tab.steps]
    form += [tab.prompts_per_step, tab.group_size, tab.lr, tab.seed, tab.families]
    form += [tab.difficulty, tab.extra]
    values = [c.value for c in form]
    values[0], values[5] = "default", 1  # fewer steps
    values[-1] = "n_eval = 0\nthreads = 1"  # no held-out pass: only the first step matters
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        message, _ = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            *values, api_name="/on_start"
        )
        assert "started" in message, message
        run = runs / "default"
        end = time.time() + 900
        while read_status(run).get("state") not in ("finished", "failed") and time.time() < end:
            time.sleep(1.0)
    finally:
        demo.close()
    assert read_status(run)["state"] == "finished", RunPaths(run).log.read_text()[-2000:]
    first = read_metrics(run).dropna(subset=["zero_adv_groups"]).iloc[0]
    assert first["step"] == 1 and first["zero_adv_groups"] <= 0.5
