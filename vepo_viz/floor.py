"""The noise floor of one analysis: what JSD and |dH| look like when the image did not
change, which tokens are indistinguishable from it, and the verdict for the response.

Per-response min-max normalisation (shared/PAPER.md, step 6) turns any signal into a
0-1 range, float rounding included: at sigma = 0 the visual sensitivity still spans 0-1
and the top-k still picks "visual" tokens. The reference scores stay as defined; this
module only says, beside them, where they are noise. Pure numpy (no torch, no model).

How the floor is estimated (`estimate_floor`), and why:
- **Null pass** (when the response was generated): one extra teacher-forced pass with the
  clean image, compared with generation's own hidden states exactly like a
  counterfactual draw. Generation reads a KV cache, the counterfactual passes do not, so
  the two paths round differently even when the image is unchanged; the null pass
  measures exactly that difference, in the model's own dtype and kernels (a bf16 GPU
  model's floor is orders of magnitude above a float32 CPU one). A counterfactual with
  sigma = 0 *is* this computation, so at sigma 0 every token lies at the floor.
  The largest null value over the response is the floor: a token whose JSD does not
  exceed the largest JSD that rounding alone produced in the same response cannot be
  told apart from it (conservative: it errs towards calling a tiny effect noise).
- **Float floor** (always, and alone for pasted responses, whose clean pass is the
  teacher-forced path itself, so a null pass would repeat it bit for bit): the rounding
  of the float32 JSD / entropy formulas themselves (JSD_FLOAT_FLOOR, GAP_FLOAT_FLOOR).
- Rejected: two independent noise draws. Their JSD measures how much the counterfactual
  varies between draws, not what "no change" looks like: at sigma 2 two draws differ a
  lot, and that would mark real visual signal as noise. The draws' spread is shown
  instead as selection stability (vepo_viz.scoring.selection_stability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

JSD_FLOAT_FLOOR = 1e-6
"""JSD (nats) that float32 rounding of the JSD formula alone can produce: measured up to
4e-7 for identical or 1-ulp-apart logits over V = 151,936 (scoring.token_stats), so
2.5x that. JSD(p, q) = 1e-6 means the two distributions are the same for any purpose."""

GAP_FLOAT_FLOOR = 3e-5
"""|dH| (nats) that float32 rounding of the two entropies alone can produce: measured up
to 1e-5 for 1-ulp-apart logits over V = 151,936, so 3x that."""

METHODS = ("null_pass", "float")
"""How a floor was estimated: "null_pass" (a clean-image teacher-forced pass compared
with generation's states, plus the float floor) or "float" (the float floor only)."""

VERDICT = (
    "the counterfactual did not change the prediction; visual sensitivity here is normalised noise"
)
"""What the app, the CLI and the saved result say when every token is at the floor."""


@dataclass(frozen=True)
class NoiseFloor:
    """The levels below which a token's visual signal is indistinguishable from no change."""

    jsd: float = JSD_FLOAT_FLOOR
    """JSD (nats) at or below which a token's JSD is noise."""
    abs_entropy_gap: float = GAP_FLOAT_FLOOR
    """|dH| (nats) at or below which a token's entropy gap is noise."""
    method: str = "float"
    """One of METHODS."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"NoiseFloor.method must be one of {METHODS}, got {self.method!r}")
        object.__setattr__(self, "jsd", float(self.jsd))
        object.__setattr__(self, "abs_entropy_gap", float(self.abs_entropy_gap))

    def to_dict(self) -> dict[str, Any]:
        return {"jsd": self.jsd, "abs_entropy_gap": self.abs_entropy_gap, "method": self.method}

    @classmethod
    def from_dict(cls, data: Any) -> NoiseFloor:
        """From `to_dict`'s output; None (a file saved before floors) = the float floor."""
        if data is None:
            return cls()
        if isinstance(data, NoiseFloor):
            return data
        return cls(**{k: data[k] for k in ("jsd", "abs_entropy_gap", "method") if k in data})


def estimate_floor(
    jsd_null: np.ndarray | None = None, abs_gap_null: np.ndarray | None = None
) -> NoiseFloor:
    """The floor from a null pass's (T,) JSD and |dH| against the clean pass (None: no
    null pass, the float floor alone). Each level is max(largest null value, float floor)."""
    if jsd_null is None or abs_gap_null is None:
        return NoiseFloor()
    jsd_null = np.asarray(jsd_null, dtype=np.float64)
    gap_null = np.abs(np.asarray(abs_gap_null, dtype=np.float64))
    return NoiseFloor(
        jsd=max(JSD_FLOAT_FLOOR, float(jsd_null.max()) if jsd_null.size else 0.0),
        abs_entropy_gap=max(GAP_FLOAT_FLOOR, float(gap_null.max()) if gap_null.size else 0.0),
        method="null_pass",
    )


def at_floor(jsd: np.ndarray, entropy_gap: np.ndarray, floor: NoiseFloor) -> np.ndarray:
    """(T,) bool: tokens whose JSD and |dH| both lie at or below the floor (no visual
    signal that rounding alone could not have produced)."""
    jsd = np.asarray(jsd, dtype=np.float64)
    gap = np.abs(np.asarray(entropy_gap, dtype=np.float64))
    return (jsd <= floor.jsd) & (gap <= floor.abs_entropy_gap)


def below_floor(floor_mask: np.ndarray) -> bool:
    """True when every token of a (non-empty) response is at the floor."""
    floor_mask = np.asarray(floor_mask, dtype=bool)
    return bool(floor_mask.size) and bool(floor_mask.all())


def verdict(floor_mask: np.ndarray) -> str | None:
    """VERDICT when the whole response is at the floor, else None."""
    return VERDICT if below_floor(floor_mask) else None
