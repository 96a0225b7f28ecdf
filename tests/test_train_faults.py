"""Fault injection on real runs of the embedded tiny model: the disk fills up while a
checkpoint is written, then space is freed and the run resumes. The resumed run must equal
an uninterrupted one, and status.json must have said what happened. (kill -9 during
training, then resume: tests/test_trl_train.py::test_kill_9_and_resume_gives_the_same_next_step.)"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl")

from tests.test_trl_train import _cfg, assert_same_run, needs_embedded  # noqa: E402
from vepo_viz.train.jobs import RunFolderError, RunPaths, read_status  # noqa: E402
from vepo_viz.train.trl_train import latest_checkpoint, train  # noqa: E402


@pytest.mark.slow
@needs_embedded
def test_disk_full_during_a_checkpoint_then_resume(tmp_path, monkeypatch):
    whole = _cfg(tmp_path / "whole")  # 4 steps, checkpoints at 2 and 4
    train(whole, progress=False)
    full = whole.replace(out=str(tmp_path / "full"))
    paths = RunPaths(Path(full.out))

    real_save = torch.save

    def writer_on_a_full_disk(obj, f, *args, **kwargs):  # optimizer.pt, rng_state.pth, ...
        if "checkpoint-4" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", writer_on_a_full_disk)
    with pytest.raises(RunFolderError) as info:
        train(full, progress=False)
    status = read_status(paths.root)
    assert status["state"] == "failed", status
    assert status["message"].startswith("saving checkpoint-4 failed: disk full."), status
    assert status["message"].endswith("it resumes from checkpoint-2")
    assert str(info.value) == status["message"]
    assert latest_checkpoint(paths).name == "checkpoint-2"
    assert not (paths.checkpoints / "checkpoint-4").exists()  # no half checkpoint left
    assert not paths.final.exists()

    monkeypatch.setattr(torch, "save", real_save)  # space freed
    result = train(full, progress=False)
    assert result.final_dir == paths.final and read_status(paths.root)["state"] == "finished"
    assert_same_run(whole.out, full.out)
