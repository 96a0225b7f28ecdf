"""Batches of the task suite for the tiny model: chat-formatted, with assistant-only labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vepo_viz.tasks import FAMILIES, Example, make_example, split_seed

IGNORE = -100


def prompt_messages(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


DESCRIBE_QUESTION = "Describe each cell, row by row."
DESCRIBE_EVERY = 4
"""Every DESCRIBE_EVERY-th training example is the auxiliary 'describe' task."""


def cell_words(cell: dict | None) -> str:
    """A grid cell in words: "none", "red circle", "green bar", "blue 42" (a box)."""
    if cell is None:
        return "none"
    if cell["shape"] == "box":
        return f"{cell['color']} {cell['number']}"
    return f"{cell['color']} {cell['shape']}"


def describe_example(ex: Example) -> Example:
    """Auxiliary task on ex's image: what each of the 4 x 4 cells holds, row by row.

    Dense supervision tied to single image tokens (a cell is one merged 28 px token). It is
    the project's stand-in for the captioning stage of VLM pre-training: it gets the vision
    pathway used early, before the model settles on ignoring the image.
    """
    from vepo_viz.tasks import Segment

    words = [cell_words(c) for c in ex.meta["cells"]]
    segs = [Segment("Cells:", "template")]
    segs += [Segment((" " if i == 0 else ", ") + w, "visual") for i, w in enumerate(words)]
    return Example(
        "describe",
        ex.seed,
        ex.difficulty,
        ex.image,
        DESCRIBE_QUESTION,
        ", ".join(words),
        segs + [Segment(".", "template")],
        (),
        meta=ex.meta,
    )


def train_example(index: int, difficulty_range: tuple[float, float] = (0.0, 1.0)) -> Example:
    """The index-th training example: families interleaved, difficulty spread over the range;
    every DESCRIBE_EVERY-th one is the auxiliary describe task on a fresh image."""
    if index % DESCRIBE_EVERY == DESCRIBE_EVERY - 1:
        return describe_example(_suite_example(index // DESCRIBE_EVERY + 10**7, difficulty_range))
    return _suite_example(index - index // DESCRIBE_EVERY, difficulty_range)


def _suite_example(index: int, difficulty_range: tuple[float, float]) -> Example:
    fams = list(FAMILIES)
    fam = fams[index % len(fams)]
    lo, hi = difficulty_range
    frac = (index * 0.6180339887) % 1.0  # golden-ratio sequence: even spread, deterministic
    return make_example(
        fam, split_seed("train", index // len(fams)), round(lo + (hi - lo) * frac, 3)
    )


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor  # (B, L), IGNORE outside the assistant answer


def collate_sft(processor, examples: list[Example]) -> Batch:
    """Tokenise prompt + target per example; labels cover the target and its <|im_end|>."""
    tok = processor.tokenizer
    tok.padding_side = "right"
    texts = []
    for ex in examples:
        prompt = processor.apply_chat_template(
            prompt_messages(ex.question), tokenize=False, add_generation_prompt=True
        )
        texts.append(prompt + ex.target + "<|im_end|>")
    inputs = processor(
        images=[ex.image for ex in examples], text=texts, return_tensors="pt", padding=True
    )
    ids = inputs["input_ids"]  # (B, L)
    # the answer starts after the last "<|im_start|>assistant\n" (right padding: no shift)
    header = len(tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"])
    is_start = ids == tok.convert_tokens_to_ids("<|im_start|>")  # (B, L)
    last_start = ids.shape[1] - 1 - is_start.flip(1).int().argmax(1)  # (B,)
    prompt_ids = last_start + header  # (B,) prompt lengths, image tokens expanded
    labels = ids.clone()
    pos = torch.arange(ids.shape[1])[None, :]  # (1, L)
    labels[pos < prompt_ids[:, None]] = IGNORE
    labels[inputs["attention_mask"] == 0] = IGNORE
    return Batch(inputs=dict(inputs), labels=labels)
