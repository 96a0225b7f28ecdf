"""What every view shows, read off a `TokenAnalysis`: per-token table, categories, summary.

This is the one place in render/ that knows the per-token field names of
`vepo_viz.results`; the figures and exports read the canonical columns of `token_frame`,
the typed settings (`result.settings.scoring`) and `results.summary`. Nothing here
touches a tensor or a model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from vepo_viz.render.colors import CATEGORIES
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE, scaled
from vepo_viz.results import Summary, TokenAnalysis, summary

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.scoring import ScoringConfig

SIGNALS: dict[str, tuple[str, str]] = {
    "entropy": ("entropy H", "nats"),
    "visual_sensitivity": ("visual sensitivity v", "0-1"),
    "score": ("VEPO score s", "0-1"),
    "jsd": ("JSD(p, q)", "nats"),
    "abs_entropy_gap": ("|entropy gap| |H'-H|", "nats"),
    "entropy_noisy": ("noisy entropy H'", "nats"),
    "kl": ("KL(p || q)", "nats"),
}
"""Continuous per-token signals a heatmap row can show: column -> (label, unit)."""

DEFAULT_SIGNALS: tuple[str, ...] = ("entropy", "visual_sensitivity", "score")

SELECTION_ROW = "selection"
"""Name of the categorical row (both / VEPO only / entropy only / neither)."""


def score_label(analysis: TokenAnalysis) -> str:
    """Row label of the score: "VEPO score s" for type D, else the type's name."""
    score_type = analysis.settings.scoring.score_type
    return "VEPO score s" if score_type == "D" else f"score ({score_type})"


def display_token(token: str) -> str:
    """A token as shown in a cell: newlines/tabs as symbols, blank tokens as a visible space."""
    shown = token.replace("\r", "").replace("\n", "\u21b5").replace("\t", "\u21e5")
    return shown if shown.strip() else "\u2423" * max(1, min(len(shown), 3))


def categories(selected_vepo: np.ndarray, selected_entropy: np.ndarray) -> np.ndarray:
    """(T,) category names from the two (T,) bool selections (see colors.CATEGORIES)."""
    v = np.asarray(selected_vepo, dtype=bool)
    e = np.asarray(selected_entropy, dtype=bool)
    out = np.full(v.shape, "neither", dtype=object)
    out[v & e] = "both"
    out[v & ~e] = "vepo_only"
    out[~v & e] = "entropy_only"
    return out


def token_frame(analysis: TokenAnalysis) -> pd.DataFrame:
    """One row per response token with the canonical columns every view reads.

    Columns: index, token, display, entropy, entropy_noisy, entropy_gap, abs_entropy_gap,
    jsd, kl, visual_sensitivity, score, selected_vepo, selected_entropy, category,
    at_floor, the *_std spreads over draws (0 with one draw); selection_share with
    several draws; top1/top1_p when candidates are stored.
    """
    tokens = list(analysis.tokens)
    n_tokens = len(tokens)
    entropy = analysis.entropy.astype(np.float64)
    entropy_noisy = analysis.entropy_noisy.astype(np.float64)
    gap = analysis.entropy_gap.astype(np.float64)
    frame = pd.DataFrame(
        {
            "index": np.arange(n_tokens),
            "token": tokens,
            "display": [display_token(t) for t in tokens],
            "entropy": entropy,
            "entropy_noisy": entropy_noisy,
            "entropy_gap": gap,
            "abs_entropy_gap": np.abs(gap),
            "jsd": np.asarray(analysis.jsd, dtype=np.float64),
            "kl": np.asarray(analysis.kl, dtype=np.float64),
            "visual_sensitivity": np.asarray(analysis.visual_sensitivity, dtype=np.float64),
            "score": np.asarray(analysis.scores, dtype=np.float64),
            "selected_vepo": np.asarray(analysis.selected_vepo, dtype=bool),
            "selected_entropy": np.asarray(analysis.selected_entropy, dtype=bool),
        }
    )
    frame["category"] = categories(frame["selected_vepo"], frame["selected_entropy"])
    frame["at_floor"] = analysis.at_floor  # no visual signal beyond rounding
    if analysis.selection_share is not None:
        frame["selection_share"] = analysis.selection_share.astype(np.float64)  # of K draws
    spreads = {
        "entropy_noisy_std": analysis.entropy_noisy_std,
        "jsd_std": analysis.jsd_std,
        "kl_std": analysis.kl_std,
        "entropy_gap_std": analysis.entropy_gap_std,
    }
    for name, std in spreads.items():
        frame[name] = std.astype(np.float64)
    has = analysis.top_probs.shape[1] > 0  # (T, k); k = 0: no candidates stored
    frame["top1"] = [row[0] if has and row else "" for row in analysis.top_tokens]
    frame["top1_p"] = analysis.top_probs[:, 0].astype(np.float64) if has else math.nan
    return frame


def candidates_table(
    analysis: TokenAnalysis, index: int | None = None
) -> list[list[tuple[str, float, float]]]:
    """Per token (or only token `index`), the clean top candidates as (token, p_clean,
    p_noisy); empty rows when the analysis stores none (a training trace)."""
    tokens, p_clean, p_noisy = analysis.top_tokens, analysis.top_probs, analysis.top_probs_noisy
    if index is not None:
        tokens, p_clean = tokens[index : index + 1], p_clean[index : index + 1]
        p_noisy = p_noisy[index : index + 1]
    return [
        [
            (str(tok), float(pc), float(pn))
            for tok, pc, pn in zip(row_tokens, row_clean, row_noisy, strict=False)
        ]
        for row_tokens, row_clean, row_noisy in zip(tokens, p_clean, p_noisy, strict=True)
    ]


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"


def selector_name(scoring: ScoringConfig) -> str:
    """Who picks the tokens, as the summary says it: "VEPO (D, alpha=0.20)" for the
    reference, "VEPO ablation C (alpha=0.20)" for an ablation, "score `entropy`" for a
    score type that is not VEPO (its picks are not VEPO's, and alpha plays no part)."""
    name = scoring.score_type
    if name == "D":
        return f"VEPO (D, alpha={scoring.alpha:.2f})"
    if len(name) == 1 and name.isupper():
        return f"VEPO ablation {name} (alpha={scoring.alpha:.2f})"
    return f"score `{name}`"


def summary_markdown(analysis: TokenAnalysis, frame: pd.DataFrame | None = None) -> str:
    """The summary as a few Markdown lines for the app (`frame` is accepted for callers
    that hold one; the numbers come from `results.summary`)."""
    s = summary(analysis)
    sc = analysis.settings.scoring
    return (
        f"**{s.n_tokens} tokens** - top {sc.ratio:.0%} ({sc.scope}): "
        f"{selector_name(sc)} picks **{s.n_vepo}**, "
        f"entropy picks **{s.n_entropy}**; both {s.n_both}, "
        f"**VEPO only {s.n_vepo_only}** (visual forking tokens), entropy only "
        f"{s.n_entropy_only}.  \n"
        f"Overlap {_pct(s.overlap)} of VEPO's picks (Jaccard {s.jaccard:.2f}); "
        f"**{_pct(s.vepo_low_entropy)} of VEPO's picks have below-median entropy** "
        f"(entropy-only: {_pct(s.entropy_low_entropy)}; median H = {s.median_entropy:.3f} nats)."
    )


TABLE_COLUMNS: tuple[str, ...] = (
    "index",
    "token",
    "entropy",
    "entropy_noisy",
    "entropy_gap",
    "kl",
    "jsd",
    "abs_entropy_gap",
    "visual_sensitivity",
    "score",
    "selected_vepo",
    "selected_entropy",
    "category",
    "at_floor",
    "selection_share",
)


SIGNIFICANT_COLUMNS: tuple[str, ...] = (
    "entropy_gap",
    "kl",
    "jsd",
    "abs_entropy_gap",
    "visual_sensitivity",
    "score",
)
"""Table columns rounded to significant digits, not decimals: their values are often tiny
(a JSD of 3e-08 must not read 0.0 beside v = 0.46)."""


def round_significant(values: pd.Series, digits: int) -> pd.Series:
    """`values` rounded to `digits` significant digits (0, NaN and inf unchanged)."""
    x = values.to_numpy(dtype=np.float64)
    finite = np.isfinite(x) & (x != 0)
    out = x.copy()
    scale = np.zeros_like(x)
    scale[finite] = np.floor(np.log10(np.abs(x[finite])))
    factor = 10.0 ** (digits - 1 - scale[finite])
    out[finite] = np.round(x[finite] * factor) / factor
    return pd.Series(out, index=values.index)


def table(
    analysis: TokenAnalysis, decimals: int = 4, frame: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The per-token table the app shows (tokens with visible whitespace): entropies
    rounded to `decimals`, the raw visual signals (JSD, |dH|) beside v and s, and the
    columns of SIGNIFICANT_COLUMNS to `decimals` significant digits."""
    frame = token_frame(analysis) if frame is None else frame
    cols = [c for c in TABLE_COLUMNS if c in frame] + [c for c in frame if c.endswith("_std")]
    out = frame[cols].copy()
    out["token"] = frame["display"]
    numeric = out.select_dtypes(include="float").columns
    for col in numeric:
        significant = col in SIGNIFICANT_COLUMNS or col.endswith("_std")
        out[col] = (
            round_significant(out[col], decimals) if significant else out[col].round(decimals)
        )
    return out


def selection_difference(a: TokenAnalysis, b: TokenAnalysis) -> np.ndarray | None:
    """Per-token comparison of two analyses' VEPO selections over the same tokens.

    Returns (T,) categories "both" / "a_only" / "b_only" / "neither", or None when the two
    responses are tokenised differently (no token-by-token comparison is possible).
    """
    if a.tokens != b.tokens:
        return None
    sa, sb = a.selected_vepo, b.selected_vepo
    out = np.full(sa.shape, "neither", dtype=object)
    out[sa & sb] = "both"
    out[sa & ~sb] = "a_only"
    out[~sa & sb] = "b_only"
    return out


__all__ = [
    "CATEGORIES",
    "DEFAULT_SIGNALS",
    "SELECTION_ROW",
    "SIGNALS",
    "Summary",
    "candidates_table",
    "categories",
    "display_token",
    "score_label",
    "selection_difference",
    "summary",
    "summary_markdown",
    "table",
    "token_frame",
]


def signal_scale(
    frame: pd.DataFrame,
    signal: str,
    analysis: TokenAnalysis,
    color_scale: str = DEFAULT_COLOR_SCALE,
) -> tuple[str, str, np.ndarray, float, float]:
    """(label, unit, colour values, vmin, vmax) of a signal's colour scale, shared by the
    plotly views and the paper exports (see render.scales: the colour values are the
    signal's values, or their ranks under the "rank" scale)."""
    label, unit = SIGNALS[signal]
    if signal == "score":
        label = score_label(analysis)
    values = frame[signal].to_numpy(dtype=np.float64)
    colour_values, vmin, vmax = scaled(values, signal, unit, color_scale)
    return label, unit, colour_values, vmin, vmax
