"""Selection traces: what a training step trained on, as `TokenAnalysis` records.

Every `trace_every` steps the TRL plug-in hands one generation batch's per-token tensors
(completion ids, mask, entropy, counterfactual statistics, scores, selection) to
`build_records`, which turns its first rows into TokenAnalysis records (the same class
the Analyze tab draws), and `save_traces` writes them to <run>/traces/step-000120.jsonl:
one `to_dict` per line, no images, every token (no 512-token cut). Each line also carries
a "trace" entry (step, row, rule, advantage, note) that TokenAnalysis.from_dict ignores.
`load_traces` / `load_trace_rows` read them back for the Train tab.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vepo_viz import scoring
from vepo_viz.analysis_settings import AnalysisSettings
from vepo_viz.models.adapter import VLM
from vepo_viz.perturb import PerturbConfig
from vepo_viz.results import TokenAnalysis
from vepo_viz.scoring import ScoringConfig, TokenStats

TRACES_DIR = "traces"
"""Folder of a run holding the trace files."""

TRACE_KEY = "trace"
"""Key of each line's trace metadata (step, row, rule, note, ...)."""

NO_SCORES_NOTE = (
    'rule "all" has no scores: every valid token is selected; the scores shown are the '
    "entropy (settings: score_type entropy, ratio 1); selected_entropy is the run's ratio"
)
NO_COUNTERFACTUAL_NOTE = (
    "no counterfactual pass for this rule: noisy statistics equal the clean ones, jsd and kl are 0"
)
VPPO_NOTE = "scores are VPPO's sampled-token dependency (not a SCORE_TYPES score)"


@dataclass
class TraceBatch:
    """One generation batch's per-token tensors, all (B, C) on CPU."""

    completion_ids: torch.Tensor
    mask: torch.Tensor
    entropy: torch.Tensor
    selected: torch.Tensor
    stats: TokenStats | None = None
    scores: torch.Tensor | None = None
    logprob: torch.Tensor | None = None
    logprob_noisy: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    """(B,) or (B, C) advantages after the plug-in's edits (their first entry per row is
    kept)."""


class _Text:
    """The adapter's token spans and strings over a bare tokenizer (no model needed)."""

    decode = VLM.decode
    token_spans = VLM.token_spans
    token_strings = VLM.token_strings

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor: its own


def trace_settings(
    rule: str, scoring_cfg: ScoringConfig, perturb: PerturbConfig, **generation: Any
) -> AnalysisSettings:
    """AnalysisSettings of a trace: the run's scoring and perturb settings (rule "all":
    entropy at ratio 1, since it selects every token; entropy and random: their score)."""
    score_type, ratio = scoring_cfg.score_type, scoring_cfg.ratio
    if rule == "all":
        score_type, ratio = "entropy", 1.0
    elif rule in ("entropy", "random"):
        score_type = rule
    scoring_cfg = replace(scoring_cfg, score_type=score_type, ratio=ratio)
    return AnalysisSettings(perturb=perturb, scoring=scoring_cfg, **generation)


def build_records(
    batch: TraceBatch,
    *,
    tokenizer: Any,
    questions: list[str],
    rule: str,
    settings: AnalysisSettings,
    model_id: str = "",
    family: str = "",
    rows: int = 4,
    step: int = 0,
    entropy_ratio: float | None = None,
) -> list[tuple[dict[str, Any], TokenAnalysis]]:
    """(trace metadata, TokenAnalysis) of the first `rows` completions of `batch`.

    selected_entropy is the top `entropy_ratio` (default: settings.scoring.ratio) by entropy
    per response, for comparison with the rule's selection (selected_vepo)."""
    text = _Text(tokenizer)
    ratio = settings.scoring.ratio if entropy_ratio is None else float(entropy_ratio)
    note = _note(rule, batch)
    out = []
    for b in range(min(rows, batch.completion_ids.shape[0])):
        keep = batch.mask[b].bool()  # (C,)
        question = questions[b] if b < len(questions) else ""
        analysis = _record(batch, b, keep, text, settings, ratio, question, model_id, family)
        meta = {"step": step, "row": b, "rule": rule, "note": note}
        if batch.advantages is not None:
            meta["advantage"] = float(batch.advantages[b].reshape(-1)[0])
        out.append((meta, analysis))
    return out


def _note(rule: str, batch: TraceBatch) -> str:
    notes = []
    if batch.scores is None:
        notes.append(NO_SCORES_NOTE)
    if batch.stats is None:
        notes.append(NO_COUNTERFACTUAL_NOTE)
    if rule == "vppo":
        notes.append(VPPO_NOTE)
    return "; ".join(notes)


def _record(
    batch: TraceBatch,
    b: int,
    keep: torch.Tensor,
    text: _Text,
    settings: AnalysisSettings,
    entropy_ratio: float,
    question: str,
    model_id: str,
    family: str,
) -> TokenAnalysis:
    """Row b's valid tokens (keep: (C,) bool) as a TokenAnalysis of a generated
    completion of `question`."""

    def row(x: torch.Tensor | None, default: torch.Tensor | None = None) -> np.ndarray:
        x = default if x is None else x
        return x[b][keep].float().numpy()  # (C,) -> (T,)

    ids = batch.completion_ids[b][keep].tolist()
    response = text.decode(ids)
    spans = text.token_spans(ids, response)
    entropy = row(batch.entropy)
    stats = batch.stats
    zeros = np.zeros_like(entropy)
    noisy = entropy if stats is None else row(stats.entropy_noisy)
    jsd = zeros if stats is None else row(stats.jsd)
    kl = zeros if stats is None else row(stats.kl)
    one = torch.ones(1, len(ids), dtype=torch.bool)  # (1, T)
    row_stats = TokenStats(*(torch.from_numpy(a)[None] for a in (entropy, noisy, jsd, kl)))
    entropy_scores = scoring.score_tokens(row_stats, one, "entropy")
    selected_entropy = scoring.select_tokens(entropy_scores, one, entropy_ratio, "response")[0]
    alpha = settings.scoring.alpha
    sensitivity = zeros if stats is None else scoring.visual_sensitivity(row_stats, one, alpha)
    logprob = zeros if batch.logprob is None else row(batch.logprob)
    logprob_noisy = logprob if batch.logprob_noisy is None else row(batch.logprob_noisy)
    return TokenAnalysis(
        response=response,
        tokens=text.token_strings(ids, response, spans),
        token_ids=np.asarray(ids, dtype=np.int64),
        offsets=np.asarray(spans, dtype=np.int64).reshape(-1, 2),
        entropy=entropy,
        entropy_noisy=noisy,
        jsd=jsd,
        kl=kl,
        entropy_gap=noisy - entropy,
        entropy_noisy_std=zeros,
        jsd_std=zeros,
        kl_std=zeros,
        entropy_gap_std=zeros,
        logprob=logprob,
        logprob_noisy=logprob_noisy,
        visual_sensitivity=np.asarray(sensitivity).reshape(-1),
        scores=entropy if batch.scores is None else row(batch.scores),
        selected_vepo=batch.selected[b][keep].bool().numpy(),
        selected_entropy=selected_entropy.numpy(),
        top_ids=np.zeros((len(ids), 0), dtype=np.int64),
        top_tokens=[[] for _ in ids],
        top_probs=np.zeros((len(ids), 0), dtype=np.float32),
        top_probs_noisy=np.zeros((len(ids), 0), dtype=np.float32),
        question=question,
        model_id=model_id,
        family=family,
        generated=True,
        settings=settings,
    )


def question_of(example: dict[str, Any]) -> str:
    """The question of a TRL dataset row: its last user message's text."""
    if isinstance(example.get("question"), str):
        return example["question"]
    prompt = example.get("prompt")
    if isinstance(prompt, str):
        return prompt
    for message in reversed(prompt or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            parts = [p.get("text", "") for p in content or [] if isinstance(p, dict)]
            return "".join(p for p in parts if isinstance(p, str))
    return ""


# ---- files ---------------------------------------------------------------------------


def trace_path(run_dir: str | Path, step: int) -> Path:
    """<run>/traces/step-000120.jsonl."""
    return Path(run_dir) / TRACES_DIR / f"step-{int(step):06d}.jsonl"


def save_traces(
    run_dir: str | Path,
    step: int,
    records: list[TokenAnalysis] | list[tuple[dict[str, Any], TokenAnalysis]],
) -> Path:
    """Write one step's records (TokenAnalysis, or (metadata, TokenAnalysis) pairs) as
    JSON lines without images; a step traced again (a resumed run) is overwritten."""
    path = trace_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row, record in enumerate(records):
        meta, analysis = record if isinstance(record, tuple) else ({"row": row}, record)
        data = analysis.to_dict(include_image=False)
        data[TRACE_KEY] = {"step": int(step), **meta}
        lines.append(json.dumps(data, ensure_ascii=False))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)  # readers never see half a file
    return path


def trace_steps(run_dir: str | Path) -> list[int]:
    """Steps of a run that have a trace, ascending."""
    folder = Path(run_dir) / TRACES_DIR
    steps = []
    for path in folder.glob("step-*.jsonl"):
        try:
            steps.append(int(path.stem.split("-", 1)[1]))
        except ValueError:
            continue
    return sorted(steps)


def load_trace_rows(run_dir: str | Path, step: int) -> list[tuple[dict[str, Any], TokenAnalysis]]:
    """(trace metadata, TokenAnalysis) of every completion traced at `step`."""
    path = trace_path(run_dir, step)
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            out.append((data.get(TRACE_KEY, {}), TokenAnalysis.from_dict(data)))
    return out


def load_traces(run_dir: str | Path) -> dict[int, list[TokenAnalysis]]:
    """Every trace of a run: step -> its TokenAnalysis records."""
    return {s: [a for _, a in load_trace_rows(run_dir, s)] for s in trace_steps(run_dir)}
