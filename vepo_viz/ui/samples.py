"""The examples a new user clicks on: sample_data/samples.jsonl, else a few suite examples.

sample_data/ sits at the repository root (beside app.py). When the package runs from
elsewhere (an installed wheel), the same kind of examples are drawn from the procedural
suite into a temporary folder, so the app always has something to click.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR_ENV = "VEPO_VIZ_SAMPLES"
"""Environment variable naming another folder with a samples.jsonl."""


@dataclass(frozen=True)
class Sample:
    """One clickable example."""

    id: str
    image_path: str
    question: str
    answer: str = ""
    family: str = ""
    target: str = ""
    seed: int | None = None
    """The suite seed (with family and difficulty: the example regenerates exactly)."""
    difficulty: float | None = None

    @property
    def suite_ref(self) -> str:
        """ "family:seed:difficulty" of a suite sample (vepo_viz.group.suite_example), else ""."""
        if not self.family or self.seed is None:
            return ""
        return f"{self.family}:{self.seed}:{0.5 if self.difficulty is None else self.difficulty:g}"


def sample_dir() -> Path | None:
    """The folder holding samples.jsonl: $VEPO_VIZ_SAMPLES, ./sample_data or the repo's."""
    candidates = [
        os.environ.get(SAMPLE_DIR_ENV),
        Path.cwd() / "sample_data",
        REPO_ROOT / "sample_data",
    ]
    for folder in candidates:
        if folder and (Path(folder) / "samples.jsonl").is_file():
            return Path(folder)
    return None


def read_samples(jsonl_path: str | Path) -> list[Sample]:
    """Samples of a suite-format JSONL (image paths relative to the file)."""
    jsonl_path = Path(jsonl_path)
    out = []
    for line in jsonl_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        image = Path(row["image"])
        if not image.is_absolute():
            image = jsonl_path.parent / image
        out.append(
            Sample(
                id=str(row.get("id", image.stem)),
                image_path=str(image),
                question=str(row["question"]),
                answer=str(row.get("answer", "")),
                family=str(row.get("family", "")),
                target=str(row.get("target", "")),
                seed=int(row["seed"]) if isinstance(row.get("seed"), int) else None,
                difficulty=(
                    float(row["difficulty"])
                    if isinstance(row.get("difficulty"), int | float)
                    else None
                ),
            )
        )
    return out


def suite_samples(n_per_family: int = 2) -> list[Sample]:
    """Held-out suite examples written to a temporary folder (the fallback)."""
    from vepo_viz.tasks import export_jsonl

    folder = Path(tempfile.mkdtemp(prefix="vepo-viz-samples-"))
    return read_samples(export_jsonl(folder / "samples.jsonl", "heldout", n_per_family))


def load_samples() -> list[Sample]:
    """The app's examples (never raises: an unreadable sample_data falls back to the suite)."""
    folder = sample_dir()
    if folder is not None:
        try:
            samples = [
                s for s in read_samples(folder / "samples.jsonl") if Path(s.image_path).is_file()
            ]
            if samples:
                return samples
        except (OSError, ValueError, KeyError):
            pass
    try:
        return suite_samples()
    except Exception:  # noqa: BLE001 - no examples is better than no app
        return []


def saved_analyses() -> list[Path]:
    """Saved TokenAnalysis JSON files shipped in sample_data (analyses/*.json or *.json)."""
    folder = sample_dir()
    if folder is None:
        return []
    found = sorted(folder.glob("analyses/*.json")) + sorted(folder.glob("*.json"))
    return [p for p in found if p.is_file()]
