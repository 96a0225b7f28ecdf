"""Tiny random-initialised VLMs of each supported family, built offline in seconds.

Tests and benchmarks need real transformers models of every family without downloading
weights: `build_tiny_vlm(family, path)` writes a folder (config, random weights, a
byte-level BPE tokenizer trained on a few sentences with the family's special tokens, the
family's chat template, a PIL image processor sized for tiny images) that `load_model(path)`
loads like any hub checkpoint. The weights are random, so outputs are noise; shapes,
templates, image tokens and pixel layouts are the real ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3", "smolvlm", "gemma3")

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What colour is the square? The square is red.",
    "How many circles are in the image? There are three circles.",
    "The answer is 42 because 6 times 7 is 42.",
    "Look at the chart: the blue bar is taller than the green bar.",
    "Therefore the angle ABC equals 60 degrees, so x = 30.",
    "First, count the triangles. Then compare the sizes. Finally, answer yes or no.",
    "Which shape is on the left of the circle? A small yellow star.",
]

_QWEN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}"
)
# SmolVLM / Idefics3: "User:<image>question<end_of_utterance>\nAssistant:"
_IDEFICS_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
_GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
_IDEFICS_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    *[f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
]
_GEMMA_SPECIALS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]


@dataclass(frozen=True)
class TinySpec:
    """Sizes of a tiny random model (all families share them where they apply)."""

    hidden_size: int = 32
    """Width of the language model."""
    n_layers: int = 2
    """Decoder layers of the language model (and of the vision tower)."""
    n_heads: int = 4
    """Attention heads; head_dim = hidden_size / n_heads."""
    vocab_size: int | None = None
    """Rows of the output head; None = the tokenizer's size. Larger values pad the head
    (as real checkpoints do: Qwen2.5-VL has 151,936 rows for 151,665 tokens)."""
    bpe_vocab: int = 400
    """Size of the trained byte-level BPE vocabulary (before special tokens)."""
    merges: bool = True
    """False: a byte-level tokenizer without merges (every token one byte), so any
    generated sequence re-tokenises to itself."""
    seed: int = 0
    """Seed of the random weights."""
    init_std: float = 0.3
    """Std of the random weights (config.initializer_range of every sub-config). 0.3
    (transformers' default is 0.02) gives peaky, image-dependent outputs, so entropies
    and JSDs vary across tokens as in a trained model."""
    extra: dict = field(default_factory=dict)
    """Extra top-level config overrides."""


def _train_tokenizer(specials: list[str], spec: TinySpec):
    """A byte-level BPE with Qwen's pre-tokenizer, trained on a few sentences."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # Printable ASCII, space, tab and newline only: a random model then never emits half a
    # UTF-8 character (GPT-2's byte alphabet maps bytes 33..126 to themselves).
    alphabet = [chr(b) for b in range(33, 127)] + ["\u0120", "\u010a", "\u0109"]
    n_alphabet = len(alphabet) + len(specials)
    trainer = trainers.BpeTrainer(
        vocab_size=spec.bpe_vocab if spec.merges else n_alphabet,
        special_tokens=specials,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    # Paragraph breaks too, so "\n\n" becomes one token (a boundary case for pasting).
    tok.train_from_iterator(_CORPUS * 4 + ["\n\n".join(_CORPUS)] * 8, trainer)
    return tok


def _hf_tokenizer(family: str, spec: TinySpec):
    from transformers import PreTrainedTokenizerFast

    if family.startswith("qwen"):
        specials, kw = _QWEN_SPECIALS, dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")
    elif family in ("idefics3", "smolvlm"):
        specials = _IDEFICS_SPECIALS
        kw = dict(
            bos_token="<|im_start|>", eos_token="<end_of_utterance>", pad_token="<|endoftext|>"
        )
    else:
        specials = _GEMMA_SPECIALS
        kw = dict(
            bos_token="<bos>",
            eos_token="<eos>",
            pad_token="<pad>",
            extra_special_tokens={
                "boi_token": "<start_of_image>",
                "eoi_token": "<end_of_image>",
                "image_token": "<image_soft_token>",
            },
        )
    tok = _train_tokenizer(specials, spec)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, **kw)
    hf.add_special_tokens({"additional_special_tokens": list(specials)})
    return hf


def _qwen_parts(family: str, tokenizer, spec: TinySpec):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2VLConfig,
        Qwen2VLImageProcessorPil,
        Qwen3VLConfig,
    )

    from vepo_viz.models import processors

    h, n_heads = spec.hidden_size, spec.n_heads
    head_dim = h // n_heads
    half = head_dim // 2
    section = [half - 2 * (half // 4), half // 4, half // 4]  # mrope_section sums to head_dim / 2
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _QWEN_SPECIALS}
    text = dict(
        vocab_size=spec.vocab_size or len(tokenizer),
        hidden_size=h,
        intermediate_size=2 * h,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads // 2,
        max_position_embeddings=4096,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section},
    )
    patch = 16 if family == "qwen3_vl" else 14
    vision = dict(depth=spec.n_layers, num_heads=n_heads, patch_size=patch, spatial_merge_size=2)
    common = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    if family == "qwen2_vl":
        vision.update(embed_dim=h, hidden_size=h, mlp_ratio=2)
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **common)
        proc_cls = processors.Qwen2VLProcessorNoVideo
    elif family == "qwen2_5_vl":
        vision.update(
            hidden_size=h,
            intermediate_size=2 * h,
            out_hidden_size=h,
            window_size=2 * patch * 2,
            fullatt_block_indexes=[spec.n_layers - 1],
        )
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
        proc_cls = processors.Qwen2_5_VLProcessorNoVideo
    else:
        text.update(head_dim=head_dim)
        text["rope_parameters"]["mrope_interleaved"] = True
        vision.update(
            hidden_size=h,
            intermediate_size=2 * h,
            out_hidden_size=h,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        )
        config = Qwen3VLConfig(text_config=text, vision_config=vision, **common)
        proc_cls = processors.Qwen3VLProcessorNoVideo
    factor = patch * 2  # pixels per merged token side
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch,
        temporal_patch_size=2,
        merge_size=2,
        min_pixels=factor * factor,
        max_pixels=4 * factor * factor,  # at most 4 image tokens: tiny and fast
    )
    processor = proc_cls(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=_QWEN_TEMPLATE
    )
    return config, processor


def _idefics_parts(family: str, tokenizer, spec: TinySpec):
    from transformers import (
        Idefics3Config,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        SmolVLMConfig,
        SmolVLMImageProcessorPil,
    )

    from vepo_viz.models import processors

    h, tile, patch = spec.hidden_size, 32, 8
    text = dict(
        model_type="llama",
        vocab_size=spec.vocab_size or len(tokenizer),
        hidden_size=h,
        intermediate_size=2 * h,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_heads // 2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=h,
        intermediate_size=2 * h,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        image_size=tile,
        patch_size=patch,
    )
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    seq_len = (tile // patch) ** 2 // 4  # scale_factor 2
    ip_kwargs = dict(size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile})
    if family == "idefics3":
        config = Idefics3Config(
            text_config=text, vision_config=vision, image_token_id=image_token_id, scale_factor=2
        )
        processor = Idefics3Processor(
            image_processor=Idefics3ImageProcessorPil(**ip_kwargs),
            tokenizer=tokenizer,
            image_seq_len=seq_len,
            chat_template=_IDEFICS_TEMPLATE,
        )
    else:
        config = SmolVLMConfig(
            text_config=text, vision_config=vision, image_token_id=image_token_id, scale_factor=2
        )
        processor = processors.SmolVLMProcessorNoVideo(
            image_processor=SmolVLMImageProcessorPil(**ip_kwargs),
            tokenizer=tokenizer,
            image_seq_len=seq_len,
            chat_template=_IDEFICS_TEMPLATE,
        )
    return config, processor


def _gemma_parts(tokenizer, spec: TinySpec):
    from transformers import Gemma3Config, Gemma3ImageProcessorPil, Gemma3Processor

    h, size, patch, n_image_tokens = spec.hidden_size, 32, 8, 4
    text = dict(
        vocab_size=spec.vocab_size or len(tokenizer),
        hidden_size=h,
        intermediate_size=2 * h,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_heads // 2,
        head_dim=h // spec.n_heads,
        query_pre_attn_scalar=h // spec.n_heads,
        sliding_window=64,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        model_type="siglip_vision_model",
        hidden_size=h,
        intermediate_size=2 * h,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        image_size=size,
        patch_size=patch,
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=n_image_tokens,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": size, "width": size}),
        tokenizer=tokenizer,
        chat_template=_GEMMA_TEMPLATE,
        image_seq_length=n_image_tokens,
    )
    return config, processor


def build_tiny_parts(family: str, spec: TinySpec | None = None):
    """(config, processor) of a tiny model of `family` (one of FAMILIES)."""
    spec = spec or TinySpec()
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(FAMILIES)}")
    tokenizer = _hf_tokenizer(family, spec)
    if family.startswith("qwen"):
        config, processor = _qwen_parts(family, tokenizer, spec)
    elif family in ("idefics3", "smolvlm"):
        config, processor = _idefics_parts(family, tokenizer, spec)
    else:
        config, processor = _gemma_parts(tokenizer, spec)
    for sub in (config, config.get_text_config(), getattr(config, "vision_config", None)):
        if sub is not None:
            sub.initializer_range = spec.init_std
    for key, value in spec.extra.items():
        setattr(config, key, value)
    return config, processor


def build_tiny_vlm(family: str, path: str | Path, spec: TinySpec | None = None) -> Path:
    """Write a tiny random `family` model folder at `path` and return the path."""
    from transformers import AutoModelForImageTextToText

    spec = spec or TinySpec()
    config, processor = build_tiny_parts(family, spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = AutoModelForImageTextToText.from_config(config)
        _wake_up(model, family)
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    model.generation_config.save_pretrained(path)
    return path


def _wake_up(model: torch.nn.Module, family: str) -> None:
    """Re-initialise weights that transformers zero-initialises, so the image matters.

    Gemma 3 starts its multimodal projector at zero: a random tiny Gemma 3 would ignore
    the image and every counterfactual statistic would be exactly zero.
    """
    if family == "gemma3":
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        with torch.no_grad():
            proj.normal_(0.0, 1.0 / math.sqrt(proj.shape[0]))
