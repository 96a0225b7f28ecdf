"""Write the curated sample set the app offers a new user (drawn from the held-out split).

python -m vepo_viz.tasks.samples sample_data/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vepo_viz.tasks import make_example, split_seed

# (family, held-out index): 12 examples, every family, varied answers
SAMPLES = [
    ("color", 0),
    ("color", 1),
    ("color", 2),
    ("compare", 0),
    ("compare", 1),
    ("count", 0),
    ("count", 1),
    ("count", 2),
    ("spatial", 0),
    ("spatial", 1),
    ("read", 0),
    ("read", 1),
]


def write_samples(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for family, index in SAMPLES:
        ex = make_example(family, split_seed("heldout", index))
        ex_id = f"{family}-{ex.seed}"
        rel = f"images/{ex_id}.png"
        ex.image.save(out_dir / rel)
        lines.append(
            json.dumps(
                {
                    "id": ex_id,
                    "image": rel,
                    "question": ex.question,
                    "answer": ex.answer,
                    "family": family,
                    "seed": ex.seed,
                    "difficulty": ex.difficulty,
                    "target": ex.target,
                    "segments": [[s.text, s.kind] for s in ex.segments],
                }
            )
        )
    path = out_dir / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    print(write_samples(sys.argv[1] if len(sys.argv) > 1 else "sample_data"))
