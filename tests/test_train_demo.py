"""The training demo says when a run has nothing to learn or is hurting the model: a
setting without advantage (an easy family at difficulty 0) gets the zero-advantage warning
on the CLI and in the Train tab, and a held-out accuracy fallen beyond its sampling noise
gets the held-out warning. (The default Train-tab run's own first step is checked in a
browser: tests/test_browser_train.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vepo_viz.tiny import DEFAULT_MODEL
from vepo_viz.train.advice import (
    HELDOUT_DROP_MESSAGE,
    WINDOW,
    ZERO_ADVANTAGE_MESSAGE,
    heldout_drop_warning,
    zero_advantage_warning,
)
from vepo_viz.train.jobs import RunPaths, read_metrics

needs_model = pytest.mark.skipif(
    not (Path(DEFAULT_MODEL) / "config.json").is_file(),
    reason="the embedded tiny model is not built (vepo_viz/tiny/model)",
)


def test_warning_only_when_most_recent_groups_have_zero_advantage():
    assert zero_advantage_warning([]) is None
    assert zero_advantage_warning([{"step": 1, "reward": 0.5}]) is None  # not logged
    assert zero_advantage_warning([{"step": 1, "zero_adv_groups": 0.5}]) is None
    warning = zero_advantage_warning(
        [{"step": 1, "zero_adv_groups": 1.0}, {"step": 2, "zero_adv_groups": 0.75}]
    )
    assert ZERO_ADVANTAGE_MESSAGE in warning and "88%" in warning and "steps 1-2" in warning
    assert "step 1 " in zero_advantage_warning([{"step": 1, "zero_adv_groups": 1.0}])
    # one noisy step among learning ones is not warned: the mean of the last WINDOW steps
    steps = [{"step": s, "zero_adv_groups": 0.25} for s in range(1, 5)]
    assert zero_advantage_warning([*steps, {"step": 5, "zero_adv_groups": 0.75}]) is None
    # the recent steps decide: a run that found its signal again is not warned, one that
    # lost it is
    flat = [{"step": s, "zero_adv_groups": 1.0} for s in range(1, 6)]
    learns = [{"step": s, "zero_adv_groups": 0.0} for s in range(6, 11)]
    assert zero_advantage_warning(flat + learns) is None
    lost = [{"step": s, "zero_adv_groups": 1.0} for s in range(11, 16)]
    assert "steps 11-15" in zero_advantage_warning(learns + lost)
    assert zero_advantage_warning(learns + lost, window=2 * WINDOW) is None  # 50%: not most


def test_heldout_drop_warning_beyond_sampling_noise():
    evals = lambda *accs: [  # noqa: E731
        {"step": 10 * i, "heldout_acc": a, "heldout_n": 100} for i, a in enumerate(accs)
    ]
    assert heldout_drop_warning([]) is None and heldout_drop_warning(evals(0.88)) is None
    # 0.88 then 0.82 over 100 examples: the difference's standard error is 0.050
    assert heldout_drop_warning(evals(0.88, 0.87)) is None
    assert heldout_drop_warning(evals(0.88, 0.82)) is None
    warning = heldout_drop_warning(evals(0.88, 0.85, 0.73))
    assert HELDOUT_DROP_MESSAGE in warning and "0.880" in warning and "0.730" in warning
    assert "step 20" in warning and "100 examples" in warning
    assert heldout_drop_warning(evals(0.5, 0.9)) is None  # a rise is not a drop
    # 0.95 then 0.85 over 20 examples is noise (standard error 0.094)
    small = [{**r, "heldout_n": 20} for r in evals(0.95, 0.85)]
    assert heldout_drop_warning(small) is None
    assert heldout_drop_warning(small, n_heldout=400) is not None
    # rows without heldout_n and no n given: no warning (the noise is unknown)
    assert (
        heldout_drop_warning([{"step": 0, "heldout_acc": 0.9}, {"step": 9, "heldout_acc": 0}])
        is None
    )


def test_train_tab_advice_reads_each_selected_run(tmp_path):
    from vepo_viz.ui.train_tab import advice_text

    for name, share, after in (("flat", 1.0, 0.9), ("learns", 0.0, 0.9), ("hurt", 0.0, 0.5)):
        paths = RunPaths(tmp_path / name)
        paths.root.mkdir(parents=True)
        rows = [
            {"step": 0, "heldout_acc": 0.9, "heldout_n": 100},
            {"step": 1, "reward": 1.0, "zero_adv_groups": share},
            {"step": 1, "heldout_acc": after, "heldout_n": 100},
        ]
        paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = advice_text(tmp_path, ["flat", "learns"])
    assert "**flat**" in text and ZERO_ADVANTAGE_MESSAGE in text and "learns" not in text
    assert advice_text(tmp_path, ["learns"]) == "" and advice_text(tmp_path, None) == ""
    hurt = advice_text(tmp_path, ["hurt"])
    assert hurt.startswith("**hurt**") and HELDOUT_DROP_MESSAGE in hurt


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


def test_cli_prints_the_heldout_warning_once(tmp_path, capsys):
    """The run's progress output (what `vepo-viz train` prints) warns at the evaluation
    where held-out accuracy has fallen beyond its noise, and only once."""
    from vepo_viz.train import trl_train
    from vepo_viz.train.config import TrainConfig

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    accs = iter([0.9, 0.88, 0.5, 0.4])
    callback = trl_train.RunFolderCallback(
        TrainConfig(out=str(paths.root)),
        paths,
        lambda model: {"heldout_acc": next(accs), "heldout_n": 100},
        progress=True,
        stop_at=None,
        fresh=True,
    )
    printed = []
    for step in (0, 10, 20, 30):
        callback.run_eval(None, step)
        printed.append(capsys.readouterr().out)
    assert [HELDOUT_DROP_MESSAGE in text for text in printed] == [False, False, True, False]
    assert "from 0.900 (step 0) to 0.500 (step 20)" in printed[2]
