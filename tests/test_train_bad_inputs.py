"""Bad input for training, on the command line and in the app's Train tab: malformed TOML,
out-of-range settings, path traversal, too many runs, a resume with other settings, run
folders that cannot be written. Each case asserts the message the user sees. No model is
loaded: every refusal comes before one."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import sys
import threading
import typing
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from tests.ui_fixtures import TRAIN_FORM
from vepo_viz.cli import main as cli
from vepo_viz.errors import VepoInputError
from vepo_viz.train import app_runs, trl_train
from vepo_viz.train.app_runs import AppRuns, RunLimits, confined_out
from vepo_viz.train.config import INT_RANGES, MAX_ROLLOUT, TrainConfig
from vepo_viz.train.jobs import (
    PARENT_PID_ENV,
    RunFolderError,
    RunPaths,
    io_problem,
    read_status,
    start_run,
    write_status,
)
from vepo_viz.train.run_guard import CHECKPOINT_CONFIG, CheckpointError, failure, guard_saves
from vepo_viz.ui import train_tab as tt

FORM = TRAIN_FORM


def _cli(capsys, *args: str) -> tuple[int, str]:
    rc = cli(["train", *args])
    return rc, capsys.readouterr().err


def _on_start(runs_root: Path, limits: RunLimits | None = None):
    """The Train tab's Start handler, as the app wires it."""
    with gr.Blocks() as demo:
        tt.build_train_tab(runs_root=runs_root, run_limits=limits)
    (fn,) = [f.fn for f in demo.fns.values() if f.name == "on_start"]
    return lambda **form: fn(*{**FORM, **form}.values())[0]


class FakeStarts:
    """jobs.start_run replaced by a process that sleeps (its command line names a vepo
    train run, as stop_run checks) and marks the run running, as a real run does."""

    def __init__(self) -> None:
        self.processes = []

    def __call__(self, config_path, stop_with_parent=False):
        import subprocess

        code = "import time; time.sleep(120)"
        process = subprocess.Popen([sys.executable, "-c", code, "vepo", "train"])
        self.processes.append(process)
        run = RunPaths(Path(config_path).parent)
        write_status(run, state="running", pid=process.pid, steps=5, step=0)
        return process

    def kill(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def fake_starts(monkeypatch):
    starts = FakeStarts()
    monkeypatch.setattr(app_runs, "start_run", starts)
    yield starts
    starts.kill()


# ---- malformed TOML ------------------------------------------------------------------


def test_malformed_toml(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 4\n")
    rc, err = _cli(capsys, "--config", str(bad))
    assert rc == 2 and "bad.toml is not valid TOML" in err and "Traceback" not in err
    bad.write_bytes(b"\xff\xfe steps = 4")
    rc, err = _cli(capsys, "--config", str(bad))
    assert rc == 2 and "is not valid TOML" in err
    rc, err = _cli(capsys, "--config", str(tmp_path / "missing.toml"))
    assert rc == 2 and "config file not found" in err
    start = _on_start(tmp_path / "runs")
    assert "more settings: not valid TOML" in start(extra="kl_beta = =")
    assert "unknown setting 'stepz' (did you mean 'steps'?)" in start(extra="stepz = 4")


# ---- out-of-range settings -----------------------------------------------------------


def test_every_integer_setting_has_a_range():
    hints = typing.get_type_hints(TrainConfig)
    ints = [f.name for f in dataclasses.fields(TrainConfig) if hints[f.name] is int]
    assert sorted(ints) == sorted(INT_RANGES)


@pytest.mark.parametrize("name", sorted(INT_RANGES))
def test_integer_ranges_are_enforced_never_rounded(name):
    lo, hi = INT_RANGES[name]
    TrainConfig.from_dict({name: hi})  # both ends are allowed
    TrainConfig.from_dict({name: lo})
    with pytest.raises(VepoInputError, match=rf"{name}={hi + 1} is too large: it must be in"):
        TrainConfig.from_dict({name: hi + 1})
    with pytest.raises(VepoInputError, match=rf"{name}={lo - 1} must be an integer >= {lo}"):
        TrainConfig.from_dict({name: lo - 1})
    with pytest.raises(VepoInputError, match=rf"{name}={lo + 0.5} must be an integer in"):
        TrainConfig.from_dict({name: lo + 0.5})


def test_sequences_per_step_are_bounded():
    with pytest.raises(
        VepoInputError, match=f"4194304 sequences per step is too many: at most {MAX_ROLLOUT}"
    ):
        TrainConfig.from_dict({"prompts_per_step": 4096, "group_size": 1024})


@pytest.mark.parametrize(
    "toml, message",
    [
        ("steps = 1e20", "steps=1e+20 must be an integer in [1, 1000000], written without"),
        ("steps = 1.5", "steps=1.5 must be an integer in [1, 1000000]"),
        ("steps = 100000000000000000000", "steps=100000000000000000000 is too large"),
        ("threads = 100000", "threads=100000 is too large: it must be in [0, 256]"),
        ("seed = 9223372036854775808", "seed=9223372036854775808 is too large"),
        ("max_new_tokens = 0", "max_new_tokens=0 must be an integer >= 1"),
    ],
)
def test_out_of_range_settings_in_cli_and_app(tmp_path, capsys, toml, message):
    config = tmp_path / "run.toml"
    config.write_text(toml + "\n")
    rc, err = _cli(capsys, "--config", str(config))
    assert rc == 2 and message in err and "Traceback" not in err
    assert message in _on_start(tmp_path / "runs")(extra=toml)
    assert not (tmp_path / "runs" / "r1").exists()


def test_out_of_range_flags_and_form_fields(tmp_path, capsys):
    rc, err = _cli(capsys, "--steps", "10000000")
    assert rc == 2 and "steps=10000000 is too large: it must be in [1, 1000000]" in err
    rc, err = _cli(capsys, "--seed", str(2**63))
    assert rc == 2 and "seed=9223372036854775808 is too large" in err
    start = _on_start(tmp_path / "runs")
    assert "steps must be a whole number, got 1.5" in start(steps=1.5)
    assert "steps=100000000000000000000 is too large" in start(steps=1e20)
    assert "seed must be a whole number, got nan" in start(seed=float("nan"))
    assert "learning rate must be a number, got None" in start(lr=None)
    assert "group_size=100000 is too large" in start(group_size=100000)


def test_form_numbers_are_not_rounded_by_gradio(tmp_path):
    """The form's number boxes hand 1.5 to the handler (precision=0 rounded it to 2)."""
    with gr.Blocks():
        tab = tt.build_train_tab(runs_root=tmp_path)
    for box in (tab.steps, tab.seed, tab.prompts_per_step, tab.group_size):
        assert box.preprocess(1.5) == 1.5


def test_threads_above_the_cpu_count_are_refused_before_the_model(tmp_path, capsys):
    cores = os.cpu_count() or 1
    if cores >= INT_RANGES["threads"][1]:  # pragma: no cover - a very large machine
        pytest.skip("this machine has as many cores as threads may be")
    rc, err = _cli(capsys, "--threads", str(cores + 1), "--out", str(tmp_path / "r"))
    assert rc == 2 and f"is more than this machine's {cores} CPU cores" in err
    assert not (tmp_path / "r").exists()
    text = _on_start(tmp_path / "runs")(extra=f"threads = {cores + 1}")
    assert f"not started:** threads={cores + 1} is more than" in text


def test_a_run_refused_at_its_start_says_so_in_its_status(tmp_path):
    """A run the app started (status.json names its pid) that refuses its config says
    "failed" and why, not "the process is gone"."""
    cfg = _checkpointed(tmp_path)
    write_status(RunPaths(Path(cfg.out)), state="starting", pid=os.getpid())
    with pytest.raises(VepoInputError):
        trl_train.train(cfg.replace(seed=5), progress=False)
    status = read_status(cfg.out)
    assert status["state"] == "failed" and "  - seed: 0 -> 5" in status["message"]


# ---- paths: confined for the app, free for the command line ---------------------------


@pytest.mark.parametrize(
    "extra",
    ['out = "/tmp/elsewhere"', 'out = "../../escaped"', 'out = "RUNS/r1/nested"', 'out = "RUNS"'],
)
def test_app_runs_write_only_into_the_runs_folder(tmp_path, fake_starts, extra):
    runs = tmp_path / "runs"
    text = _on_start(runs)(extra=extra.replace("RUNS", str(runs)))
    assert "not started" in text
    assert "a run started from the app writes only into its own folder" in text
    assert fake_starts.processes == []
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/elsewhere/config.toml").exists()


def test_run_names_cannot_leave_the_runs_folder(tmp_path, fake_starts):
    runs = tmp_path / "runs"
    runs.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (runs / "link").symlink_to(outside)  # a folder of the runs folder that points out
    start = _on_start(runs)
    for name in ("../x", "..", ".hidden", "a/b", "a\\b", "x\0y", "", "n" * 101):
        assert "give the run a name" in start(name=name), name
    assert "writes only into its own folder" in start(name="link")
    assert list(outside.iterdir()) == [] and fake_starts.processes == []
    assert "started **ok-1.b**" in start(name="ok-1.b")
    assert confined_out(runs / "ok-1.b", runs) == (runs / "ok-1.b").resolve()
    assert "no run named '../x'" in tt.stop_selected(runs, ["../x"])


def test_the_command_line_writes_where_it_is_told(tmp_path):
    cfg = TrainConfig.from_dict({"out": str(tmp_path / "anywhere" / "deep" / "run")})
    assert cfg.out == str(tmp_path / "anywhere" / "deep" / "run")


# ---- runs are the server's: how many, and when they stop ------------------------------


def test_at_most_max_runs_at_once(tmp_path, fake_starts):
    runs = tmp_path / "runs"
    start = _on_start(runs, RunLimits(max_runs=1))
    assert "started **a**" in start(name="a")
    text = start(name="b")
    assert "1 training run(s) already running (a); this server runs at most 1 at once" in text
    assert "--max-runs" in text and not (runs / "b").exists()
    assert "run a is already running" in start(name="a")
    two = _on_start(runs, RunLimits(max_runs=2))
    assert "started **b**" in two(name="b")
    assert "at most 2 at once" in two(name="c")
    fake_starts.kill()  # the runs end: room again
    assert "started **c**" in start(name="c")


def test_a_terminal_run_counts_too(tmp_path, fake_starts):
    runs = tmp_path / "runs"
    write_status(RunPaths(runs / "cli-run"), state="running", pid=os.getpid())
    assert "already running (cli-run)" in _on_start(runs, RunLimits(max_runs=1))(name="a")


def test_two_clients_pressing_start_at_once(tmp_path, fake_starts):
    runs = tmp_path / "runs"
    owner = AppRuns(runs, RunLimits(max_runs=1, keep_runs=True))
    results, barrier = [], threading.Barrier(4)

    def press(name: str) -> None:
        barrier.wait()
        try:
            tt.start_from_form(runs, *{**FORM, "name": name}.values(), runs=owner)
            results.append("started")
        except VepoInputError as error:
            results.append(str(error))

    threads = [threading.Thread(target=press, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("started") == 1 and len(fake_starts.processes) == 1


def test_run_limits_are_checked():
    with pytest.raises(VepoInputError, match=r"max_runs=-1 must be an integer in \[0, 64\]"):
        RunLimits(max_runs=-1)
    assert RunLimits(max_runs=3).resolved_max_runs == 3
    assert RunLimits().resolved_max_runs >= 1  # auto: 1 on CPU


def test_app_flags(capsys):
    from vepo_viz.ui.launch import build_parser, main, run_limits_from_args

    limits = run_limits_from_args(build_parser().parse_args(["--max-runs", "2", "--keep-runs"]))
    assert limits == RunLimits(max_runs=2, keep_runs=True)
    assert run_limits_from_args(build_parser().parse_args([])) == RunLimits()
    assert main(["--max-runs", "1000"]) == 2
    assert "max_runs=1000 must be an integer in [0, 64]" in capsys.readouterr().err


def test_runs_stop_when_the_app_exits_unless_kept(tmp_path, fake_starts, monkeypatch):
    registered = []
    monkeypatch.setattr(app_runs.atexit, "register", registered.append)
    runs = tmp_path / "runs"
    owner = AppRuns(runs, RunLimits(max_runs=2))
    assert registered == [owner.stop_all]  # called when the app's interpreter exits
    AppRuns(runs, RunLimits(keep_runs=True))
    assert registered == [owner.stop_all]  # --keep-runs: nothing registered
    tt.start_from_form(runs, *FORM.values(), runs=owner)
    (process,) = fake_starts.processes
    assert owner.running() == [(runs / "r1").resolve()]
    assert "stopping after the current step" in owner.stop_all()[0]
    assert process.wait(timeout=30) == -signal.SIGTERM
    assert owner.running() == []


def test_start_run_tells_the_run_to_watch_its_app(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "${PARENT_PID_ENV}" > "$(dirname "$5")/parent.txt"\n')
    fake.chmod(0o755)
    for watch, expected in ((True, str(os.getpid())), (False, "")):
        config = tmp_path / f"run-{watch}" / "config.toml"
        config.parent.mkdir()
        config.write_text(TrainConfig(out=str(config.parent)).to_toml())
        assert start_run(config, python=str(fake), stop_with_parent=watch).wait(timeout=30) == 0
        assert (config.parent / "parent.txt").read_text().strip() == expected


def test_a_run_whose_app_is_gone_stops_after_its_step(tmp_path, monkeypatch):
    monkeypatch.setenv(PARENT_PID_ENV, str(os.getppid() + 1))  # not our parent: it is gone
    cfg = TrainConfig(out=str(tmp_path / "r"))
    callback = trl_train.RunFolderCallback(
        cfg, RunPaths(tmp_path / "r"), lambda m: {}, progress=False, stop_at=None, fresh=True
    )
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    callback.on_step_end(None, SimpleNamespace(global_step=1, max_steps=5), control)
    assert control.should_save and control.should_training_stop and callback.parent_gone
    monkeypatch.setenv(PARENT_PID_ENV, str(os.getppid()))  # the app is alive: go on
    callback = trl_train.RunFolderCallback(
        cfg, RunPaths(tmp_path / "r"), lambda m: {}, progress=False, stop_at=None, fresh=True
    )
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    callback.on_step_end(None, SimpleNamespace(global_step=1, max_steps=5), control)
    assert not control.should_training_stop


# ---- a resume with other settings ------------------------------------------------------


def _checkpointed(tmp_path: Path, in_checkpoint: bool = True, **kw) -> TrainConfig:
    """A run folder with a (fake) checkpoint-2 made with TrainConfig(**kw)."""
    cfg = TrainConfig(out=str(tmp_path / "run"), threads=1, **kw)
    paths = RunPaths(tmp_path / "run")
    ckpt = paths.checkpoints / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    paths.config.write_text(cfg.to_toml())
    if in_checkpoint:
        (ckpt / CHECKPOINT_CONFIG).write_text(cfg.to_toml())
    return cfg


@pytest.mark.parametrize("in_checkpoint", [True, False])  # False: an older checkpoint
def test_a_resume_with_other_settings_is_refused(tmp_path, capsys, in_checkpoint):
    cfg = _checkpointed(tmp_path, in_checkpoint, lr=1e-5)  # not the default's: it may change
    changed = cfg.replace(seed=1, lr=1e-4, selection="entropy")
    with pytest.raises(VepoInputError) as info:
        trl_train.train(changed, progress=False)
    text = str(info.value)
    assert "has a checkpoint at step 2 made with other settings" in text
    for line in (
        "  - seed: 0 -> 1",
        "  - lr: 1e-05 -> 0.0001",
        '  - selection: "vepo" -> "entropy"',
    ):
        assert line in text.splitlines()
    assert "--resume-changed" in text and "eval_every" in text
    assert TrainConfig.load_run(cfg.out) == cfg  # the folder is left as it was
    rc, err = _cli(capsys, "--config", str(RunPaths(Path(cfg.out)).config), "--seed", "1")
    assert rc == 2 and "  - seed: 0 -> 1" in err and "--resume-changed" in err


def test_safe_changes_and_the_override_resume(tmp_path, capsys, monkeypatch):
    cfg = _checkpointed(tmp_path)
    calls = []
    monkeypatch.setattr(trl_train, "_train", lambda cfg, paths, ckpt, *a: calls.append(ckpt))
    trl_train.train(cfg.replace(eval_every=3, steps=80, ckpt_every=5, trace_every=2))
    trl_train.train(cfg.replace(seed=7), resume_changed=True)
    assert [c.name for c in calls] == ["checkpoint-2", "checkpoint-2"]
    seen = []
    monkeypatch.setattr(trl_train, "train", lambda c, **kw: seen.append(kw) or _Done())
    config = RunPaths(Path(cfg.out)).config
    assert cli(["train", "--config", str(config), "--seed", "3", "--resume-changed"]) == 0
    assert seen == [{"resume_changed": True}]


class _Done:
    final_dir, steps_done = None, 2


def test_the_app_lists_what_differs_from_a_run_of_the_same_name(tmp_path, fake_starts):
    runs = tmp_path / "runs"
    form_cfg = tt.form_config(runs, **FORM)
    paths = RunPaths(Path(form_cfg.out))
    paths.checkpoints.mkdir(parents=True)
    paths.config.write_text(form_cfg.replace(seed=3).to_toml())
    text = _on_start(runs)()
    assert "a run named r1 exists with other settings (seed: 3 -> 0)" in text
    paths.config.write_text(form_cfg.replace(eval_every=1).to_toml())  # safe to change
    assert "resuming from its last checkpoint" in _on_start(runs)()


# ---- run folders that cannot be written ------------------------------------------------


def test_out_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "run"):
        with pytest.raises(RunFolderError, match="cannot write the run folder"):
            trl_train.train(TrainConfig(out=str(out)), progress=False)
        rc, err = _cli(capsys, "--out", str(out))
        assert rc == 2 and "cannot write the run folder" in err and "This is a bug" not in err
        assert "a file is in the way" in err or "not a directory" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_without_permission(tmp_path, capsys):  # pragma: no cover - CI runs as a user
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    rc, err = _cli(capsys, "--out", str(locked / "run"))
    assert rc == 2 and "permission denied" in err


def test_io_problems_are_named():
    assert io_problem(OSError(errno.ENOSPC, "No space left on device")) == "disk full"
    assert (
        io_problem(PermissionError(errno.EACCES, "x", "/r/s.json"))
        == "permission denied (/r/s.json)"
    )
    assert io_problem(OSError(errno.EROFS, "x")) == "read-only file system"
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert io_problem(wrapped) == "disk full"
    torch_style = RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    assert io_problem(torch_style).startswith("write failed")
    assert io_problem(ValueError("a bug")) is None


def test_a_run_that_dies_says_why_in_its_status(tmp_path, capsys, monkeypatch):
    cfg = TrainConfig(out=str(tmp_path / "run"), threads=1)

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trl_train, "_train", disk_full)
    with pytest.raises(RunFolderError, match="writing the run folder failed: disk full"):
        trl_train.train(cfg, progress=False)
    status = read_status(cfg.out)
    assert status["state"] == "failed"
    assert status["message"].startswith("writing the run folder failed: disk full")
    assert "resumes from the start" in status["message"]
    rc, err = _cli(capsys, "--out", cfg.out, "--threads", "1")
    assert rc == 2 and "disk full" in err

    def bug(*args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(trl_train, "_train", bug)
    with pytest.raises(ZeroDivisionError):
        trl_train.train(cfg, progress=False)
    assert read_status(cfg.out)["message"] == "ZeroDivisionError: boom"
    assert read_status(cfg.out)["state"] == "failed"


def test_a_failed_checkpoint_save_names_its_step_and_leaves_no_half(tmp_path):
    paths = RunPaths(tmp_path / "run")
    (paths.checkpoints / "checkpoint-2").mkdir(parents=True)
    (paths.checkpoints / "checkpoint-2" / "trainer_state.json").write_text("{}")

    def save(model, trial):
        half = paths.checkpoints / "checkpoint-4"
        half.mkdir()
        (half / "model.safetensors").write_bytes(b"0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    trainer = SimpleNamespace(
        _save_checkpoint=save,
        state=SimpleNamespace(global_step=4),
        args=SimpleNamespace(output_dir=str(paths.checkpoints)),
    )
    guard_saves(trainer)
    with pytest.raises(CheckpointError) as info:
        trainer._save_checkpoint(None, None)
    assert not (paths.checkpoints / "checkpoint-4").exists()
    reason, io = failure(info.value, paths)
    assert io and reason.startswith("saving checkpoint-4 failed: disk full.")
    assert reason.endswith("run the same command again: it resumes from checkpoint-2")


def test_status_writes_are_atomic_with_several_writers(tmp_path):
    paths = RunPaths(tmp_path / "run")
    write_status(paths, state="running", step=0, pid=os.getpid())
    errors, torn = [], []

    def writer(n: int) -> None:
        try:
            for i in range(150):
                write_status(paths, step=i, writer=n)
        except OSError as error:  # a writer renaming another's temp file
            errors.append(error)

    def reader() -> None:
        for _ in range(300):
            if read_status(paths.root).get("state") != "running":
                torn.append(1)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and torn == []
    assert [p.name for p in paths.root.iterdir()] == ["status.json"]  # no temp files left
