"""The group view (vepo_viz.group): TRL's advantages, the plug-in's weights, the summary,
save/load and exports. Pure math against naive references; the TRL equalities run the
pinned trl's own trainer on a tiny random VLM; the suite check runs the embedded model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.ui_fixtures import fake_analysis
from vepo_viz.errors import VepoInputError
from vepo_viz.group import (
    NO_SIGNAL,
    SCALE_REWARDS,
    GroupAnalysis,
    grpo_advantages,
)
from vepo_viz.limits import RequestLimits

# ---- advantages: naive reference ------------------------------------------------------


def _naive_advantages(rewards, G, scale):
    """TRL's formula written out with Python floats (nan-aware, Bessel's std)."""
    out = []
    groups = [rewards[i : i + G] for i in range(0, len(rewards), G)]
    everything = [r for r in rewards if not math.isnan(r)]

    def std(xs):
        xs = [x for x in xs if not math.isnan(x)]
        if len(xs) < 2:
            return math.nan
        m = sum(xs) / len(xs)
        return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))

    for group in groups:
        valid = [r for r in group if not math.isnan(r)]
        mean = sum(valid) / len(valid) if valid else math.nan
        s = std(group) if scale != "batch" else std(everything)
        for r in group:
            a = r - mean
            if scale != "none":
                a = a / (s + 1e-4)
            out.append(0.0 if math.isnan(a) else a)
    return np.asarray(out)


@pytest.mark.parametrize("scale", SCALE_REWARDS)
def test_advantages_equal_a_naive_reference(scale):
    rng = np.random.default_rng(0)
    rewards = rng.choice([0.0, 0.1, 1.0], size=24).tolist()
    rewards[5] = math.nan  # an unscorable completion
    ours = grpo_advantages(rewards, 8, scale)
    np.testing.assert_allclose(ours, _naive_advantages(rewards, 8, scale), atol=1e-5)
    assert ours[5] == 0.0


def test_equal_rewards_give_zero_advantages_and_batch_differs_from_group():
    assert not grpo_advantages([1.0] * 8, 8).any()
    rewards = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    group, batch = grpo_advantages(rewards, 4, "group"), grpo_advantages(rewards, 4, "batch")
    assert not np.allclose(group, batch)
    np.testing.assert_allclose(grpo_advantages(rewards, 8, "batch"), grpo_advantages(rewards, 8))


def test_bad_advantage_inputs_are_clear_errors():
    with pytest.raises(VepoInputError, match="scale_rewards"):
        grpo_advantages([1.0, 0.0], 2, "std")
    with pytest.raises(VepoInputError, match="groups of 4"):
        grpo_advantages([1.0, 0.0, 1.0], 4)


def test_group_size_is_a_named_limit():
    with pytest.raises(VepoInputError, match="max_group"):
        RequestLimits().check_group(17)
    with pytest.raises(VepoInputError, match="at least 2"):
        RequestLimits().check_group(1)
    RequestLimits(max_group=32).check_group(17)


# ---- credit, summary, save/load on synthetic responses ------------------------------

WRONG = "Looking at the diamond. It is blue. Therefore, the answer is blue."


def _group(rewards=(1.0, 0.1, 1.0, 0.1), misread=((), (7,), (), ())) -> GroupAnalysis:
    texts = [WRONG if r < 1 else None for r in rewards]
    responses = tuple(
        fake_analysis(t, seed=i) if t else fake_analysis(seed=i) for i, t in enumerate(texts)
    )
    G = len(responses)
    kinds = tuple(("template",) * len(r) for r in responses)
    return GroupAnalysis(
        question="What color is the diamond?",
        responses=responses,
        rewards=np.asarray(rewards, dtype=np.float32),
        advantages=grpo_advantages(rewards, G),
        correct=[r == 1.0 for r in rewards],
        answer="red",
        verifier="suite",
        kinds=kinds,
        misread=misread,
    )


def test_credit_is_advantage_times_weight():
    group = _group()
    for method in ("entropy", "vepo", "random", "all"):
        credit = group.credit(method)
        for i, r in enumerate(group.responses):
            n = len(r)
            row = credit.credit[i, :n]
            selected = credit.selected[i, :n]
            if method == "all":
                assert selected.all()
            np.testing.assert_allclose(row, group.advantages[i] * selected, rtol=0, atol=0)
            assert not credit.credit[i, n:].any()
        weighted = group.credit(method, loss_mode="weight", weight_lambda=2.0)
        A, sel = group.advantages[:, None], weighted.selected
        expected = A * np.where(credit.lengths[:, None] > np.arange(sel.shape[1]), 1 + 2.0 * sel, 0)
        if method != "all":
            np.testing.assert_allclose(weighted.credit, expected, atol=1e-6)


def test_entropy_credit_follows_entropy_per_response():
    """The entropy rule keeps the top ceil(0.2 T) tokens of each response by entropy."""
    group = _group()
    credit = group.credit("entropy", ratio=0.3)
    for i, r in enumerate(group.responses):
        k = max(1, math.ceil(0.3 * len(r)))
        top = set(np.argsort(-r.entropy, kind="stable")[:k].tolist())
        assert set(np.flatnonzero(credit.selected[i, : len(r)]).tolist()) == top


def test_summary_names_the_misread_token_and_each_method():
    group = _group()
    summary = group.summary(("entropy", "vepo"))
    assert summary.n_correct == 2 and summary.learning_signal
    check, other = summary.misread  # the two wrong answers (0.1), sorted by reward
    assert other.response == 3 and other.positions == ()
    assert check.response == 1 and check.positions == (7,)
    assert check.tokens == (group.responses[1].tokens[7],)
    for method in ("entropy", "vepo"):
        on = bool(group.credit(method).credit[1, 7] != 0)
        assert check.credited[method] is on
    line = next(line for line in summary.lines() if line.startswith("response 2"))
    assert repr(group.responses[1].tokens[7]) in line and "entropy" in line and "vepo" in line


def test_equal_rewards_teach_nothing_with_trainings_warning():
    from vepo_viz.train.advice import ZERO_ADVANTAGE_MESSAGE

    summary = _group(rewards=(1.0, 1.0, 1.0, 1.0), misread=((),) * 4).summary()
    assert not summary.learning_signal
    assert summary.message.startswith(NO_SIGNAL) and ZERO_ADVANTAGE_MESSAGE in summary.message


def test_no_answer_means_unknown_rewards():
    group = _group()
    unknown = GroupAnalysis(
        question=group.question,
        responses=group.responses,
        rewards=np.full(4, np.nan),
        advantages=np.full(4, np.nan),
        correct=np.zeros(4, bool),
    )
    assert not unknown.has_rewards
    assert "rewards unknown" in unknown.summary().message
    assert not unknown.credit("all").credit.any()


def test_save_and_load_round_trip(tmp_path):
    group = _group()
    path = group.save(tmp_path / "g.json")
    back = GroupAnalysis.load(path)
    np.testing.assert_array_equal(back.rewards, group.rewards)
    np.testing.assert_array_equal(back.advantages, group.advantages)
    np.testing.assert_array_equal(back.credit("vepo").credit, group.credit("vepo").credit)
    assert back.summary().lines() == group.summary().lines()
    assert back.misread == group.misread and back.kinds == group.kinds
    with pytest.raises(ValueError, match="group analysis"):
        GroupAnalysis.from_dict(
            json.loads(group.responses[0].save(tmp_path / "t.json").read_text())
        )


def test_exports_and_notebook_view(tmp_path, monkeypatch):
    from vepo_viz.render.group import group_html, group_latex, save_group_figure

    group = _group()
    for fmt in ("pdf", "svg", "png"):
        path = save_group_figure(group, tmp_path / f"g.{fmt}")
        assert path.stat().st_size > 1000
    assert (tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")
    tex = group_latex(group, standalone=True)
    assert tex.count("\\colorbox") == 2 * sum(len(r) for r in group.responses)
    markup = group_html(group)
    assert markup.count('class="vv-group-row"') == 4
    assert markup.count("vv-misread") == 2  # one misread token, in both methods' rows
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    assert group.show() is None and shown[0].data == markup
    assert group._repr_html_() == markup


# ---- TRL's own trainer --------------------------------------------------------------


@pytest.fixture(scope="module")
def vlm(tiny_vlm):
    return tiny_vlm("qwen2_vl", merges=False)


QUESTION = "What color is it?"


def _reward_text(completion) -> str:
    return completion[0]["content"] if isinstance(completion, list) else completion


def _varied(text: str) -> float:
    """A reward that differs within a group: distinct characters, in steps of 0.25."""
    return float(len(set(text)) % 5) / 4


def _trl_trainer(vlm, scene, tmp_path, plugin: bool, prompts=1, G=4, **kw):
    import copy

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from vepo_viz.train.trl_plugin import VEPOGRPOConfig, VEPOGRPOTrainer

    seen: list[float] = []

    def reward(completions, **kwargs):
        values = [_varied(_reward_text(c)) for c in completions]
        seen.extend(values)
        return values

    rows = [{"prompt": [{"role": "user", "content": QUESTION}], "image": scene}] * prompts
    cfg_cls, cls = (VEPOGRPOConfig, VEPOGRPOTrainer) if plugin else (GRPOConfig, GRPOTrainer)
    args = cfg_cls(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=prompts * G,
        num_generations=G,
        max_completion_length=12,
        max_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        temperature=1.0,
        seed=0,
        **kw,
    )
    trainer = cls(
        model=copy.deepcopy(vlm.model),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=vlm.processor,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = [dict(x) for x in trainer.train_dataset for _ in range(G)]
    return trainer, inputs, seen


@pytest.mark.slow
def test_advantages_equal_trls_own_for_each_scale_rewards(vlm, scene, tmp_path):
    """TRL 1.16's GRPOTrainer computes advantages of known rewards (two prompts, G = 4, so
    "batch" and "group" differ); grpo_advantages of the same rewards equals them."""
    import torch
    from trl import GRPOTrainer

    trainer, inputs, seen = _trl_trainer(vlm, scene, tmp_path, plugin=False, prompts=2)
    n_checked = 0
    for scale in SCALE_REWARDS:
        trainer.scale_rewards = scale  # GRPOTrainer.__init__ copies args.scale_rewards here
        seen.clear()
        torch.manual_seed(0)
        out = GRPOTrainer._generate_and_score_completions(trainer, inputs)
        assert len(seen) == 8
        ours = grpo_advantages(seen, 4, scale)
        np.testing.assert_allclose(out["advantages"].numpy(), ours, rtol=0, atol=1e-6)
        n_checked += int(np.ptp(seen) > 0)
    assert n_checked >= 2  # rewards varied, so the check is not about zeros


@pytest.mark.slow
@pytest.mark.parametrize(
    "selection,loss_mode",
    [("vepo", "mask"), ("entropy", "mask"), ("vepo", "weight"), ("vppo", "weight")],
)
def test_weights_equal_what_the_plugin_writes(vlm, scene, tmp_path, selection, loss_mode):
    """G completions of one training step: the plug-in's selection, tool_mask / weighted
    advantages, and the group view of the same completions and seeds agree."""
    import torch

    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.group import group_of_completions
    from vepo_viz.perturb import PerturbConfig

    trainer, inputs, seen = _trl_trainer(
        vlm, scene, tmp_path, plugin=True, selection=selection, loss_mode=loss_mode,
        perturb_seed=3, clean_from_generation=False, weight_lambda=2.0,
    )  # fmt: skip
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions(inputs)
    n = out["completion_mask"].sum(1).tolist()
    completions = [out["completion_ids"][b, : n[b]].tolist() for b in range(4)]
    mode = trainer.args.perturb_config.mode
    settings = AnalysisSettings(temperature=1.0, perturb=PerturbConfig(mode=mode, seed=3))
    group = group_of_completions(
        vlm, scene, QUESTION, completions, settings=settings,
        reward_fn=lambda text: _varied(text),
    )  # fmt: skip
    np.testing.assert_array_equal(group.rewards, np.asarray(seen, dtype=np.float32))
    assert np.ptp(group.rewards) > 0
    credit = group.credit(selection, loss_mode=loss_mode, weight_lambda=2.0)
    selected = trainer.last_selection["selected"]
    for b in range(4):
        assert credit.selected[b, : n[b]].tolist() == selected[b, : n[b]].tolist()
        if loss_mode == "mask":
            np.testing.assert_array_equal(credit.weights[b, : n[b]], out["tool_mask"][b, : n[b]])
            np.testing.assert_allclose(group.advantages[b], out["advantages"][b], atol=1e-5)
        else:
            written = out["advantages"][b, : n[b]].numpy()
            np.testing.assert_allclose(credit.credit[b, : n[b]], written, rtol=0, atol=1e-5)


# ---- the embedded model -------------------------------------------------------------


@pytest.mark.slow
def test_a_suite_sample_with_mixed_rewards_names_its_misread_token():
    """At the Train tab's default temperature, seeded: the first suite sample whose group
    has mixed rewards and a wrong answer that misreads the image; its summary names the
    token and says whether entropy-only and VEPO credit it."""
    from vepo_viz.group import analyze_group, suite_example
    from vepo_viz.models import load_model
    from vepo_viz.train.config import TrainConfig
    from vepo_viz.ui.samples import load_samples

    vlm = load_model(None)
    temperature = TrainConfig().temperature
    samples = [s for s in load_samples() if s.family == "read"]
    found = None
    for seed in range(3):
        for sample in samples:
            example = suite_example(sample.suite_ref)
            group = analyze_group(
                vlm, example.image, example.question, group=8, temperature=temperature,
                seed=seed, example=example,
            )  # fmt: skip
            summary = group.summary(("entropy", "vepo"))
            if summary.learning_signal and any(c.positions for c in summary.misread):
                found = group, summary
                break
        if found:
            break
    assert found is not None, "no suite sample with mixed rewards and a misread token"
    group, summary = found
    check = next(c for c in summary.misread if c.positions)
    token = group.responses[check.response].tokens[check.positions[0]]
    assert token.strip() and token.strip() not in group.answer
    line = next(line for line in summary.lines() if repr(token) in line)
    for method in ("entropy", "vepo"):
        said = "credits it" if check.credited[method] else "puts no credit on it"
        assert f"{method} {said}" in line
        assert check.credited[method] == bool(
            group.credit(method).credit[check.response, check.positions[0]] != 0
        )
