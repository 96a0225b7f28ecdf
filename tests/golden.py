"""The numbers of the 12 samples under the embedded model, for refactors that must not
change them, and the comparison that decides "unchanged" on any CPU.
`python tests/golden.py` rewrites tests/data/golden_samples.json (do that only when a change
of the numbers is intended and explained in the commit); `python tests/golden.py --check`
compares the numbers of this machine with it (exit 1 and the differences if they differ).

Each sample is analysed twice: generated (seed 0, the app's defaults) and with its
reference answer pasted, under the reference settings and under a pixel-space mode with
K = 2 draws, so generation, the clean pass, both perturbation spaces and the averaging
over draws are all covered.

## Tolerances (why the numbers are what they are)

The file was written on one CPU; another CPU (or thread count) sums the model's float32
dot products in another order. The tolerances follow that rounding, not what one machine
happened to show:

- u = 2**-24, float32's unit roundoff. A dot product of length n summed in another order
  moves by about sqrt(n) u relative (the probabilistic bound of Higham & Mary, 2019); the
  embedded model's longest is its MLP's n = 768, so ~28 u per stage.
- A logit sits behind N_STAGES = 32 such stages (4 per block: attention in and out, MLP in
  and out, in the 4 vision and the 4 language blocks); independent errors add in
  quadrature: sqrt(32 x 768) u = 9.4e-6. The signals compare two passes (clean and
  counterfactual), each with its own rounding: RTOL = 2 x 9.4e-6 = 1.9e-5. Every raw
  signal (entropies, log-probs, JSD, KL, entropy gap, in nats) is a sum or difference of
  log-probabilities of magnitude ~1 nat or its own size, so it may move by
  RTOL x (|x| + 1 nat). Measured across two CPUs (the stored file's and an AMD EPYC, one
  and two threads): at most 4.4e-6 nats on values near 1.6 and 1.7e-5 on values up to
  13.7, inside by 4x to 16x.
- Normalised signals (visual sensitivity v, the score s) are min-max normalised per
  response, which divides the raw error by the response's range: |d j| <= 2 (1 + j) t / R
  for j = (x - min) / R and raw tolerance t. Then v and s (monotone in each normalised
  input) are evaluated at the ends of those intervals; their tolerance is the larger
  distance, plus RTOL x 1 (their own scale, as raw signals get RTOL x 1 nat). A response
  whose range is at the raw rounding (a counterfactual that changed
  nothing) gets a tolerance near 1: its normalised values are noise, as the app says.
- Integer fields (token ids) are exact. A selection must be identical, except for tokens
  whose score is within the two tolerances of a token on the other side of the cut: such
  ties are reported (returned and printed), never hidden.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_PATH = ROOT / "tests" / "data" / "golden_samples.json"

ARRAYS = (
    "entropy",
    "entropy_noisy",
    "jsd",
    "kl",
    "entropy_gap",
    "logprob",
    "logprob_noisy",
    "visual_sensitivity",
    "scores",
    "selected_vepo",
    "selected_entropy",
    "token_ids",
)
RAW = ("entropy", "entropy_noisy", "jsd", "kl", "entropy_gap", "logprob", "logprob_noisy")
"""Signals in nats: tolerance RTOL x (|x| + 1 nat)."""
NORMALISED = ("visual_sensitivity", "scores")
"""Per-response min-max normalised signals in [0, 1]: tolerance propagated from RAW."""
EXACT = ("token_ids",)
SELECTIONS = {"selected_vepo": "scores", "selected_entropy": "entropy"}
"""Each selection and the score its cut is made on."""

UNIT_ROUNDOFF = 2.0**-24
LONGEST_DOT = 768  # the embedded model's MLP width (text_config.intermediate_size)
N_STAGES = 32  # 4 per block x (4 vision + 4 language blocks)
N_PASSES = 2  # clean and counterfactual
RTOL = N_PASSES * math.sqrt(N_STAGES * LONGEST_DOT) * UNIT_ROUNDOFF  # 1.9e-5
ALPHA = 0.7  # AnalysisSettings' default: both variants score with type D at alpha 0.7


def sample_numbers() -> dict[str, dict]:
    """{case id: {field: list}} for every sample x (generated, pasted) x settings."""
    from vepo_viz import AnalysisSettings, analyze, load_model
    from vepo_viz.perturb import PerturbConfig

    model = load_model()
    rows = [json.loads(line) for line in (ROOT / "sample_data" / "samples.jsonl").open()]
    variants = {
        "reference": AnalysisSettings(),
        "patch_k2": AnalysisSettings(perturb=PerturbConfig(mode="patch", n_draws=2, seed=3)),
    }
    assert all(v.scoring.score_type == "D" and v.scoring.alpha == ALPHA for v in variants.values())
    out: dict[str, dict] = {}
    for row in rows:
        image = ROOT / "sample_data" / row["image"]
        for name, settings in variants.items():
            for response in (None, row["target"]):
                case = f"{row['id']}/{name}/{'generated' if response is None else 'pasted'}"
                result = analyze(model, image, row["question"], response, settings)
                out[case] = {"response": result.response, "tokens": result.tokens}
                for name_ in ARRAYS:
                    out[case][name_] = getattr(result, name_).tolist()
    return out


def raw_tolerance(x: np.ndarray) -> np.ndarray:
    return RTOL * (np.abs(x) + 1.0)


def _normalised_interval(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(j, j_lo, j_hi): min-max normalised x and the interval its rounding allows."""
    lo, span = x.min(), max(float(x.max() - x.min()), 1e-8)  # scoring.EPS_NORM
    j = np.clip((x - lo) / span, 0.0, 1.0)
    t = float(raw_tolerance(x).max())
    dj = np.minimum(2.0 * (1.0 + j) * t / span, 1.0)
    return j, np.clip(j - dj, 0.0, 1.0), np.clip(j + dj, 0.0, 1.0)


def _noisy_or(j: np.ndarray, d: np.ndarray) -> np.ndarray:
    return 1.0 - (1.0 - j) ** ALPHA * (1.0 - d) ** (1.0 - ALPHA)


def normalised_tolerances(numbers: dict) -> dict[str, np.ndarray]:
    """Per-token tolerances of v and s (type D) from the case's raw signals."""
    jsd = np.asarray(numbers["jsd"], dtype=np.float64)
    gap = np.abs(np.asarray(numbers["entropy_gap"], dtype=np.float64))
    entropy = np.asarray(numbers["entropy"], dtype=np.float64)
    if jsd.size == 0:
        return {"visual_sensitivity": jsd, "scores": jsd}
    j, j_lo, j_hi = _normalised_interval(jsd)
    d, d_lo, d_hi = _normalised_interval(gap)
    h, h_lo, h_hi = _normalised_interval(entropy)
    v, v_lo, v_hi = _noisy_or(j, d), _noisy_or(j_lo, d_lo), _noisy_or(j_hi, d_hi)
    s, s_lo, s_hi = v * h, v_lo * h_lo, v_hi * h_hi
    return {
        "visual_sensitivity": np.maximum(v_hi - v, v - v_lo) + RTOL,
        "scores": np.maximum(s_hi - s, s - s_lo) + RTOL,
    }


def tolerances(numbers: dict) -> dict[str, np.ndarray]:
    """{field: per-token tolerance} for every float field of one case."""
    out = {name: raw_tolerance(np.asarray(numbers[name], dtype=np.float64)) for name in RAW}
    return {**out, **normalised_tolerances(numbers)}


@dataclass
class Comparison:
    problems: list[str] = field(default_factory=list)
    """Differences beyond the tolerances: the numbers changed."""
    ties: list[str] = field(default_factory=list)
    """Selection differences at the cut within the tolerances (reported, allowed)."""


def _selection_ties(name: str, old: dict, new_sel: np.ndarray, tol: dict) -> tuple[list, list]:
    """(ties, problems) of the tokens whose selection differs. The tokens dropped from and
    added to the stored selection are paired in score order; a pair whose scores lie
    within their two tolerances is a tie at the cut, anything else a change."""
    old_sel = np.asarray(old[name], dtype=bool)
    score_name = SELECTIONS[name]
    scores = np.asarray(old[score_name], dtype=np.float64)
    t = tol[score_name]
    dropped = sorted(np.flatnonzero(old_sel & ~new_sel), key=lambda i: scores[i])
    added = sorted(np.flatnonzero(new_sel & ~old_sel), key=lambda i: -scores[i])
    if len(dropped) != len(added):
        return [], [f"{len(dropped)} tokens dropped but {len(added)} added: another k"]
    ties, problems = [], []
    for i, j in zip(dropped, added, strict=True):
        text = (
            f"token {i} ({score_name} {scores[i]:.7g} +- {t[i]:.2g}) swapped with token {j} "
            f"({scores[j]:.7g} +- {t[j]:.2g})"
        )
        if abs(scores[i] - scores[j]) <= t[i] + t[j]:
            ties.append(text)
        else:
            problems.append(text + ": beyond the tolerances")
    return ties, problems


def compare(before: dict[str, dict], after: dict[str, dict]) -> Comparison:
    """Compare `after` (this machine) with `before` (the stored file) at the tolerances."""
    result = Comparison()
    if sorted(after) != sorted(before):
        result.problems.append(f"cases differ: {sorted(set(after) ^ set(before))}")
        return result
    for case, old in before.items():
        new = after[case]
        for key in ("response", "tokens", *EXACT):
            if new[key] != old[key]:
                result.problems.append(f"{case}: {key} differs")
        if new["tokens"] != old["tokens"]:
            continue
        tol = tolerances(old)
        for name, t in tol.items():
            a, b = np.asarray(new[name], dtype=np.float64), np.asarray(old[name])
            bad = np.flatnonzero(np.abs(a - b) > t)
            for i in bad[:3]:
                result.problems.append(
                    f"{case}: {name}[{i}] = {a[i]:.7g}, stored {b[i]:.7g} (tolerance {t[i]:.2g})"
                )
        for name in SELECTIONS:
            ties, problems = _selection_ties(name, old, np.asarray(new[name], dtype=bool), tol)
            result.ties += [f"{case}: {name}: {text}" for text in ties]
            result.problems += [f"{case}: {name}: {text}" for text in problems]
    return result


def perturbed(numbers: dict[str, dict], size: float, seed: int = 0) -> dict[str, dict]:
    """A copy with every float moved by +-size: absolute on normalised signals, relative on
    raw ones (the test of the test)."""
    rng = np.random.default_rng(seed)
    out = {}
    for case, fields in numbers.items():
        out[case] = dict(fields)
        for name in RAW + NORMALISED:
            x = np.asarray(fields[name], dtype=np.float64)
            sign = rng.choice([-1.0, 1.0], size=x.shape)
            step = size * (np.abs(x) if name in RAW else 1.0)
            out[case][name] = (x + sign * step).tolist()
    return out


def check() -> int:
    """Compare this machine's numbers with the file; print problems and ties."""
    result = compare(json.loads(GOLDEN_PATH.read_text()), sample_numbers())
    for text in result.ties:
        print(f"tie (allowed): {text}")
    for text in result.problems:
        print(f"DIFFERS: {text}")
    return 1 if result.problems else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
    numbers = sample_numbers()
    GOLDEN_PATH.write_text(json.dumps(numbers, sort_keys=True) + "\n")
    print(f"{len(numbers)} cases -> {GOLDEN_PATH}", file=sys.stderr)
