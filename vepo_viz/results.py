"""`TokenAnalysis`: every per-token number of one analysed response, as plain data.

Numpy arrays + token strings + provenance (settings, model id, image hash, versions).
Saved as JSON with an exact float round trip, loaded back, turned into a DataFrame, and
re-scored (`rescore`) from the stored per-token statistics without the model: the UI,
render/ and the CLI read only this. Importing this module does not import torch or
transformers; `rescore` imports torch (and vepo_viz.scoring) when called.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "vepo-viz/token-analysis"
FORMAT_VERSION = 1

FLOAT_ARRAYS = (
    "entropy",
    "entropy_noisy",
    "jsd",
    "kl",
    "entropy_gap",
    "entropy_noisy_std",
    "jsd_std",
    "kl_std",
    "entropy_gap_std",
    "logprob",
    "logprob_noisy",
    "visual_sensitivity",
    "scores",
)
"""(T,) float32 fields. `*_std` are spreads (population std) over counterfactual draws."""

BOOL_ARRAYS = ("selected_vepo", "selected_entropy")
"""(T,) bool fields."""

SCORING_KEYS = ("score_type", "alpha", "ratio", "scope")
"""Settings that `rescore` may change (everything else needs the model again)."""


@dataclass(eq=False)
class TokenAnalysis:
    """Per-token analysis of one (image, question, response). All arrays have length T.

    Position t describes response token o_t: the clean distribution p_t that predicts it,
    the counterfactual q_t (mean over draws), and the scores/selections derived from them.
    """

    response: str
    """The response text (generated, or pasted)."""
    tokens: list[str]
    """Display string of each token (its span of `response`)."""
    token_ids: np.ndarray
    """(T,) int64 token ids."""
    offsets: np.ndarray
    """(T, 2) int64 [start, end) character offsets of each token into `response`."""
    entropy: np.ndarray
    """(T,) H_t of the clean distribution, nats."""
    entropy_noisy: np.ndarray
    """(T,) H'_t of the counterfactual distribution, mean over draws."""
    jsd: np.ndarray
    """(T,) JSD(p_t, q_t), mean over draws, in [0, ln 2]."""
    kl: np.ndarray
    """(T,) KL(p_t || q_t), mean over draws."""
    entropy_gap: np.ndarray
    """(T,) dH_t = H'_t - H_t (signed), mean over draws."""
    entropy_noisy_std: np.ndarray
    """(T,) spread of H'_t over draws (0 with one draw)."""
    jsd_std: np.ndarray
    """(T,) spread of JSD over draws."""
    kl_std: np.ndarray
    """(T,) spread of KL over draws."""
    entropy_gap_std: np.ndarray
    """(T,) spread of dH over draws (equal to entropy_noisy_std: H is fixed)."""
    logprob: np.ndarray
    """(T,) log p_t(o_t), clean log-prob of the token itself."""
    logprob_noisy: np.ndarray
    """(T,) log q_t(o_t), mean over draws (VPPO's sampled-token signal)."""
    visual_sensitivity: np.ndarray
    """(T,) v_t = 1 - (1 - j^)^alpha (1 - d^)^(1 - alpha), per-response normalised."""
    scores: np.ndarray
    """(T,) selection score of settings["score_type"] ("D" = VEPO)."""
    selected_vepo: np.ndarray
    """(T,) bool: top-ratio tokens by `scores`."""
    selected_entropy: np.ndarray
    """(T,) bool: top-ratio tokens by entropy alone (the 80/20 baseline)."""
    top_ids: np.ndarray
    """(T, k) int64 ids of the k most likely clean candidates at each position."""
    top_tokens: list[list[str]]
    """(T, k) their decoded strings."""
    top_probs: np.ndarray
    """(T, k) float32 their clean probabilities p_t."""
    top_probs_noisy: np.ndarray
    """(T, k) float32 their counterfactual probabilities q_t (mean over draws)."""
    question: str = ""
    """The question asked about the image."""
    model_id: str = ""
    """Hub id or folder of the model."""
    family: str = ""
    """Model family (config.model_type), e.g. "qwen2_5_vl"."""
    image_digest: str = ""
    """"sha256:..." of the RGB pixels and size the processor received."""
    image_size: tuple[int, int] = (0, 0)
    """(width, height) of that image."""
    generated: bool = False
    """True when the model generated the response, False when it was pasted."""
    truncated: bool = False
    """True when generation stopped at max_new_tokens instead of the end of the turn."""
    settings: dict[str, Any] = field(default_factory=dict)
    """AnalysisSettings as a dict (generation, counterfactual, scoring)."""
    versions: dict[str, str] = field(default_factory=dict)
    """Package versions that produced the numbers."""
    timing: dict[str, float] = field(default_factory=dict)
    """Seconds per stage (generate, clean_pass, counterfactual, stats, total, ...)."""

    def __post_init__(self) -> None:
        self.token_ids = np.asarray(self.token_ids, dtype=np.int64).reshape(-1)
        n = self.token_ids.shape[0]
        self.offsets = np.asarray(self.offsets, dtype=np.int64).reshape(n, 2)
        for name in FLOAT_ARRAYS:
            setattr(self, name, _float_array(getattr(self, name), name, (n,)))
        for name in BOOL_ARRAYS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=bool).reshape(n))
        self.top_ids = np.asarray(self.top_ids, dtype=np.int64).reshape(n, -1)
        k = self.top_ids.shape[1]
        self.top_probs = _float_array(self.top_probs, "top_probs", (n, k))
        self.top_probs_noisy = _float_array(self.top_probs_noisy, "top_probs_noisy", (n, k))
        self.tokens = [str(t) for t in self.tokens]
        self.top_tokens = [[str(t) for t in row] for row in self.top_tokens]
        if len(self.tokens) != n or len(self.top_tokens) != n:
            raise ValueError(
                f"tokens ({len(self.tokens)}) and top_tokens ({len(self.top_tokens)}) must "
                f"have one entry per token id ({n})"
            )
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    # ---- basics -----------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])

    def __repr__(self) -> str:
        return (
            f"TokenAnalysis(T={len(self)}, model={self.model_id!r}, "
            f"score_type={self.settings.get('score_type', '?')}, "
            f"selected={int(self.selected_vepo.sum())}, response={_clip(self.response, 40)!r})"
        )

    @property
    def abs_entropy_gap(self) -> np.ndarray:
        """(T,) |dH_t| (what the default score uses)."""
        return np.abs(self.entropy_gap)

    # ---- summaries --------------------------------------------------------------

    def overlap(self) -> float:
        """Jaccard overlap |VEPO & entropy| / |VEPO | entropy| of the two selections."""
        return selection_jaccard(self.selected_vepo, self.selected_entropy)

    def low_entropy_share(self) -> float:
        """Share of VEPO-selected tokens whose entropy is below this response's median."""
        return low_entropy_share(self.selected_vepo, self.entropy)

    def summary(self) -> dict[str, float]:
        """A few numbers that describe the analysis (for tables and batch aggregates)."""
        return {
            "n_tokens": float(len(self)),
            "n_selected": float(self.selected_vepo.sum()),
            "overlap_jaccard": self.overlap(),
            "overlap_fraction": selection_overlap_fraction(
                self.selected_vepo, self.selected_entropy
            ),
            "low_entropy_share": self.low_entropy_share(),
            "mean_entropy": float(self.entropy.mean()) if len(self) else math.nan,
            "mean_jsd": float(self.jsd.mean()) if len(self) else math.nan,
        }

    # ---- re-scoring -------------------------------------------------------------

    def rescore(
        self,
        score_type: str | None = None,
        alpha: float | None = None,
        ratio: float | None = None,
        scope: str | None = None,
    ) -> TokenAnalysis:
        """A new TokenAnalysis with scores and selections recomputed from the stored
        per-token statistics (vepo_viz.scoring; no model). Unset arguments keep the
        current settings."""
        settings = dict(self.settings)
        for key, value in zip(SCORING_KEYS, (score_type, alpha, ratio, scope), strict=True):
            if value is not None:
                settings[key] = value
        arrays = score_arrays(
            entropy=self.entropy,
            entropy_noisy=self.entropy_noisy,
            jsd=self.jsd,
            kl=self.kl,
            score_type=settings.get("score_type", "D"),
            alpha=settings.get("alpha", 0.7),
            ratio=settings.get("ratio", 0.2),
            scope=settings.get("scope", "response"),
            seed=int(settings.get("seed", 0)),
        )
        return replace(self, settings=settings, **arrays)

    # ---- tables -----------------------------------------------------------------

    def to_dataframe(self):
        """One row per token: position, token, id, offsets, every per-token value,
        selections and the top-k candidates (list columns)."""
        import pandas as pd

        data: dict[str, Any] = {
            "position": np.arange(len(self), dtype=np.int64),
            "token": list(self.tokens),
            "token_id": self.token_ids,
            "start": self.offsets[:, 0],
            "end": self.offsets[:, 1],
        }
        for name in FLOAT_ARRAYS:
            data[name] = getattr(self, name)
        data["abs_entropy_gap"] = self.abs_entropy_gap
        for name in BOOL_ARRAYS:
            data[name] = getattr(self, name)
        data["top_ids"] = [row.tolist() for row in self.top_ids]
        data["top_tokens"] = [list(row) for row in self.top_tokens]
        data["top_probs"] = [row.tolist() for row in self.top_probs]
        data["top_probs_noisy"] = [row.tolist() for row in self.top_probs_noisy]
        return pd.DataFrame(data)

    # ---- JSON -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats written as float64 reprs of float32: exact)."""
        out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = value.tolist()  # float32 -> Python float is exact
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenAnalysis:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a saved TokenAnalysis (format {data.get('format')!r})")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"saved with a newer format version {data['format_version']}; upgrade vepo-viz"
            )
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        return cls(**kwargs)

    def save(self, path: str | Path) -> Path:
        """Write JSON to `path` (parent folders created) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TokenAnalysis:
        """Read a file written by `save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read a TokenAnalysis from {path}: {error}") from error
        return cls.from_dict(data)


def _float_array(value, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=np.float32)
    if array.size == 0 and math.prod(shape) == 0:
        return array.reshape(shape)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return array


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# ---- scoring on stored arrays ------------------------------------------------------


def score_arrays(
    *,
    entropy: np.ndarray,
    entropy_noisy: np.ndarray,
    jsd: np.ndarray,
    kl: np.ndarray,
    score_type: str = "D",
    alpha: float = 0.7,
    ratio: float = 0.2,
    scope: str = "response",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Scores, selections and visual sensitivity of one response from its (T,) statistics.

    The single place where analysis and `rescore` call vepo_viz.scoring, so a re-score
    with the analysis' own settings reproduces it bit for bit.
    """
    import torch

    from vepo_viz import scoring

    def row(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]  # (1, T)

    stats = scoring.TokenStats(
        entropy=row(entropy), entropy_noisy=row(entropy_noisy), jsd=row(jsd), kl=row(kl)
    )
    mask = torch.ones(stats.shape, dtype=torch.bool)  # (1, T)
    config = scoring.ScoringConfig(
        score_type=score_type, alpha=float(alpha), ratio=float(ratio), scope=scope, seed=seed
    )
    scores, selected = scoring.score_and_select(stats, mask, config)
    entropy_scores = scoring.score_tokens(stats, mask, "entropy")
    selected_entropy = scoring.select_tokens(entropy_scores, mask, config.ratio, config.scope)
    sensitivity = scoring.visual_sensitivity(stats, mask, config.alpha)
    return {
        "scores": scores[0].numpy(),
        "selected_vepo": selected[0].numpy(),
        "selected_entropy": selected_entropy[0].numpy(),
        "visual_sensitivity": sensitivity[0].numpy(),
    }


# ---- summary helpers ---------------------------------------------------------------


def selection_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / |a | b| of two bool selections (nan when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else math.nan


def selection_overlap_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / |a|: share of a's picks that b also picks (nan when a is empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n = int(a.sum())
    return float((a & b).sum()) / n if n else math.nan


def low_entropy_share(selected: np.ndarray, entropy: np.ndarray) -> float:
    """Share of selected tokens whose entropy is strictly below the response's median
    entropy: the low-entropy (image-confident) tokens an entropy-only rule cannot pick.
    nan when nothing is selected."""
    selected = np.asarray(selected, dtype=bool)
    entropy = np.asarray(entropy, dtype=np.float64)
    n = int(selected.sum())
    if n == 0:
        return math.nan
    return float((entropy[selected] < np.median(entropy)).sum()) / n
