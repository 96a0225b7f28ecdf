"""Geometry3K-like datasets built from the suite's images, in every form the data
readers take: a `datasets` folder (save_to_disk), Parquet, and today's JSONL with image
files. The same rows in each, so scores must agree across forms."""

from __future__ import annotations

import json
from pathlib import Path


def suite_rows(n_per_family: int = 1, families=("color", "count", "read")) -> list[dict]:
    """Held-out suite examples as Geo3K-like rows: images [PIL], problem "<image>...",
    answer, and a "subject" column to group by."""
    from vepo_viz.tasks import iter_split

    return [
        {
            "images": [ex.image],
            "problem": "<image>" + ex.question,
            "answer": ex.answer,
            "subject": "numbers" if ex.family in ("count", "read") else "colours",
        }
        for ex in iter_split("heldout", n_per_family, list(families))
    ]


def geo3k_dataset(rows: list[dict]):
    """A `datasets.Dataset` with a Sequence(Image) column, like hiyouga/geometry3k."""
    import datasets

    features = datasets.Features(
        {
            "images": datasets.Sequence(datasets.Image()),
            "problem": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "subject": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_list(rows, features=features)


def write_forms(folder: Path, rows: list[dict]) -> dict[str, Path]:
    """{form: path} of the same rows as a datasets folder, a Parquet file and a JSONL
    with image files (all named "geo" so ids derived from the name agree)."""
    import datasets

    datasets.disable_progress_bars()
    ds = geo3k_dataset(rows)
    forms = {}
    forms["datasets"] = folder / "saved" / "geo"
    ds.save_to_disk(str(forms["datasets"]))
    forms["parquet"] = folder / "parquet" / "geo.parquet"
    forms["parquet"].parent.mkdir(parents=True)
    ds.to_parquet(str(forms["parquet"]))
    forms["jsonl"] = folder / "jsonl" / "geo.jsonl"
    (forms["jsonl"].parent / "images").mkdir(parents=True)
    lines = []
    for i, row in enumerate(rows):
        image = f"images/{i}.png"
        row["images"][0].save(forms["jsonl"].parent / image)
        lines.append(
            {
                "image": image,
                "question": row["problem"],
                "answer": row["answer"],
                "subject": row["subject"],
            }
        )
    forms["jsonl"].write_text("".join(json.dumps(line) + "\n" for line in lines))
    return forms
