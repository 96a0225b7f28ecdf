"""What each rule would train on, and whether VEPO's premise holds, on ONE set of sampled responses.

The initial model answers G sampled responses per prompt through the TRL plug-in's own
rollout and score pass (clean + counterfactual, no update); every rule of RULES is then
applied to those same signals (`train.rules.select_for_step`). `selection_profile`
reports what each rule selects (`selection_metrics`, `kind_metrics`);
`premise` adds the numbers VEPO's argument rests on (docs/mini_reproduction.md): the
headroom (sampled accuracy, groups with nonzero advantage), where the image-read tokens
sit in each response's entropy ranking, and whether the wrong image-read token of a wrong
answer was confident (below the response's median entropy), which entropy-only skips.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from vepo_viz.scoring import visual_sensitivity
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.rules import Selection, TokenSignals, select_for_step


def load_vlm(model: str, cfg: TrainConfig):
    """A private copy of `model` (a folder, a hub id, or "tiny") as a models.VLM."""
    from vepo_viz.models import load_model
    from vepo_viz.train.trl_train import EMBEDDED_NAMES

    name = None if model in EMBEDDED_NAMES else model
    return load_model(
        name, device=cfg.device, dtype=None if cfg.dtype == "auto" else cfg.dtype, cache=False
    )


@dataclass
class Response:
    """One sampled response: its prompt, token ids, verdict, token kinds and visual spans."""

    prompt: object
    ids: list[int]
    text: str
    reward: float
    correct: bool
    kinds: tuple[str, ...] | None
    wrong_visual: list[int] | None
    """Token indices that start an image-read span stating a wrong fact (None: unknown)."""


def _annotate(vlm, prompt, ids: list[int]):
    """(kinds, wrong_visual) of a suite response that follows its template, else (None, None)
    (tasks.reading.read_tokens; the end-of-turn token counts as template)."""
    from vepo_viz.tasks.reading import read_tokens

    ex = prompt.example
    if ex is None or not ids:
        return None, None
    n_end = 1 if ids[-1] in vlm.eos_token_ids else 0
    body = ids[: len(ids) - n_end]
    if not body:
        return None, None
    text = vlm.decode(body)
    read = read_tokens(ex, text, vlm.token_spans(body, text))
    if read is None:
        return None, None
    kinds, wrong = read
    return tuple(kinds) + ("template",) * n_end, wrong


def _sampled_signals(cfg: TrainConfig, prompts, vlm, folder: Path):
    """(TokenSignals, completion ids, completion mask) of G sampled responses per prompt
    from the TRL plug-in's own rollout and score pass (clean + counterfactual, no update)."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from vepo_viz.train.trl_data import REWARD_FUNCS, prompt_rows
    from vepo_viz.train.trl_plugin import VEPOGRPOTrainer
    from vepo_viz.train.trl_train import trl_args

    rows = prompt_rows(prompts, cfg.prompt_suffix, vlm.max_image_pixels)
    trainer = VEPOGRPOTrainer(
        model=vlm.model,
        processing_class=vlm.processor,
        reward_funcs=REWARD_FUNCS,
        args=trl_args(cfg, folder, save_strategy="no"),
        train_dataset=Dataset.from_list(rows),
    )
    trainer.model.train()
    inputs = [dict(row) for row in trainer.train_dataset for _ in range(cfg.group_size)]
    out = GRPOTrainer._generate_and_score_completions(trainer, inputs)  # TRL's, no selection
    signals = trainer._signals(out, inputs, step=0)
    return signals, out["completion_ids"], out["completion_mask"].bool()


def sample_responses(init: str, prompts, settings: dict, seed: int = 0):
    """(vlm, cfg, TokenSignals, [Response]) of G sampled responses to each prompt."""
    cfg = TrainConfig.from_dict(
        {
            **settings,
            "model": init,
            "seed": seed,
            "threads": settings.get("threads", 1),
            "prompts_per_step": len(prompts),
            "selection": "vepo",  # the score pass with a counterfactual view
        }
    )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    vlm = load_vlm(init, cfg)
    with tempfile.TemporaryDirectory() as folder:
        signals, ids, mask = _sampled_signals(cfg, prompts, vlm, Path(folder))
    rows = [p for p in prompts for _ in range(cfg.group_size)]
    responses = []
    for i, p in enumerate(rows):
        tokens = ids[i, : int(mask[i].sum())].tolist()
        body = tokens[:-1] if tokens and tokens[-1] in vlm.eos_token_ids else tokens
        text = vlm.decode(body)
        reward, correct, _ = p.reward(text)
        kinds, wrong = _annotate(vlm, p, tokens)
        responses.append(Response(p, tokens, text, reward, correct, kinds, wrong))
    return vlm, cfg, signals, responses


def headroom(responses: list[Response], group_size: int) -> dict:
    """Sampled accuracy, mean reward and share of groups whose rewards differ (nonzero
    advantage: something to learn from)."""
    groups = [responses[i : i + group_size] for i in range(0, len(responses), group_size)]
    return {
        "sampled_acc": statistics.mean(float(r.correct) for r in responses),
        "sampled_reward": statistics.mean(r.reward for r in responses),
        "nonzero_adv_groups": statistics.mean(
            float(len({r.reward for r in g}) > 1) for g in groups
        ),
        "n_groups": len(groups),
    }


def selection_metrics(
    signals: TokenSignals, selection: Selection, alpha: float
) -> dict[str, float]:
    """Mean entropy (and, with a counterfactual pass, JSD and visual sensitivity) of the
    selected tokens vs all valid tokens: the numbers the TRL plug-in logs every step (the
    Train tab's curves), here on one set of sampled responses."""
    mask, selected = signals.mask, selection.selected

    def mean(x: torch.Tensor, where: torch.Tensor) -> float:
        n = int(where.sum())
        return float(torch.where(where, x, 0.0).sum()) / n if n else float("nan")

    out = {
        "entropy_selected": mean(signals.entropy, selected),
        "entropy_all": mean(signals.entropy, mask),
    }
    if signals.stats is not None:
        vis = visual_sensitivity(signals.stats, mask, alpha)  # (N, T) in [0, 1]
        out.update(
            jsd_selected=mean(signals.stats.jsd, selected),
            jsd_all=mean(signals.stats.jsd, mask),
            vis_selected=mean(vis, selected),
            vis_all=mean(vis, mask),
        )
    return out


def kind_metrics(
    kinds: list[tuple[str, ...] | None], selected: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """Which kinds of tokens a rule trains on (suite responses that follow the template).

    kinds: per row, the kind of each response token (None: unknown row, skipped);
    selected, mask: (N, T) bool. Returns share_<kind> (share of the selected tokens of
    that kind), recall_visual (share of "visual" tokens selected) and kinds_rows (rows
    counted).
    """
    from vepo_viz.tasks import KINDS

    counts = {k: 0 for k in KINDS}
    n_visual = n_visual_selected = n_rows = 0
    for row, row_kinds in enumerate(kinds):
        if row_kinds is None:
            continue
        n = int(mask[row].sum())
        if n != len(row_kinds):
            continue  # a response cut differently from its annotation: skip it
        n_rows += 1
        chosen = selected[row, :n].tolist()
        for kind, is_selected in zip(row_kinds, chosen, strict=True):
            if is_selected:
                counts[kind] += 1
            if kind == "visual":
                n_visual += 1
                n_visual_selected += int(is_selected)
    total = sum(counts.values())
    out = {f"share_{k}": counts[k] / total if total else float("nan") for k in KINDS}
    out["recall_visual"] = n_visual_selected / n_visual if n_visual else float("nan")
    out["kinds_rows"] = float(n_rows)
    return out


def _rank(values: torch.Tensor, i: int) -> float:
    """Percentile rank of values[i] in its response: share of the other tokens below it."""
    if len(values) < 2:
        return 0.5
    return float((values < values[i]).sum()) / (len(values) - 1)


def premise_numbers(cfg: TrainConfig, signals, responses: list[Response], rules) -> dict:
    """Where the image-read tokens sit, and the confidently wrong ones, under every rule."""
    chosen = {
        rule: select_for_step(
            cfg.replace(selection=rule), signals, torch.Generator().manual_seed(0)
        )
        for rule in rules
    }
    ranks, below, ratio_num, ratio_den = [], [], [], []
    wrong_n = wrong_read = confident = 0
    in_top = {rule: 0 for rule in rules}
    for i, r in enumerate(responses):
        n = len(r.ids)
        if r.kinds is None or len(r.kinds) != n or n == 0:
            continue
        ent = signals.entropy[i, :n].float()
        median = float(ent.median())
        for t, kind in enumerate(r.kinds):
            if kind == "visual":
                ranks.append(_rank(ent, t))
                below.append(float(ent[t] < median))
                ratio_num.append(float(ent[t]))
                ratio_den.append(median)
        if r.correct:
            continue
        wrong_n += 1
        if not r.wrong_visual:
            continue
        wrong_read += 1
        t = r.wrong_visual[0]
        confident += int(float(ent[t]) < median)
        for rule, sel in chosen.items():
            in_top[rule] += int(bool(sel.selected[i, t]))
    out = {
        "visual_tokens": len(ranks),
        "visual_entropy_rank": statistics.mean(ranks) if ranks else float("nan"),
        "visual_below_median": statistics.mean(below) if below else float("nan"),
        "visual_entropy_mean": statistics.mean(ratio_num) if ratio_num else float("nan"),
        "response_median_entropy_mean": statistics.mean(ratio_den) if ratio_den else float("nan"),
        "wrong_answers": wrong_n,
        "wrong_with_wrong_read": wrong_read,
        "wrong_read_confident": confident / wrong_read if wrong_read else float("nan"),
        "wrong_read_selected": {
            rule: (k / wrong_read if wrong_read else float("nan")) for rule, k in in_top.items()
        },
    }
    return out


def selection_profile(
    init: str, jsonl: str, settings: dict, rules: list[str], n_prompts: int = 32, seed: int = 0
) -> dict:
    """What each rule would train on, on the SAME sampled responses of the initial model,
    and the premise numbers (headroom, image-read entropy, confidently wrong readings),
    on the first n_prompts prompts of `jsonl` (`profile_prompts`)."""
    from vepo_viz.train.data import load_jsonl

    return profile_prompts(init, load_jsonl(jsonl)[:n_prompts], settings, rules, seed)


def profile_prompts(init: str, prompts, settings: dict, rules: list[str], seed: int = 0) -> dict:
    """Samples G responses to each prompt through the TRL plug-in, runs its score pass once
    (clean + the counterfactual view of `settings`), applies every rule of RULES to those
    signals and reports entropy / visual sensitivity of the selected vs all tokens and,
    for suite prompts, the kinds of the selected tokens, the headroom and the premise."""
    _, cfg, signals, responses = sample_responses(init, prompts, settings, seed)
    kinds = [r.kinds for r in responses]
    out = {"n_responses": len(responses), "n_tokens": int(signals.mask.sum())}
    for rule in rules:
        selection = select_for_step(
            cfg.replace(selection=rule), signals, torch.Generator().manual_seed(seed)
        )
        out[rule] = {
            **selection_metrics(signals, selection, cfg.scoring.alpha),
            **kind_metrics(kinds, selection.selected, signals.mask),
            "selected_fraction": float(selection.selected.sum()) / out["n_tokens"],
        }
    if "vepo" in rules and "entropy" in rules:
        v = select_for_step(cfg.replace(selection="vepo"), signals, torch.Generator())
        e = select_for_step(cfg.replace(selection="entropy"), signals, torch.Generator())
        out["overlap_vepo_entropy"] = float((v.selected & e.selected).sum()) / max(
            1, int(v.selected.sum())
        )
    out["headroom"] = headroom(responses, cfg.group_size)
    out["premise"] = premise_numbers(cfg, signals, responses, rules)
    return out
