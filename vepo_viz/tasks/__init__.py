"""Procedural visual-reasoning suite: families, deterministic examples, splits, JSONL export.

    from vepo_viz.tasks import make_example, iter_split, export_jsonl, verify
    ex = make_example("count", seed=7, difficulty=0.5)
    ex.image, ex.question, ex.answer, ex.target, ex.segments

Seeds: the train split uses even seeds, the held-out split odd seeds, so they never overlap.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from vepo_viz.tasks.base import (
    KINDS,
    SPLITS,
    Example,
    Segment,
    Verdict,
    extract_answer,
    token_kinds,
    verify,
)
from vepo_viz.tasks.families import FAMILIES

__all__ = [
    "FAMILIES",
    "KINDS",
    "SPLITS",
    "DEFAULT_DIFFICULTY",
    "Example",
    "Segment",
    "Verdict",
    "make_example",
    "split_seed",
    "iter_split",
    "export_jsonl",
    "write_examples",
    "verify",
    "extract_answer",
    "token_kinds",
    "chance_level",
]

DEFAULT_DIFFICULTY = 0.5


def make_example(family: str, seed: int, difficulty: float = DEFAULT_DIFFICULTY) -> Example:
    """The example of `family` drawn from `seed` (a pure function of its arguments)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    rng = random.Random(f"{family}:{seed}:{difficulty:.4f}")
    return Example(
        family=family, seed=seed, difficulty=difficulty, **FAMILIES[family](rng, difficulty)
    )


def split_seed(split: str, index: int) -> int:
    """Seed of the index-th example of a split: even for train, odd for held-out."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return 2 * index + (split == "heldout")


def iter_split(
    split: str,
    n_per_family: int,
    families: list[str] | None = None,
    difficulty: float = DEFAULT_DIFFICULTY,
    start: int = 0,
) -> Iterator[Example]:
    """Examples start..start+n-1 of every family of a split, family-interleaved."""
    fams = families or list(FAMILIES)
    for i in range(start, start + n_per_family):
        for fam in fams:
            yield make_example(fam, split_seed(split, i), difficulty)


def chance_level(family: str) -> float:
    """Accuracy of guessing uniformly among the answers an image of `family` can have."""
    return {"color": 1 / 6, "compare": 1 / 2, "count": 1 / 6, "spatial": 1 / 2, "read": 1 / 90}[
        family
    ]


def export_jsonl(
    out_path: str | Path,
    split: str = "heldout",
    n_per_family: int = 20,
    families: list[str] | None = None,
    difficulty: float = DEFAULT_DIFFICULTY,
    tokenizer=None,
) -> Path:
    """Write images (PNG, under images/ beside the file) and one JSON object per example.

    Each line: image (relative to the JSONL), question, answer, family, id, seed, target,
    segments [[text, kind], ...] and, when a tokenizer is given, target_tokens/target_kinds.
    """
    return write_examples(
        out_path, iter_split(split, n_per_family, families, difficulty), split, tokenizer
    )


def write_examples(out_path: str | Path, examples, split: str, tokenizer=None) -> Path:
    """export_jsonl's file for any examples of `split` (e.g. a pool mined from it)."""
    out_path = Path(out_path)
    img_dir = out_path.parent / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    with out_path.open("w") as f:
        for ex in examples:
            ex_id = f"{split}-{ex.family}-{ex.seed}"
            img_path = img_dir / f"{ex_id}.png"
            ex.image.save(img_path)
            row = {
                "id": ex_id,
                "image": str(img_path.relative_to(out_path.parent)),
                "question": ex.question,
                "answer": ex.answer,
                "family": ex.family,
                "seed": ex.seed,
                "difficulty": ex.difficulty,
                "target": ex.target,
                "segments": [[s.text, s.kind] for s in ex.segments],
                "answer_space": list(ex.answer_space),
            }
            if tokenizer is not None:
                enc = tokenizer(ex.target, return_offsets_mapping=True, add_special_tokens=False)
                row["target_tokens"] = tokenizer.convert_ids_to_tokens(enc["input_ids"])
                row["target_kinds"] = token_kinds(enc["offset_mapping"], ex.char_kinds(), ex.target)
            f.write(json.dumps(row) + "\n")
    return out_path
