"""`train` on TRL (vepo_viz.train.trl_train): the TrainConfig mapping, the verifier reward,
and whole runs of the embedded tiny model into a run folder: metrics, status, held-out
accuracy, checkpoints, kill -9 and resume, stop by SIGTERM, LoRA."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl")

from transformers import TrainerCallback  # noqa: E402

from vepo_viz.errors import VepoInputError  # noqa: E402
from vepo_viz.tiny import DEFAULT_MODEL  # noqa: E402
from vepo_viz.train.config import TrainConfig  # noqa: E402
from vepo_viz.train.jobs import RunPaths, read_metrics, read_status  # noqa: E402
from vepo_viz.train.trl_data import correct, verifier_reward, well_formed  # noqa: E402
from vepo_viz.train.trl_train import latest_checkpoint, train, trl_args  # noqa: E402

needs_embedded = pytest.mark.skipif(
    not (Path(DEFAULT_MODEL) / "config.json").is_file(),
    reason="the embedded tiny model is not built (vepo_viz/tiny/model)",
)
ROOT = Path(__file__).resolve().parents[1]

# The learning test's prompts: the embedded model answers almost every question right,
# which leaves GRPO nothing to raise; these are the first four number-reading questions of
# the train split (difficulty 1, the smallest digits) that it answers wrong greedily (5 of
# 40 when measured). Sampled at temperature 1 they start 12-22% correct.
FAMILY = "read"
DIFFICULTY = 1.0
N_CANDIDATES = 40
N_PROMPTS = 4


def greedy_failures(path: Path, n: int) -> int:
    """Keep in the JSONL at `path` only the first n questions the embedded model answers
    wrong greedily; returns how many it got wrong in all."""
    import json

    from transformers import AutoModelForImageTextToText

    from vepo_viz.models.processors import Qwen2VLProcessorNoVideo
    from vepo_viz.tasks import make_example
    from vepo_viz.tiny.evaluate import correct_answers

    model = AutoModelForImageTextToText.from_pretrained(DEFAULT_MODEL).eval()
    processor = Qwen2VLProcessorNoVideo.from_pretrained(DEFAULT_MODEL)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    examples = [make_example(r["family"], r["seed"], r["difficulty"]) for r in rows]
    correct = correct_answers(model, processor, examples)
    wrong = [r for r, ok in zip(rows, correct, strict=True) if not ok]
    path.write_text("".join(json.dumps(r) + "\n" for r in wrong[:n]))
    return len(wrong)


def _cfg(out, **kw) -> TrainConfig:
    # Difficulty 1 and temperature 1: the embedded model gets some answers wrong, so
    # rewards vary within a group and the updates are not zero.
    base = dict(
        model="tiny",
        out=str(out),
        steps=4,
        prompts_per_step=2,
        group_size=4,
        max_new_tokens=32,
        difficulty=1.0,
        temperature=1.0,
        families=("read", "count"),
        n_eval=1,
        eval_every=2,
        ckpt_every=2,
        lr=1e-3,
        threads=1,
        seed=0,
    )
    return TrainConfig(**{**base, **kw})


def _hard_cfg(out, hard_prompts: str, **kw) -> TrainConfig:
    """A run on the hard prompts: four per step, G = 8 (kw override)."""
    return _cfg(
        out, **{"data": hard_prompts, "families": (), "prompts_per_step": 4, "group_size": 8, **kw}
    )


@pytest.fixture(scope="module")
def hard_prompts(tmp_path_factory) -> str:
    """A JSONL of the first four number-reading questions (difficulty 1) the embedded
    model answers wrong greedily: sampled at temperature 1 it gets them right only
    sometimes, so rewards vary within a group (see FAMILY above)."""
    from vepo_viz.tasks import export_jsonl

    path = export_jsonl(
        tmp_path_factory.mktemp("hard") / "data.jsonl",
        split="train",
        n_per_family=N_CANDIDATES,
        families=[FAMILY],
        difficulty=DIFFICULTY,
    )
    assert greedy_failures(path, N_PROMPTS) >= N_PROMPTS
    return str(path)


def _steps(run_dir) -> list[dict]:
    df = read_metrics(run_dir)
    return df[df["reward"].notna()].to_dict("records")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


# ---- fast ------------------------------------------------------------------------------


def test_trl_args_passes_every_counterfactual_setting(tmp_path):
    """patch_size, patch_prob and blur_radius reach the plug-in's view (not just the mode)."""
    cfg = TrainConfig.from_dict(
        {"selection": "vppo", "perturb": "patch", "patch_size": 28, "patch_prob": 0.25}
    )
    view = trl_args(cfg, tmp_path, use_cpu=True).perturb_config
    assert (view.mode, view.patch_size, view.patch_prob) == ("patch", 28, 0.25)
    blur = TrainConfig.from_dict({"perturb": "blur", "blur_radius": 2.5})
    assert trl_args(blur, tmp_path, use_cpu=True).perturb_config.blur_radius == 2.5


def test_trl_args_maps_the_train_config(tmp_path):
    cfg = TrainConfig.from_dict(
        {
            "prompts_per_step": 3,
            "group_size": 4,
            "steps": 7,
            "lr": 2e-5,
            "kl_beta": 0.05,
            "selection": "vppo",
            "ratio": 0.3,
            "scope": "batch",
            "alpha": 0.5,
            "sigma": 1.5,
            "loss_mode": "weight",
            "weight_lambda": 2.0,
            "max_new_tokens": 20,
            "temperature": 0.7,
            "seed": 3,
            "ckpt_every": 5,
            "keep_checkpoints": 3,
            "adv_norm": "none",
        }
    )
    args = trl_args(cfg, tmp_path, use_cpu=True)
    assert args.per_device_train_batch_size == 12 and args.num_generations == 4
    assert args.max_steps == 7 and args.learning_rate == 2e-5 and args.beta == 0.05
    assert (args.selection, args.ratio, args.scope, args.alpha) == ("vppo", 0.3, "batch", 0.5)
    assert (args.sigma, args.loss_mode, args.weight_lambda) == (1.5, "weight", 2.0)
    assert args.max_completion_length == 20 and args.temperature == 0.7
    assert args.seed == 3 and args.perturb_seed == 3
    assert args.save_steps == 5 and args.save_total_limit == 3
    assert args.scale_rewards == "none" and args.shuffle_dataset is False
    assert args.output_dir == str(tmp_path)
    assert trl_args(cfg, tmp_path, use_cpu=True, report_to=["tensorboard"]).report_to == [
        "tensorboard"
    ]
    assert args.gradient_accumulation_steps == 1 and args.steps_per_generation == 1
    assert trl_args(cfg.replace(report_to="tensorboard, wandb"), tmp_path).report_to == [
        "tensorboard",
        "wandb",
    ]
    assert trl_args(cfg.replace(report_to="none"), tmp_path).report_to == []
    # micro_batch_size splits the generation batch of 12 into equal micro-batches.
    split = trl_args(cfg.replace(micro_batch_size=5), tmp_path, use_cpu=True)
    assert (split.per_device_train_batch_size, split.gradient_accumulation_steps) == (4, 3)
    assert split.steps_per_generation == 3 and split.generation_batch_size == 12
    # The selection settings pass as they are: nothing is mapped to TRL's entropy quantile
    # unless it is named, as TRL names it, with selection "all".
    assert args.top_entropy_quantile == 1.0
    named = cfg.replace(selection="all", loss_mode="mask", trl={"top_entropy_quantile": 0.3})
    q = trl_args(named, tmp_path)
    assert (q.selection, q.scope, q.top_entropy_quantile) == ("all", "batch", 0.3)
    with pytest.raises(VepoInputError, match='use it with selection="all"'):
        cfg.replace(trl={"top_entropy_quantile": 0.3})
    with pytest.raises(VepoInputError, match="scope='quantile' is not a training scope"):
        cfg.replace(selection="entropy", scope="quantile")


def test_verifier_reward_is_the_suites():
    completions = [
        [{"role": "assistant", "content": "the answer is 7."}],
        [{"role": "assistant", "content": "the answer is 3."}],
        [{"role": "assistant", "content": "no idea"}],
    ]
    kw = dict(answer=["7", "7", "7"], answer_space=[[], [], []])
    assert verifier_reward(completions, **kw) == [1.0, 0.1, 0.0]
    assert correct(completions, **kw) == [1.0, 0.0, 0.0]
    assert well_formed(completions, **kw) == [1.0, 1.0, 0.0]


# ---- runs of the embedded model --------------------------------------------------------


@pytest.mark.slow
@needs_embedded
def test_run_writes_metrics_status_checkpoints_and_a_final_model(tmp_path):
    cfg = _cfg(tmp_path / "run", steps=2, ckpt_every=1, keep_checkpoints=1)
    result = train(cfg, progress=False)
    paths = RunPaths(tmp_path / "run")
    assert result.final_dir == paths.final and result.steps_done == 2
    status = read_status(paths.root)
    assert status["state"] == "finished" and status["final"] == str(paths.final)
    assert status["model_info"]["finetune"] == "full"
    rows = _steps(paths.root)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        for key in ("reward", "accuracy", "well_formed", "loss", "grad_norm", "clip_fraction"):
            assert key in r, key
        assert 0 < r["selected_fraction"] < 0.5
        assert r["vis_selected"] >= r["vis_all"] - 1e-9 and r["jsd_all"] > 0
        assert r["step_s"] > 0
    evals = read_metrics(paths.root).dropna(subset=["heldout_acc"])["step"].tolist()
    assert evals == [0, 2]  # before the first step and after the last (eval_every=2)
    assert [p.name for p in paths.checkpoints.glob("checkpoint-*")] == ["checkpoint-2"]
    assert TrainConfig.load_run(paths.root) == cfg

    from vepo_viz.models import load_model

    vlm = load_model(str(paths.final), device="cpu")
    assert vlm.model.config.model_type == "qwen2_vl"
    assert json.loads((paths.final / "vepo_train.json").read_text())["steps"] == 2


_KILLED_RUN = """
import os, signal, sys
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.trl_train import train
train(TrainConfig.from_toml(sys.argv[1]), progress=False, stop_at=3)
os.kill(os.getpid(), signal.SIGKILL)  # kill -9 right after step 3 was logged
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=ROOT)


@pytest.mark.slow
@needs_embedded
def test_kill_9_and_resume_gives_the_same_next_step(tmp_path):
    whole = _cfg(tmp_path / "whole")
    train(whole, progress=False)
    killed = whole.replace(out=str(tmp_path / "killed"))
    config = tmp_path / "killed.toml"
    config.write_text(killed.to_toml())
    process = _python(_KILLED_RUN, str(config))
    assert process.wait(timeout=300) == -signal.SIGKILL
    paths = RunPaths(tmp_path / "killed")
    assert read_status(paths.root)["state"] == "stopped"  # the process is gone
    assert latest_checkpoint(paths).name == "checkpoint-2"
    assert [r["step"] for r in _steps(paths.root)] == [1, 2, 3]

    train(killed, progress=False)  # resumes from checkpoint-2
    assert_same_run(whole.out, killed.out)  # the dangling step 3 was replaced


def assert_same_run(whole_out: str, resumed_out: str) -> None:
    """A resumed run's 4 steps (metrics) and final weights equal the uninterrupted run's."""
    a, b = _steps(whole_out), _steps(resumed_out)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert any(r["grad_norm"] > 0 for r in a)  # there was something to reproduce
    for ra, rb in zip(a, b, strict=True):
        for key in ("reward", "accuracy", "loss", "grad_norm", "entropy_selected", "vis_all"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-6, abs=1e-9), (ra["step"], key)
    wa, wb = _weights(RunPaths(Path(whole_out)).final), _weights(RunPaths(Path(resumed_out)).final)
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-6, atol=1e-7)


_LONG_RUN = """
import sys
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.trl_train import train
train(TrainConfig.from_toml(sys.argv[1]), progress=False)
"""


@pytest.mark.slow
@needs_embedded
def test_sigterm_stops_after_the_step_with_a_checkpoint(tmp_path):
    cfg = _cfg(tmp_path / "run", steps=50, ckpt_every=0, n_eval=0)
    config = tmp_path / "run.toml"
    config.write_text(cfg.to_toml())
    process = _python(_LONG_RUN, str(config))
    paths = RunPaths(tmp_path / "run")
    deadline = time.time() + 240
    while time.time() < deadline and not _steps_logged(paths):
        time.sleep(0.5)
    assert _steps_logged(paths), "no step was logged"
    process.send_signal(signal.SIGTERM)  # what jobs.stop_run sends
    assert process.wait(timeout=240) == 0
    status = read_status(paths.root)
    assert status["state"] == "stopped" and status["message"] == "stopped by request"
    done = status["step"]
    assert 1 <= done < 50
    assert latest_checkpoint(paths).name == f"checkpoint-{done}"
    assert not paths.final.exists()


def _steps_logged(paths: RunPaths) -> bool:
    return paths.metrics.exists() and '"reward"' in paths.metrics.read_text()


@pytest.mark.slow
@needs_embedded
def test_lora_with_gradient_checkpointing_and_kl(tmp_path, hard_prompts):
    cfg = _hard_cfg(
        tmp_path / "lora",
        hard_prompts,
        steps=2,
        finetune="lora",
        lora_r=4,
        gradient_checkpointing=True,
        kl_beta=0.1,
        ckpt_every=1,
        selection="vppo",
        lr=5e-2,
        n_eval=0,
    )
    result = train(cfg, progress=False)
    ckpt = RunPaths(Path(cfg.out)).checkpoints / "checkpoint-1"
    assert (ckpt / "adapter_config.json").exists()
    info = read_status(cfg.out)["model_info"]
    assert info["finetune"] == "lora" and info["trainable_params"] < info["total_params"] / 2
    rows = _steps(cfg.out)
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["kl"] > 0  # moved off the base

    from vepo_viz.models import load_model

    merged = load_model(str(result.final_dir), device="cpu")
    base = load_model(None, device="cpu")
    changed = [
        name
        for (name, p), (_, q) in zip(
            merged.model.named_parameters(), base.model.named_parameters(), strict=True
        )
        if not torch.equal(p, q)
    ]
    assert changed and all("visual" not in n for n in changed)

    # A mid-run LoRA checkpoint (adapter only) opens as base + adapter.
    from vepo_viz.train.jobs import openable_model

    (RunPaths(Path(cfg.out)).final / "config.json").unlink()  # as if still running
    assert openable_model(cfg.out) == RunPaths(Path(cfg.out)).checkpoints / "checkpoint-2"
    opened = load_model(str(openable_model(cfg.out)), device="cpu", cache=False)
    assert type(opened.model) is type(base.model)  # merged: a plain transformers model
    for (name, p), (_, q) in zip(
        opened.model.named_parameters(), merged.model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
@needs_embedded
def test_grpo_on_trl_improves_the_tiny_models_reward(tmp_path, hard_prompts):
    """The GRPO learning test: four prompts the model gets wrong greedily, G = 8, VEPO
    selection; the sampled accuracy rises (measured on the hand-written loop over 8 steps
    at lr 3e-4: +0.34 at seed 0, +0.73 seed 1, +0.41 seed 2)."""
    cfg = _hard_cfg(
        tmp_path / "learn",
        hard_prompts,
        steps=8,
        lr=3e-4,
        max_new_tokens=48,
        selection="vepo",
        n_eval=0,
        ckpt_every=0,
    )
    train(cfg, progress=False)
    accuracy = [r["accuracy"] for r in _steps(cfg.out)]
    first, last = sum(accuracy[:2]) / 2, sum(accuracy[-2:]) / 2
    assert last >= first + 0.15, f"sampled accuracy per step: {accuracy}"


class _GradsBeforeStep(TrainerCallback):
    """The accumulated gradients of the first optimizer step."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] | None = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {
                n: p.grad.detach().clone()
                for n, p in model.named_parameters()
                if p.grad is not None
            }


def _first_step_grads(cfg: TrainConfig, tmp_path: Path) -> dict[str, torch.Tensor]:
    from vepo_viz.models import load_model
    from vepo_viz.train.data import PromptSource
    from vepo_viz.train.trl_data import REWARD_FUNCS, build_dataset
    from vepo_viz.train.trl_plugin import VEPOGRPOTrainer

    vlm = load_model(None, device="cpu", cache=False)
    grads = _GradsBeforeStep()
    trainer = VEPOGRPOTrainer(
        model=vlm.model,
        processing_class=vlm.processor,
        reward_funcs=REWARD_FUNCS,
        args=trl_args(cfg, tmp_path, max_steps=1, save_strategy="no"),
        train_dataset=build_dataset(cfg, PromptSource(cfg), vlm.max_image_pixels),
        callbacks=[grads],
    )
    torch.manual_seed(0)
    trainer.train()
    assert grads.grads
    return grads.grads


@pytest.mark.slow
@needs_embedded
def test_micro_batches_give_the_gradient_of_the_whole_batch(tmp_path, hard_prompts):
    """prompts_per_step x group_size = 32 sequences in one micro-batch, or in four of 8
    (TRL's gradient accumulation over one generation batch): the same completions, the
    same selection and the same accumulated gradient (the dapo loss divides every
    micro-batch by the selected-token count of the whole generation batch)."""
    cfg = _hard_cfg(
        tmp_path / "run",
        hard_prompts,
        steps=1,
        n_eval=0,
        max_grad_norm=0.0,
        selection="entropy",
    )
    whole = _first_step_grads(cfg.replace(micro_batch_size=32), tmp_path / "whole")
    split = _first_step_grads(cfg.replace(micro_batch_size=8), tmp_path / "split")
    assert whole.keys() == split.keys()
    assert any(float(g.abs().sum()) > 0 for g in whole.values())
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.slow
@needs_embedded
def test_offered_selection_scopes_and_trls_entropy_quantile_train(tmp_path, hard_prompts):
    """What training offers runs as named: scope "batch" (one cut over the batch) and TRL's
    own top_entropy_quantile with selection "all", which reaches TRL's loss (the first
    step's gradient differs from plain GRPO's on the same completions)."""
    cfg = _hard_cfg(tmp_path / "run", hard_prompts, steps=1, n_eval=0, max_grad_norm=0.0)
    batch = train(cfg.replace(selection="entropy", scope="batch"), progress=False)
    assert batch.steps_done == 1 and 0 < batch.last_metrics["selected_fraction"] <= 0.21
    plain = _first_step_grads(cfg.replace(selection="all"), tmp_path / "all")
    trl_cfg = cfg.replace(selection="all", trl={"top_entropy_quantile": 0.2})
    quantile = _first_step_grads(trl_cfg, tmp_path / "quantile")
    assert plain.keys() == quantile.keys()
    assert any(float(g.abs().sum()) > 0 for g in plain.values())
    assert any(not torch.allclose(plain[n], quantile[n]) for n in plain)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["smolvlm", "gemma3"])
def test_other_families_train_with_pixel_space_views(family, tmp_path):
    """Tiles (SmolVLM) and (B, C, H, W) images (Gemma 3), VPPO's patch view re-processed
    (from the hand-written loop's tests/test_train_models.py)."""
    from tests.tiny_random import build_tiny_vlm

    model = build_tiny_vlm(family, tmp_path / "model")
    cfg = _cfg(tmp_path / "run", model=str(model), selection="vppo", steps=1, n_eval=0)
    cfg = cfg.replace(group_size=3, max_new_tokens=6, families=["color", "count"], ckpt_every=0)
    result = train(cfg, progress=False)
    assert result.last_metrics["jsd_all"] > 0 and result.last_metrics["selected_fraction"] > 0


def test_trl_table_passes_through_to_grpo_config(tmp_path):
    from vepo_viz.train.trl_train import check_trl_table

    cfg = TrainConfig(trl={"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.4,
                           "learning_rate": 3e-6})  # fmt: skip
    args = trl_args(cfg, tmp_path, use_cpu=True)
    assert (args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization) == (
        True,
        "colocate",
        0.4,
    )
    assert args.learning_rate == 3e-6  # the table wins over the mapping
    assert trl_args(cfg, tmp_path, use_cpu=True, vllm_mode="server").vllm_mode == "server"
    for bad, message in [
        ({"use_vlm": True}, "did you mean 'use_vllm'"),
        ({"selection": "all"}, "is a VEPO setting"),
        ({"output_dir": "/tmp/x"}, "cannot be set from"),
        ({"push_to_hub": True}, "cannot be set from"),
    ]:
        with pytest.raises(VepoInputError, match=message):
            check_trl_table(bad)
    with pytest.raises(VepoInputError, match="use_vlm"):  # refused before a model loads
        train(TrainConfig(out=str(tmp_path / "run"), trl={"use_vlm": True}), progress=False)
