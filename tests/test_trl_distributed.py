"""Batch-scope selection across processes (accelerate, gloo on CPU) equals one process's
cut over the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vepo_viz.scoring import select_tokens

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _launch(model_dir, out, selection: str) -> list[dict]:
    """Two gloo ranks run tests/scripts/trl_batch_scope.py; each rank's records."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # `accelerate launch --cpu` always takes its single-process launcher (multi-process CPU
    # runs need mpirun there, accelerate#2741); `--multi_gpu` on a machine without GPUs
    # starts N processes through torch.distributed.run, and `use_cpu` makes them gloo ranks.
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(ROOT / "tests" / "scripts" / "trl_batch_scope.py"), str(model_dir), str(out),
        selection,
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt") for r in range(2)]
    assert all(r["world"] == 2 for r in ranks)
    n_steps = len(ranks[0]["records"])
    assert n_steps >= 2 and len(ranks[1]["records"]) == n_steps
    return [[r["records"][step] for r in ranks] for step in range(n_steps)]


def _global_and_own_cuts(parts: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """The selection the ranks made, checked equal to one process's cut over the gathered
    batch; and the cut each rank would make over its own rows."""
    scores, mask = _cat(parts, "scores", 0.0), _cat(parts, "mask", False)
    expected = select_tokens(scores, mask, 0.3, "batch")  # one process, the global batch
    assert torch.equal(_cat(parts, "selected", False), expected)
    own_cuts = [select_tokens(p["scores"], p["mask"], 0.3, "batch") for p in parts]
    return expected, _cat_tensors(own_cuts, expected.shape[1])


def test_batch_scope_over_two_processes_equals_one_cut(tiny_model_dir, tmp_path):
    """VEPO's own scores on real rollouts: the ranks' selection is one global cut."""
    pytest.importorskip("trl")
    for parts in _launch(tiny_model_dir("qwen2_vl", merges=False), tmp_path, "vepo"):
        _global_and_own_cuts(parts)


def test_batch_scope_is_not_each_process_own_cut(tiny_model_dir, tmp_path):
    """Scores built so the cuts must differ: every token of rank 0 scores above every
    token of rank 1. With N0, N1 valid tokens and k = ceil(0.3 (N0 + N1)) kept: if
    k <= N0 the global cut keeps none of rank 1 while rank 1's own cut keeps
    ceil(0.3 N1) >= 1; if k > N0 it keeps all N0 of rank 0 while rank 0's own cut keeps
    ceil(0.3 N0) < N0 (N0 >= 2). Either way they differ, on any CPU."""
    pytest.importorskip("trl")
    for step, parts in enumerate(
        _launch(tiny_model_dir("qwen2_vl", merges=False), tmp_path, "rank_offset")
    ):
        n0, n1 = (int(p["mask"].sum()) for p in parts)
        assert n0 >= 2 and n1 >= 1, (step, n0, n1)  # the proof's premise
        assert parts[0]["scores"][parts[0]["mask"]].min() > parts[1]["scores"].max()
        global_cut, own_cuts = _global_and_own_cuts(parts)
        assert not torch.equal(own_cuts, global_cut), step


def _pad(x: torch.Tensor, width: int, value) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)


def _cat_tensors(xs: list[torch.Tensor], width: int) -> torch.Tensor:
    return torch.cat([_pad(x, width, False) for x in xs])


def _cat(parts: list[dict], key: str, value) -> torch.Tensor:
    width = max(p["mask"].shape[1] for p in parts)
    return torch.cat([_pad(p[key], width, value) for p in parts])
