"""The batched calls of `VLM` that training and the embedded model's evaluation make.

    prompts = vlm.encode_prompts([(image, question), ...])    # left-padded, one processor call
    responses = vlm.generate_batch(prompts, max_new_tokens=32, temperature=1.0, seed=s)
    batch = vlm.encode(pairs, responses, n_response=T)         # prompt + right-padded response
    logits = vlm.response_logits(batch)                        # (n, T, V), grad when enabled
    views = vlm.batch_view_inputs(batch, perturb, generator)   # counterfactual pixel inputs
    peft_model = vlm.attach_lora(r=16, alpha=32.0, dropout=0.0)

Prompt rendering, image fitting, the generation config and counterfactual views are the
single-example code of `VLM` (adapter.py) applied to many rows; this module adds left
padding, one generator for the views of a whole batch, seeded chunked sampling and LoRA.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from PIL import Image

from vepo_viz.errors import ModelLoadError
from vepo_viz.models.sampling import SeededSampler, derive_seed
from vepo_viz.perturb import PerturbConfig

GENERATION_BATCH = 64
"""Sequences generated per `model.generate` call (memory bound on real models)."""

EXTEND_WITH_ONES = ("attention_mask",)
EXTEND_WITH_ZEROS = ("mm_token_type_ids", "token_type_ids")
"""Per-token inputs besides input_ids that a processor may return and that must grow with
the response: the attention mask (1 = attend) and image/text type ids (0 = text)."""

PIXEL_KEYS = ("pixel_values", "pixel_attention_mask", "image_grid_thw", "image_sizes")
"""Processor outputs that describe the image (a pixel-space view replaces all of them)."""


@dataclass(eq=False)
class PromptBatch:
    """n (image, question) prompts rendered and processed together (left-padded)."""

    inputs: dict[str, torch.Tensor]
    """Processor outputs on the model's device: input_ids (n, P), attention_mask (n, P),
    pixel inputs in the family's layout."""
    texts: list[str]
    """Rendered prompt texts (image tokens unexpanded), for pixel-space views."""
    images: list[Image.Image]
    """Prompt images as processed (after `fit_image`), for pixel-space views."""


@dataclass(eq=False)
class SequenceBatch:
    """Prompt + response sequences of one micro-batch (n rows), on the model's device."""

    inputs: dict[str, torch.Tensor]
    """Model inputs of the clean pass: input_ids (n, P + T), attention_mask, pixel inputs."""
    response_ids: torch.Tensor
    """(n, T) sampled token ids, 0 on padding."""
    mask: torch.Tensor
    """(n, T) bool, True on real response tokens."""
    texts: list[str] = field(default_factory=list)
    """Rendered prompt texts (image tokens unexpanded), for pixel-space views."""
    images: list[Image.Image] = field(default_factory=list)
    """Prompt images as processed, for pixel-space views."""

    @property
    def n_rows(self) -> int:
        return int(self.response_ids.shape[0])

    @property
    def n_response(self) -> int:
        return int(self.response_ids.shape[1])


def placeholder_token_ids(config) -> list[int]:
    """Ids of the image/video placeholder and delimiter tokens named in a model config."""
    ids = set()
    for cfg in (config, getattr(config, "text_config", None)):
        for name, value in (vars(cfg) if cfg is not None else {}).items():
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and ("token_id" in name or "token_index" in name)
                and any(w in name for w in ("image", "video", "vision", "boi", "eoi"))
            ):
                ids.add(value)
    return sorted(ids)


class BatchedCalls:
    """Mixin of `VLM`: needs its model, processor, device, family, eos_token_ids and
    `render`, `generation_config`, `pixel_view`, `image_view`."""

    @property
    def pad_token_id(self) -> int:
        """The tokenizer's pad id, else the first end-of-turn token."""
        pad = self.tokenizer.pad_token_id
        return self.eos_token_ids[0] if pad is None else pad

    # ---- prompts and sequences --------------------------------------------------

    def _process_batch(self, texts: list[str], images: list[Image.Image]) -> dict:
        self.tokenizer.padding_side = "left"
        bos = self.tokenizer.bos_token
        add_special = not (bos is not None and texts[0].startswith(bos))
        batch = self.processor(
            text=texts,
            images=[[im] for im in images],
            return_tensors="pt",
            padding=True,
            add_special_tokens=add_special,
        )
        return {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def encode_prompts(self, pairs: list[tuple[Image.Image, str]]) -> PromptBatch:
        """(image, question) pairs rendered with the chat template, processed left-padded."""
        rendered = [self.render(image.convert("RGB"), question) for image, question in pairs]
        texts = [t for t, _ in rendered]
        images = [im for _, im in rendered]
        return PromptBatch(self._process_batch(texts, images), texts, images)

    def encode(
        self,
        pairs: list[tuple[Image.Image, str]],
        responses: list[list[int]],
        n_response: int | None = None,
    ) -> SequenceBatch:
        """Prompts (left-padded) followed by their responses (right-padded to n_response)."""
        if len(pairs) != len(responses):
            raise ValueError(f"{len(pairs)} prompts but {len(responses)} responses")
        T = n_response or max(1, max(len(r) for r in responses))
        prompts = self.encode_prompts(pairs)
        inputs = prompts.inputs
        ids = torch.zeros(len(responses), T, dtype=torch.long)
        mask = torch.zeros(len(responses), T, dtype=torch.bool)
        for i, r in enumerate(responses):
            ids[i, : len(r)] = torch.tensor(r[:T], dtype=torch.long)
            mask[i, : len(r)] = True
        ids, mask = ids.to(self.device), mask.to(self.device)
        filled = torch.where(mask, ids, self.pad_token_id)
        inputs["input_ids"] = torch.cat([inputs["input_ids"], filled], dim=1)  # (n, P + T)
        for key in EXTEND_WITH_ONES + EXTEND_WITH_ZEROS:
            if key in inputs:
                extra = (
                    mask.to(inputs[key].dtype)
                    if key in EXTEND_WITH_ONES
                    else torch.zeros_like(ids, dtype=inputs[key].dtype)
                )
                inputs[key] = torch.cat([inputs[key], extra], dim=1)  # (n, P + T)
        return SequenceBatch(inputs, ids, mask, prompts.texts, prompts.images)

    # ---- forward passes ---------------------------------------------------------

    def response_logits(
        self,
        batch: SequenceBatch,
        images: dict[str, torch.Tensor] | None = None,
        model: torch.nn.Module | None = None,
    ) -> torch.Tensor:
        """(n, T, V) logits predicting each response token (teacher-forced).

        `images` replaces the pixel inputs (a counterfactual view); `model` another model
        with the same inputs (a frozen reference). Gradients flow when called outside
        torch.no_grad().
        """
        model = model or self.model
        inputs = dict(batch.inputs)
        if images:
            inputs.update(images)
        T = batch.n_response
        if "logits_to_keep" in inspect.signature(model.forward).parameters:
            logits = model(**inputs, use_cache=False, logits_to_keep=T + 1).logits  # (n, T+1, V)
        else:  # pragma: no cover - every supported family has logits_to_keep
            logits = model(**inputs, use_cache=False).logits[:, -(T + 1) :]
        return logits[:, :-1]  # (n, T, V)

    def batch_view_inputs(
        self, batch: PromptBatch | SequenceBatch, perturb: PerturbConfig, generator
    ) -> dict[str, torch.Tensor]:
        """Pixel inputs of one counterfactual view of every image of `batch`.

        The same views as `VLM.view_inputs`, with one `generator` drawn from in row order
        (a fresh view per row, never one noise shared by the rows of an image).
        """
        if perturb.space == "normalized":
            return {
                "pixel_values": self.pixel_view(batch.inputs["pixel_values"], perturb, generator)
            }
        images = [self.image_view(im, perturb, generator) for im in batch.images]
        inputs = self._process_batch(batch.texts, images)
        return {k: v for k, v in inputs.items() if k in PIXEL_KEYS}

    # ---- generation -------------------------------------------------------------

    @torch.no_grad()
    def generate_batch(
        self,
        prompts: PromptBatch,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        images: dict[str, torch.Tensor] | None = None,
        suppress_placeholders: bool = True,
    ) -> list[list[int]]:
        """One response per prompt row; each ends with its end-of-turn token when one was
        produced, else it is cut at max_new_tokens.

        temperature > 0 samples with `SeededSampler(seed)`, 0 decodes greedily. `images`
        replaces the pixel inputs (generation under a counterfactual view). With
        `suppress_placeholders` image/video tokens are never generated (a response holding
        one could not be teacher-forced).
        """
        from transformers import LogitsProcessorList

        was_training = self.model.training
        self.model.eval()
        suppress = placeholder_token_ids(self.model.config) if suppress_placeholders else []
        config = self.generation_config(
            max_new_tokens, self.pad_token_id, suppress_tokens=suppress or None
        )
        processors = LogitsProcessorList()
        if temperature > 0:
            processors.append(SeededSampler(temperature, 1.0, seed))
        inputs = dict(prompts.inputs, **(images or {}))
        try:
            sequences = self.model.generate(
                **inputs, generation_config=config, logits_processor=processors
            )
        finally:
            self.model.train(was_training)
        out = []
        for row in sequences[:, inputs["input_ids"].shape[1] :].tolist():  # (n, new)
            cut = len(row)
            for i, token in enumerate(row):
                if token in self.eos_token_ids:
                    cut = i + 1  # keep the end-of-turn token
                    break
            out.append(row[:cut])
        return out

    def sample(
        self,
        pairs: list[tuple[Image.Image, str]],
        *,
        n_per_prompt: int,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[list[int]]:
        """n_per_prompt responses per (image, question), prompt-major, GENERATION_BATCH
        sequences per generate call; chunk i samples with derive_seed(seed, i)."""
        expanded = [p for p in pairs for _ in range(n_per_prompt)]
        out: list[list[int]] = []
        for chunk_index, start in enumerate(range(0, len(expanded), GENERATION_BATCH)):
            prompts = self.encode_prompts(expanded[start : start + GENERATION_BATCH])
            out += self.generate_batch(
                prompts,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=derive_seed(seed, chunk_index),
            )
        return out

    # ---- LoRA -------------------------------------------------------------------

    def attach_lora(self, r: int, alpha: float, dropout: float, targets: str = ""):
        """Inject LoRA adapters (peft) into `self.model` in place; returns the peft model.

        `targets` is a peft target_modules regex; "" = the family's `lora_targets`.
        """
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as error:  # pragma: no cover - peft is a dev/gpu dependency
            raise ModelLoadError(
                "LoRA needs peft: pip install 'vepo-viz[gpu]' (or set finetune = \"full\")"
            ) from error
        config = LoraConfig(
            r=r,
            lora_alpha=alpha,
            lora_dropout=dropout,
            target_modules=targets or self.family.lora_targets,
            bias="none",
        )
        try:
            return get_peft_model(self.model, config)
        except ValueError as error:
            raise ModelLoadError(
                f"LoRA found no target modules in this model ({error}); set lora_targets to a "
                "regex over its module names (print(model) lists them)"
            ) from error

    def load_lora_weights(self, peft_model, folder) -> None:
        """Load adapter weights saved by `peft_model.save_pretrained(folder)` (resume)."""
        from pathlib import Path

        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = load_file(str(Path(folder) / "adapter_model.safetensors"))
        set_peft_model_state_dict(peft_model, state)
