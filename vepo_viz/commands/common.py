"""Options and printing shared by the analysis commands (analyze, batch)."""

from __future__ import annotations

import argparse
import math

from vepo_viz import settings


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    from vepo_viz.models.families import FAMILIES

    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None,
        help="hub id or local folder of a vision-language model (default: the embedded tiny "
        f"model); families: {', '.join(f.label for f in FAMILIES.entries())}",
    )
    group.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    group.add_argument(
        "--dtype",
        default=None,
        help="float32, bfloat16 or float16 (default: bf16 on GPU, fp32 on CPU)",
    )


PERTURB_FLAGS = {"mode": "perturb", "n_draws": "draws", "seed": "perturb_seed"}
"""PerturbConfig fields whose flags keep their historical names (--perturb, --draws, ...)."""

SCORING_OWN = ("temperature", "seed")
"""ScoringConfig fields that are no flags: the analysis' own (--temperature /
--score-temperature and --seed set them)."""

_GROUPS = (
    ("generation (when no response is given)", ("max_new_tokens", "temperature", "top_p", "seed")),
    ("scoring", ("score_temperature", "top_k", "chunk_size")),
    ("noise floor", ("floor_pass", "skip_floor")),
)
"""AnalysisSettings' own flags by group; the scoring group starts with ScoringConfig's."""


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field of AnalysisSettings and of the ScoringConfig and PerturbConfig it
    composes, generated from the dataclasses (their docstrings are the help, their
    defaults the defaults, their registries the choices). Values are checked by them."""
    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.perturb import PerturbConfig
    from vepo_viz.scoring import ScoringConfig

    names = [f.name for f in settings.flag_fields(AnalysisSettings)]
    for title, fields in _GROUPS:
        group = parser.add_argument_group(title)
        if title == "scoring":
            settings.add_flags(group, ScoringConfig, skip=SCORING_OWN)
        skip = tuple(n for n in names if n not in fields)
        settings.add_flags(group, AnalysisSettings, skip=skip)
    settings.add_flags(
        parser.add_argument_group("counterfactual image"), PerturbConfig, rename=PERTURB_FLAGS
    )


def settings_from_args(args: argparse.Namespace):
    """AnalysisSettings from the parsed flags (VepoInputError on bad values)."""
    from vepo_viz.analysis_settings import AnalysisSettings
    from vepo_viz.perturb import PerturbConfig
    from vepo_viz.scoring import ScoringConfig

    values = settings.given_values(args, AnalysisSettings)
    values["perturb"] = settings.given_values(args, PerturbConfig, rename=PERTURB_FLAGS)
    values["scoring"] = settings.given_values(args, ScoringConfig, skip=SCORING_OWN)
    return AnalysisSettings.from_dict(values)


def load_model_from_args(args: argparse.Namespace):
    """The model the --model/--device/--dtype flags name, with transformers kept quiet."""
    from vepo_viz.models import load_model, quiet

    quiet()  # a command-line run shows its own progress; transformers' bars are noise
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
