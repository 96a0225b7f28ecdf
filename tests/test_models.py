"""The VLM adapter on tiny random models of every family: prompts, pixel layouts,
counterfactual views, teacher-forced passes, generation, tokenisation, loading errors."""

from __future__ import annotations

import json

import pytest
import torch

from tests.tiny_random import FAMILIES
from vepo_viz.errors import ModelLoadError, NumericsError
from vepo_viz.models import loading
from vepo_viz.models.families import TILE_ZERO, family_of, pixel_limit
from vepo_viz.models.sampling import SeededSampler, _nucleus
from vepo_viz.perturb import PerturbConfig

LAYOUT = {
    "qwen2_vl": ("patches", 2),
    "qwen2_5_vl": ("patches", 2),
    "qwen3_vl": ("patches", 2),
    "idefics3": ("tiles", 5),
    "smolvlm": ("tiles", 5),
    "gemma3": ("image", 4),
}
IMAGE_TOKEN = {
    "qwen2_vl": "<|image_pad|>",
    "qwen2_5_vl": "<|image_pad|>",
    "qwen3_vl": "<|image_pad|>",
    "idefics3": "<image>",
    "smolvlm": "<image>",
    "gemma3": "<image_soft_token>",
}
LOGIT_ATOL = 1e-4
"""float32 on CPU: a KV-cached generation step and a full teacher-forced pass sum in
different orders; observed differences are ~1e-7, 1e-4 leaves a wide margin."""

RESPONSE = " The square is red, so the answer is 42."


def full_forward_logits(vlm, prompt, ids, images=None):
    """Naive reference: the model's own forward over prompt + response, all logits."""
    inputs = dict(prompt.inputs)
    if images:
        inputs.update(images)
    T = len(ids)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([ids])], dim=1)
    for key, fill in (("attention_mask", 1), ("mm_token_type_ids", 0), ("token_type_ids", 0)):
        if key in inputs:
            inputs[key] = torch.cat([inputs[key], torch.full((1, T), fill)], dim=1)
    with torch.no_grad():
        logits = vlm.model(**inputs).logits  # (1, P+T, V)
    P = prompt.n_tokens
    return logits[0, P - 1 : P + T - 1]  # (T, V)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_prompt_layout_and_passes(family, tiny_vlm, scene):
    vlm = tiny_vlm(family)
    assert vlm.family.name == family
    prompt = vlm.prompt(scene, "What colour is the square?")
    tokens = vlm.tokenizer.convert_ids_to_tokens(prompt.inputs["input_ids"][0])
    assert IMAGE_TOKEN[family] in tokens
    assert "What colour is the square?" in prompt.text
    pixel_values = prompt.inputs["pixel_values"]
    layout, rank = LAYOUT[family]
    assert vlm.family.layout_of(pixel_values) == layout
    assert pixel_values.dim() == rank

    ids = vlm.response_ids(prompt, RESPONSE)
    assert vlm.decode(ids) == RESPONSE
    hidden = vlm.hidden_states(prompt, ids)  # (T, D)
    assert hidden.shape == (len(ids), vlm.model.config.get_text_config().hidden_size)
    reference = full_forward_logits(vlm, prompt, ids)
    torch.testing.assert_close(vlm.logits(hidden), reference, atol=1e-5, rtol=1e-5)

    for mode in ("gaussian", "no_image", "patch", "black"):
        view = vlm.view_inputs(prompt, PerturbConfig(mode=mode), 0)
        noisy = vlm.logits(vlm.hidden_states(prompt, ids, view))
        torch.testing.assert_close(
            noisy, full_forward_logits(vlm, prompt, ids, view), atol=1e-5, rtol=1e-5
        )
        assert (noisy - reference).abs().max() > 1e-4, f"{mode} view did not change the logits"
    # The clean inputs are never modified by a view.
    assert torch.equal(prompt.inputs["pixel_values"], pixel_values)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_generation_logits_match_teacher_forcing(family, tiny_vlm, scene):
    """The clean states kept from generation equal a teacher-forced pass: reusing them
    instead of running the clean pass again is sound (tolerance LOGIT_ATOL)."""
    vlm = tiny_vlm(family)
    prompt = vlm.prompt(scene, "How many circles are there?")
    gen = vlm.generate(prompt, max_new_tokens=10, temperature=1.0, seed=1, keep_logits=True)
    assert gen.token_ids and gen.hidden.shape[0] == len(gen.token_ids)
    from_hidden = vlm.logits(gen.hidden)  # (T, V)
    torch.testing.assert_close(from_hidden, gen.logits, atol=1e-6, rtol=1e-6)
    teacher = full_forward_logits(vlm, prompt, gen.token_ids)
    assert (from_hidden - teacher).abs().max() < LOGIT_ATOL


def test_greedy_generation_is_argmax_of_teacher_forcing(qwen, scene):
    prompt = qwen.prompt(scene, "What is on the left?")
    gen = qwen.generate(prompt, max_new_tokens=8, temperature=0.0)
    logits = full_forward_logits(qwen, prompt, gen.token_ids)
    assert logits.argmax(-1).tolist() == gen.token_ids


def test_sampling_is_seeded_and_leaves_global_rng_alone(qwen, scene):
    prompt = qwen.prompt(scene, "What is on the left?")
    state = torch.random.get_rng_state()
    a = qwen.generate(prompt, max_new_tokens=12, temperature=1.0, seed=5).token_ids
    b = qwen.generate(prompt, max_new_tokens=12, temperature=1.0, seed=5).token_ids
    c = qwen.generate(prompt, max_new_tokens=12, temperature=1.0, seed=6).token_ids
    assert a == b and a != c
    assert torch.equal(torch.random.get_rng_state(), state)


def test_nucleus_keeps_smallest_set_reaching_top_p():
    probs = torch.tensor([[0.5, 0.125, 0.25, 0.125]])
    assert _nucleus(probs, 0.7).tolist() == [[0.5, 0.0, 0.25, 0.0]]
    assert _nucleus(probs, 0.5).tolist() == [[0.5, 0.0, 0.0, 0.0]]
    assert _nucleus(probs, 0.01).tolist() == [[0.5, 0.0, 0.0, 0.0]]
    assert _nucleus(probs, 1.0).tolist() == probs.tolist()


def test_sampler_rejects_nan_logits():
    sampler = SeededSampler(1.0, 1.0, 0)
    with pytest.raises(NumericsError, match="NaN"):
        sampler(torch.zeros(1, 1, dtype=torch.long), torch.full((1, 5), float("nan")))


# ---- tokenisation of pasted responses ---------------------------------------------


@pytest.mark.parametrize(
    "response",
    [RESPONSE, "42", "\nFirst, count.\n\nThen answer: 3", "  two spaces", "<|im_end|>x", " "],
)
def test_pasted_response_round_trips(response, qwen, scene):
    prompt = qwen.prompt(scene, "Count the circles.")
    ids = qwen.response_ids(prompt, response)
    assert qwen.decode(ids) == response
    spans = qwen.token_spans(ids, response)
    assert "".join(response[s:e] for s, e in spans) == response
    assert all(s <= e for s, e in spans)


def test_pasted_response_is_tokenised_in_context(qwen, scene):
    """Joint tokenisation: the ids are those that follow the prompt's own tokens."""
    prompt = qwen.prompt(scene, "Count the circles.")
    tok = qwen.tokenizer
    response = "There are three circles."
    joint = tok(prompt.text + response, add_special_tokens=False)["input_ids"]
    assert qwen.response_ids(prompt, response) == joint[-len(qwen.response_ids(prompt, response)) :]
    # A response whose first characters would merge into the prompt's final "\n"
    # ("\n" + "\n\n..." -> a "\n\n" token across the boundary) is tokenised on its own.
    merged = "\n\nThe answer is 3."
    ids = qwen.response_ids(prompt, merged)
    assert qwen.decode(ids) == merged
    assert ids == tok(merged, add_special_tokens=False)["input_ids"]


@pytest.mark.slow
def test_generated_then_pasted_gives_identical_ids(tiny_vlm, scene):
    """With a tokenizer where every token sequence is canonical (no merges), pasting the
    decoded generation reproduces the generated ids exactly."""
    vlm = tiny_vlm("qwen2_vl", merges=False)
    prompt = vlm.prompt(scene, "Describe the image.")
    for seed in range(4):
        gen = vlm.generate(prompt, max_new_tokens=16, temperature=1.0, seed=seed)
        text = vlm.decode(gen.token_ids)
        assert vlm.response_ids(prompt, text) == gen.token_ids


def test_embedded_model_generated_then_pasted(scene):
    """The embedded (trained) model writes canonical tokenisations: paste == generate."""
    tiny = pytest.importorskip("vepo_viz.tiny")
    path = getattr(tiny, "DEFAULT_MODEL", None)
    if path is None or not (loading.Path(path) / "config.json").is_file():
        pytest.skip("the embedded model is not built yet")
    vlm = loading.load_model(path, device="cpu")
    prompt = vlm.prompt(scene, "What colour is the square?")
    for seed in range(3):
        gen = vlm.generate(prompt, max_new_tokens=32, temperature=1.0, seed=seed)
        assert vlm.response_ids(prompt, vlm.decode(gen.token_ids)) == gen.token_ids


# ---- tile layout: padding tiles untouched -------------------------------------------


def test_tiles_view_skips_padding_and_keeps_zeroed_tiles_visible():
    family = family_of("idefics3")
    pixel_values = torch.randn(1, 3, 3, 4, 4)
    pixel_values[0, 2] = 0.0  # a padding tile
    gen = torch.Generator().manual_seed(0)
    noisy = family.view(pixel_values, "gaussian", sigma=2.0, generator=gen)
    assert torch.equal(noisy[0, 2], torch.zeros(3, 4, 4))
    assert not torch.equal(noisy[0, :2], pixel_values[0, :2])
    blank = family.view(pixel_values, "no_image", sigma=2.0, generator=None)
    assert torch.all(blank[0, :2] == TILE_ZERO)
    assert torch.equal(blank[0, 2], torch.zeros(3, 4, 4))


def test_unknown_family_infers_layout():
    family = family_of("some_new_vlm")
    assert family.layout_of(torch.zeros(7, 12)) == "patches"
    assert family.layout_of(torch.zeros(1, 3, 8, 8)) == "image"
    assert family.layout_of(torch.zeros(1, 2, 3, 8, 8)) == "tiles"


def test_pixel_limit_reads_each_processor(tiny_vlm):
    assert pixel_limit(tiny_vlm("qwen2_vl").processor.image_processor) == 4 * 28 * 28
    assert pixel_limit(tiny_vlm("idefics3").processor.image_processor) == 64 * 64
    assert pixel_limit(tiny_vlm("gemma3").processor.image_processor) == 32 * 32


# ---- loading ----------------------------------------------------------------------


def test_load_model_caches_and_defaults(qwen, tiny_model_dir, monkeypatch):
    path = tiny_model_dir("qwen2_vl")
    assert loading.load_model(path, device="cpu") is qwen
    private = loading.load_model(path, device="cpu", cache=False)
    assert private is not qwen and private.model is not qwen.model
    assert qwen.dtype == torch.float32 and qwen.device.type == "cpu"
    assert "Qwen2-VL" in repr(qwen)
    import vepo_viz.models

    monkeypatch.setattr(vepo_viz.models, "EMBEDDED_MODEL", str(path))
    assert loading.load_model(device="cpu") is qwen


def test_unknown_model_offline_is_a_clear_error(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="not found locally.*offline"):
        loading.load_model("nobody-here/no-such-vlm-123", device="cpu")


def test_unknown_model_without_network_fails_fast(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(loading, "_hub_reachable", lambda endpoint: False)
    with pytest.raises(ModelLoadError, match="not found locally.*no network"):
        loading.load_model("nobody-here/no-such-vlm-123", device="cpu")


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no model folder"):
        loading.load_model(str(tmp_path / "missing"), device="cpu")
    with pytest.raises(ModelLoadError, match="no config.json"):
        loading.load_model(tmp_path, device="cpu")


def test_text_only_model_is_rejected(tmp_path):
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 10}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="no image input"):
        loading.load_model(tmp_path, device="cpu")


def test_device_and_dtype_resolution():
    assert loading.resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert loading.resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert loading.resolve_dtype(torch.float16, torch.device("cpu")) == torch.float16
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        loading.resolve_dtype("int8", torch.device("cpu"))
    with pytest.raises(ModelLoadError, match="unknown device"):
        loading.resolve_device("toaster")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            loading.resolve_device("cuda")


def test_padded_vocabulary_head(tiny_vlm, scene):
    """V larger than the tokenizer (as in real Qwen checkpoints) works end to end."""
    vlm = tiny_vlm("qwen2_vl", vocab_size=1000)
    assert vlm.vocab_size == 1000 > len(vlm.tokenizer)
    prompt = vlm.prompt(scene, "Which shape is red?")
    ids = vlm.response_ids(prompt, RESPONSE)
    assert vlm.logits(vlm.hidden_states(prompt, ids)).shape == (len(ids), 1000)


def test_missing_embedded_model_is_a_clear_error(monkeypatch, tmp_path):
    import vepo_viz.models

    monkeypatch.setattr(vepo_viz.models, "EMBEDDED_MODEL", str(tmp_path / "model"))
    with pytest.raises(ModelLoadError, match="embedded tiny model is not built"):
        loading.load_model(device="cpu")


def _byte_tokenizer():
    """A byte-level tokenizer without merges over all 256 bytes (any UTF-8 text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + 1,
        initial_alphabet=alphabet,
        special_tokens=["<s>"],
        show_progress=False,
    )
    tok.train_from_iterator(["abc"], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok)


TEXTS = ["héllo wörld 日本語 ok", "ab", "日", "x" * 9 + "é" * 5, "<s>a<s>é"]


@pytest.mark.parametrize("block", [3, 4, 64])
def test_token_spans_match_exact_prefix_decoding(block, monkeypatch):
    """Blocked span computation == the quadratic definition, also with multi-byte
    characters split over tokens and block boundaries inside a character."""
    from types import SimpleNamespace

    from vepo_viz.models import adapter

    monkeypatch.setattr(adapter, "SPAN_BLOCK", block)
    tok = _byte_tokenizer()

    def decode(ids):
        return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    fake = SimpleNamespace(tokenizer=tok, decode=decode)
    cases = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    broken = tok("aé日b", add_special_tokens=False)["input_ids"]
    cases.append(broken[:2] + broken[3:])  # a generated half character: decodes to U+FFFD
    for ids in cases:
        text = decode(ids)
        spans = adapter.VLM.token_spans(fake, ids, text)
        ends = [0]
        for i in range(1, len(ids) + 1):
            prefix = decode(ids[:i])
            n = next(
                (j for j, (a, b) in enumerate(zip(prefix, text, strict=False)) if a != b), None
            )
            ends.append(max(ends[-1], min(len(prefix), len(text)) if n is None else n))
        ends[-1] = len(text)
        assert spans == list(zip(ends[:-1], ends[1:], strict=True)), text
        assert "".join(text[s:e] for s, e in spans) == text


# ---- batched calls (training, the embedded model's evaluation) ---------------------


@pytest.mark.parametrize("family", ["qwen2_vl", "idefics3"])
@pytest.mark.parametrize("mode", ["gaussian", "patch"])
def test_batched_calls_match_the_single_example_path(tiny_vlm, scene, family, mode):
    """One row of encode_prompts / batch_view_inputs is the single-example prompt /
    view_inputs path."""
    vlm = tiny_vlm(family)
    question = "Which shape is red?"
    prompt = vlm.prompt(scene, question)
    batch = vlm.encode_prompts([(scene, question)])
    assert torch.equal(batch.inputs["input_ids"][0], prompt.inputs["input_ids"][0])
    perturb = PerturbConfig(mode=mode, seed=3)
    single = vlm.view_inputs(prompt, perturb, 0)
    batched = vlm.batch_view_inputs(batch, perturb, perturb.generator(0))
    torch.testing.assert_close(batched["pixel_values"], single["pixel_values"])


def test_generate_batch_greedy_is_deterministic_and_seeded_sampling_repeats(qwen, scene):
    pairs = [(scene, "Which shape is red?"), (scene, "How many shapes?")]
    prompts = qwen.encode_prompts(pairs)
    greedy = qwen.generate_batch(prompts, max_new_tokens=5)
    assert greedy == qwen.generate_batch(prompts, max_new_tokens=5)
    a = qwen.generate_batch(prompts, max_new_tokens=5, temperature=1.0, seed=7)
    assert a == qwen.generate_batch(prompts, max_new_tokens=5, temperature=1.0, seed=7)
    assert len(a) == 2 and all(1 <= len(r) <= 5 for r in a)
