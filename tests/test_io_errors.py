"""Output paths: checked before the work runs; OS errors on them are one-line messages
with exit status 2, never "this is a bug"."""

from __future__ import annotations

import errno
import os

import pytest

from vepo_viz import cli
from vepo_viz.io_errors import OutputPathError, check_output_path, describe, writing

IMAGE = "sample_data/images/color-1.png"


def test_check_output_path_accepts_new_and_existing_files(tmp_path):
    assert check_output_path(tmp_path / "new" / "deeper" / "r.json").name == "r.json"
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    assert check_output_path(existing) == existing
    assert not (tmp_path / "new").exists()  # nothing is created


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: t, "is a folder; give a file name such as"),
        (lambda t: _file(t / "f") / "r.json", "is a file, not a folder"),
        (lambda t: _file(t / "f") / "a" / "b.json", "is a file, not a folder"),
        (lambda t: "", "is empty"),
    ],
)
def test_check_output_path_refuses(tmp_path, make, message):
    with pytest.raises(OutputPathError, match=message):
        check_output_path(make(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_path_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="not writable"):
            check_output_path(folder / "r.json")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.ENOSPC, "no space left"),
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only"),
        (errno.EISDIR, "is a folder"),
        (errno.ENOTDIR, "not a folder"),
    ],
)
def test_writing_turns_os_errors_into_messages(code, words):
    with pytest.raises(OutputPathError, match=f"cannot write out.json: .*{words}"):
        with writing("out.json"):
            raise OSError(code, os.strerror(code))
    assert words in describe(OSError(code, "x"), "p")


def _file(path):
    path.write_text("x")
    return path


def test_cli_analyze_checks_out_before_loading_the_model(tmp_path, monkeypatch, capsys):
    from vepo_viz.commands import common

    def no_model(args):
        raise AssertionError("the model must not be loaded for a bad --out")

    monkeypatch.setattr(common, "load_model_from_args", no_model)
    argv = ["analyze", "--image", IMAGE, "--question", "What?", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "is a folder; give a file name such as" in err and "bug" not in err


@pytest.mark.slow
def test_cli_analyze_disk_full_on_save_is_rc_2(tmp_path, monkeypatch, capsys):
    from vepo_viz.results import TokenAnalysis

    def full(self, path, include_image=True):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TokenAnalysis, "save", full)
    out = tmp_path / "r.json"
    argv = ["analyze", "--image", IMAGE, "--question", "What?", "--max-new-tokens", "3"]
    assert cli.main([*argv, "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {out}: no space left on the device" in err and "bug" not in err


@pytest.mark.parametrize("value", ["-1", "x"])
def test_cli_max_rows_must_be_a_count(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["analyze", "--image", IMAGE, "--question", "q", "--max-rows", value])
    assert exit_.value.code == 2
    assert "--max-rows" in capsys.readouterr().err


def test_cli_batch_checks_out_before_loading_the_model(tmp_path, monkeypatch, capsys):
    from vepo_viz.commands import common

    def no_model(args):
        raise AssertionError("the model must not be loaded for a bad --out")

    monkeypatch.setattr(common, "load_model_from_args", no_model)
    assert cli.main(["batch", "suite", "--max-rows", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder; give a file name such as" in err and "bug" not in err


@pytest.mark.slow
def test_cli_batch_disk_full_on_the_parquet_is_rc_2(tmp_path, monkeypatch, capsys):
    from vepo_viz import batch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(batch, "write_parquet", full)
    out = tmp_path / "s.parquet"
    argv = ["batch", "suite", "--max-rows", "1", "--max-new-tokens", "3", "--out", str(out)]
    assert cli.main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {out}: no space left on the device" in err and "bug" not in err
