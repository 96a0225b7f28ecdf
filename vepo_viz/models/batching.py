"""The batched calls of `VLM` that the embedded model's evaluation makes.

    prompts = vlm.encode_prompts([(image, question), ...])    # left-padded, one processor call
    responses = vlm.generate_batch(prompts, max_new_tokens=32, temperature=1.0, seed=s)
    views = vlm.batch_view_inputs(prompts, perturb, generator)  # counterfactual pixel inputs

Prompt rendering, image fitting, the generation config and counterfactual views are the
single-example code of `VLM` (adapter.py) applied to many rows; this module adds left
padding and one generator for the views of a whole batch. (Training batches are TRL's:
the plug-in reads them from its batch dict.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from PIL import Image

from vepo_viz.models.sampling import SeededSampler
from vepo_viz.perturb import PerturbConfig

PIXEL_KEYS = ("pixel_values", "pixel_attention_mask", "image_grid_thw", "image_sizes")
"""Processor outputs that describe the image (a pixel-space view replaces all of them)."""


def split_images(inputs: dict[str, torch.Tensor], rows: int) -> list[torch.Tensor]:
    """pixel_values cut into one piece per batch row (one image per row): by
    image_grid_thw where the family flattens patches (each image holds prod(t, h, w)
    rows), else along the batch dimension."""
    pixel_values = inputs["pixel_values"]
    grid = inputs.get("image_grid_thw")
    if grid is not None:
        if grid.shape[0] != rows:
            raise ValueError("counterfactual views need exactly one image per completion")
        return list(torch.split(pixel_values, grid.prod(-1).tolist(), dim=0))
    if pixel_values.shape[0] != rows:
        raise ValueError("counterfactual views need exactly one image per completion")
    return list(torch.split(pixel_values, 1, dim=0))


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

    def batch_view_inputs(
        self, batch: PromptBatch, perturb: PerturbConfig, generator
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

    def row_view_inputs(
        self, batch: PromptBatch, perturb: PerturbConfig, seeds: list[int], draw: int
    ) -> dict[str, torch.Tensor]:
        """Pixel inputs of view `draw` of every image of `batch`, row b from its own
        generator `make_generator(seeds[b], draw)`: the TRL plug-in's views of a generation
        batch (trl_plugin.view_seed gives its seeds), so a group analysed here sees the
        noise a training step would."""
        from vepo_viz.perturb import image_view, make_generator

        rows = len(batch.images)
        if perturb.space == "normalized":
            pieces = split_images(batch.inputs, rows)
            viewed = [
                self.family.view(
                    piece,
                    perturb.mode,
                    sigma=perturb.sigma,
                    generator=make_generator(seed, draw, piece.device),
                )
                for piece, seed in zip(pieces, seeds, strict=True)
            ]
            return {"pixel_values": torch.cat(viewed, dim=0)}
        images = [
            image_view(im, replace(perturb, seed=seed), draw)
            for im, seed in zip(batch.images, seeds, strict=True)
        ]
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
        top_p: float = 1.0,
    ) -> list[list[int]]:
        """One response per prompt row; each ends with its end-of-turn token when one was
        produced, else it is cut at max_new_tokens.

        temperature > 0 samples with `SeededSampler(seed)` (within the top-p nucleus), 0
        decodes greedily. `images`
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
            processors.append(SeededSampler(temperature, top_p, seed))
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
