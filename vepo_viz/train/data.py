"""Prompts for GRPO: the task suite or a user dataset, in an order that is a function of the step.

A user dataset is anything `vepo_viz.data` reads (a `datasets` folder, Parquet, a hub id
in the local cache, a JSONL), with the config's column mapping and verifier.

The prompts of step s depend only on (config, s), never on what ran before, so a run
resumed from a checkpoint sees exactly the prompts an uninterrupted run would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from vepo_viz.data import DataColumns, check_answer, iter_records, open_data
from vepo_viz.errors import VepoInputError
from vepo_viz.tasks import FAMILIES, Example, iter_split, make_example, split_seed
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
    verifier: str = "suite"
    """The answer verifier (an entry of data.VERIFIERS; "auto" resolved per answer)."""

    def reward(self, response: str) -> tuple[float, bool, bool]:
        """(reward, correct, well_formed) of a response, from the prompt's verifier."""
        verdict = check_answer(self.verifier, response, self.answer, self.answer_space)
        return verdict.reward, verdict.correct, verdict.well_formed


def suite_prompts(
    split: str, n_per_family: int, families: list[str], difficulty: float
) -> list[TaskPrompt]:
    """The first n_per_family prompts of each family of `split` (tasks.iter_split order)."""
    return [
        _suite_prompt(ex.family, ex.seed, difficulty, split)
        for ex in iter_split(split, n_per_family, families, difficulty)
    ]


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


def _suite_example(family, seed, difficulty, question: str, answer: str) -> Example | None:
    """The suite example a JSONL row was exported from (export_jsonl writes family, seed
    and difficulty), so its token kinds are known; None for other rows."""
    if family not in FAMILIES or seed is None or difficulty is None:
        return None
    try:
        ex = make_example(family, int(seed), float(difficulty))
    except (ValueError, TypeError):
        return None
    return ex if ex.question == question and ex.answer == answer else None


def load_prompts(
    spec: str | Path, columns: DataColumns | None = None, max_rows: int | None = None
) -> list[TaskPrompt]:
    """Prompts of a dataset (any form `vepo_viz.data.open_data` reads) with reference
    answers: image, question and answer columns (mapped by `columns`); optional
    answer_space/choices, family and id."""
    columns = columns or DataColumns()
    source = open_data(spec, columns.split)
    extra = tuple(name for name in ("seed", "difficulty") if name in source.present)
    stem = Path(source.name).stem
    prompts = []
    for record in iter_records(source, columns, max_rows=max_rows, extra=extra):
        if not record.answer:
            raise VepoInputError(
                f"{record.where} lacks answer; every row needs image, question, answer "
                "(pass --answer-column NAME)"
            )
        values = dict(record.extra)
        prompts.append(
            TaskPrompt(
                id=record.key
                if not record.key.startswith("row-")
                else f"{stem}-{record.index + 1}",
                image=record.load_image(),
                question=record.question,
                answer=record.answer,
                answer_space=record.options,
                family=record.family or "",
                example=_suite_example(
                    record.family,
                    values.get("seed"),
                    values.get("difficulty"),
                    record.question,
                    record.answer,
                ),
                verifier=record.verifier,
            )
        )
    return prompts


def load_jsonl(path: str | Path) -> list[TaskPrompt]:
    """Prompts of a JSONL file: one object per line with image (path relative to the file,
    or absolute), question and answer; optional answer_space (list), family and id."""
    return load_prompts(path)


def data_columns(cfg: TrainConfig) -> DataColumns:
    """The column mapping, split and verifier of a run's config."""
    return DataColumns(
        image_column=cfg.image_column,
        question_column=cfg.question_column,
        answer_column=cfg.answer_column,
        split=cfg.split,
        verifier=cfg.verifier,
    )


class PromptSource:
    """Training prompts of each step and the held-out set, as configured."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.families = list(cfg.families) or list(FAMILIES)
        self._rows: list[TaskPrompt] | None = None
        if cfg.data != "suite":
            self._rows = load_prompts(cfg.data, data_columns(cfg))

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
            return suite_prompts("heldout", self.cfg.n_eval, self.families, self.cfg.difficulty)
        if self.cfg.eval_data:
            return load_prompts(self.cfg.eval_data, data_columns(self.cfg), self.cfg.n_eval)
        return []
