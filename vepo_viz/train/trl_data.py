"""Dataset, rewards and held-out evaluation of the TRL trainer (trl_train).

Rows are PromptSource's prompts in step order (row s * P + i is prompt i of step s) with
the conversational prompt and image TRL expects and the answer the verifier checks; the
rewards are each prompt's answer verifier (data.VERIFIERS; the suite's on suite data: 1.0
correct, 0.1 well-formed but wrong, 0.0 malformed), plus two zero-weight ones TRL logs
as accuracy and well-formedness.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from vepo_viz.data import check_answer, resolve
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.data import PromptSource, TaskPrompt

EVAL_BATCH = 64
"""Held-out prompts decoded per generate call."""


# ---- data and rewards ------------------------------------------------------------------


def prompt_rows(prompts: list[TaskPrompt], suffix: str = "", max_pixels: int | None = None):
    """TRL dataset rows: conversational prompt, image, and what the verifier needs."""
    from vepo_viz.models.images import fit_image

    return [
        {
            "prompt": [{"role": "user", "content": p.question + suffix}],
            "image": fit_image(p.image.convert("RGB"), max_pixels),
            "answer": p.answer,
            "answer_space": list(p.answer_space or []),
            "family": p.family,
            "prompt_id": p.id,
            "verifier": p.verifier,
        }
        for p in prompts
    ]


def build_dataset(cfg: TrainConfig, source: PromptSource, max_pixels: int | None = None):
    """A `datasets.Dataset` whose row s * P + i is prompt i of step s (TRL keeps the order)."""
    from datasets import Dataset

    prompts = [p for step in range(cfg.steps) for p in source.step_prompts(step)]
    return Dataset.from_list(prompt_rows(prompts, cfg.prompt_suffix, max_pixels))


def _verdicts(completions, answer, answer_space, verifier=None):
    verifiers = verifier if verifier is not None else ["suite"] * len(answer)
    return [
        check_answer(v, c[0]["content"] if isinstance(c, list) else c, a, tuple(s) or None)
        for c, a, s, v in zip(completions, answer, answer_space, verifiers, strict=True)
    ]


def verifier_reward(completions, answer, answer_space, verifier=None, **kwargs) -> list[float]:
    """Each row's verifier (the suite's by default): 1.0 correct, 0.1 well-formed but
    wrong, 0.0 malformed."""
    return [v.reward for v in _verdicts(completions, answer, answer_space, verifier)]


def correct(completions, answer, answer_space, verifier=None, **kwargs) -> list[float]:
    """1.0 where the answer is correct (logged as `accuracy`, weight 0 in the reward)."""
    return [float(v.correct) for v in _verdicts(completions, answer, answer_space, verifier)]


def well_formed(completions, answer, answer_space, verifier=None, **kwargs) -> list[float]:
    """1.0 where an answer was extracted (logged, weight 0 in the reward)."""
    return [float(v.well_formed) for v in _verdicts(completions, answer, answer_space, verifier)]


REWARD_FUNCS = [verifier_reward, correct, well_formed]


# ---- evaluation ------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model, processor, prompts: list[TaskPrompt], cfg: TrainConfig, max_pixels=None):
    """Greedy held-out accuracy, overall ("heldout_acc", over "heldout_n" examples), per
    family and, on user data, per verifier ("heldout_acc_verifier_<name>")."""
    from vepo_viz.models.images import fit_image
    from vepo_viz.tiny.evaluate import generate_batch

    if not prompts:
        return {}
    was_training = model.training
    model.eval()
    hits: dict[str, list[bool]] = {}
    by_verifier: dict[str, list[bool]] = {}
    try:
        for start in range(0, len(prompts), EVAL_BATCH):
            chunk = prompts[start : start + EVAL_BATCH]
            answers = generate_batch(
                model,
                processor,
                [SimpleNamespace(question=p.question + cfg.prompt_suffix) for p in chunk],
                max_new_tokens=cfg.max_new_tokens,
                images=[fit_image(p.image.convert("RGB"), max_pixels) for p in chunk],
            )
            for p, text in zip(chunk, answers, strict=True):
                hit = p.reward(text)[1]
                hits.setdefault(p.family or "all", []).append(hit)
                name = resolve(p.verifier, p.answer, p.answer_space)
                by_verifier.setdefault(name, []).append(hit)
    finally:
        model.train(was_training)
    n = sum(len(h) for h in hits.values())
    out = {"heldout_acc": sum(sum(h) for h in hits.values()) / n, "heldout_n": n}
    if len(hits) > 1:
        out.update({f"heldout_acc_{f}": sum(h) / len(h) for f, h in sorted(hits.items())})
    if set(by_verifier) != {"suite"}:
        out.update(
            {f"heldout_acc_verifier_{v}": sum(h) / len(h) for v, h in sorted(by_verifier.items())}
        )
    return out
