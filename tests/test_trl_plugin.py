"""The TRL plug-in (VEPOGRPOTrainer) on tiny random VLMs of two families, against the
app's own analysis and against TRL's plain GRPOTrainer (the pinned trl version)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vepo_viz.models import engine

pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from vepo_viz import scoring  # noqa: E402
from vepo_viz.analysis import AnalysisSettings, analyze  # noqa: E402
from vepo_viz.perturb import PerturbConfig  # noqa: E402
from vepo_viz.train.trl_plugin import VEPOGRPOConfig, VEPOGRPOTrainer, view_seed  # noqa: E402

pytestmark = pytest.mark.slow

FAMILIES = ("qwen2_vl", "idefics3")
QUESTIONS = ("What color is it?", "How many shapes?")


def _dataset(scene) -> Dataset:
    rows = [{"prompt": [{"role": "user", "content": q}], "image": scene} for q in QUESTIONS]
    return Dataset.from_list(rows)


def _reward(completions, **kwargs):
    # A reward that varies within a group (answers with more distinct characters score
    # higher), so advantages are nonzero and the loss has a gradient.
    return [float(len(set(c[0]["content"]))) for c in completions]


def _common(tmp_path, **kw):
    return dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=12,
        max_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        temperature=1.0,
        seed=0,
        logging_steps=1,
        **kw,
    )


def _trainer(vlm, scene, tmp_path, cls=VEPOGRPOTrainer, cfg_cls=VEPOGRPOConfig, **kw):
    model = copy.deepcopy(vlm.model)
    args = cfg_cls(**_common(tmp_path, **kw))
    return cls(
        model=model,
        reward_funcs=_reward,
        args=args,
        train_dataset=_dataset(scene),
        processing_class=vlm.processor,
    )


def _batch(trainer):
    """One generation batch through the trainer's own hook, at a fixed torch seed."""
    inputs = [dict(x) for x in trainer.train_dataset for _ in range(2)]  # G = 2 per prompt
    torch.manual_seed(0)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by train(); compute_loss reads it
    return trainer._generate_and_score_completions(inputs), inputs


@pytest.fixture(scope="module", params=FAMILIES)
def vlm(request, tiny_vlm):
    return tiny_vlm(request.param, merges=False)


def test_selection_equals_analyze_on_the_same_completion(vlm, scene, tmp_path):
    trainer = _trainer(vlm, scene, tmp_path, selection="vepo", perturb_seed=5)
    out, inputs = _batch(trainer)
    sel = trainer.last_selection
    assert sel is not None and sel["step"] == 0
    n_checked = 0
    for row in range(out["completion_ids"].shape[0]):
        n = int(out["completion_mask"][row].sum())
        if n == 0:
            continue
        ids = out["completion_ids"][row, :n].tolist()
        text = vlm.tokenizer.decode(ids, skip_special_tokens=False)
        question = inputs[row]["prompt"][0]["content"]
        settings = AnalysisSettings(
            temperature=1.0, perturb=PerturbConfig(seed=view_seed(5, 0, row))
        )
        result = analyze(vlm, scene, question, text, settings)
        if result.token_ids.tolist() != ids:  # a completion that ends in the end-of-turn token
            ids_eot = ids[: len(result.token_ids)]
            assert result.token_ids.tolist() == ids_eot
        m = len(result.token_ids)
        np.testing.assert_allclose(sel["stats"].jsd[row, :m].numpy(), result.jsd, atol=1e-5)
        np.testing.assert_allclose(sel["entropy"][row, :m].numpy(), result.entropy, atol=1e-5)
        # The reference scores and selection of the same numbers, through the app's functions.
        stats = scoring.TokenStats(
            **{
                f: torch.as_tensor(getattr(result, f))[None]
                for f in ("entropy", "entropy_noisy", "jsd", "kl")
            }
        )
        mask = torch.ones(1, m, dtype=torch.bool)
        expected = scoring.select_tokens(scoring.score_tokens(stats, mask, "D", 0.7), mask, 0.2)
        if m == n:
            assert sel["selected"][row, :n].tolist() == expected[0].tolist()
            assert sel["selected"][row, :n].tolist() == result.selected_vepo.tolist()
        n_checked += 1
    assert n_checked >= 2


def _state_grads(trainer, batch):
    """|d loss / d h| of the hidden state that predicts each completion token, (B, C).

    TRL computes log-probs with transformers' fused output head (no logits tensor), so
    the gradient is read at the head's input: the language model's last hidden states.
    """
    captured = {}

    def keep(module, args, output):
        output.last_hidden_state.retain_grad()
        captured["hidden"] = output.last_hidden_state

    handle = trainer.model.model.register_forward_hook(keep)
    try:
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
    finally:
        handle.remove()
    grad = captured["hidden"].grad  # (B, P + C, D)
    P, C = batch["prompt_ids"].shape[1], batch["completion_ids"].shape[1]
    return grad[:, P - 1 : P + C - 1].abs().sum(-1)  # (B, C)


def test_left_out_tokens_get_exactly_zero_gradient(vlm, scene, tmp_path):
    trainer = _trainer(vlm, scene, tmp_path, selection="entropy", ratio=0.3)
    batch, _ = _batch(trainer)
    grad = _state_grads(trainer, batch)
    selected = trainer.last_selection["selected"]
    mask = batch["completion_mask"].bool()
    assert (grad[~selected & mask] == 0).all()
    moving = batch["advantages"].abs() > 0  # (B,)
    assert (grad[selected & mask & moving[:, None]] > 0).any()


def test_all_equals_plain_grpo_loss_and_gradients(vlm, scene, tmp_path):
    ours = _trainer(vlm, scene, tmp_path, selection="all")
    plain = _trainer(vlm, scene, tmp_path, cls=GRPOTrainer, cfg_cls=GRPOConfig)
    batch_ours, _ = _batch(ours)
    batch_plain, _ = _batch(plain)
    assert torch.equal(batch_ours["completion_ids"], batch_plain["completion_ids"])
    assert torch.equal(batch_ours["advantages"], batch_plain["advantages"])
    loss_ours = ours.compute_loss(ours.model, batch_ours)
    loss_plain = plain.compute_loss(plain.model, batch_plain)
    assert torch.equal(loss_ours, loss_plain)
    loss_ours.backward()
    loss_plain.backward()
    for (name, a), (_, b) in zip(
        ours.model.named_parameters(), plain.model.named_parameters(), strict=True
    ):
        if a.grad is not None or b.grad is not None:
            assert torch.equal(a.grad, b.grad), name


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo"])
def test_mask_mode_divides_by_the_selected_count(vlm, scene, tmp_path, loss_type):
    trainer = _trainer(vlm, scene, tmp_path, selection="random", ratio=0.5, loss_type=loss_type)
    batch, _ = _batch(trainer)
    selected = trainer.last_selection["selected"] & batch["completion_mask"].bool()
    loss = trainer.compute_loss(trainer.model, batch)
    # On the first step the new and old policies agree, so each token's loss is -A_b.
    adv = batch["advantages"]  # (B,)
    n_sel = selected.sum(-1).float()  # (B,)
    if loss_type == "grpo":  # mean over responses of the mean over its selected tokens
        expected = (-adv * (n_sel > 0)).mean()
    else:  # one mean over the batch's selected tokens
        expected = (-adv * n_sel).sum() / n_sel.sum()
    assert batch["num_items_in_batch"] == selected.sum()
    torch.testing.assert_close(loss.detach(), expected.to(loss.dtype), atol=1e-6, rtol=1e-5)


def test_weight_mode_scales_advantages_of_selected_tokens(vlm, scene, tmp_path):
    trainer = _trainer(
        vlm, scene, tmp_path, selection="entropy", loss_mode="weight", weight_lambda=2.0
    )
    batch, _ = _batch(trainer)
    selected = trainer.last_selection["selected"]
    adv = batch["advantages"]  # (B, C)
    assert adv.dim() == 2 and "tool_mask" not in batch
    base = adv[:, 0] / (1 + 2.0 * selected[:, 0].float())
    torch.testing.assert_close(adv, base[:, None] * (1 + 2.0 * selected.float()))


def test_config_validates_through_the_registries(tmp_path):
    with pytest.raises(Exception, match="selection rule"):
        VEPOGRPOConfig(**_common(tmp_path, selection="nope"))
    with pytest.raises(ValueError, match="score type"):
        VEPOGRPOConfig(**_common(tmp_path, score_type="nope"))
    with pytest.raises(ValueError, match="counterfactual mode"):
        VEPOGRPOConfig(**_common(tmp_path, perturb="nope"))
    assert VEPOGRPOConfig(**_common(tmp_path, selection="vppo")).perturb_config.mode == "patch"


def test_config_defaults_are_the_configs_and_trl_parses_it(tmp_path):
    from trl import TrlParser

    from vepo_viz.scoring import SCORING_KEYS, ScoringConfig
    from vepo_viz.train.trl_plugin import PERTURB_FIELDS

    fields = VEPOGRPOConfig.__dataclass_fields__
    for key in SCORING_KEYS:
        assert fields[key].default == getattr(ScoringConfig(), key), key
    for name, ours in PERTURB_FIELDS.items():
        assert fields[ours].default == getattr(PerturbConfig(), name), ours
    # TRL's own command-line parser takes it (every metadata key is one argparse knows).
    (args,) = TrlParser(VEPOGRPOConfig).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--use_cpu", "--report_to", "none"]
        + ["--alpha", "0.4", "--score_type", "C", "--sigma", "1.5"]
    )
    assert args.scoring == ScoringConfig(score_type="C", alpha=0.4)
    assert args.perturb_config == PerturbConfig(sigma=1.5)
    assert "visual-sensitivity" in fields["alpha"].metadata["help"]  # ScoringConfig's doc


@pytest.mark.parametrize("selection", ["vepo", "entropy"])
def test_clean_states_from_generation_equal_a_forward(vlm, scene, tmp_path, selection):
    # clean_from_generation (the default) records the output head's inputs while TRL
    # generates; they must be the states a teacher-forced clean pass recomputes.
    trainer = _trainer(vlm, scene, tmp_path, selection=selection, perturb_seed=5)
    recorded: dict = {}
    clean_hidden = trainer._clean_hidden

    def spy(model, out, batch):
        hidden = clean_hidden(model, out, batch)
        P, C = out["prompt_ids"].shape[1], out["completion_ids"].shape[1]
        forward = engine.response_states(model, batch, P, C)
        recorded.update(hidden=hidden, forward=forward)
        return hidden

    trainer._clean_hidden = spy
    out, _ = _batch(trainer)
    assert trainer.clean_pass_source == "generation"
    mask = out["completion_mask"].bool()
    assert recorded["hidden"].shape == recorded["forward"].shape
    torch.testing.assert_close(
        recorded["hidden"][mask], recorded["forward"][mask], atol=1e-4, rtol=1e-4
    )
    # ... and give the same selection as the forward (the flag off).
    off = _trainer(vlm, scene, tmp_path, selection=selection, perturb_seed=5,
                   clean_from_generation=False)  # fmt: skip
    out_off, _ = _batch(off)
    assert off.clean_pass_source == "forward"
    assert torch.equal(out_off["completion_ids"], out["completion_ids"])
    assert torch.equal(off.last_selection["selected"], trainer.last_selection["selected"])


def test_generation_capture_refuses_what_does_not_fit():
    from vepo_viz.models.engine import GenerationCapture

    head = torch.nn.Linear(4, 3)
    capture = GenerationCapture()
    with capture.recording(head):
        head(torch.zeros(2, 5, 4))  # prefill: the last position is kept
        head(torch.zeros(2, 1, 4))
    assert capture.hidden(2, 2).shape == (2, 2, 4)
    assert capture.hidden(2, 3) is None  # fewer steps than completion tokens
    assert capture.hidden(3, 2) is None  # another batch
    with capture.recording(head):  # a second generation (tool turns): not one batch
        head(torch.zeros(2, 1, 4))
    assert capture.hidden(2, 2) is None
    flat = GenerationCapture()
    with flat.recording(head):
        head(torch.zeros(7, 4))  # continuous batching's flat layout
    assert flat.hidden(7, 1) is None
    head(torch.zeros(2, 1, 4))  # outside recording: nothing recorded
    assert len(capture.steps) == 3


def test_head_calls_are_padded_to_the_most_chunks_of_any_process():
    # ZeRO-3 gathers the head's weights in a collective on each call: every process must
    # call it equally often, whatever its completion lengths.
    from vepo_viz.models.engine import head_walk

    head = torch.nn.Linear(8, 5)
    calls = []
    head.register_forward_hook(lambda *a: calls.append(1))
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 3, 8, generator=g)  # (B, C, D)
    view = hidden + 0.1 * torch.randn(2, 3, 8, generator=g)
    ids = torch.randint(0, 5, (2, 3), generator=g)
    base = head_walk(head, hidden, [view], ids, rows=2)
    n_plain = len(calls)
    assert n_plain == 1 + 3 * 2  # V, then 3 chunks x (clean, view)
    calls.clear()
    padded = head_walk(head, hidden, [view], ids, rows=2, min_chunks=5)
    assert len(calls) == 1 + 5 * 2
    for name in ("entropy", "logprob", "entropy_noisy", "jsd", "kl", "logprob_noisy"):
        assert torch.equal(getattr(base, name), getattr(padded, name))  # no number changes


def test_view_seeds_stay_in_the_generator_range_for_any_perturb_seed():
    from vepo_viz.perturb import MAX_SEED, make_generator
    from vepo_viz.train.trl_plugin import view_seed

    assert view_seed(5, 3, 2) == (5 * 1_000_003 + 3) * 1_000_003 + 2  # unchanged below it
    for perturb_seed in (17, 18, 10**6, MAX_SEED):
        seed = view_seed(perturb_seed, 999, 63)
        assert 0 <= seed <= MAX_SEED
        make_generator(seed, 0)  # accepted (seed 18 used to be refused mid-training)
