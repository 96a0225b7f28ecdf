"""Options and printing shared by the analysis commands (analyze, batch)."""

from __future__ import annotations

import argparse
import math


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None,
        help="hub id or local folder of a vision-language model (default: the embedded tiny model)",
    )
    group.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    group.add_argument(
        "--dtype",
        default=None,
        help="float32, bfloat16 or float16 (default: bf16 on GPU, fp32 on CPU)",
    )


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per AnalysisSettings field that a command-line user would change.

    Values are checked by AnalysisSettings (its message lists the valid choices), so that
    building the parser, and `--help`, does not import torch.
    """
    gen = parser.add_argument_group("generation (when no response is given)")
    gen.add_argument("--max-new-tokens", type=int, default=64, help="default 64")
    gen.add_argument("--temperature", type=float, default=1.0, help="0 = greedy; default 1.0")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus; default 1.0 (off)")
    gen.add_argument("--seed", type=int, default=0, help="sampling seed; default 0")
    cf = parser.add_argument_group("counterfactual image")
    cf.add_argument(
        "--perturb",
        default="gaussian",
        help="gaussian (default), no_image, gaussian_pixel, black, blur or patch",
    )
    cf.add_argument("--sigma", type=float, default=2.0, help="noise std; default 2.0")
    cf.add_argument("--draws", type=int, default=1, help="K views averaged; default 1")
    cf.add_argument("--perturb-seed", type=int, default=0, help="seed of the views; default 0")
    sc = parser.add_argument_group("scoring")
    sc.add_argument(
        "--score-type",
        default="D",
        help="D (VEPO, default), A-H (ablations), entropy, jsd, entropy_gap or random",
    )
    sc.add_argument("--alpha", type=float, default=0.7, help="JSD weight; default 0.7")
    sc.add_argument("--ratio", type=float, default=0.2, help="share selected; default 0.2")
    sc.add_argument("--scope", default="response", help="response (default), batch or quantile")


def settings_from_args(args: argparse.Namespace):
    """AnalysisSettings from the parsed flags (VepoInputError on bad values)."""
    from vepo_viz.analysis import AnalysisSettings
    from vepo_viz.perturb import PerturbConfig

    try:
        perturb = PerturbConfig(
            mode=args.perturb, sigma=args.sigma, n_draws=args.draws, seed=args.perturb_seed
        )
    except ValueError as error:
        from vepo_viz.errors import VepoInputError

        raise VepoInputError(str(error)) from error
    return AnalysisSettings(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        perturb=perturb,
        score_type=args.score_type,
        alpha=args.alpha,
        ratio=args.ratio,
        scope=args.scope,
    )


def load_model_from_args(args: argparse.Namespace):
    from transformers.utils import logging as hf_logging

    from vepo_viz.models import load_model

    # A command-line run shows its own progress; transformers' bars and notes are noise.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    return load_model(args.model, device=args.device, dtype=args.dtype)


def token_table(result, max_rows: int | None = None) -> str:
    """Compact per-token table: token, H, JSD, |dH|, score, selected by entropy / VEPO."""
    header = f"{'#':>4}  {'token':<16} {'H':>6} {'JSD':>7} {'|dH|':>6} {'score':>6}  ent  vepo"
    lines = [header, "-" * len(header)]
    n = len(result)
    shown = range(n) if max_rows is None or n <= max_rows else range(max_rows)
    for i in shown:
        token = _printable(result.tokens[i])
        lines.append(
            f"{i:>4}  {token:<16} {result.entropy[i]:>6.3f} {result.jsd[i]:>7.4f} "
            f"{abs(result.entropy_gap[i]):>6.3f} {result.scores[i]:>6.3f}  "
            f"{'x' if result.selected_entropy[i] else '.':^3}  {'x' if result.selected_vepo[i] else '.':^4}"
        )
    if len(shown) < n:
        lines.append(f"... {n - len(shown)} more tokens (see the saved result)")
    return "\n".join(lines)


def _printable(token: str, width: int = 16) -> str:
    text = token.encode("unicode_escape").decode("ascii")
    return text if len(text) <= width else text[: width - 1] + "~"


def percent(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"
