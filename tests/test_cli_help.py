"""`vepo-viz --help` and `vepo-viz <command> --help` load no torch, transformers, gradio
or trl (they cost seconds): the flags come from torch-free config dataclasses and
registries. Measured, not timed: `python -X importtime` lists every module imported.
(benchmarks/cli_help.py times the commands.)"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from vepo_viz import cli

HEAVY = ("torch", "transformers", "gradio", "trl", "accelerate", "datasets", "peft")


def _commands() -> list[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


def imported_top_level(argv: list[str]) -> tuple[set[str], str]:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vepo_viz", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", run.stderr, re.MULTILINE)
    assert names, "importtime printed nothing: the test would pass vacuously"
    return {name.split(".")[0] for name in names}, run.stdout


def test_the_commands_are_the_ones_checked():
    assert {"analyze", "batch", "train", "tiny-train"} <= set(_commands())


@pytest.mark.parametrize("command", [None, *_commands()])
def test_help_imports_no_heavy_library(command):
    argv = ["--help"] if command is None else [command, "--help"]
    top, out = imported_top_level(argv)
    assert "usage: vepo-viz" in out
    assert not top & set(HEAVY), f"{argv} imported {sorted(top & set(HEAVY))}"


def test_the_check_sees_a_torch_import():
    """The probe itself: a command that does load torch is caught."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import vepo_viz.analysis"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert re.search(r"\|\s*torch$", run.stderr, re.MULTILINE)
