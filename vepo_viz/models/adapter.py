"""`VLM`: one transformers vision-language model behind the few calls an analysis needs.

prompt (chat template + image tokens) -> response token ids (generated or pasted) ->
last hidden states of teacher-forced passes with the clean or a counterfactual image ->
logits from those hidden states, chunk by chunk, through the model's own output head.

Working from hidden states (T x D) instead of logits (T x V) is what keeps memory flat:
V is 151,936 for Qwen, D a few thousand. Generation records the hidden state the output
head saw at each step, so the clean pass of a generated response is never run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from vepo_viz.errors import NumericsError, VepoInputError
from vepo_viz.models import engine
from vepo_viz.models.batching import PIXEL_KEYS, BatchedCalls
from vepo_viz.models.families import Family, family_of, pixel_limit
from vepo_viz.models.images import fit_image
from vepo_viz.models.sampling import SeededSampler
from vepo_viz.perturb import PerturbConfig, perturb_image

SPAN_BLOCK = 64
"""Tokens per block in `VLM.token_spans` (exact prefix decodes happen once per block)."""


@dataclass
class Prompt:
    """A question about an image, rendered and processed for one model (batch of 1)."""

    question: str
    """The user's question, as given."""
    text: str
    """The chat-template rendering with the generation prompt (image tokens unexpanded)."""
    image: Image.Image
    """The RGB image handed to the processor (after `fit_image`)."""
    inputs: dict[str, torch.Tensor]
    """Processor outputs on the model's device: input_ids (1, P), attention_mask (1, P),
    pixel_values (family layout) and the family's extras (image_grid_thw, ...)."""
    add_special_tokens: bool
    """Whether the processor added special tokens (False when the template has a BOS)."""

    @property
    def n_tokens(self) -> int:
        """P, the number of prompt tokens (image tokens expanded)."""
        return int(self.inputs["input_ids"].shape[1])


@dataclass
class Generation:
    """A generated response: its token ids and the hidden states that predicted them."""

    token_ids: list[int]
    """o_1..o_T, without the end-of-turn token."""
    hidden: torch.Tensor
    """(T, D) last hidden state that the output head read to predict each o_t."""
    logits: torch.Tensor | None = None
    """(T, V) raw logits reported by generate (only with keep_logits=True, for tests)."""
    finished: bool = True
    """False when max_new_tokens was reached before the end-of-turn token."""


@dataclass(eq=False)
class VLM(BatchedCalls):
    """A loaded vision-language model with its processor (see `load_model`).

    One example at a time here (the Analyze tab); many rows at a time in
    `batching.BatchedCalls` (training, the embedded model's evaluation)."""

    model: torch.nn.Module
    """The transformers *ForConditionalGeneration model, in eval mode."""
    processor: object
    """Its processor (image processor + tokenizer + chat template)."""
    model_id: str
    """What it was loaded from: a hub id or a folder path."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where the weights live."""
    dtype: torch.dtype = torch.float32
    """Dtype of the weights."""

    def __post_init__(self) -> None:
        self.family: Family = family_of(self.model.config.model_type)
        self.head = engine.output_head(self.model)
        """(n, D) hidden states -> (n, V) logits, soft-capped where the model does it."""
        self.eos_token_ids: tuple[int, ...] = self._end_tokens()

    # ---- properties -------------------------------------------------------------

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def vocab_size(self) -> int:
        """V, rows of the output head (may exceed len(tokenizer), as in Qwen)."""
        return engine.vocab_size(self.model)

    @property
    def max_image_pixels(self) -> int | None:
        """Most pixels the image processor keeps (images are shrunk to this first)."""
        return pixel_limit(self.processor.image_processor)

    @property
    def image_normalization(
        self,
    ) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
        """(image_mean, image_std) per RGB channel of the image processor, or None when
        it does not say (a processor that does not normalise, or not per channel)."""
        image_processor = getattr(self.processor, "image_processor", None)
        mean = getattr(image_processor, "image_mean", None)
        std = getattr(image_processor, "image_std", None)
        try:
            mean_c, std_c = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        except TypeError:  # None, or a single number
            return None
        if len(mean_c) != 3 or len(std_c) != 3:
            return None
        return mean_c, std_c

    def __repr__(self) -> str:
        return (
            f"VLM({self.model_id!r}, family={self.family.label}, device={self.device}, "
            f"dtype={self.dtype}, vocab={self.vocab_size})"
        )

    # ---- text -------------------------------------------------------------------

    def prompt(self, image: Image.Image, question: str) -> Prompt:
        """Render the model's own chat template for (image, question) and process it."""
        if not isinstance(question, str) or not question.strip():
            raise VepoInputError("the question is empty: ask something about the image")
        text, image = self.render(image, question)
        bos = self.tokenizer.bos_token
        add_special_tokens = not (bos is not None and text.startswith(bos))
        inputs = self._process(text, image, add_special_tokens)
        return Prompt(question, text, image, inputs, add_special_tokens)

    def render(self, image: Image.Image, question: str) -> tuple[str, Image.Image]:
        """(chat-template text with the generation prompt, the image fitted to the processor)."""
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
        ]
        text = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return text, fit_image(image, self.max_image_pixels)

    def _process(self, text: str, image: Image.Image, add_special_tokens: bool) -> dict:
        batch = self.processor(
            text=[text],
            images=[image],
            return_tensors="pt",
            add_special_tokens=add_special_tokens,
        )
        return {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def response_ids(self, prompt: Prompt, response: str) -> list[int]:
        """Token ids of a pasted `response` exactly as the model would produce them here.

        The prompt text and prompt + response are tokenised jointly and the response ids
        are the suffix, so word-boundary rules (leading spaces, newlines) apply as they
        would after the generation prompt. If the response's first characters would merge
        into the prompt's last token (a model continuing the prompt cannot produce that),
        the response is tokenised on its own.
        """
        if not isinstance(response, str):
            raise VepoInputError(f"the response must be a string, got {type(response).__name__}")
        tok = self.tokenizer
        prefix = tok(prompt.text, add_special_tokens=False)["input_ids"]
        full = tok(prompt.text + response, add_special_tokens=False)["input_ids"]
        if full[: len(prefix)] == prefix:
            ids = full[len(prefix) :]
        else:
            ids = tok(response, add_special_tokens=False)["input_ids"]
        if not ids:
            raise VepoInputError(
                f"the response {response[:60]!r} has no tokens for this model's tokenizer; paste a "
                "non-empty response (or leave it out to let the model answer)"
            )
        return list(ids)

    def decode(self, token_ids: list[int]) -> str:
        """Text of token ids, special tokens kept (so pasting it back gives the same ids)."""
        return self.tokenizer.decode(
            token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def token_spans(self, token_ids: list[int], text: str) -> list[tuple[int, int]]:
        """(start, end) character span of each token in `text` (= decode(token_ids)).

        Token i spans from the end of the text of tokens < i to the end of the text of
        tokens <= i (the longest common prefix of that decoded prefix and `text`). A token
        holding part of a multi-byte character gets an empty span; the token that
        completes the character spans it. Prefixes are decoded per block of
        SPAN_BLOCK tokens from an exact block start, so the cost is ~linear in T; a block
        whose local decoding disagrees with the text is decoded exactly.
        """
        ids = list(token_ids)
        T = len(ids)
        ends = [0] * (T + 1)
        starts = list(range(0, T, SPAN_BLOCK))
        exact_start = {0: True}
        for b in starts[1:]:
            prefix = self.decode(ids[:b])
            exact_start[b] = text.startswith(prefix)
            ends[b] = len(prefix) if exact_start[b] else _common_prefix_len(prefix, text)
        ends[T] = len(text)
        for b0 in starts:
            b1 = min(b0 + SPAN_BLOCK, T)
            base = ends[b0]
            local = self.tokenizer.batch_decode(
                [ids[b0:i] for i in range(b0 + 1, b1 + 1)],
                skip_special_tokens=False,
                clean_up_tokenization_spaces=False,
            )
            clean = exact_start[b0] and text.startswith(local[-1], base)
            if b1 < T:
                clean = clean and base + len(local[-1]) == ends[b1]
            for i, piece in zip(range(b0 + 1, b1), local[:-1], strict=True):
                if clean and text.startswith(piece, base):
                    ends[i] = base + len(piece)
                else:
                    full = piece if clean else self.decode(ids[:i])
                    offset = base if clean else 0
                    ends[i] = offset + _common_prefix_len(full, text[offset:])
        for i in range(1, T + 1):  # spans never run backwards
            ends[i] = max(ends[i], ends[i - 1])
        return [(ends[i], ends[i + 1]) for i in range(T)]

    def token_strings(self, token_ids: list[int], text: str, spans) -> list[str]:
        """Display string of each token: its span of the text, or its own decoding."""
        out = []
        for token_id, (start, end) in zip(token_ids, spans, strict=True):
            out.append(text[start:end] if end > start else self.decode([token_id]))
        return out

    def _end_tokens(self) -> tuple[int, ...]:
        """Token ids that end the assistant's turn: the generation config's EOS ids, the
        tokenizer's EOS, and the token the chat template writes after an assistant turn."""
        ids: list[int] = []
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids += [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        try:
            marker = "\x00VEPO\x00"
            rendered = self.processor.apply_chat_template(
                [
                    {"role": "user", "content": [{"type": "text", "text": "q"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": marker}]},
                ],
                tokenize=False,
            )
            after = rendered.split(marker, 1)[1]
            first = self.tokenizer(after, add_special_tokens=False)["input_ids"][:1]
            if first and first[0] in self.tokenizer.all_special_ids:
                ids.append(first[0])
        except Exception:  # noqa: BLE001 - a template without assistant turns: keep EOS only
            pass
        return tuple(dict.fromkeys(i for i in ids if i is not None))

    # ---- forward passes ---------------------------------------------------------

    def view_inputs(self, prompt: Prompt, perturb: PerturbConfig, draw: int) -> dict:
        """Image inputs of counterfactual view `draw` (to pass as `hidden_states(images=)`)."""
        generator = perturb.generator(draw)
        if perturb.space == "normalized":
            return {
                "pixel_values": self.pixel_view(prompt.inputs["pixel_values"], perturb, generator)
            }
        image = self.image_view(prompt.image, perturb, generator)
        inputs = self._process(prompt.text, image, prompt.add_special_tokens)
        if not torch.equal(inputs["input_ids"], prompt.inputs["input_ids"]):
            raise RuntimeError("the perturbed image changed the prompt tokens")  # pragma: no cover
        return {k: v for k, v in inputs.items() if k in PIXEL_KEYS}

    def pixel_view(
        self, pixel_values: torch.Tensor, perturb: PerturbConfig, generator: torch.Generator
    ) -> torch.Tensor:
        """A normalised-space view of processed pixel_values, in this family's layout."""
        return self.family.view(
            pixel_values, perturb.mode, sigma=perturb.sigma, generator=generator
        )

    def image_view(
        self, image: Image.Image, perturb: PerturbConfig, generator: torch.Generator
    ) -> Image.Image:
        """A pixel-space view of the PIL image handed to the processor."""
        return perturb_image(
            image,
            perturb.mode,
            sigma=perturb.sigma,
            generator=generator,
            patch_size=perturb.patch_size,
            patch_prob=perturb.patch_prob,
            blur_radius=perturb.blur_radius,
        )

    def response_inputs(self, prompt: Prompt, response_ids: list[int]) -> dict:
        """The prompt's inputs with the response appended (1, P+T), for teacher forcing."""
        response = torch.tensor([response_ids], dtype=torch.long, device=self.device)  # (1, T)
        return engine.with_response(prompt.inputs, response)

    def hidden_states(
        self, prompt: Prompt, response_ids: list[int], images: dict | None = None
    ) -> torch.Tensor:
        """(T, D) last hidden states that predict each response token, teacher-forced.

        `images` replaces the prompt's image inputs (a counterfactual view). Position t
        of the result is the state after o_<t, the one the output head turns into the
        distribution of o_t.
        """
        inputs = self.response_inputs(prompt, response_ids)
        if images:
            inputs.update(images)
        states = engine.response_states(self.model, inputs, prompt.n_tokens, len(response_ids))
        return states[0]  # (1, T, D) -> (T, D)

    def view_hidden_states(
        self,
        prompt: Prompt,
        response_ids: list[int],
        views: list[dict],
        before_forward=None,
    ) -> list[torch.Tensor]:
        """(T, D) states under each view ({}: the clean image), the views batched into as
        few forwards as `engine.ROWS_PER_FORWARD` allows."""
        states = engine.view_passes(
            self.model,
            self.response_inputs(prompt, response_ids),
            prompt.n_tokens,
            len(response_ids),
            views,
            pixel_keys=PIXEL_KEYS,
            before_forward=before_forward,
        )
        return [s[0] for s in states]  # (1, T, D) -> (T, D)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(n, V) logits of (n, D) hidden states through the output head (+ soft-capping)."""
        return self.head(hidden)

    def generation_config(self, max_new_tokens: int, pad_token_id: int, **extra):
        """Greedy decoding with the model's own defaults (repetition penalty, top-k, ...)
        switched off, stopping at the end-of-turn tokens; sampling, when wanted, is a
        `SeededSampler` logits processor on top."""
        from transformers import GenerationConfig

        return GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=1.0,
            top_p=1.0,
            top_k=None,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            eos_token_id=list(self.eos_token_ids),
            pad_token_id=pad_token_id,
            **extra,
        )

    @torch.no_grad()
    def generate(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        keep_logits: bool = False,
    ) -> Generation:
        """Sample (temperature > 0, seeded) or decode greedily (temperature == 0).

        The model's own generation defaults (repetition penalty, top-k, ...) are not
        applied: the response is drawn from softmax(z / temperature) within the top-p
        nucleus, the distribution the scores are computed from.
        """
        from transformers import LogitsProcessorList

        capture = engine.GenerationCapture()
        config = self.generation_config(
            max_new_tokens,
            self.tokenizer.pad_token_id or self.eos_token_ids[0],
            min_new_tokens=0,
            return_dict_in_generate=True,
            output_logits=keep_logits,
        )
        processors = LogitsProcessorList()
        if temperature > 0:
            processors.append(SeededSampler(temperature, top_p, seed))
        with capture.recording_model(self.model):
            out = self.model.generate(
                **prompt.inputs, generation_config=config, logits_processor=processors
            )
        new_ids = out.sequences[0, prompt.n_tokens :].tolist()
        n = len(new_ids)
        finished = False
        for i, token_id in enumerate(new_ids):
            if token_id in self.eos_token_ids:
                n, finished = i, True
                break
        steps = capture.steps
        hidden = torch.cat(steps[:n], dim=0) if n else steps[0][:0]  # n x (1, D) -> (T, D)
        logits = None
        if keep_logits:
            logits = torch.cat([step[:1] for step in out.logits[:n]], dim=0)  # (T, V)
        if not bool(torch.isfinite(hidden).all()):
            raise NumericsError(
                "the model produced NaN/inf hidden states while generating; with float16 "
                "weights try dtype='bfloat16' or 'float32'"
            )
        return Generation(new_ids[:n], hidden, logits, finished)


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
