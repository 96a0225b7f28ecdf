"""The trainer on real (tiny, random) transformers VLMs: full fine-tuning, LoRA with
gradient checkpointing and KL, checkpoints, kill-and-resume, a final model that loads."""

from __future__ import annotations

import json

import pytest
import torch

from vepo_viz.train.config import TrainConfig
from vepo_viz.train.data import TaskPrompt
from vepo_viz.train.jobs import RunPaths, read_metrics, read_status
from vepo_viz.train.trainer import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qwen2_vl(tmp_path_factory):
    from tests.tiny_random import build_tiny_vlm

    return str(build_tiny_vlm("qwen2_vl", tmp_path_factory.mktemp("qwen2_vl")))


@pytest.fixture(scope="module")
def qwen2_5_vl(tmp_path_factory):
    from tests.tiny_random import build_tiny_vlm

    return str(build_tiny_vlm("qwen2_5_vl", tmp_path_factory.mktemp("qwen2_5_vl")))


@pytest.fixture
def letter_reward(monkeypatch):
    """A random model never writes "the answer is X": reward the share of vowels instead,
    so advantages (and gradients) are non-zero and the resume test has something to check."""

    def reward(self, response: str):
        share = sum(c in "aeiou" for c in response) / max(len(response), 1)
        return share, share > 0.3, True

    monkeypatch.setattr(TaskPrompt, "reward", reward)


def _cfg(model: str, out, **kw) -> TrainConfig:
    base = dict(
        model=model,
        out=str(out),
        steps=3,
        prompts_per_step=2,
        group_size=3,
        max_new_tokens=6,
        n_eval=1,
        eval_every=0,
        ckpt_every=2,
        lr=1e-2,
        threads=1,
        families=("color", "count"),
    )
    return TrainConfig(**{**base, **kw})


def _steps(run_dir) -> list[dict]:
    df = read_metrics(run_dir)
    rows = df[df["reward"].notna()].to_dict("records")
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]


def _weights(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_full_run_writes_metrics_checkpoints_and_a_loadable_model(
    qwen2_vl, tmp_path, letter_reward
):
    cfg = _cfg(qwen2_vl, tmp_path / "run", selection="vepo")
    result = train(cfg, progress=False)
    paths = RunPaths(tmp_path / "run")
    assert result.final_dir == paths.final and result.steps_done == 3
    status = read_status(paths.root)
    assert status["state"] == "finished" and status["final"] == str(paths.final)
    rows = _steps(paths.root)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert 0 < r["selected_fraction"] < 0.5  # top 20% per response (k >= 1)
        assert r["jsd_all"] > 0 and r["vis_selected"] >= r["vis_all"] - 1e-9
        assert r["n_selected"] >= 6  # at least one token per response
    assert {p.name for p in paths.checkpoints.iterdir()} == {"step_000002", "step_000003"}
    assert TrainConfig.load_run(paths.root) == cfg

    from vepo_viz.models import load_model

    vlm = load_model(str(paths.final), device="cpu")
    assert vlm.model.config.model_type == "qwen2_vl"
    assert json.loads((paths.final / "vepo_train.json").read_text())["steps"] == 3
    before = _weights(__import__("pathlib").Path(qwen2_vl))
    after = _weights(paths.final)
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)


def test_kill_and_resume_gives_the_same_next_step(qwen2_vl, tmp_path, letter_reward):
    whole = _cfg(qwen2_vl, tmp_path / "whole", selection="entropy", steps=4)
    train(whole, progress=False)
    killed = whole.replace(out=str(tmp_path / "killed"))
    # "Killed" right after step 3 was logged; the last checkpoint is step 2.
    partial = train(killed, progress=False, stop_at=3)
    assert partial.final_dir is None
    assert [r["step"] for r in _steps(killed.out)] == [1, 2, 3]
    train(killed, progress=False)  # resumes from checkpoints/step_000002

    a, b = _steps(whole.out), _steps(killed.out)
    assert [r["step"] for r in b] == [1, 2, 3, 4]  # the dangling step 3 was replaced
    for ra, rb in zip(a, b, strict=True):
        assert ra["sample"] == rb["sample"]
        for key in ("reward", "loss", "grad_norm", "n_selected", "entropy_selected"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-6, abs=1e-9), (ra["step"], key)
    wa, wb = (
        _weights(RunPaths(tmp_path / "whole").final),
        _weights(RunPaths(tmp_path / "killed").final),
    )
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-6, atol=1e-7)


def test_lora_with_gradient_checkpointing_and_kl(qwen2_5_vl, tmp_path, letter_reward):
    """The GPU recipe's code path (LoRA + gradient checkpointing + KL to the frozen base),
    on a tiny random Qwen2.5-VL on CPU."""
    cfg = _cfg(
        qwen2_5_vl,
        tmp_path / "lora",
        finetune="lora",
        lora_r=4,
        gradient_checkpointing=True,
        kl_beta=0.1,
        steps=3,
        ckpt_every=1,
        keep_checkpoints=1,
        selection="vppo",
        lr=5e-2,
    )
    train(cfg, progress=False, stop_at=2)
    ckpt = RunPaths(tmp_path / "lora").checkpoints / "step_000001"
    assert (ckpt / "adapter_config.json").exists() and (ckpt / "adapter_model.safetensors").exists()
    result = train(cfg, progress=False)  # resumes the adapter from step 1
    rows = _steps(cfg.out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[2]["kl"] > 0  # the policy moved away from the reference
    info = read_status(cfg.out)["model_info"]
    assert info["finetune"] == "lora" and info["trainable_params"] < info["total_params"] / 2

    from vepo_viz.models import load_model

    merged = load_model(str(result.final_dir), device="cpu")
    base = load_model(qwen2_5_vl, device="cpu")
    changed = [
        name
        for (name, p), (_, q) in zip(
            merged.model.named_parameters(), base.model.named_parameters(), strict=True
        )
        if not torch.equal(p, q)
    ]
    assert changed and all("language_model" in n for n in changed)  # vision tower frozen


@pytest.mark.parametrize("family", ["smolvlm", "gemma3"])
def test_other_families_train_with_pixel_space_views(family, tmp_path, letter_reward):
    """Tiles (SmolVLM) and (B, C, H, W) images (Gemma 3), VPPO's patch view re-processed."""
    from tests.tiny_random import build_tiny_vlm

    model = build_tiny_vlm(family, tmp_path / "model")
    cfg = _cfg(str(model), tmp_path / "run", selection="vppo", steps=1, n_eval=0)
    result = train(cfg, progress=False)
    assert result.last_metrics["jsd_all"] > 0 and result.last_metrics["n_selected"] >= 6
