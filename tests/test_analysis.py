"""analyze() end to end on tiny random models: numbers against a naive full-logits
reference, generation reuse, draws, chunking, determinism, settings, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.test_models import full_forward_logits
from vepo_viz import AnalysisSettings, TokenAnalysis, analyze
from vepo_viz.errors import NumericsError, VepoInputError
from vepo_viz.models import load_model
from vepo_viz.perturb import PerturbConfig

QUESTION = "What colour is the square?"
RESPONSE = " The square is red. The circle is blue, so the answer is red."


def naive_stats(p_logits: torch.Tensor, q_logits: torch.Tensor, tau: float = 1.0):
    """shared/PAPER.md, steps 3-5, on full (T, V) float64 logits."""
    p = torch.softmax(p_logits.double() / tau, -1)
    q = torch.softmax(q_logits.double() / tau, -1)
    m = (p + q) / 2
    entropy = -(p * p.log()).sum(-1)
    entropy_noisy = -(q * q.log()).sum(-1)
    jsd = 0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)
    kl = (p * (p / q).log()).sum(-1)
    return entropy, entropy_noisy, jsd, kl


def test_pasted_response_matches_naive_reference(qwen, scene):
    settings = AnalysisSettings(perturb=PerturbConfig(seed=4))
    result = analyze(qwen, scene, QUESTION, response=RESPONSE, settings=settings)
    assert isinstance(result, TokenAnalysis)
    assert result.response == RESPONSE and not result.generated
    prompt = qwen.prompt(scene, QUESTION)
    ids = qwen.response_ids(prompt, RESPONSE)
    assert result.token_ids.tolist() == ids
    clean = full_forward_logits(qwen, prompt, ids)
    noisy = full_forward_logits(qwen, prompt, ids, qwen.view_inputs(prompt, settings.perturb, 0))
    entropy, entropy_noisy, jsd, kl = naive_stats(clean, noisy)
    np.testing.assert_allclose(result.entropy, entropy.numpy(), atol=1e-5)
    np.testing.assert_allclose(result.entropy_noisy, entropy_noisy.numpy(), atol=1e-5)
    np.testing.assert_allclose(result.jsd, jsd.numpy(), atol=1e-5)
    np.testing.assert_allclose(result.kl, kl.numpy(), atol=1e-5)
    np.testing.assert_allclose(result.entropy_gap, (entropy_noisy - entropy).numpy(), atol=1e-5)
    logp = torch.log_softmax(clean.double(), -1)
    np.testing.assert_allclose(result.logprob, logp[range(len(ids)), ids].numpy(), atol=1e-5)
    top = logp.exp().topk(5, -1)
    assert np.array_equal(result.top_ids, top.indices.numpy())
    np.testing.assert_allclose(result.top_probs, top.values.numpy(), atol=1e-6)
    q = torch.softmax(noisy.double(), -1).gather(-1, top.indices)
    np.testing.assert_allclose(result.top_probs_noisy, q.numpy(), atol=1e-6)

    # Scores and selections are those of vepo_viz.scoring on the stored arrays.
    assert np.array_equal(result.rescore().scores, result.scores)
    n_keep = max(1, math.ceil(0.2 * len(ids)))
    assert result.selected_vepo.sum() == n_keep == result.selected_entropy.sum()
    top_entropy = np.argsort(-result.entropy, kind="stable")[:n_keep]
    assert set(np.flatnonzero(result.selected_entropy)) == set(top_entropy)
    # Offsets cut the response into the tokens.
    assert "".join(RESPONSE[s:e] for s, e in result.offsets) == RESPONSE
    assert result.tokens == [RESPONSE[s:e] for s, e in result.offsets]
    assert result.family == "qwen2_vl" and result.image_size == scene.size
    assert result.question == QUESTION and result.model_id == qwen.model_id
    assert {"torch", "transformers", "vepo_viz"} <= set(result.versions)
    assert result.settings["perturb"]["seed"] == 4


@pytest.mark.slow
def test_generated_analysis_reuses_clean_states(tiny_vlm, scene):
    """Generate, then paste the same text: same ids, same statistics (the clean states
    kept from generation equal the teacher-forced ones)."""
    vlm = tiny_vlm("qwen2_vl", merges=False)
    settings = AnalysisSettings(max_new_tokens=24, seed=2)
    generated = analyze(vlm, scene, QUESTION, settings=settings)
    assert generated.generated and len(generated) > 0
    assert generated.timing["generate"] > 0 and "clean_pass" not in generated.timing
    pasted = analyze(vlm, scene, QUESTION, response=generated.response, settings=settings)
    assert np.array_equal(pasted.token_ids, generated.token_ids)
    for name in ("entropy", "entropy_noisy", "jsd", "kl", "logprob"):
        np.testing.assert_allclose(getattr(pasted, name), getattr(generated, name), atol=1e-5)


def test_analysis_is_deterministic_and_seeded(qwen, scene):
    settings = AnalysisSettings(max_new_tokens=12, seed=9)
    a = analyze(qwen, scene, QUESTION, settings=settings)
    b = analyze(qwen, scene, QUESTION, settings=settings)
    assert a.response == b.response
    assert a.jsd.tobytes() == b.jsd.tobytes() and np.array_equal(a.selected_vepo, b.selected_vepo)
    c = analyze(qwen, scene, QUESTION, settings=AnalysisSettings(max_new_tokens=12, seed=10))
    assert c.response != a.response


def test_greedy_generation_and_truncation_flag(qwen, scene):
    result = analyze(
        qwen, scene, QUESTION, settings=AnalysisSettings(temperature=0.0, max_new_tokens=5)
    )
    assert result.settings["temperature"] == 0.0
    assert len(result) <= 5
    assert result.truncated == (len(result) == 5)


def test_several_draws_give_means_and_spreads(qwen, scene):
    one = analyze(qwen, scene, QUESTION, response=RESPONSE)
    three = analyze(
        qwen, scene, QUESTION, response=RESPONSE, settings=AnalysisSettings(perturb={"n_draws": 3})
    )
    np.testing.assert_allclose(three.entropy, one.entropy, atol=1e-6)
    assert (three.jsd_std > 0).any() and (three.entropy_noisy_std > 0).any()
    np.testing.assert_allclose(three.entropy_gap_std, three.entropy_noisy_std, atol=1e-5)
    assert not np.allclose(three.jsd, one.jsd)
    # A deterministic view repeated: zero spread.
    black = AnalysisSettings(perturb=PerturbConfig(mode="black", n_draws=2))
    repeated = analyze(qwen, scene, QUESTION, response=RESPONSE, settings=black)
    assert np.all(repeated.jsd_std < 1e-7)


@pytest.mark.parametrize("mode", ["no_image", "gaussian_pixel", "blur", "patch"])
def test_every_perturbation_mode_runs(mode, qwen, scene):
    settings = AnalysisSettings(perturb=PerturbConfig(mode=mode, sigma=0.5))
    result = analyze(qwen, scene, QUESTION, response=RESPONSE, settings=settings)
    assert result.jsd.max() > 0
    assert np.all((result.jsd >= 0) & (result.jsd <= math.log(2)))


def test_chunk_size_does_not_change_numbers(tiny_vlm, scene):
    vlm = tiny_vlm("qwen2_vl", vocab_size=3000)
    base = analyze(vlm, scene, QUESTION, response=RESPONSE)
    for chunk in (1, 7):
        other = analyze(
            vlm, scene, QUESTION, response=RESPONSE, settings=AnalysisSettings(chunk_size=chunk)
        )
        for name in ("entropy", "entropy_noisy", "jsd", "kl", "logprob", "top_probs"):
            np.testing.assert_allclose(getattr(other, name), getattr(base, name), atol=1e-5)
        assert np.array_equal(other.top_ids, base.top_ids)


def test_image_path_and_pil_give_the_same_result(qwen, scene, tmp_path):
    path = tmp_path / "scene.png"
    scene.save(path)
    from_path = analyze(qwen, str(path), QUESTION, response=RESPONSE)
    from_pil = analyze(qwen, scene, QUESTION, response=RESPONSE)
    assert from_path.image_digest == from_pil.image_digest
    assert from_path.jsd.tobytes() == from_pil.jsd.tobytes()


def test_model_may_be_given_by_folder(tiny_model_dir, scene):
    result = analyze(tiny_model_dir("qwen2_vl"), scene, QUESTION, response="Red.")
    assert result.model_id == str(tiny_model_dir("qwen2_vl"))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "idefics3", "smolvlm", "gemma3"])
def test_other_families_analyse(family, tiny_vlm, scene):
    result = analyze(tiny_vlm(family), scene, QUESTION, settings=AnalysisSettings(max_new_tokens=8))
    assert len(result) > 0 and result.family == family
    assert result.jsd.max() > 0 and result.selected_vepo.sum() >= 1


# ---- bad input -------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   \n\t"])
def test_empty_question(question, qwen, scene):
    with pytest.raises(VepoInputError, match="question is empty"):
        analyze(qwen, scene, question, response=RESPONSE)


@pytest.mark.parametrize("response", ["", "日本語"])
def test_response_without_tokens(response, qwen, scene):
    # The tiny tokenizer knows only ASCII: non-ASCII text tokenises to nothing.
    with pytest.raises(VepoInputError, match="has no tokens"):
        analyze(qwen, scene, QUESTION, response=response)


def test_bad_image_inputs(qwen, tmp_path):
    with pytest.raises(VepoInputError, match="not found"):
        analyze(qwen, tmp_path / "missing.png", QUESTION, response=RESPONSE)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(VepoInputError):
        analyze(qwen, broken, QUESTION, response=RESPONSE)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_image_modes_are_converted(mode, qwen, scene):
    image = scene.convert(mode) if mode != "I;16" else scene.convert("L").convert("I;16")
    result = analyze(qwen, image, QUESTION, response=RESPONSE)
    assert result.image_size == scene.size


@pytest.mark.slow
def test_huge_image_is_shrunk_before_the_processor(qwen):
    from PIL import Image

    huge = Image.new("RGB", (12000, 12000), (200, 30, 30))
    result = analyze(qwen, huge, QUESTION, response=RESPONSE)
    width, height = result.image_size
    assert width * height <= 1024 * 1024 and width == height


def test_nan_logits_are_a_clear_error(tiny_model_dir, scene):
    # Own load (another dtype string -> another cache entry) so poisoning stays local.
    vlm = load_model(tiny_model_dir("qwen2_vl", seed=1), device="cpu", dtype="fp32")
    with torch.no_grad():
        vlm.model.get_output_embeddings().weight[3, 0] = float("nan")
    with pytest.raises(NumericsError, match="NaN/inf"):
        analyze(vlm, scene, QUESTION, response=RESPONSE)
    with pytest.raises(NumericsError, match="NaN/inf"):
        analyze(vlm, scene, QUESTION, settings=AnalysisSettings(max_new_tokens=4))
    with pytest.raises(NumericsError, match="NaN/inf"):
        analyze(vlm, scene, QUESTION, settings=AnalysisSettings(max_new_tokens=4, temperature=0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"scoring": {"ratio": 0.0}}, "ratio"),
        ({"scoring": {"alpha": 2.0}}, "alpha"),
        ({"scoring": {"score_type": "Z"}}, "score_type"),
        ({"scoring": {"scope": "galaxy"}}, "scope"),
        ({"scoring": {"colour": 1}}, "unknown scoring"),
        ({"perturb": {"n_draws": 0}}, "n_draws"),
        ({"perturb": {"mode": "smudge"}}, "mode"),
        ({"perturb": {"colour": 1}}, "unknown perturb"),
        ({"top_k": 0}, "top_k"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"score_temperature": 0.0}, "score_temperature"),
    ],
)
def test_settings_are_validated(kwargs, message):
    with pytest.raises(VepoInputError, match=message):
        AnalysisSettings(**kwargs)


def test_settings_round_trip_and_tau():
    settings = AnalysisSettings(temperature=0.7, perturb=PerturbConfig(mode="blur"))
    assert AnalysisSettings.from_dict(settings.to_dict()) == settings
    assert settings.tau == 0.7
    assert AnalysisSettings(temperature=0).tau == 1.0
    assert AnalysisSettings(temperature=0.5, score_temperature=2.0).tau == 2.0
    with pytest.raises(VepoInputError, match="unknown AnalysisSettings"):
        AnalysisSettings.from_dict({"speed": 3})


def test_settings_object_is_required(qwen, scene):
    with pytest.raises(VepoInputError, match="AnalysisSettings"):
        analyze(qwen, scene, QUESTION, response=RESPONSE, settings={"ratio": 0.5})


def test_response_text_is_what_the_model_scored(qwen, scene):
    """Characters the tokenizer cannot encode are not in result.response (the tiny
    tokenizer knows ASCII only), so offsets always index the scored text."""
    result = analyze(qwen, scene, QUESTION, response="Red é square")
    assert result.response == qwen.decode(result.token_ids.tolist())
    assert "".join(result.response[s:e] for s, e in result.offsets) == result.response


def _preview_as_render_made_it(image, config, mean, std):
    """render/images.py's preview before it moved to the analysis side (the UI's call:
    the image at the processed size, the processor's normalisation), verbatim."""
    from PIL import Image

    from vepo_viz.perturb import PIXEL_MODES, make_generator, perturb_image

    rgb = image.convert("RGB")
    if config.mode in PIXEL_MODES:
        return perturb_image(
            rgb,
            config.mode,
            sigma=config.sigma,
            generator=config.generator(0),
            patch_size=config.patch_size,
            patch_prob=config.patch_prob,
            blur_radius=config.blur_radius,
        )
    gen = make_generator(config.seed, 0)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3)
    noise = torch.randn((rgb.height, rgb.width, 3), generator=gen).numpy()  # (H, W, 3)
    noisy = np.clip(pixels + config.sigma * np.asarray(std, np.float32) * noise, 0.0, 1.0)
    return Image.fromarray(np.round(noisy * 255).astype(np.uint8), mode="RGB")


@pytest.mark.parametrize(
    "perturb",
    [PerturbConfig(mode="patch", seed=3, patch_size=8), PerturbConfig(mode="gaussian", seed=5)],
    ids=["patch", "gaussian"],
)
def test_result_carries_the_views(qwen, scene, perturb, tmp_path):
    from vepo_viz.models.images import image_digest
    from vepo_viz.render.images import processed_size, views_of

    settings = AnalysisSettings(perturb=perturb)
    result = analyze(qwen, scene, QUESTION, response=RESPONSE, settings=settings)
    assert result.settings is settings
    assert image_digest(result.image) == result.image_digest
    assert result.image.size == result.image_size
    processor = qwen.processor.image_processor
    mean, std = result.image_normalization
    assert list(mean) == [float(m) for m in processor.image_mean]
    assert list(std) == [float(s) for s in processor.image_std]
    expected = _preview_as_render_made_it(processed_size(scene, result), perturb, mean, std)
    assert np.array_equal(np.asarray(result.counterfactual_image), np.asarray(expected))
    assert result.counterfactual_caption.startswith(
        "exact view used" if perturb.mode == "patch" else "gaussian, sigma=2 in normalised"
    )
    clean, view, caption = views_of(result)
    assert clean is result.image and view is result.counterfactual_image
    w, h = result.image_size
    assert caption == (
        f"Left: the clean image the model saw ({w}x{h}). Right: {result.counterfactual_caption}."
    )
    loaded = TokenAnalysis.load(result.save(tmp_path / "r.json"))
    assert np.array_equal(np.asarray(loaded.counterfactual_image), np.asarray(expected))
    assert loaded.settings == settings
