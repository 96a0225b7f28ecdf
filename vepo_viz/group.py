"""`analyze_group`: one GRPO step on one prompt, token by token (no update).

GRPO's unit is a group: G responses sampled for one prompt, each checked by a verifier,
the rewards turned into advantages (TRL's GRPOTrainer: minus the group mean, divided by
a standard deviation per `scale_rewards`), and only then a token rule (train.rules.RULES)
decides which tokens of which responses carry that advantage. This module does exactly
that to one prompt:

    (image, question) x G -> one batched, seeded generate (its clean states recorded)
    -> one batched teacher-forced pass per counterfactual view, row b on its own noise
       (seed `trl_plugin.view_seed(perturb seed, 0, b)`, as a training step draws it)
    -> the engine's head walk -> one TokenAnalysis per response
    -> rewards (data.VERIFIERS, or a reward function) -> `grpo_advantages`
    -> per method: the rule's selection on the group's signals and the plug-in's hand-over
       (mask / weight, VPPO's advantage scale): the signed credit A_i x w_t (`credit`)

Where it differs from a training step: no update runs; the G completions keep their
end-of-turn token, as TRL's completion mask does (so selections match the plug-in's);
the clean states come from generation (a training step may recompute them with a
forward: equal up to float rounding); no noise-floor pass (a training step has none).
With one prompt the generation batch is the group, so scale_rewards "batch" equals
"group" here (`grpo_advantages` takes many groups and tells them apart).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from vepo_viz.errors import VepoInputError
from vepo_viz.results import TokenAnalysis, _png_base64, _png_image
from vepo_viz.train.rules import SCALE_REWARDS

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.limits import RequestLimits
    from vepo_viz.tasks import Example

FORMAT = "vepo-viz/group-analysis"
FORMAT_VERSION = 1


ADVANTAGE_EPS = 1e-4
"""TRL's epsilon of advantages = (r - mean) / (std + eps) (grpo_trainer.py, trl 1.16.0)."""

LOSS_MODES: tuple[str, ...] = ("mask", "weight")
"""How a selection reaches the loss (the plug-in's VEPOGRPOConfig.loss_mode)."""

NO_SIGNAL = "this prompt teaches nothing at this temperature"
"""The summary's first words when every response got the same reward (then
train.advice.ZERO_ADVANTAGE_MESSAGE, training's own warning, follows)."""

NO_ANSWER = (
    "rewards unknown: no reference answer was given, so the advantages (and the credit) "
    "are unknown; type the answer to see what an update would push up and down"
)

ProgressFn = Callable[[float, str], None]


# ---- advantages (pure) --------------------------------------------------------------


def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """trl.trainer.utils.nanstd (trl 1.16.0, utils.py:1021): Bessel-corrected, NaN-aware."""
    import torch

    dims = dim if dim is not None else tuple(range(x.dim()))
    mean = torch.nanmean(x, dim=dims, keepdim=True)
    variance = torch.nanmean((x - mean) ** 2, dim=dims, keepdim=True)
    count = torch.sum(~torch.isnan(x), dim=dims, keepdim=True)
    correction = count / (count - 1)
    correction = torch.where(count > 1, correction, torch.full_like(correction, math.nan))
    std = torch.sqrt(variance * correction)
    return std.squeeze(dims) if dim is not None else std.reshape(())


def grpo_advantages(
    rewards: Sequence[float] | np.ndarray, group_size: int, scale_rewards: str = "group"
) -> np.ndarray:
    """(N,) float32 advantages of N = n_groups x group_size rewards, as TRL computes them.

    Reproduces trl 1.16.0 `GRPOTrainer._generate_and_score_completions`
    (trl/trainer/grpo_trainer.py lines 2762-2787 and 2810, multi_objective_aggregation
    "sum_then_normalize"): A = r - mean of its group; divided by (std + 1e-4), std of its
    group ("group") or of all N ("batch"), not divided ("none"); NaN rewards (unscorable)
    are left out of the means and get advantage 0. float32, like TRL's rewards tensor.
    """
    import torch

    if scale_rewards not in SCALE_REWARDS:
        raise VepoInputError(f"scale_rewards={scale_rewards!r}: choose one of {SCALE_REWARDS}")
    r = torch.as_tensor(np.asarray(rewards, dtype=np.float32)).reshape(-1)  # (N,)
    G = int(group_size)
    if G < 1 or r.numel() % G:
        raise VepoInputError(f"{r.numel()} rewards do not form groups of {G}")
    mean = torch.nanmean(r.view(-1, G), dim=1).repeat_interleave(G, dim=0)  # (N,)
    if scale_rewards in ("group", "none"):
        std = (
            _nanstd(r.view(-1, G), dim=1).repeat_interleave(G, dim=0)
            if G > 1
            else torch.zeros_like(r)
        )
    else:
        std = _nanstd(r).expand_as(r) if r.numel() > 1 else torch.zeros_like(r)
    advantages = r - mean
    if scale_rewards != "none":
        advantages = advantages / (std + ADVANTAGE_EPS)
    return torch.nan_to_num(advantages, nan=0.0).numpy().astype(np.float32)


# ---- credit (pure) ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GroupCredit:
    """What one update applies to each token of a group under one method.

    Arrays are (G, T) over the padded group (T = the longest response); values past a
    response's length are 0 (selected False, weight and credit 0).
    """

    method: str
    """The rule (train.rules.RULES)."""
    ratio: float
    loss_mode: str
    selected: np.ndarray
    """(G, T) bool: the tokens the rule keeps ("all": every token)."""
    weights: np.ndarray
    """(G, T) float32 w_t: 1/0 ("mask"), 1 + lambda x selected ("weight"), 1 ("all")."""
    advantages: np.ndarray
    """(G,) float32 each response's advantage as the loss sees it (VPPO: rescaled)."""
    credit: np.ndarray
    """(G, T) float32 A_i x w_t: > 0 pushed up, < 0 pushed down, 0 untouched."""
    lengths: np.ndarray
    """(G,) int64 tokens of each response."""

    def row(self, i: int) -> np.ndarray:
        """(T_i,) credit of response i."""
        return self.credit[i, : int(self.lengths[i])]


def token_signals(responses: Sequence[TokenAnalysis]):
    """train.rules.TokenSignals of a group's responses, padded to the longest: what the
    TRL plug-in hands a rule for the same completions (stats = mean over draws)."""
    import torch

    from vepo_viz.scoring import TokenStats
    from vepo_viz.train.rules import TokenSignals

    G, T = len(responses), max(len(r) for r in responses)

    def padded(name: str) -> torch.Tensor:
        out = torch.zeros(G, T, dtype=torch.float32)  # (G, T)
        for i, r in enumerate(responses):
            out[i, : len(r)] = torch.from_numpy(np.asarray(getattr(r, name), dtype=np.float32))
        return out

    mask = torch.zeros(G, T, dtype=torch.bool)
    for i, r in enumerate(responses):
        mask[i, : len(r)] = True
    stats = TokenStats(
        entropy=padded("entropy"),
        entropy_noisy=padded("entropy_noisy"),
        jsd=padded("jsd"),
        kl=padded("kl"),
    )
    return TokenSignals(
        mask=mask,
        logp_old=padded("logprob"),
        entropy=stats.entropy,
        stats=stats,
        logp_noisy=padded("logprob_noisy"),
    )


def rule_seed(seed: int) -> int:
    """Seed of the generator a rule draws from ("random"): the plug-in's at step 0."""
    from vepo_viz.train.trl_plugin import VIEW_STRIDE

    return seed * VIEW_STRIDE * VIEW_STRIDE  # trl_plugin.view_seed(seed, 0, 0)


def group_credit(
    responses: Sequence[TokenAnalysis],
    advantages: np.ndarray,
    method: str,
    *,
    settings: AnalysisSettings,
    ratio: float | None = None,
    loss_mode: str = "mask",
    weight_lambda: float = 1.0,
    vppo_rescale: bool = True,
    seed: int = 0,
) -> GroupCredit:
    """The signed credit A_i x w_t of `method` over a group (no model).

    The rule selects on the group's stored signals exactly as the TRL plug-in's `_select`
    does for that group (scope and ratio of `settings` unless `ratio` is given), and the
    weights follow its `_apply`: "mask" keeps A_i on selected tokens and 0 elsewhere,
    "weight" multiplies A_i by 1 + weight_lambda on selected tokens, VPPO's advantage
    scale multiplies A_i; "all" gives every token A_i.
    """
    import torch

    from vepo_viz.train.rules import RULES

    RULES.check(method)
    if loss_mode not in LOSS_MODES:
        raise VepoInputError(f"loss_mode={loss_mode!r}: choose one of {LOSS_MODES}")
    ratio = float(settings.scoring.ratio if ratio is None else ratio)
    if not 0 < ratio <= 1:
        raise VepoInputError(f"ratio={ratio} must lie in (0, 1]")
    signals = token_signals(responses)
    mask = signals.mask
    A = torch.as_tensor(np.asarray(advantages, dtype=np.float32))  # (G,)
    if method == "all":  # the plug-in leaves TRL's batch alone
        selected, weights = mask.clone(), mask.float()
    else:
        scoring_cfg = replace(settings.scoring, ratio=ratio)  # what a rule reads, as TrainConfig
        cfg = SimpleNamespace(scoring=scoring_cfg, vppo_rescale=bool(vppo_rescale))
        generator = torch.Generator().manual_seed(rule_seed(seed))
        try:
            selection = RULES[method].select(cfg, signals, generator)
        except ValueError as error:
            raise VepoInputError(f"the {method} rule cannot score this group: {error}") from error
        selected = selection.selected & mask
        if selection.advantage_scale is not None:
            A = A * selection.advantage_scale.to(A.dtype)
        if loss_mode == "mask":
            weights = selected.float()
        else:
            weights = torch.where(mask, 1.0 + weight_lambda * selected.float(), 0.0)
    credit = A[:, None] * weights  # (G, T)
    return GroupCredit(
        method=method,
        ratio=ratio,
        loss_mode=loss_mode,
        selected=selected.numpy(),
        weights=weights.numpy().astype(np.float32),
        advantages=A.numpy().astype(np.float32),
        credit=credit.numpy().astype(np.float32),
        lengths=mask.sum(1).numpy().astype(np.int64),
    )


# ---- the result ---------------------------------------------------------------------


@dataclass(frozen=True)
class MisreadCheck:
    """Where each method's credit goes in one wrong answer of a suite sample."""

    response: int
    """Index of the response in the group."""
    positions: tuple[int, ...]
    """Token positions that state a wrong fact read off the image (first token of each
    wrong image-read span); empty when the answer is wrong but every reading is right."""
    tokens: tuple[str, ...]
    """Their token strings."""
    credited: dict[str, bool]
    """{method: whether its credit is nonzero on any of `positions`}."""
    credit: dict[str, float]
    """{method: its credit on the first misread token (0 when none)}."""


@dataclass(frozen=True)
class GroupSummary:
    """What the group says: right answers, learning signal, misread tokens per method."""

    n_responses: int
    n_correct: int | None
    """None when the rewards are unknown (no answer)."""
    has_rewards: bool
    learning_signal: bool
    """Whether the rewards differ (a nonzero advantage somewhere)."""
    message: str
    """One sentence: the group's signal (or why there is none)."""
    methods: tuple[str, ...]
    misread: tuple[MisreadCheck, ...]
    """One per wrong answer of a suite sample (annotated responses only)."""

    def lines(self) -> list[str]:
        """The summary as text lines (CLI, notebook, app)."""
        out = [self.message]
        for check in self.misread:
            head = f"response {check.response + 1} (wrong)"
            if not check.positions:
                out.append(f"{head}: every fact read off the image is right; the answer is not")
                continue
            where = ", ".join(repr(t) for t in check.tokens)
            parts = [
                f"{m} {'credits it' if check.credited[m] else 'puts no credit on it'}"
                + (f" ({check.credit[m]:+.3f})" if check.credited[m] else "")
                for m in self.methods
            ]
            out.append(f"{head}: misread {where}; " + "; ".join(parts))
        return out


@dataclass(frozen=True, eq=False)
class GroupAnalysis:
    """G sampled responses to one prompt, their rewards and advantages, and what a GRPO
    step would credit to each of their tokens (`credit`, `summary`)."""

    question: str
    responses: tuple[TokenAnalysis, ...]
    """G TokenAnalysis, in sampling order (each ends with its end-of-turn token when one
    was produced: the tokens a training step scores)."""
    rewards: np.ndarray
    """(G,) float32 rewards; NaN when unknown (no answer)."""
    advantages: np.ndarray
    """(G,) float32 TRL's advantages of those rewards; NaN when unknown."""
    correct: np.ndarray
    """(G,) bool verdicts (False when unknown)."""
    predicted: tuple[str | None, ...] = ()
    """The final answer the verifier read from each response."""
    answer: str | None = None
    """The reference answer (None: rewards unknown)."""
    verifier: str = ""
    """The verifier that checked the answers ("" for a reward function or no answer)."""
    scale_rewards: str = "group"
    seed: int = 0
    """Sampling seed (the G responses are one seeded batch)."""
    settings: Any = None
    """The AnalysisSettings shared by the responses (perturb seed: before each row's own)."""
    model_id: str = ""
    example: str = ""
    """The suite example ("family:seed:difficulty") the annotations come from ("": none)."""
    kinds: tuple[tuple[str, ...] | None, ...] = ()
    """Per response, the suite's kind of each token (None: not a suite sample, or the
    response does not follow the template)."""
    misread: tuple[tuple[int, ...], ...] = ()
    """Per response, positions of tokens that state a wrong image reading (suite only)."""
    image: Image.Image | None = None
    """The image as the processor received it."""
    timing: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    """Why the input may be unlike what the model knows (vepo_viz.ood)."""

    def __post_init__(self) -> None:
        from vepo_viz.results import _settings_of

        G = len(self.responses)
        if G < 1:
            raise ValueError("a group needs at least one response")
        object.__setattr__(self, "responses", tuple(self.responses))
        for name, dtype in (("rewards", np.float32), ("advantages", np.float32)):
            value = np.asarray(getattr(self, name), dtype=dtype).reshape(-1)
            if value.shape != (G,):
                raise ValueError(f"{name} has shape {value.shape}, expected ({G},)")
            object.__setattr__(self, name, value)
        correct = np.asarray(self.correct, dtype=bool).reshape(-1)
        object.__setattr__(self, "correct", correct)
        if correct.shape != (G,):
            raise ValueError(f"correct has shape {correct.shape}, expected ({G},)")
        object.__setattr__(self, "predicted", tuple(self.predicted) or (None,) * G)
        kinds = tuple(None if k is None else tuple(k) for k in self.kinds) or (None,) * G
        object.__setattr__(self, "kinds", kinds)
        misread = tuple(tuple(int(t) for t in m) for m in self.misread) or ((),) * G
        object.__setattr__(self, "misread", misread)
        settings = self.settings if self.settings is not None else self.responses[0].settings
        object.__setattr__(self, "settings", _settings_of(settings))
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))
        for name in ("predicted", "kinds", "misread"):
            if len(getattr(self, name)) != G:
                raise ValueError(f"{name} needs one entry per response ({G})")

    # ---- basics -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.responses)

    def __repr__(self) -> str:
        rewards = (
            "unknown" if not self.has_rewards else f"{int(self.correct.sum())}/{len(self)} right"
        )
        return f"GroupAnalysis(G={len(self)}, model={self.model_id!r}, {rewards})"

    @property
    def has_rewards(self) -> bool:
        return bool(np.isfinite(self.rewards).all())

    @property
    def learning_signal(self) -> bool:
        """Whether some advantage is nonzero (the rewards differ)."""
        return self.has_rewards and bool(np.ptp(self.rewards) > 0)

    @property
    def order(self) -> np.ndarray:
        """(G,) response indices by reward, highest first (sampling order within ties)."""
        key = np.nan_to_num(self.rewards, nan=0.0)
        return np.argsort(-key, kind="stable")

    # ---- credit and summary -----------------------------------------------------

    def credit(
        self,
        method: str = "vepo",
        *,
        ratio: float | None = None,
        loss_mode: str = "mask",
        weight_lambda: float = 1.0,
        vppo_rescale: bool = True,
    ) -> GroupCredit:
        """`group_credit` of this group's responses (no model). Unknown rewards: the
        advantages count as 0, so every credit is 0 (the view says the rewards are unknown)."""
        advantages = np.nan_to_num(self.advantages, nan=0.0)
        return group_credit(
            self.responses,
            advantages,
            method,
            settings=self.settings,
            ratio=ratio,
            loss_mode=loss_mode,
            weight_lambda=weight_lambda,
            vppo_rescale=vppo_rescale,
            seed=self.seed,
        )

    def summary(self, methods: Sequence[str] = ("entropy", "vepo"), **credit_args) -> GroupSummary:
        """How many are right, whether the group has a learning signal and, for each wrong
        answer of a suite sample, whether each method's credit reaches the misread token."""
        from vepo_viz.train.advice import ZERO_ADVANTAGE_MESSAGE

        G = len(self)
        if not self.has_rewards:
            return GroupSummary(G, None, False, False, NO_ANSWER, tuple(methods), ())
        n_correct = int(self.correct.sum())
        if not self.learning_signal:
            message = f"{NO_SIGNAL}: {ZERO_ADVANTAGE_MESSAGE} ({n_correct}/{G} right)"
        else:
            message = (
                f"{n_correct}/{G} right; rewards {self.rewards.min():g} to "
                f"{self.rewards.max():g}: the update pushes the better answers up and the "
                "worse ones down"
            )
        credits = {m: self.credit(m, **credit_args) for m in methods}
        checks = []
        for i in self.order:
            if self.correct[i] or self.kinds[i] is None:
                continue
            positions = self.misread[i]
            tokens = tuple(self.responses[i].tokens[t] for t in positions)
            credited = {
                m: bool(any(c.credit[i, t] != 0 for t in positions)) for m, c in credits.items()
            }
            first = {
                m: float(c.credit[i, positions[0]]) if positions else 0.0
                for m, c in credits.items()
            }
            checks.append(MisreadCheck(int(i), positions, tokens, credited, first))
        return GroupSummary(
            G, n_correct, True, self.learning_signal, message, tuple(methods), tuple(checks)
        )

    # ---- display ----------------------------------------------------------------

    def _repr_html_(self) -> str:
        from vepo_viz.render.group import group_html

        return group_html(self)

    def show(self, methods: Sequence[str] = ("entropy", "vepo"), **credit_args) -> str | None:
        """Display the credit rows in a notebook (IPython.display); without IPython,
        return the HTML instead."""
        from vepo_viz.render.group import group_html

        markup = group_html(self, methods, **credit_args)
        try:
            from IPython.display import HTML, display
        except ImportError:
            return markup
        display(HTML(markup))
        return None

    # ---- JSON -------------------------------------------------------------------

    def to_dict(self, include_image: bool = True) -> dict[str, Any]:
        """JSON-ready dict; each response as TokenAnalysis.to_dict (without its image)."""

        def number(x: float) -> float | None:
            return None if not math.isfinite(float(x)) else float(x)

        out: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "question": self.question,
            "answer": self.answer,
            "verifier": self.verifier,
            "scale_rewards": self.scale_rewards,
            "seed": self.seed,
            "model_id": self.model_id,
            "example": self.example,
            "settings": self.settings.to_dict(),
            "rewards": [number(x) for x in self.rewards],
            "advantages": [number(x) for x in self.advantages],
            "correct": self.correct.tolist(),
            "predicted": list(self.predicted),
            "kinds": [None if k is None else list(k) for k in self.kinds],
            "misread": [list(m) for m in self.misread],
            "timing": dict(self.timing),
            "warnings": list(self.warnings),
            "responses": [r.to_dict(include_image=False) for r in self.responses],
        }
        if include_image and self.image is not None:
            out["image_png"] = _png_base64(self.image)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupAnalysis:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a saved group analysis (format vepo-viz/group-analysis)")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"saved with a newer format version {data['format_version']}; upgrade vepo-viz"
            )

        def numbers(values) -> np.ndarray:
            return np.asarray([math.nan if v is None else v for v in values], dtype=np.float32)

        try:
            return cls(
                question=str(data["question"]),
                responses=tuple(TokenAnalysis.from_dict(r) for r in data["responses"]),
                rewards=numbers(data["rewards"]),
                advantages=numbers(data["advantages"]),
                correct=data["correct"],
                predicted=tuple(data.get("predicted") or ()),
                answer=data.get("answer"),
                verifier=str(data.get("verifier", "")),
                scale_rewards=str(data.get("scale_rewards", "group")),
                seed=int(data.get("seed", 0)),
                settings=data.get("settings"),
                model_id=str(data.get("model_id", "")),
                example=str(data.get("example", "")),
                kinds=tuple(data.get("kinds") or ()),
                misread=tuple(data.get("misread") or ()),
                image=_png_image(data["image_png"]) if data.get("image_png") else None,
                timing=dict(data.get("timing") or {}),
                warnings=tuple(data.get("warnings") or ()),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(
                f"a saved group analysis lacks a field or has a bad one: {error}"
            ) from error

    def save(self, path: str | Path, include_image: bool = True) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(self.to_dict(include_image), ensure_ascii=False), encoding="utf-8"
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> GroupAnalysis:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read a group analysis from {path}: {error}") from error
        return cls.from_dict(data)


def is_group_file(data: Any) -> bool:
    """Whether parsed JSON is a saved group analysis."""
    return isinstance(data, dict) and data.get("format") == FORMAT


# ---- the suite's annotations ----------------------------------------------------------


def suite_id(example: Example) -> str:
    return f"{example.family}:{example.seed}:{example.difficulty:g}"


def suite_example(ref: str) -> Example:
    """The suite example of a "family:seed[:difficulty]" reference."""
    from vepo_viz.tasks import DEFAULT_DIFFICULTY, make_example

    parts = str(ref).split(":")
    try:
        family, seed = parts[0], int(parts[1])
        difficulty = float(parts[2]) if len(parts) > 2 else DEFAULT_DIFFICULTY
        return make_example(family, seed, difficulty)
    except (IndexError, ValueError) as error:
        raise VepoInputError(
            f"suite example {ref!r}: write family:seed[:difficulty], e.g. color:1:0.5 ({error})"
        ) from error


# ---- the pipeline -------------------------------------------------------------------


def analyze_group(
    model,
    image,
    question: str,
    answer: str | None = None,
    group: int = 8,
    temperature: float | None = None,
    seed: int = 0,
    *,
    settings: AnalysisSettings | None = None,
    scale_rewards: str = "group",
    verifier: str = "auto",
    options: Sequence[str] | None = None,
    example: Example | str | None = None,
    reward_fn: Callable[[str], float] | None = None,
    limits: RequestLimits | None = None,
    progress: ProgressFn | None = None,
) -> GroupAnalysis:
    """Sample G responses to one prompt and show what one GRPO step would do with them.

    Args:
        model: a `VLM` (or a hub id / folder, loaded and cached).
        image, question: the prompt.
        answer: the reference answer the verifier checks (None: a suite `example`'s, else
            rewards unknown).
        group: G, responses sampled (2 <= G <= limits.max_group).
        temperature: sampling temperature (None: settings.temperature; 1.0 is TRL's
            default); the scored distributions use it too, as in training.
        seed: seed of the sampling (one batched generate).
        settings: AnalysisSettings for the rest (max_new_tokens, top_p, views, scoring).
        scale_rewards: TRL's "group", "batch" or "none".
        verifier: an entry of data.VERIFIERS ("auto": chosen from the answer); a suite
            example uses the suite's.
        options: multiple-choice options for the verifier.
        example: a suite `tasks.Example` (or "family:seed[:difficulty]"): its answer, its
            verifier and its annotations (which tokens read the image, which misread it).
        reward_fn: response text -> reward, instead of a verifier.
        limits: RequestLimits (None: the defaults); progress: (fraction, message) callback.

    Raises VepoInputError for bad input or a request past the limits.
    """
    from vepo_viz.analysis import model_context
    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.limits import check_context
    from vepo_viz.models import engine

    settings = settings if settings is not None else AnalysisSettings()
    if temperature is not None or seed != settings.seed:
        t = settings.temperature if temperature is None else temperature
        settings = replace(settings, temperature=t, seed=seed)
    settings, limits, vlm, rgb, example = _open_group(
        model, image, question, settings, limits, group, scale_rewards, example
    )
    report = progress or (lambda fraction, message: None)
    deadline = limits.deadline()
    timing: dict[str, float] = {}

    start = time.perf_counter()
    report(0.05, f"sampling {group} responses")
    batch = vlm.encode_prompts([(rgb, question)] * group)
    P = int(batch.inputs["input_ids"].shape[1])
    n_views = settings.perturb.n_draws
    limits.check_image(int(batch.inputs["pixel_values"].numel()), 1 + n_views)
    check_context(P, settings.max_new_tokens, model_context(vlm), generating=True)
    capture = engine.GenerationCapture()
    with capture.recording_model(vlm.model):
        rows = vlm.generate_batch(
            batch,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
        )
    timing["generate"] = time.perf_counter() - start
    T = max(len(r) for r in rows)
    hidden = capture.hidden(group, T) if T else None
    return _score_group(
        vlm, rgb, question, batch, rows, hidden, settings, limits, deadline, timing, report,
        answer=answer, scale_rewards=scale_rewards, verifier=verifier, options=options,
        example=example, reward_fn=reward_fn,
    )  # fmt: skip


def group_of_completions(
    model,
    image,
    question: str,
    completions: Sequence[Sequence[int]],
    *,
    settings: AnalysisSettings | None = None,
    answer: str | None = None,
    scale_rewards: str = "group",
    verifier: str = "auto",
    options: Sequence[str] | None = None,
    example: Example | str | None = None,
    reward_fn: Callable[[str], float] | None = None,
    limits: RequestLimits | None = None,
) -> GroupAnalysis:
    """`analyze_group` of given completions (token ids, each through its end-of-turn token
    if it has one, e.g. a training step's): one teacher-forced clean pass instead of
    generation, everything else the same."""
    rows = [list(map(int, c)) for c in completions]
    if any(not r for r in rows):
        raise VepoInputError("every completion needs at least one token")
    settings, limits, vlm, rgb, example = _open_group(
        model, image, question, settings, limits, len(rows), scale_rewards, example
    )
    batch = vlm.encode_prompts([(rgb, question)] * len(rows))
    return _score_group(
        vlm, rgb, question, batch, rows, None, settings, limits, limits.deadline(), {},
        lambda fraction, message: None, answer=answer, scale_rewards=scale_rewards,
        verifier=verifier, options=options, example=example, reward_fn=reward_fn,
    )  # fmt: skip


def _open_group(model, image, question, settings, limits, n, scale_rewards, example):
    """(settings, limits, VLM, RGB image, suite example) of a group request of n responses:
    the checks and loads `analyze_group` and `group_of_completions` share."""
    from vepo_viz.analysis import check_request
    from vepo_viz.models import VLM, load_model
    from vepo_viz.models.images import load_image

    settings, limits = check_request(question, None, settings, limits)
    limits.check_group(n)
    if scale_rewards not in SCALE_REWARDS:
        raise VepoInputError(f"scale_rewards={scale_rewards!r}: choose one of {SCALE_REWARDS}")
    example = suite_example(example) if isinstance(example, str) else example
    vlm = model if isinstance(model, VLM) else load_model(model)
    return settings, limits, vlm, load_image(image), example


def _padded_ids(vlm, rows: list[list[int]]):
    """(ids (G, T) padded with the pad id, mask (G, T) long) of the completions."""
    import torch

    G, T = len(rows), max(len(r) for r in rows)
    ids = torch.full((G, T), vlm.pad_token_id, dtype=torch.long)
    mask = torch.zeros(G, T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(vlm.device), mask.to(vlm.device)


def _score_group(
    vlm, rgb, question, batch, rows, hidden, settings, limits, deadline, timing, report, *,
    answer, scale_rewards, verifier, options, example, reward_fn,
) -> GroupAnalysis:  # fmt: skip

    from vepo_viz import ood
    from vepo_viz.analysis import PerTokenStats, build_result
    from vepo_viz.floor import NoiseFloor
    from vepo_viz.models import engine
    from vepo_viz.models.batching import PIXEL_KEYS
    from vepo_viz.train.trl_plugin import view_seed

    G = len(rows)
    if any(not r for r in rows):
        raise VepoInputError(
            "the model ended an answer at once (an empty response); sample with "
            "temperature > 0 or another seed"
        )
    P = int(batch.inputs["input_ids"].shape[1])
    T = max(len(r) for r in rows)
    ids, mask = _padded_ids(vlm, rows)
    inputs = engine.with_response(batch.inputs, ids, mask)  # (G, P+T)
    start = time.perf_counter()
    if hidden is None:
        deadline.check("the clean pass")
        report(0.35, "clean pass")
        hidden = engine.response_states(vlm.model, inputs, P, T)  # (G, T, D)
    seeds = [view_seed(settings.perturb.seed, 0, b) for b in range(G)]
    n_draws = settings.perturb.n_draws
    report(0.5, f"{n_draws} counterfactual pass(es) over {G} responses")
    views = [vlm.row_view_inputs(batch, settings.perturb, seeds, k) for k in range(n_draws)]

    def before_forward(first: int) -> None:
        deadline.check(f"counterfactual draw {first + 1} of {n_draws}")

    hidden_views = engine.view_passes(
        vlm.model, inputs, P, T, views, pixel_keys=PIXEL_KEYS, before_forward=before_forward
    )  # K x (G, T, D)
    timing["passes"] = time.perf_counter() - start
    deadline.check("the per-token statistics")
    report(0.8, "per-token statistics")
    start = time.perf_counter()
    signals = engine.head_walk(
        vlm.head, hidden, hidden_views, ids,
        temperature=settings.tau, top_k=min(settings.top_k, vlm.vocab_size),
        rows=settings.chunk_size, n_vocab=vlm.vocab_size,
    )  # fmt: skip
    timing["stats"] = time.perf_counter() - start

    start = time.perf_counter()
    report(0.9, "rewards and advantages")
    prompt = SimpleNamespace(
        question=question, image=batch.images[0], inputs=_first_row(batch.inputs)
    )  # what build_result reads of a prompt
    warnings = tuple(ood.input_warnings(vlm.model_id, rgb, question))
    responses, texts = [], []
    for b, r in enumerate(rows):
        stats = PerTokenStats.of_row(signals, b).first(len(r))
        row_settings = replace(
            settings,
            perturb=replace(settings.perturb, seed=seeds[b]),
            floor_pass=False,
        )
        finished = r[-1] in vlm.eos_token_ids
        text = vlm.decode(r)
        result = build_result(
            vlm, prompt, rgb, text, r, stats, row_settings,
            truncated=not finished, noise_floor=NoiseFloor(), generated=True,
            input_warnings=list(warnings),
        )  # fmt: skip
        responses.append(result)
        texts.append(vlm.tokenizer.decode(r, skip_special_tokens=True))  # as TRL's rewards see it
    rewards, correct, predicted, used = _rewards(
        texts, answer, verifier, options, example, reward_fn
    )
    advantages = (
        grpo_advantages(rewards, G, scale_rewards)
        if np.isfinite(rewards).all()
        else np.full(G, np.nan, dtype=np.float32)
    )
    kinds, misread = _annotations(vlm, example, rows)
    timing["finish"] = time.perf_counter() - start
    timing["total"] = sum(timing.values())
    return GroupAnalysis(
        question=question,
        responses=tuple(responses),
        rewards=rewards,
        advantages=advantages,
        correct=correct,
        predicted=predicted,
        answer=answer if answer is not None else (example.answer if example else None),
        verifier=used,
        scale_rewards=scale_rewards,
        seed=settings.seed,
        settings=settings,
        model_id=vlm.model_id,
        example=suite_id(example) if example is not None else "",
        kinds=kinds,
        misread=misread,
        image=batch.images[0],
        timing=timing,
        warnings=warnings,
    )


def _first_row(inputs: dict) -> dict:
    grid = inputs.get("image_grid_thw")
    return {"image_grid_thw": grid[:1]} if grid is not None else {}


def _rewards(texts, answer, verifier, options, example, reward_fn):
    """(rewards (G,), correct (G,), predicted, the verifier used) of the response texts."""
    from vepo_viz.data.verifiers import check_answer, resolve

    G = len(texts)
    if reward_fn is not None:
        rewards = np.asarray([float(reward_fn(t)) for t in texts], dtype=np.float32)
        return rewards, rewards >= 1.0, (None,) * G, ""  # 1.0: the verifiers' correct
    opts = tuple(options) if options else None
    if example is not None:
        verifier, answer = "suite", answer if answer is not None else example.answer
        opts = tuple(example.answer_space)
    if answer is None or not str(answer).strip():
        return np.full(G, np.nan, dtype=np.float32), np.zeros(G, bool), (None,) * G, ""
    used = resolve(verifier, str(answer), opts)
    verdicts = [check_answer(used, t, str(answer), opts) for t in texts]
    rewards = np.asarray([v.reward for v in verdicts], dtype=np.float32)
    correct = np.asarray([v.correct for v in verdicts], dtype=bool)
    return rewards, correct, tuple(v.predicted for v in verdicts), used


def _annotations(vlm, example, rows):
    """Per response (kinds of its tokens or None, positions of misread tokens)."""
    from vepo_viz.tasks.reading import read_tokens

    if example is None:
        return (None,) * len(rows), ((),) * len(rows)
    kinds, misread = [], []
    for r in rows:
        n_end = 1 if r and r[-1] in vlm.eos_token_ids else 0
        body = r[: len(r) - n_end]
        text = vlm.decode(body)
        read = read_tokens(example, text, vlm.token_spans(body, text)) if body else None
        if read is None:
            kinds.append(None)
            misread.append(())
            continue
        kinds.append(tuple(read[0]) + ("template",) * n_end)
        misread.append(tuple(read[1]))
    return tuple(kinds), tuple(misread)
