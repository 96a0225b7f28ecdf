"""`TokenAnalysis`: every per-token number of one analysed response, as plain data.

Numpy arrays + token strings + provenance (typed settings, model id, image hash,
versions) + what the views show (the image the model saw, its normalisation, the
counterfactual preview). Saved as JSON with an exact float round trip (images as base64
PNG), loaded back, turned into a DataFrame, summarised (`summary`: the one place the
overlap and low-entropy numbers are computed) and re-scored (`rescore`) from the stored
per-token statistics without the model: the UI, render/ and the CLI read only this.
Plain data: this module imports no torch (nor transformers), so importing, loading,
saving and summarising a result never load it; `rescore` calls vepo_viz.scoring
(`score_response`), which does. A `TokenAnalysis` is frozen: built once, never changed.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vepo_viz.floor import NoiseFloor, at_floor, below_floor, verdict
from vepo_viz.scoring import SCORING_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from vepo_viz.analysis_settings import AnalysisSettings

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

DRAW_ARRAYS = ("entropy_noisy_draws", "jsd_draws", "kl_draws")
"""(K, T) float32 per-draw fields (None when not stored: results saved before them)."""

IMAGE_FIELDS = ("image", "counterfactual_image")
"""PIL image fields: saved as base64 PNG under "<name>_png" (`include_image=True`)."""

APP_KEY = "vepo_viz_app"
"""Key under which the app's saved files carry app data (an "image_png" of the clean
image, base settings): `from_dict` reads the image from it when the file has no own."""

Normalization = tuple[tuple[float, float, float], tuple[float, float, float]]
"""(mean, std) per RGB channel of the image processor."""


@dataclass(frozen=True, eq=False)
class TokenAnalysis:
    """Per-token analysis of one (image, question, response). All arrays have length T.

    Position t describes response token o_t: the clean distribution p_t that predicts it,
    the counterfactual q_t (mean over draws), and the scores/selections derived from them.
    Frozen: built once with every field; a changed view is a new object (`rescore`,
    `dataclasses.replace`). The arrays inside are not write-protected.
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
    settings: AnalysisSettings = field(default_factory=lambda: _settings_of({}))
    """The AnalysisSettings of the analysis (generation, counterfactual, scoring); a dict
    only in `to_dict`/`save`. A dict given here (a legacy result) is converted."""
    versions: dict[str, str] = field(default_factory=dict)
    """Package versions that produced the numbers."""
    timing: dict[str, float] = field(default_factory=dict)
    """Seconds per stage (generate, clean_pass, counterfactual, stats, total, ...)."""
    image: Image.Image | None = None
    """The RGB image exactly as the processor received it (after fit_image); None when
    not stored (a result loaded from a file saved without it)."""
    image_normalization: Normalization | None = None
    """(mean, std) of the processor's normalisation, or None if not known."""
    counterfactual_image: Image.Image | None = None
    """Draw 0's counterfactual view as shown beside `image` (exact for pixel-space
    modes, a pixel-space rendering for normalised-space ones: perturb.counterfactual_preview)."""
    counterfactual_caption: str = ""
    """What `counterfactual_image` is, in one sentence."""
    noise_floor: NoiseFloor = field(default_factory=NoiseFloor)
    """What JSD and |dH| look like when the image did not change (vepo_viz.floor); the
    float floor alone for results made without a null pass (pasted, or saved before)."""
    at_floor: np.ndarray | None = None
    """(T,) bool: tokens whose JSD and |dH| are indistinguishable from `noise_floor` (no
    visual signal); computed from the arrays and the floor when not given."""
    entropy_noisy_draws: np.ndarray | None = None
    """(K, T) H'_t of each counterfactual draw (None: not stored)."""
    jsd_draws: np.ndarray | None = None
    """(K, T) JSD of each draw."""
    kl_draws: np.ndarray | None = None
    """(K, T) KL of each draw."""
    selection_share: np.ndarray | None = None
    """(T,) share of the K draws whose own statistics select each token (VEPO selection,
    same settings); None when K < 2: stability is unknown with one draw."""
    draw_jaccard: float | None = None
    """Mean Jaccard between the selections of pairs of draws (None when K < 2)."""
    patch_grid: tuple[int, int] | None = None
    """(columns, rows) of the image patch grid the processor made (None: not known)."""
    patch_size: int = 0
    """Side of one patch in pixels (0: not known); the model saw columns x patch_size by
    rows x patch_size pixels."""
    input_warnings: list[str] = field(default_factory=list)
    """Why the input may be unlike what the model knows (vepo_viz.ood; the embedded
    model only), said before the result."""
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    """{name: (T,) float32} the hidden-state signals registered in the engine
    (`vepo_viz.models.engine.SIGNALS`), mean over the counterfactual draws."""

    def __post_init__(self) -> None:
        # Frozen: normalise the given values once, here (object.__setattr__ is the only
        # way in); a changed result is a new object (`dataclasses.replace`, `rescore`).
        put = partial(object.__setattr__, self)
        token_ids = np.asarray(self.token_ids, dtype=np.int64).reshape(-1)
        put("token_ids", token_ids)
        n = token_ids.shape[0]
        put("offsets", np.asarray(self.offsets, dtype=np.int64).reshape(n, 2))
        for name in FLOAT_ARRAYS:
            put(name, _float_array(getattr(self, name), name, (n,)))
        for name in BOOL_ARRAYS:
            put(name, np.asarray(getattr(self, name), dtype=bool).reshape(n))
        top_ids = np.asarray(self.top_ids, dtype=np.int64).reshape(n, -1)
        put("top_ids", top_ids)
        k = top_ids.shape[1]
        put("top_probs", _float_array(self.top_probs, "top_probs", (n, k)))
        put("top_probs_noisy", _float_array(self.top_probs_noisy, "top_probs_noisy", (n, k)))
        put("tokens", [str(t) for t in self.tokens])
        put("top_tokens", [[str(t) for t in row] for row in self.top_tokens])
        if len(self.tokens) != n or len(self.top_tokens) != n:
            raise ValueError(
                f"tokens ({len(self.tokens)}) and top_tokens ({len(self.top_tokens)}) must "
                f"have one entry per token id ({n})"
            )
        put("image_size", (int(self.image_size[0]), int(self.image_size[1])))
        put("settings", _settings_of(self.settings))
        if self.image_normalization is not None:
            mean, std = self.image_normalization
            put("image_normalization", (_triple(mean), _triple(std)))
        self._post_init_floor(n, put)

    def _post_init_floor(self, n: int, put: Callable[[str, Any], None]) -> None:
        """Types of the floor, per-draw and stability fields (all optional in files)."""
        noise_floor = NoiseFloor.from_dict(self.noise_floor)
        put("noise_floor", noise_floor)
        mask = self.at_floor
        if mask is None:
            mask = at_floor(self.jsd, self.entropy_gap, noise_floor)
        put("at_floor", np.asarray(mask, dtype=bool).reshape(n))
        for name in DRAW_ARRAYS:
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float32)
                put(name, _float_array(value, name, (value.reshape(-1, n).shape[0], n)))
        if self.selection_share is not None:
            put("selection_share", _float_array(self.selection_share, "selection_share", (n,)))
        if self.draw_jaccard is not None:
            put("draw_jaccard", float(self.draw_jaccard))
        if self.patch_grid is not None:
            put("patch_grid", (int(self.patch_grid[0]), int(self.patch_grid[1])))
        put("patch_size", int(self.patch_size or 0))
        put("input_warnings", [str(w) for w in self.input_warnings or []])
        signals = {
            str(name): _float_array(value, f"signals[{name!r}]", (n,))
            for name, value in (self.signals or {}).items()
        }
        put("signals", signals)

    # ---- basics -----------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])

    def __repr__(self) -> str:
        return (
            f"TokenAnalysis(T={len(self)}, model={self.model_id!r}, "
            f"score_type={self.settings.scoring.score_type}, "
            f"selected={int(self.selected_vepo.sum())}, response={_clip(self.response, 40)!r})"
        )

    @property
    def abs_entropy_gap(self) -> np.ndarray:
        """(T,) |dH_t| (what the default score uses)."""
        return np.abs(self.entropy_gap)

    @property
    def below_floor(self) -> bool:
        """True when every token is at the noise floor: the counterfactual did not change
        the prediction, and v and s are normalised float noise."""
        return below_floor(self.at_floor)

    @property
    def floor_verdict(self) -> str | None:
        """floor.VERDICT when `below_floor`, else None."""
        return verdict(self.at_floor)

    @property
    def n_draws(self) -> int:
        """K, the counterfactual draws whose statistics are stored (0: not stored)."""
        return 0 if self.jsd_draws is None else int(self.jsd_draws.shape[0])

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the coloured tokens with hover titles (self-contained)."""
        from vepo_viz.notebook import analysis_html

        return analysis_html(self)

    def show(self) -> str | None:
        """Display the coloured tokens in a notebook (IPython.display); without IPython,
        return the HTML instead."""
        from vepo_viz.notebook import show

        return show(self)

    # ---- summaries --------------------------------------------------------------

    def overlap(self) -> float:
        """Jaccard overlap |VEPO & entropy| / |VEPO | entropy| of the two selections."""
        return selection_jaccard(self.selected_vepo, self.selected_entropy)

    def low_entropy_share(self) -> float:
        """Share of VEPO-selected tokens whose entropy is below this response's median."""
        return low_entropy_share(self.selected_vepo, self.entropy)

    def summary(self) -> dict[str, float]:
        """A few numbers of `summary(self)` as a flat dict (legacy keys)."""
        s = summary(self)
        return {
            "n_tokens": float(s.n_tokens),
            "n_selected": float(s.n_vepo),
            "overlap_jaccard": s.jaccard,
            "overlap_fraction": s.overlap,
            "low_entropy_share": s.vepo_low_entropy,
            "mean_entropy": s.mean_entropy,
            "mean_jsd": s.mean_jsd,
        }

    # ---- re-scoring -------------------------------------------------------------

    @property
    def scoring_args(self) -> dict[str, Any]:
        """The selection settings the scores were made with, as `rescore` takes them."""
        return {k: getattr(self.settings.scoring, k) for k in SCORING_KEYS}

    def rescore(
        self,
        score_type: str | None = None,
        alpha: float | None = None,
        ratio: float | None = None,
        scope: str | None = None,
        skip_floor: bool | None = None,
    ) -> TokenAnalysis:
        """A new TokenAnalysis with scores and selections recomputed from the stored
        per-token statistics (vepo_viz.scoring; no model). Unset arguments keep the
        current settings (`skip_floor`: AnalysisSettings.skip_floor)."""
        given = zip(SCORING_KEYS, (score_type, alpha, ratio, scope), strict=True)
        settings = self.settings.replace_scoring(**{k: v for k, v in given if v is not None})
        if skip_floor is not None:
            settings = replace(settings, skip_floor=bool(skip_floor))
        from vepo_viz.scoring import score_response  # torch, on first re-score only

        scored = score_response(
            entropy=self.entropy,
            entropy_noisy=self.entropy_noisy,
            jsd=self.jsd,
            kl=self.kl,
            config=settings.scoring,
            exclude=self.at_floor if settings.skip_floor else None,
            entropy_noisy_draws=self.entropy_noisy_draws,
            jsd_draws=self.jsd_draws,
            kl_draws=self.kl_draws,
        )
        return replace(
            self,
            settings=settings,
            visual_sensitivity=scored.visual_sensitivity,
            scores=scored.scores,
            selected_vepo=scored.selected_vepo,
            selected_entropy=scored.selected_entropy,
            selection_share=scored.selection_share,
            draw_jaccard=scored.draw_jaccard,
        )

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
        data["at_floor"] = self.at_floor
        for name, values in self.signals.items():  # the engine's registered signals
            data[f"signal_{name}"] = values
        if self.selection_share is not None:
            data["selection_share"] = self.selection_share
        data["top_ids"] = [row.tolist() for row in self.top_ids]
        data["top_tokens"] = [list(row) for row in self.top_tokens]
        data["top_probs"] = [row.tolist() for row in self.top_probs]
        data["top_probs_noisy"] = [row.tolist() for row in self.top_probs_noisy]
        return pd.DataFrame(data)

    # ---- JSON -------------------------------------------------------------------

    def to_dict(self, include_image: bool = True) -> dict[str, Any]:
        """JSON-ready dict (floats written as float64 reprs of float32: exact). The images
        go in as base64 PNG ("image_png", "counterfactual_image_png": lossless) unless
        include_image=False."""
        out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in IMAGE_FIELDS:
                if include_image and value is not None:
                    out[f"{f.name}_png"] = _png_base64(value)
                continue
            if f.name in ("settings", "noise_floor"):
                value = value.to_dict()
            elif isinstance(value, np.ndarray):
                value = value.tolist()  # float32 -> Python float is exact
            elif f.name == "signals":
                value = {name: array.tolist() for name, array in value.items()}
            elif f.name == "image_normalization" and value is not None:
                value = [list(value[0]), list(value[1])]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["below_floor"] = self.below_floor  # for readers of the file; derived on load
        out["floor_verdict"] = self.floor_verdict
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenAnalysis:
        """A TokenAnalysis from `to_dict`'s output (or a file of an earlier version: no
        images, a plain settings dict, the app's APP_KEY entry)."""
        if not isinstance(data, dict):
            raise ValueError(f"not a saved TokenAnalysis (a JSON {type(data).__name__})")
        if data.get("format") != FORMAT:
            raise ValueError(f"not a saved TokenAnalysis (format {data.get('format')!r})")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"saved with a newer format version {data['format_version']}; upgrade vepo-viz"
            )
        names = {f.name for f in fields(cls)} - set(IMAGE_FIELDS)
        kwargs = {k: v for k, v in data.items() if k in names}
        app = data.get(APP_KEY)
        app_image = app.get("image_png") if isinstance(app, dict) else None
        for name in IMAGE_FIELDS:
            if data.get(f"{name}_png"):
                kwargs[name] = _png_image(data[f"{name}_png"])
        if kwargs.get("image") is None and app_image:
            try:
                kwargs["image"] = _png_image(app_image)
            except ValueError:
                pass  # the app's own extra, unreadable: the result loads without it
        return cls(**kwargs)

    def save(self, path: str | Path, include_image: bool = True) -> Path:
        """Write JSON to `path` (parent folders created) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict(include_image=include_image)
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TokenAnalysis:
        """Read a file written by `save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
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


def _settings_of(value: Any) -> AnalysisSettings:
    """`value` as AnalysisSettings: as is, or built from a (saved, legacy) dict."""
    from vepo_viz.analysis_settings import AnalysisSettings

    if isinstance(value, AnalysisSettings):
        return value
    if isinstance(value, dict):
        return AnalysisSettings.from_saved(value)
    raise TypeError(f"settings must be an AnalysisSettings or a dict, got {type(value).__name__}")


def _triple(values: Any) -> tuple[float, float, float]:
    out = tuple(float(v) for v in values)
    if len(out) != 3:
        raise ValueError(f"image_normalization needs 3 values per channel row, got {out}")
    return out  # type: ignore[return-value]


def _png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_image(encoded: str) -> Image.Image:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as opened:
            return opened.convert("RGB")
    except (ValueError, OSError) as error:
        raise ValueError(f"a stored image is not a readable PNG: {error}") from error


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
    n = int(selected.sum())
    if n == 0:
        return math.nan
    return float((below_median(entropy) & selected).sum()) / n


# ---- the summary -------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Headline numbers of one analysis: the two selections (VEPO by `scores`, the 80/20
    baseline by entropy), their overlap, and where their picks sit in entropy. The one
    place these are computed: the app, the exports and the batch aggregates read it.
    Shares and means are nan when there is nothing to take them over."""

    n_tokens: int
    n_vepo: int
    n_entropy: int
    n_both: int
    n_vepo_only: int
    n_entropy_only: int
    n_vepo_low_entropy: int
    """VEPO picks whose entropy is below the response's median (pooled batch shares)."""
    n_entropy_low_entropy: int
    """The same for the entropy-only picks."""
    overlap: float
    """|VEPO & entropy| / |VEPO|: the share of VEPO's picks that entropy-only also picks."""
    jaccard: float
    """|VEPO & entropy| / |VEPO | entropy|."""
    vepo_low_entropy: float
    """Share of VEPO picks whose entropy is below the response's median entropy."""
    entropy_low_entropy: float
    """The same for the entropy-only picks (0 unless ratio > 0.5 or ties)."""
    median_entropy: float
    mean_entropy: float
    mean_jsd: float
    mean_entropy_vepo: float
    mean_entropy_entropy: float
    mean_visual_vepo: float
    mean_visual_entropy: float

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def summary(result: TokenAnalysis) -> Summary:
    """The `Summary` of one analysis (from its arrays as they are now)."""
    vepo = np.asarray(result.selected_vepo, dtype=bool)
    ent = np.asarray(result.selected_entropy, dtype=bool)
    entropy = np.asarray(result.entropy, dtype=np.float64)
    visual = np.asarray(result.visual_sensitivity, dtype=np.float64)
    low = below_median(entropy)
    return Summary(
        n_tokens=len(entropy),
        n_vepo=int(vepo.sum()),
        n_entropy=int(ent.sum()),
        n_both=int((vepo & ent).sum()),
        n_vepo_only=int((vepo & ~ent).sum()),
        n_entropy_only=int((~vepo & ent).sum()),
        n_vepo_low_entropy=int((low & vepo).sum()),
        n_entropy_low_entropy=int((low & ent).sum()),
        overlap=selection_overlap_fraction(vepo, ent),
        jaccard=selection_jaccard(vepo, ent),
        vepo_low_entropy=low_entropy_share(vepo, entropy),
        entropy_low_entropy=low_entropy_share(ent, entropy),
        median_entropy=float(np.median(entropy)) if len(entropy) else math.nan,
        mean_entropy=_mean(entropy),
        mean_jsd=_mean(np.asarray(result.jsd, dtype=np.float64)),
        mean_entropy_vepo=_mean(entropy[vepo]),
        mean_entropy_entropy=_mean(entropy[ent]),
        mean_visual_vepo=_mean(visual[vepo]),
        mean_visual_entropy=_mean(visual[ent]),
    )


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


def below_median(entropy: np.ndarray) -> np.ndarray:
    """(T,) bool: entropy strictly below the response's median entropy (all False if T=0)."""
    entropy = np.asarray(entropy, dtype=np.float64)
    return entropy < np.median(entropy) if len(entropy) else np.zeros(0, dtype=bool)
