"""Training's token selection (train.rules) through the app's own scoring functions, on
synthetic signals: every rule. (The loss and the update are TRL's: tests/test_trl_plugin.py;
the mini-reproduction's selected-vs-all metrics and token kinds: tests/test_repro_parts.py.)"""

from __future__ import annotations

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
from vepo_viz.train.rules import TokenSignals, select_for_step

# ---- selection through the app's scoring functions --------------------------------


def _signals(seed=0, with_stats=True):
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
