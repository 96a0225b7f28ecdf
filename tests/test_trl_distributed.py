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


def test_batch_scope_over_two_processes_equals_one_cut(tiny_model_dir, tmp_path):
    pytest.importorskip("trl")
    model_dir = tiny_model_dir("qwen2_vl", merges=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # `accelerate launch --cpu` always takes its single-process launcher (multi-process CPU
    # runs need mpirun there, accelerate#2741); `--multi_gpu` on a machine without GPUs
    # starts N processes through torch.distributed.run, and `use_cpu` makes them gloo ranks.
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(ROOT / "tests" / "scripts" / "trl_batch_scope.py"), str(model_dir), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert all(r["world"] == 2 for r in ranks)
    n_steps = len(ranks[0]["records"])
    assert n_steps >= 2 and len(ranks[1]["records"]) == n_steps
    n_differs = 0
    for step in range(n_steps):
        parts = [r["records"][step] for r in ranks]
        scores, mask = _cat(parts, "scores", 0.0), _cat(parts, "mask", False)
        expected = select_tokens(scores, mask, 0.3, "batch")  # one process, the global batch
        assert torch.equal(_cat(parts, "selected", False), expected), step
        own_cuts = [select_tokens(p["scores"], p["mask"], 0.3, "batch") for p in parts]
        n_differs += int(not torch.equal(_cat_tensors(own_cuts, expected.shape[1]), expected))
    assert n_differs >= 1  # the global cut is not just each process's own cut


def _pad(x: torch.Tensor, width: int, value) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)


def _cat_tensors(xs: list[torch.Tensor], width: int) -> torch.Tensor:
    return torch.cat([_pad(x, width, False) for x in xs])


def _cat(parts: list[dict], key: str, value) -> torch.Tensor:
    width = max(p["mask"].shape[1] for p in parts)
    return torch.cat([_pad(p[key], width, value) for p in parts])
