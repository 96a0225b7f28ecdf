"""The engine (vepo_viz.models.engine): the head walk against a naive full-logits
reference and against `scoring.token_stats`, its chunking and call counts, the
generation capture, batched view passes, and the signal registry."""

from __future__ import annotations

import pytest
import torch

from tests.test_analysis import naive_stats
from vepo_viz import scoring
from vepo_viz.models import engine


def _head(vocab: int = 50, dim: int = 8, seed: int = 0):
    torch.manual_seed(seed)
    linear = torch.nn.Linear(dim, vocab, bias=False)
    calls: list[int] = []

    def head(hidden):
        calls.append(hidden.shape[0])
        return linear(hidden)

    return head, linear, calls


@pytest.mark.parametrize("tau", [1.0, 0.7])
@pytest.mark.parametrize("rows", [1, 4, 64])
def test_head_walk_matches_the_naive_reference(tau, rows):
    head, linear, calls = _head()
    B, T, D = 2, 11, 8
    clean = torch.randn(B, T, D)
    views = [clean + 0.3 * torch.randn(B, T, D) for _ in range(3)]
    ids = torch.randint(0, 50, (B, T))
    out = engine.head_walk(head, clean, views, ids, temperature=tau, top_k=5, rows=rows)
    assert max(calls) <= rows and out.jsd.shape == (3, B, T)
    with torch.no_grad():
        zp = linear(clean).reshape(B * T, -1)
        for k, view in enumerate(views):
            zq = linear(view).reshape(B * T, -1)
            ref = dict(
                zip(
                    ("entropy", "entropy_noisy", "jsd", "kl"), naive_stats(zp, zq, tau), strict=True
                )
            )
            for name, got in (
                ("entropy", out.entropy),
                ("entropy_noisy", out.entropy_noisy[k]),
                ("jsd", out.jsd[k]),
                ("kl", out.kl[k]),
            ):
                torch.testing.assert_close(
                    got.reshape(-1).double(), ref[name], atol=2e-6, rtol=1e-5
                )
            logq = torch.log_softmax(zq.double() / tau, -1)
            picked = logq[range(B * T), ids.reshape(-1)]
            torch.testing.assert_close(
                out.logprob_noisy[k].reshape(-1).double(), picked, atol=1e-5, rtol=0
            )
            top = torch.log_softmax(zp.double() / tau, -1).topk(5, -1).indices  # clean top 5
            torch.testing.assert_close(
                out.top_probs_noisy[k].reshape(B * T, 5).double(),
                logq.exp().gather(-1, top),
                atol=1e-6,
                rtol=0,
            )
        logp = torch.log_softmax(zp.double() / tau, -1)
        torch.testing.assert_close(
            out.logprob.reshape(-1).double(), logp[range(B * T), ids.reshape(-1)], atol=1e-5, rtol=0
        )
        top = logp.exp().topk(5, -1)
        assert torch.equal(out.top_ids.reshape(B * T, 5), top.indices)


def test_head_walk_equals_token_stats_bit_for_bit():
    """One set of formulas: the engine's walk and the public `token_stats` share them
    (given the same logits: the head here runs row by row, so its rounding does not
    depend on the chunk)."""
    _, linear, _ = _head(vocab=300)

    def head(hidden):
        return torch.cat([linear(hidden[i : i + 1]) for i in range(hidden.shape[0])])

    clean, view = torch.randn(1, 9, 8), torch.randn(1, 9, 8)
    ids = torch.zeros(1, 9, dtype=torch.long)
    out = engine.head_walk(head, clean, [view], ids, rows=4)
    with torch.no_grad():
        ref = scoring.token_stats(head(clean[0])[None], head(view[0])[None], chunk_size=4)
    for name in ("entropy_noisy", "jsd", "kl"):
        assert torch.equal(getattr(out, name)[0], getattr(ref, name)), name
    assert torch.equal(out.entropy, ref.entropy)


def test_head_walk_calls_the_head_once_per_pass_and_chunk():
    head, _, calls = _head()
    clean = torch.randn(1, 10, 8)
    views = [clean, clean]
    engine.head_walk(head, clean, views, torch.zeros(1, 10, dtype=torch.long), rows=4, n_vocab=50)
    assert calls == [4, 4, 4, 4, 4, 4, 2, 2, 2]  # 3 chunks x (clean + 2 views)
    calls.clear()
    engine.head_walk(
        head, clean, views, torch.zeros(1, 10, dtype=torch.long), rows=4, n_vocab=50, min_chunks=5
    )
    assert len(calls) == 5 * 3  # idle one-row calls make up the difference (ZeRO-3)


def test_each_log_softmax_is_computed_once_per_pass(monkeypatch):
    head, _, _ = _head()
    n_calls = []
    original = torch.log_softmax

    def counting(*args, **kwargs):
        n_calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "log_softmax", counting)
    clean = torch.randn(1, 10, 8)
    engine.head_walk(
        head, clean, [clean, clean], torch.zeros(1, 10, dtype=torch.long), rows=4, n_vocab=50
    )
    assert len(n_calls) == 3 * 3  # 3 chunks x (clean + 2 views), once each


def test_head_walk_without_views_and_with_non_finite_logits():
    head, _, _ = _head()
    clean = torch.randn(2, 5, 8)
    out = engine.head_walk(head, clean, [], torch.zeros(2, 5, dtype=torch.long))
    assert out.jsd.shape == (0, 2, 5) and out.stats() is None and out.entropy.shape == (2, 5)
    bad = clean.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN/inf"):
        engine.head_walk(head, bad, [clean], torch.zeros(2, 5, dtype=torch.long))


def test_chunk_policy_and_softcap():
    assert engine.chunk_rows(151_936, "cpu") == engine.CHUNK_ELEMENTS_CPU // 151_936
    assert engine.chunk_rows(151_936, "cuda") == engine.CHUNK_ELEMENTS_ACCELERATOR // 151_936
    assert engine.chunk_rows(10**9, "cpu") == 1 and engine.chunk_rows(50, "cpu", rows=7) == 7

    class Config:
        final_logit_softcapping = 2.0

    class Model(torch.nn.Module):
        config = Config()

        def __init__(self):
            super().__init__()
            self.lm_head = torch.nn.Linear(4, 6)

        def get_output_embeddings(self):
            return self.lm_head

    model = Model()
    x = 10 * torch.randn(3, 4)
    capped = engine.output_head(model)(x)
    torch.testing.assert_close(capped, torch.tanh(model.lm_head(x) / 2.0) * 2.0)
    assert float(capped.detach().abs().max()) <= 2.0
    Config.final_logit_softcapping = None
    assert engine.output_head(model) is model.lm_head


def test_generation_capture_stacks_steps_and_refuses_other_layouts():
    head = torch.nn.Linear(4, 6)
    capture = engine.GenerationCapture()
    with capture.recording(head):
        head(torch.randn(2, 5, 4))  # prefill: its last position predicts token 0
        head(torch.randn(2, 1, 4))
    hidden = capture.hidden(2, 2)
    assert hidden.shape == (2, 2, 4)
    assert capture.hidden(3, 2) is None and capture.hidden(2, 3) is None
    flat = engine.GenerationCapture()
    with flat.recording(head):
        head(torch.randn(5, 4))  # not (B, n, D): not a generation layout
    assert flat.hidden(5, 1) is None


def test_view_rows_stack_copies_view_major():
    inputs = {
        "input_ids": torch.tensor([[1, 2], [3, 4]]),
        "pixel_values": torch.zeros(6, 3),
        "image_grid_thw": torch.tensor([[1, 1, 3], [1, 1, 3]]),
    }
    views = [{"pixel_values": torch.ones(6, 3)}, {}]
    rows = engine._view_rows(inputs, views, ("pixel_values", "image_grid_thw"))
    assert rows["input_ids"].tolist() == [[1, 2], [3, 4], [1, 2], [3, 4]]
    assert rows["pixel_values"][:6].eq(1).all() and rows["pixel_values"][6:].eq(0).all()
    assert rows["image_grid_thw"].shape == (4, 3)


def test_signal_registry_rejects_incomplete_entries():
    with pytest.raises(ValueError, match="needs `compute`"):
        engine.Signal("x", "no function", "hidden-state")
    with pytest.raises(ValueError, match="choose one of"):
        engine.Signal("x", "bad kind", "pixels")
    kinds = {s.name: s.kind for s in engine.SIGNALS.entries()}
    assert kinds["jsd"] == "full-vocabulary" and kinds["logprob_noisy"] == "sampled-token"


def test_a_registered_hidden_state_signal_is_computed_per_view():
    head, _, _ = _head()
    signal = engine.Signal(
        "test_distance", "L2 distance of the states", "hidden-state",
        lambda clean, view: (view - clean).norm(dim=-1),
    )  # fmt: skip
    clean = torch.randn(1, 4, 8)
    views = [clean + 1.0, clean]
    with engine.SIGNALS.registered(signal):
        out = engine.head_walk(head, clean, views, torch.zeros(1, 4, dtype=torch.long))
    torch.testing.assert_close(out.extra["test_distance"][0], torch.full((1, 4), 8**0.5))
    assert out.extra["test_distance"][1].abs().max() == 0
    assert "test_distance" not in engine.SIGNALS


def test_head_walk_chunk_sizes_change_no_bit():
    """Every statistic is a per-row reduction: how positions are chunked (head chunks,
    the statistics' sub-chunks) leaves every number bit-identical, given logits that do
    not depend on the chunk (a matmul's rounding may: the head here runs row by row)."""
    _, linear, _ = _head(vocab=97)

    def head(hidden):
        return torch.cat([linear(hidden[i : i + 1]) for i in range(hidden.shape[0])])

    clean = torch.randn(3, 7, 8)
    views = [clean + 0.2 * torch.randn(3, 7, 8), clean - 0.1]
    ids = torch.randint(0, 97, (3, 7))
    base = engine.head_walk(head, clean, views, ids, top_k=3, rows=21)
    for rows in (1, 2, 5):
        other = engine.head_walk(head, clean, views, ids, top_k=3, rows=rows)
        for name in ("entropy", "logprob", "entropy_noisy", "jsd", "kl", "logprob_noisy",
                     "top_probs", "top_probs_noisy", "top_ids"):  # fmt: skip
            assert torch.equal(getattr(other, name), getattr(base, name)), (rows, name)
