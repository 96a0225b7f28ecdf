"""Selection traces (vepo_viz.train.traces): a short real TRL run on the embedded tiny model
writes TokenAnalysis records at the steps `trace_every` names, they load back with the
plug-in's own selection, and the Train tab's traces panel draws them (one run, two runs
side by side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")

from vepo_viz.results import TokenAnalysis  # noqa: E402
from vepo_viz.tiny import DEFAULT_MODEL  # noqa: E402
from vepo_viz.train import traces  # noqa: E402
from vepo_viz.train.config import TrainConfig  # noqa: E402
from vepo_viz.train.trl_plugin import VEPOGRPOTrainer  # noqa: E402
from vepo_viz.train.trl_train import train, trl_args  # noqa: E402

needs_embedded = pytest.mark.skipif(
    not (Path(DEFAULT_MODEL) / "config.json").is_file(),
    reason="the embedded tiny model is not built (vepo_viz/tiny/model)",
)


def _cfg(out, **kw) -> TrainConfig:
    base = dict(
        model="tiny",
        out=str(out),
        steps=3,
        prompts_per_step=1,
        group_size=2,
        max_new_tokens=16,
        difficulty=1.0,
        temperature=1.0,
        families=("read",),
        n_eval=1,
        eval_every=0,
        ckpt_every=0,
        lr=1e-3,
        threads=1,
        seed=0,
        trace_every=2,
        trace_samples=2,
    )
    return TrainConfig(**{**base, **kw})


def _spy(monkeypatch) -> dict[int, dict]:
    """step -> the plug-in's last_selection of the batch that step trained on."""
    captured: dict[int, dict] = {}
    original = VEPOGRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        step = self.state.global_step + 1
        out = original(self, inputs)
        captured[step] = self.last_selection
        return out

    monkeypatch.setattr(VEPOGRPOTrainer, "_generate_and_score_completions", spy)
    return captured


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two short runs (vepo, all) traced every 2 steps, with the plug-in's selections."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("runs")
    try:
        captured = _spy(mp)
        train(_cfg(root / "vepo"), progress=False)
        selections = dict(captured)
        train(_cfg(root / "plain", selection="all", steps=2), progress=False)
    finally:
        mp.undo()
    return {"root": root, "vepo": root / "vepo", "plain": root / "plain", "sel": selections}


def test_trace_settings_validate_and_map_to_trl(tmp_path):
    cfg = TrainConfig(trace_every=5, trace_samples=3, out=str(tmp_path / "r"))
    args = trl_args(cfg, tmp_path / "r" / "checkpoints", use_cpu=True)
    assert (args.trace_every, args.trace_samples, args.trace_dir) == (5, 3, str(tmp_path / "r"))
    with pytest.raises(ValueError, match="trace_every"):
        TrainConfig(trace_every=-1)
    with pytest.raises(ValueError, match="trace_samples"):
        TrainConfig(trace_samples=0)


@pytest.mark.slow
@needs_embedded
def test_traces_are_written_at_the_right_steps_with_the_plugins_selection(runs):
    assert traces.trace_steps(runs["vepo"]) == [2]  # steps 1..3, every 2
    loaded = traces.load_traces(runs["vepo"])
    assert list(loaded) == [2] and len(loaded[2]) == 2
    sel = runs["sel"][2]
    for b, record in enumerate(loaded[2]):
        assert isinstance(record, TokenAnalysis)
        keep = sel["mask"][b].numpy()
        assert len(record) == int(keep.sum()) > 0
        np.testing.assert_array_equal(record.selected_vepo, sel["selected"][b].numpy()[keep])
        np.testing.assert_array_equal(record.scores, sel["scores"][b].numpy()[keep])
        np.testing.assert_array_equal(record.entropy, sel["entropy"][b].numpy()[keep])
        assert record.selected_entropy.sum() == record.selected_vepo.sum()  # same ratio
        assert record.settings.scoring.score_type == "D" and record.settings.scoring.ratio == 0.2
        assert record.question and record.jsd.max() > 0
        assert "".join(record.tokens) == record.response  # every token, spans cover it
        assert record.image is None  # no images in traces
    meta = traces.load_trace_rows(runs["vepo"], 2)[0][0]
    assert meta["step"] == 2 and meta["rule"] == "vepo" and meta["row"] == 0


@pytest.mark.slow
@needs_embedded
def test_selection_all_traces_the_entropy_with_every_token_selected(runs):
    assert traces.trace_steps(runs["plain"]) == [2]
    (meta, record), _ = traces.load_trace_rows(runs["plain"], 2)
    assert record.selected_vepo.all() and meta["rule"] == "all"
    assert "no scores" in meta["note"]
    np.testing.assert_array_equal(record.scores, record.entropy)
    assert (record.settings.scoring.score_type, record.settings.scoring.ratio) == ("entropy", 1.0)
    assert 0 < record.selected_entropy.sum() < len(record)


@pytest.mark.slow
@needs_embedded
def test_the_train_tab_panel_draws_the_real_runs_traces_side_by_side(runs):
    from vepo_viz.ui import traces_panel as tp

    assert sorted(tp.traced_runs(runs["root"])) == ["plain", "vepo"]
    a, figs_a, b, figs_b = tp.side_by_side(runs["root"], "vepo", "plain", 2)
    assert len(figs_a) == len(figs_b) == 2 and "rule **vepo**" in a and "rule **all**" in b
    assert "no scores" in b
    for figure in (*figs_a, *figs_b):
        assert sum(len(t.text) for t in figure.data if t.type == "bar" and t.text) > 0


@needs_embedded
def test_build_records_keeps_every_token_of_a_long_completion(tmp_path):
    import torch
    from transformers import AutoTokenizer

    from vepo_viz.perturb import PerturbConfig
    from vepo_viz.scoring import ScoringConfig

    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL)
    ids = tokenizer("seven " * 700, add_special_tokens=False)["input_ids"][:600]
    B, C = 2, 640
    completion = torch.full((B, C), tokenizer.pad_token_id or 0)
    completion[:, :600] = torch.tensor(ids)
    mask = torch.zeros(B, C, dtype=torch.bool)
    mask[:, :600] = True
    entropy = torch.rand(B, C, generator=torch.Generator().manual_seed(0))
    batch = traces.TraceBatch(completion_ids=completion, mask=mask, entropy=entropy, selected=mask)
    settings = traces.trace_settings("all", ScoringConfig(), PerturbConfig())
    records = traces.build_records(
        batch,
        tokenizer=tokenizer,
        questions=["q"],
        rule="all",
        settings=settings,
        rows=4,
        entropy_ratio=0.2,
    )
    assert len(records) == 2
    meta, record = records[0]
    assert len(record) == 600 and record.response == tokenizer.decode(ids)
    assert record.selected_vepo.all() and record.selected_entropy.sum() == 120  # 20% of 600
    assert "no scores" in meta["note"] and "no counterfactual" in meta["note"]
    save_path = traces.save_traces(tmp_path, 7, records)
    assert save_path.name == "step-000007.jsonl"
    back = traces.load_traces(tmp_path)[7][0]
    np.testing.assert_array_equal(back.entropy, record.entropy)
    assert back.tokens == record.tokens and len(back) == 600
