"""GRPO math and one update on a fake policy, checked against hand-computed values.

The fake policy's logits are a parameter table (one row of logits per sequence and
position), plus an image term so that a counterfactual view changes them; no weights,
no transformers.
"""

from __future__ import annotations

import math

import pytest
import torch

from vepo_viz.scoring import (
    score_tokens,
    select_tokens,
    token_stats,
    vppo_advantage_scale,
    vppo_token_dependency,
)
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.data import TaskPrompt
from vepo_viz.train.grpo import group_advantages, grpo_loss, k3_kl, token_entropy
from vepo_viz.train.policy import SequenceBatch
from vepo_viz.train.rollout import Episode, RolloutBatch, score_pass, update
from vepo_viz.train.selection import Selection, select_for_step, selection_metrics


class FakePolicy:
    """logits[i, t] = table[i, t] + pixel[i] * image_weight[t]: per-sequence parameters, so
    the gradient of each (sequence, position) is separate and checkable."""

    def __init__(self, n_rows: int, n_pos: int, vocab: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(torch.randn(n_rows, n_pos, vocab, generator=gen))
        self.image_weight = torch.randn(n_pos, vocab, generator=gen)

    def encode(self, prompts, responses, n_response=None):
        T = n_response or max(len(r) for r in responses)
        ids = torch.zeros(len(responses), T, dtype=torch.long)
        mask = torch.zeros(len(responses), T, dtype=torch.bool)
        for i, r in enumerate(responses):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = True
        rows = torch.tensor([int(p.id) for p in prompts])  # the fake's row of each sequence
        return SequenceBatch({"rows": rows, "pixel_values": torch.ones(len(rows))}, ids, mask)

    def response_logits(self, batch, image_inputs=None, model=None):
        pixels = (image_inputs or batch.inputs)["pixel_values"]  # (n,)
        T = batch.n_response
        table = self.table[batch.inputs["rows"], :T]  # (n, T, V)
        return table + pixels[:, None, None] * self.image_weight[None, :T]

    def counterfactual_inputs(self, batch, mode, *, sigma, generator):
        n = batch.n_rows
        return {
            "pixel_values": batch.inputs["pixel_values"]
            + sigma * torch.randn(n, generator=generator)
        }

    def parameters(self):
        return [self.table]

    def train(self, mode=True):
        pass


def _prompt(row: int) -> TaskPrompt:
    return TaskPrompt(id=str(row), image=None, question="q", answer="a")


def _batch(policy: FakePolicy, responses, rewards, cfg: TrainConfig) -> RolloutBatch:
    episodes = [
        Episode(_prompt(i), i // cfg.group_size, tuple(r), "", float(rw), rw == 1.0, True)
        for i, (r, rw) in enumerate(zip(responses, rewards, strict=True))
    ]
    return RolloutBatch.build(policy, episodes, cfg)


RESPONSES = [[1, 2, 3], [0, 3], [2, 2, 1], [3, 0, 0]]  # second one is padded at t = 2
REWARDS = [1.0, 0.0, 1.0, 0.1]


def _cfg(**kw) -> TrainConfig:
    base = dict(group_size=2, prompts_per_step=2, micro_batch_size=4, max_grad_norm=0.0)
    return TrainConfig.from_dict({**base, **kw})


# ---- pure math ------------------------------------------------------------------


def test_group_advantages_hand_values():
    adv = group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2)
    s = 1 / math.sqrt(2)  # unbiased std of (1, 0) is 1/sqrt(2); (1 - 0.5) / s = s
    torch.testing.assert_close(adv, torch.tensor([s, -s, 0.0, 0.0]), atol=1e-5, rtol=0)
    adv_none = group_advantages(torch.tensor([1.0, 0.0, 0.1, 0.3]), 2, norm="none")
    torch.testing.assert_close(adv_none, torch.tensor([0.5, -0.5, -0.1, 0.1]))


def test_group_advantages_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple of 3"):
        group_advantages(torch.zeros(4), 3)
    with pytest.raises(ValueError, match=">= 2"):
        group_advantages(torch.zeros(4), 1)


def test_k3_kl_properties():
    logp = torch.log(torch.tensor([[0.2, 0.5, 0.9]]))
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(k3_kl(logp, logp, mask), torch.zeros(1, 3))
    ref = torch.log(torch.tensor([[0.4, 0.1, 1e-30]]))
    kl = k3_kl(logp, ref, mask)
    r = ref - logp
    torch.testing.assert_close(kl[0, :2], (torch.exp(r) - r - 1)[0, :2])
    assert kl[0, 2] == 0 and bool((kl >= 0).all())


def test_token_entropy_matches_token_stats():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=gen) * 3
    for tau in (1.0, 0.7):
        expected = token_stats(logits, logits, temperature=tau).entropy
        for chunk in (1, 4, 64):
            got = token_entropy(logits, tau, chunk_rows=chunk)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_grpo_loss_equals_policy_loss_without_kl():
    gen = torch.Generator().manual_seed(1)
    logp = -torch.rand(4, 5, generator=gen)
    mask = torch.rand(4, 5, generator=gen) > 0.2
    sel = mask & (torch.rand(4, 5, generator=gen) > 0.5)
    adv = torch.randn(4, generator=gen)
    loss, m = grpo_loss(logp + 0.1, logp, adv, mask, sel)
    # hand: ratio e^0.1, clipped at 1.2 is not binding; max(-A r, -A clip(r)) = -A r for
    # A > 0 and -A * 1.1052 for A < 0 too (r inside the clip range)
    r = math.exp(0.1)
    expected = -(adv[:, None] * r * sel).sum() / sel.sum()
    torch.testing.assert_close(loss, expected.float())
    assert m["kl"] == 0.0 and m["n_selected"] == float(sel.sum())


def test_grpo_loss_micro_batches_sum_to_full_batch():
    gen = torch.Generator().manual_seed(2)
    logp_old = -torch.rand(6, 4, generator=gen)
    logp_new = (logp_old + 0.3 * torch.randn(6, 4, generator=gen)).requires_grad_(True)
    ref = logp_old - 0.2
    mask = torch.rand(6, 4, generator=gen) > 0.3
    sel = mask & (torch.rand(6, 4, generator=gen) > 0.4)
    adv = torch.randn(6, generator=gen)
    kw = dict(kl_beta=0.05)
    for mode in ("mask", "weight"):
        full, _ = grpo_loss(logp_new, logp_old, adv, mask, sel, mode=mode, logp_ref=ref, **kw)
        n_active = float((sel if mode == "mask" else mask).sum())
        parts = [
            grpo_loss(
                logp_new[rows],
                logp_old[rows],
                adv[rows],
                mask[rows],
                sel[rows],
                mode=mode,
                logp_ref=ref[rows],
                n_active_total=n_active,
                n_valid_total=float(mask.sum()),
                **kw,
            )[0]
            for rows in (slice(0, 2), slice(2, 3), slice(3, 6))
        ]
        torch.testing.assert_close(sum(parts), full)


# ---- selection through the app's scoring functions --------------------------------


def _signals(seed=0, with_stats=True):
    from vepo_viz.train.selection import TokenSignals

    gen = torch.Generator().manual_seed(seed)
    clean = torch.randn(4, 6, 20, generator=gen) * 2
    noisy = clean + torch.randn(4, 6, 20, generator=gen)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 4:] = False
    stats = token_stats(clean, noisy)
    logp = -torch.rand(4, 6, generator=gen)
    return TokenSignals(
        mask=mask,
        logp_old=logp,
        entropy=stats.entropy,
        stats=stats if with_stats else None,
        logp_noisy=logp - torch.rand(4, 6, generator=gen),
    ), stats


@pytest.mark.parametrize("score_type", ["D", "A", "G", "jsd"])
def test_vepo_selection_is_score_tokens_then_select_tokens(score_type):
    signals, stats = _signals()
    cfg = TrainConfig.from_dict(
        {"selection": "vepo", "score_type": score_type, "ratio": 0.3, "alpha": 0.6}
    )
    sel = select_for_step(cfg, signals, torch.Generator())
    expected = select_tokens(score_tokens(stats, signals.mask, score_type, 0.6), signals.mask, 0.3)
    assert torch.equal(sel.selected, expected)
    assert not bool((sel.selected & ~signals.mask).any())


def test_entropy_random_all_and_vppo_rules():
    signals, stats = _signals(with_stats=False)
    mask = signals.mask
    ent = select_for_step(TrainConfig(selection="entropy"), signals, torch.Generator())
    assert torch.equal(
        ent.selected, select_tokens(torch.where(mask, stats.entropy, 0.0), mask, 0.2)
    )
    r1 = select_for_step(TrainConfig(selection="random"), signals, torch.Generator().manual_seed(3))
    r2 = select_for_step(TrainConfig(selection="random"), signals, torch.Generator().manual_seed(3))
    assert torch.equal(r1.selected, r2.selected)
    assert torch.equal(r1.selected.sum(1), ent.selected.sum(1))  # same k per response
    everything = select_for_step(TrainConfig(selection="all"), signals, torch.Generator())
    assert torch.equal(everything.selected, mask)
    vppo = select_for_step(TrainConfig(selection="vppo"), signals, torch.Generator())
    dep = vppo_token_dependency(signals.logp_old, signals.logp_noisy, mask)
    assert torch.equal(vppo.selected, select_tokens(dep, mask, 0.2))
    torch.testing.assert_close(vppo.advantage_scale, vppo_advantage_scale(dep, mask))


def test_selection_metrics_compare_selected_with_all():
    signals, _ = _signals()
    sel = select_for_step(TrainConfig(selection="entropy"), signals, torch.Generator())
    m = selection_metrics(signals, sel, 0.7)
    assert m["entropy_selected"] > m["entropy_all"]  # entropy top-20% has the highest H
    assert set(m) >= {"jsd_selected", "jsd_all", "vis_selected", "vis_all"}


# ---- one GRPO step on the fake policy ---------------------------------------------


def test_one_step_matches_hand_computed_loss_and_gradient():
    cfg = _cfg(selection="all")
    policy = FakePolicy(n_rows=4, n_pos=3, vocab=4)
    table0 = policy.table.detach().clone()
    batch = _batch(policy, RESPONSES, REWARDS, cfg)
    signals, _ = score_pass(policy, batch, cfg, step=0, counterfactual=False)
    selection = select_for_step(cfg, signals, torch.Generator())
    lr = 0.5
    optimizer = torch.optim.SGD(policy.parameters(), lr=lr)
    metrics = update(policy, optimizer, batch, signals, selection, cfg)

    # By hand: ratio = 1 at the first epoch, so the loss is -sum_i A_i n_i / n_tokens and
    # d loss / d logits[i, t] = -A_i (onehot(o_it) - softmax(logits[i, t])) / n_tokens.
    s = 1 / math.sqrt(2)
    adv = [s, -s, s, -s]  # group 1: (1, 0); group 2: (1, 0.1), std (unbiased) 0.0636
    n_tokens = sum(len(r) for r in RESPONSES)
    expected_loss = -sum(a * len(r) for a, r in zip(adv, RESPONSES, strict=True)) / n_tokens
    assert metrics["loss"] == pytest.approx(expected_loss, abs=1e-5)
    assert metrics["n_tokens"] == n_tokens

    logits = table0 + policy.image_weight[None]  # pixels = 1
    grad = torch.zeros_like(table0)
    for i, r in enumerate(RESPONSES):
        for t, token in enumerate(r):
            onehot = torch.nn.functional.one_hot(torch.tensor(token), 4).float()
            grad[i, t] = -adv[i] * (onehot - torch.softmax(logits[i, t], -1)) / n_tokens
    torch.testing.assert_close(policy.table.detach(), table0 - lr * grad, atol=1e-6, rtol=0)

    # Direction: the sampled tokens of positive-advantage responses became more likely,
    # those of negative-advantage responses less likely.
    new_logits = policy.table.detach() + policy.image_weight[None]
    for i, r in enumerate(RESPONSES):
        for t, token in enumerate(r):
            before = torch.log_softmax(logits[i, t], -1)[token]
            after = torch.log_softmax(new_logits[i, t], -1)[token]
            assert (after - before) * adv[i] > 0


@pytest.mark.parametrize("mode", ["mask", "weight"])
def test_unselected_and_padding_tokens_get_exactly_zero_gradient(mode):
    cfg = _cfg(selection="entropy", ratio=0.34, loss_mode=mode)
    policy = FakePolicy(n_rows=4, n_pos=3, vocab=4, seed=5)
    batch = _batch(policy, RESPONSES, REWARDS, cfg)
    signals, _ = score_pass(policy, batch, cfg, step=0, counterfactual=False)
    selection = select_for_step(cfg, signals, torch.Generator())
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.0)
    captured = {}
    original_step = optimizer.step

    def keep_grad(*a, **k):
        captured["grad"] = policy.table.grad.detach().clone()
        return original_step(*a, **k)

    optimizer.step = keep_grad
    update(policy, optimizer, batch, signals, selection, cfg)
    grad_norm = captured["grad"].abs().sum(-1)  # (N, T)
    active = selection.selected if mode == "mask" else signals.mask
    assert bool((grad_norm[~active] == 0).all()), "inactive tokens must get exactly 0"
    assert bool((grad_norm[active] > 0).all())
    assert bool((grad_norm[~signals.mask] == 0).all())  # padding, in both modes


def test_gradient_accumulation_does_not_change_the_update():
    grads = []
    for micro in (1, 3, 4):
        cfg = _cfg(selection="entropy", micro_batch_size=micro)
        policy = FakePolicy(n_rows=4, n_pos=3, vocab=4, seed=7)
        batch = _batch(policy, RESPONSES, REWARDS, cfg)
        signals, _ = score_pass(policy, batch, cfg, step=0, counterfactual=False)
        selection = select_for_step(cfg, signals, torch.Generator())
        opt = torch.optim.SGD(policy.parameters(), lr=1.0)
        before = policy.table.detach().clone()
        update(policy, opt, batch, signals, selection, cfg)
        grads.append(before - policy.table.detach())
    torch.testing.assert_close(grads[0], grads[1])
    torch.testing.assert_close(grads[0], grads[2])


def test_counterfactual_score_pass_uses_fresh_seeded_views():
    cfg = _cfg(selection="vepo", micro_batch_size=2)
    policy = FakePolicy(n_rows=4, n_pos=3, vocab=4)
    batch = _batch(policy, RESPONSES, REWARDS, cfg)
    a, _ = score_pass(policy, batch, cfg, step=3, counterfactual=True)
    b, _ = score_pass(policy, batch, cfg, step=3, counterfactual=True)
    c, _ = score_pass(policy, batch, cfg, step=4, counterfactual=True)
    assert torch.equal(a.stats.jsd, b.stats.jsd)  # same step: same noise
    assert not torch.equal(a.stats.jsd, c.stats.jsd)  # next step: fresh noise
    assert bool((a.stats.jsd[a.mask] > 0).all())
    # The two micro-batches got different noise (never one draw shared by all rows).
    assert a.stats.jsd[0, 0] != a.stats.jsd[2, 0]


def test_vppo_rescales_advantages():
    cfg = _cfg(selection="vppo", ratio=1.0)
    policy = FakePolicy(n_rows=4, n_pos=3, vocab=4, seed=2)
    batch = _batch(policy, RESPONSES, REWARDS, cfg)
    signals, _ = score_pass(policy, batch, cfg, step=0, counterfactual=True)
    selection = select_for_step(cfg, signals, torch.Generator())
    plain = Selection(selected=selection.selected, scores=None, advantage_scale=None)
    deltas = []
    for sel in (selection, plain):
        fresh = FakePolicy(n_rows=4, n_pos=3, vocab=4, seed=2)
        opt = torch.optim.SGD(fresh.parameters(), lr=1.0)
        update(fresh, opt, batch, signals, sel, cfg)
        deltas.append(fresh.table.detach() - FakePolicy(4, 3, 4, seed=2).table.detach())
    scale = selection.advantage_scale
    for i in range(4):
        torch.testing.assert_close(deltas[0][i], deltas[1][i] * scale[i], atol=1e-6, rtol=1e-5)


def test_kind_metrics_counts_selected_token_kinds():
    from vepo_viz.train.selection import kind_metrics

    mask = torch.tensor(
        [[True, True, True, False], [True, True, True, True], [True, True, False, False]]
    )
    selected = torch.tensor(
        [[True, False, False, False], [False, True, True, False], [True, True, False, False]]
    )
    kinds = [("visual", "template", "free"), ("template", "visual", "answer", "visual"), None]
    m = kind_metrics(kinds, selected, mask)
    assert m["share_visual"] == pytest.approx(2 / 3) and m["share_answer"] == pytest.approx(1 / 3)
    assert m["share_template"] == 0 and m["recall_visual"] == pytest.approx(2 / 3)
    assert m["kinds_rows"] == 2
    assert math.isnan(kind_metrics([None] * 3, selected, mask)["share_visual"])
