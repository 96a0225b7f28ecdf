"""Prompts for GRPO: the task suite or a user JSONL, in an order that is a function of the step.

The prompts of step s depend only on (config, s), never on what ran before, so a run
resumed from a checkpoint sees exactly the prompts an uninterrupted run would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from vepo_viz.errors import VepoInputError
from vepo_viz.tasks import FAMILIES, Example, iter_split, make_example, split_seed, verify
from vepo_viz.train.config import TrainConfig

DATA_ORDER_STRIDE = 1_000_003
"""A user dataset's epoch e is shuffled with seed * DATA_ORDER_STRIDE + e."""


@dataclass(frozen=True)
class TaskPrompt:
    """One question about one image, with the reference answer its rewards are checked on."""

    id: str
    image: Image.Image
    question: str
    answer: str
    answer_space: tuple[str, ...] | None = None
    """Answers that count as well-formed (None: any extracted answer is well-formed)."""
    family: str = ""
    """Suite family, or the JSONL's "family" column ("" if none): evaluation groups by it."""
    example: Example | None = field(default=None, compare=False, repr=False)
    """The suite example (None for user data): its template tells which response tokens
    were read off the image, for the selected-token diagnostics."""

    def reward(self, response: str) -> tuple[float, bool, bool]:
        """(reward, correct, well_formed) of a response, from the suite's verifier."""
        verdict = verify(response, self.answer, self.answer_space)
        return verdict.reward, verdict.correct, verdict.well_formed


def _suite_prompt(family: str, seed: int, difficulty: float, split: str) -> TaskPrompt:
    ex = make_example(family, seed, difficulty)
    return TaskPrompt(
        id=f"{split}-{family}-{seed}",
        image=ex.image,
        question=ex.question,
        answer=ex.answer,
        answer_space=tuple(ex.answer_space),
        family=family,
        example=ex,
    )


def _suite_example(row: dict) -> Example | None:
    """The suite example a JSONL row was exported from (export_jsonl writes family, seed
    and difficulty), so its token kinds are known; None for other rows."""
    family, seed, difficulty = row.get("family"), row.get("seed"), row.get("difficulty")
    if family not in FAMILIES or not isinstance(seed, int) or difficulty is None:
        return None
    try:
        ex = make_example(family, seed, float(difficulty))
    except (ValueError, TypeError):
        return None
    return ex if ex.question == row.get("question") and ex.answer == row.get("answer") else None


def load_jsonl(path: str | Path) -> list[TaskPrompt]:
    """Prompts of a JSONL file: one object per line with image (path relative to the file,
    or absolute), question and answer; optional answer_space (list), family and id."""
    path = Path(path)
    prompts = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise VepoInputError(f"{path}:{n} is not valid JSON: {error}") from error
        missing = [k for k in ("image", "question", "answer") if not row.get(k)]
        if missing:
            raise VepoInputError(
                f"{path}:{n} lacks {', '.join(missing)}; every line needs image, question, answer"
            )
        image_path = Path(row["image"])
        if not image_path.is_absolute():
            image_path = path.parent / image_path
        try:
            with Image.open(image_path) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError) as error:
            raise VepoInputError(f"{path}:{n}: cannot read image {image_path}: {error}") from error
        space = row.get("answer_space")
        prompts.append(
            TaskPrompt(
                id=str(row.get("id", f"{path.stem}-{n}")),
                image=image,
                question=str(row["question"]),
                answer=str(row["answer"]),
                answer_space=tuple(str(a) for a in space) if space else None,
                family=str(row.get("family", "")),
                example=_suite_example(row),
            )
        )
    if not prompts:
        raise VepoInputError(f"{path} holds no prompts")
    return prompts


class PromptSource:
    """Training prompts of each step and the held-out set, as configured."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.families = list(cfg.families) or list(FAMILIES)
        self._rows: list[TaskPrompt] | None = None
        if cfg.data != "suite":
            self._rows = load_jsonl(cfg.data)

    def step_prompts(self, step: int) -> list[TaskPrompt]:
        """The prompts_per_step prompts of step `step` (0-based), a pure function of it."""
        n = self.cfg.prompts_per_step
        indices = range(step * n, (step + 1) * n)
        if self._rows is None:
            n_fam = len(self.families)
            return [
                _suite_prompt(
                    self.families[i % n_fam],
                    split_seed("train", i // n_fam),
                    self.cfg.difficulty,
                    "train",
                )
                for i in indices
            ]
        return [self._rows[j] for j in self._shuffled(indices)]

    def _shuffled(self, indices: range) -> list[int]:
        """Row of each global index: epoch e visits the rows in a seeded permutation."""
        size = len(self._rows)
        out, perms = [], {}
        for i in indices:
            epoch = i // size
            if epoch not in perms:
                gen = torch.Generator().manual_seed(self.cfg.seed * DATA_ORDER_STRIDE + epoch)
                perms[epoch] = torch.randperm(size, generator=gen).tolist()
            out.append(perms[epoch][i % size])
        return out

    def heldout(self) -> list[TaskPrompt]:
        """The held-out prompts greedy accuracy is measured on ([] when evaluation is off)."""
        if self.cfg.n_eval == 0:
            return []
        if self._rows is None:
            return [
                _suite_prompt(ex.family, ex.seed, self.cfg.difficulty, "heldout")
                for ex in iter_split("heldout", self.cfg.n_eval, self.families, self.cfg.difficulty)
            ]
        if self.cfg.eval_data:
            return load_jsonl(self.cfg.eval_data)[: self.cfg.n_eval]
        return []
