"""The engine's callers: `analyze` and the TRL plug-in compute a row's signals with the
same engine functions (torch.equal), and a view and a hidden-state signal registered
here, in this test only, reach `analyze`, `vepo-viz batch` and one TRL training step."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageOps

from vepo_viz import AnalysisSettings, analyze, cli
from vepo_viz.models import engine
from vepo_viz.perturb import MODES, CounterfactualMode, PerturbConfig

pytestmark = pytest.mark.slow
QUESTION = "What colour is the square?"
RESPONSE = " The square is red."


@pytest.fixture(scope="module")
def vlm(tiny_vlm):
    return tiny_vlm("qwen2_vl", merges=False)


def test_plugin_and_analyze_give_equal_signals_on_one_row(vlm, scene, tmp_path):
    """One row (prompt, completion, image, noise seed) through the plug-in's `_signals`
    and through `analyze`: the same engine calls, so the same bits."""
    pytest.importorskip("trl")
    from tests.test_trl_plugin import _trainer
    from vepo_viz.train.trl_plugin import view_seed

    trainer = _trainer(vlm, scene, tmp_path, selection="vepo", perturb_seed=7,
                       clean_from_generation=False)  # fmt: skip
    prompt = vlm.prompt(scene, QUESTION)
    ids = vlm.response_ids(prompt, RESPONSE)
    out = {
        "prompt_ids": prompt.inputs["input_ids"],
        "prompt_mask": prompt.inputs["attention_mask"],
        "completion_ids": torch.tensor([ids]),
        "completion_mask": torch.ones(1, len(ids), dtype=torch.long),
        "pixel_values": prompt.inputs["pixel_values"],
        "image_grid_thw": prompt.inputs["image_grid_thw"],
    }
    full = engine.with_response(prompt.inputs, out["completion_ids"])  # as TRL's batch has it
    out.update({k: full[k] for k in ("mm_token_type_ids", "token_type_ids") if k in full})
    signals = trainer._signals(out, [{"prompt": QUESTION, "image": scene}], step=3)
    seed = view_seed(7, 3, 0)
    result = analyze(
        vlm, scene, QUESTION, RESPONSE,
        AnalysisSettings(temperature=1.0, perturb=PerturbConfig(seed=seed)),
    )  # fmt: skip
    assert result.token_ids.tolist() == ids
    for name, ours in (
        ("entropy", signals.entropy),
        ("jsd", signals.stats.jsd),
        ("kl", signals.stats.kl),
        ("entropy_noisy", signals.stats.entropy_noisy),
        ("logprob", signals.logp_old),
        ("logprob_noisy", signals.logp_noisy),
    ):
        assert torch.equal(ours[0], torch.from_numpy(getattr(result, name))), name


def _invert(rgb: Image.Image, params, generator) -> Image.Image:
    return ImageOps.invert(rgb)


TEST_VIEW = CounterfactualMode("test_invert", "test only: colours inverted", "pixel", _invert)
TEST_SIGNAL = engine.Signal(
    "test_state_shift",
    "test only: |h_view - h_clean| of the states that predict each token",
    "hidden-state",
    lambda clean, view: (view.float() - clean.float()).norm(dim=-1),
)


@pytest.fixture
def registered():
    with MODES.registered(TEST_VIEW), engine.SIGNALS.registered(TEST_SIGNAL):
        yield
    assert "test_invert" not in MODES and "test_state_shift" not in engine.SIGNALS


def test_a_registered_view_and_signal_reach_analyze(vlm, scene, registered):
    settings = AnalysisSettings(perturb=PerturbConfig(mode="test_invert"))
    result = analyze(vlm, scene, QUESTION, RESPONSE, settings)
    shift = result.signals["test_state_shift"]
    assert shift.shape == (len(result),) and float(shift.max()) > 0
    # The view is the inverted image: the same as pasting the inverted image's states.
    prompt = vlm.prompt(scene, QUESTION)
    ids = result.token_ids.tolist()
    clean = vlm.hidden_states(prompt, ids)
    inverted = vlm.hidden_states(prompt, ids, vlm.view_inputs(prompt, settings.perturb, 0))
    np.testing.assert_allclose(shift, (inverted - clean).norm(dim=-1).numpy(), rtol=1e-5, atol=1e-5)
    loaded = type(result).from_dict(json.loads(json.dumps(result.to_dict())))
    assert np.array_equal(loaded.signals["test_state_shift"], shift)


def test_a_registered_view_and_signal_reach_batch(tiny_model_dir, tmp_path, capsys, registered):
    image = tmp_path / "a.png"
    from tests.fake import draw_scene

    draw_scene().save(image)
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"id": "a", "image": "a.png", "question": QUESTION}) + "\n")
    out = tmp_path / "scores.parquet"
    argv = ["batch", str(data), "--out", str(out), "--model", str(tiny_model_dir("qwen2_vl")),
            "--max-new-tokens", "4", "--perturb", "test_invert"]  # fmt: skip
    code = cli.main(argv)
    assert code == 0, capsys.readouterr().err
    frame = pd.read_parquet(out)
    assert "signal_test_state_shift" in frame and frame["signal_test_state_shift"].max() > 0


def test_a_registered_view_and_signal_reach_a_training_step(vlm, scene, tmp_path, registered):
    pytest.importorskip("trl")
    from tests.test_trl_plugin import _trainer

    trainer = _trainer(vlm, scene, tmp_path, selection="vepo", perturb="test_invert")
    assert trainer.args.perturb_config.mode == "test_invert"
    trainer.train()  # one optimizer step (max_steps=1)
    assert trainer.last_selection["signals"]["test_state_shift"].shape[0] > 0
    logged = [entry for entry in trainer.state.log_history if "vepo/test_state_shift_all" in entry]
    assert logged and logged[0]["vepo/test_state_shift_all"] > 0
