"""The Compare tab's handler as a plain function: two analyses that differ in one thing.

"score type" re-scores the current analysis (no model); "counterfactual mode" and
"model" run the model twice on the same response, so the two selections line up token
by token. `vepo_viz.ui.compare_tab` lays out the tab and wires it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vepo_viz.errors import VepoInputError
from vepo_viz.render import data as rdata
from vepo_viz.render import figures as rfig
from vepo_viz.ui.backend import EMBEDDED, Backend, model_key
from vepo_viz.ui.controls import ControlValues, rescore_args
from vepo_viz.ui.errors import UserFacingError
from vepo_viz.ui.handlers import check_inputs, rescored
from vepo_viz.ui.session import Session, require
from vepo_viz.ui.views import percent

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

COMPARE_MODES: tuple[str, ...] = ("score type", "counterfactual mode", "model")


def compare(
    backend: Backend,
    session: Session | None,
    what: str,
    a: str,
    b: str,
    image_path: str | None,
    question: str | None,
    response: str | None,
    model: str | None,
    controls: ControlValues,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[str, Any, Any, Any]:
    """Two analyses that differ in one thing: (summary, difference figure, heatmap A, B).

    "score type" re-scores the current analysis (no model). The other two run the model
    twice on the SAME response (A's, or the pasted one), so the selections are compared
    token by token whenever the two tokenisers agree.
    """
    from vepo_viz.models.images import load_image

    if what not in COMPARE_MODES:
        raise UserFacingError(f"compare what? choose one of {COMPARE_MODES}")
    if not a or not b:
        raise UserFacingError("choose both A and B")
    if what == "score type":
        session = require(session)
        sc = session.current.scoring_args
        left = rescored(session.base, {**sc, "score_type": a})
        right = rescored(session.base, {**sc, "score_type": b})
        return compare_outputs(left, right, f"score {a}", f"score {b}")
    check_inputs(image_path, question)
    image = load_image(image_path)
    pasted = response if response and response.strip() else None
    base = controls.settings()
    scoring = rescore_args(base.scoring)
    if what == "counterfactual mode":
        runs = [(model, _with_mode(base, a)), (model, _with_mode(base, b))]
        label_a, label_b = a, b
    else:
        policy = getattr(backend, "policy", None)  # a PolicyBackend: refuse B before A runs
        if policy is not None:
            policy.check_model(a)
            policy.check_model(b)
        runs = [(a, base), (b, base)]
        label_a, label_b = (model_key(a) or EMBEDDED), (model_key(b) or EMBEDDED)

    def step(i: int):
        def report(fraction: float, desc: str) -> None:
            if progress:
                progress((i + fraction) / 2, f"{'AB'[i]}: {desc}")

        return report

    left = backend.analyze(runs[0][0], image, question, pasted, runs[0][1], step(0))
    right = backend.analyze(runs[1][0], image, question, left.response, runs[1][1], step(1))
    left, right = rescored(left, scoring), rescored(right, scoring)
    return compare_outputs(left, right, label_a, label_b)


def _with_mode(settings, mode: str):
    """`settings` with another counterfactual mode (validated by PerturbConfig)."""
    try:
        return replace(settings, perturb=replace(settings.perturb, mode=mode))
    except VepoInputError:
        raise
    except ValueError as error:
        raise VepoInputError(str(error)) from error


def compare_outputs(
    left: TokenAnalysis, right: TokenAnalysis, label_a: str, label_b: str
) -> tuple[str, Any, Any, Any]:
    from vepo_viz.results import selection_jaccard

    diff = rdata.selection_difference(left, right)
    heat_a = rfig.token_heatmap(left, title=f"A: {label_a}")
    heat_b = rfig.token_heatmap(right, title=f"B: {label_b}")
    sa, sb = rdata.summary(left), rdata.summary(right)
    lines = [
        f"| | A: {label_a} | B: {label_b} |",
        "|---|---|---|",
        f"| tokens | {sa.n_tokens} | {sb.n_tokens} |",
        f"| VEPO picks | {sa.n_vepo} | {sb.n_vepo} |",
        f"| overlap with entropy picks | {percent(sa.overlap)} | {percent(sb.overlap)} |",
        "| VEPO picks with below-median entropy | "
        f"{percent(sa.vepo_low_entropy)} | {percent(sb.vepo_low_entropy)} |",
    ]
    if diff is None:
        lines.append(
            "\nThe two responses are tokenised differently, so the selections cannot be compared "
            "token by token; see the two heatmaps."
        )
        return "\n".join(lines), None, heat_a, heat_b
    frame = rdata.token_frame(left)
    only_a = [
        f"{frame['display'].iloc[i]!r} (#{i})" for i in range(len(diff)) if diff[i] == "a_only"
    ]
    only_b = [
        f"{frame['display'].iloc[i]!r} (#{i})" for i in range(len(diff)) if diff[i] == "b_only"
    ]
    jaccard = selection_jaccard(left.selected_vepo, right.selected_vepo)
    lines.append(
        f"\n**Selections differ on {len(only_a) + len(only_b)} tokens** (Jaccard "
        f"{jaccard:.2f}). A only: {', '.join(only_a) or '-'}; "
        f"B only: {', '.join(only_b) or '-'}."
    )
    return "\n".join(lines), rfig.compare_figure(left, right, label_a, label_b), heat_a, heat_b
