"""The numbers of the 12 samples under the embedded model, for refactors that must not
change them. `python tests/golden.py` rewrites tests/data/golden_samples.json (do that only
when a change of the numbers is intended and explained in the commit).

Each sample is analysed twice: generated (seed 0, the app's defaults) and with its
reference answer pasted, under the reference settings and under a pixel-space mode with
K = 2 draws, so generation, the clean pass, both perturbation spaces and the averaging
over draws are all covered.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    out: dict[str, dict] = {}
    for row in rows:
        image = ROOT / "sample_data" / row["image"]
        for name, settings in variants.items():
            for response in (None, row["target"]):
                case = f"{row['id']}/{name}/{'generated' if response is None else 'pasted'}"
                result = analyze(model, image, row["question"], response, settings)
                out[case] = {"response": result.response, "tokens": result.tokens}
                for field in ARRAYS:
                    out[case][field] = getattr(result, field).tolist()
    return out


if __name__ == "__main__":
    GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
    numbers = sample_numbers()
    GOLDEN_PATH.write_text(json.dumps(numbers, sort_keys=True) + "\n")
    print(f"{len(numbers)} cases -> {GOLDEN_PATH}", file=sys.stderr)
