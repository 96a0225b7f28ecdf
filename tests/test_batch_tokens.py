"""The token-picks report of a batch (vepo_viz.batch_tokens): most-picked tokens per rule
with the VEPO-only / entropy-only differences, token-kind shares from the suite's
annotations, the below-median-entropy share, the figure as PDF; the `batch` command and
the Batch tab's handler show it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vepo_viz.batch_tokens import (
    annotations_of,
    markdown_report,
    save_report_figure,
    suite_annotations,
    tab_outputs,
    token_report,
)
from vepo_viz.tasks import make_example
from vepo_viz.tiny import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]


def _fake(example, vepo_words: set[str], entropy_words: set[str]):
    """A scored response: the example's target split at word starts, entropy 1 on the
    entropy picks and 0 elsewhere."""
    text = example.target
    starts = [m.start() for m in re.finditer(r"\s?\w+|[^\w\s]", text)]
    offsets = [(a, b) for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]
    tokens = [text[a:b] for a, b in offsets]
    words = [t.strip(" .,") for t in tokens]
    return SimpleNamespace(
        response=text,
        tokens=tokens,
        offsets=np.array(offsets),
        entropy=np.array([1.0 if w in entropy_words else 0.0 for w in words]),
        selected_vepo=np.array([w in vepo_words for w in words]),
        selected_entropy=np.array([w in entropy_words for w in words]),
    )


def _finished():
    ex = make_example("color", 1, 0.5)  # "... It is <colour>. <So>, the answer is <colour>."
    key = f"heldout-color-{ex.seed}"
    colour, connective = ex.answer, ex.target.split(". ")[-1].split(",")[0]
    result = _fake(ex, {colour}, {connective, colour})
    return ex, [(SimpleNamespace(key=key), result)], {key: ex}


def test_report_counts_picks_kinds_and_low_entropy():
    ex, finished, annotations = _finished()
    report = token_report(finished, annotations)
    assert report["annotated_examples"] == 1
    picked = dict(report["top_tokens"]["vepo"])
    assert picked == {f" {ex.answer}": 2}  # the colour read off the image and the answer
    assert report["top_tokens"]["vepo_only"] == []
    assert [t.strip() for t, _ in report["top_tokens"]["entropy_only"]] == [
        ex.target.split(". ")[-1].split(",")[0]
    ]
    assert report["kind_shares"]["vepo"] == pytest.approx(
        {"visual": 0.5, "template": 0.0, "free": 0.0, "answer": 0.5}
    )
    assert report["kind_shares"]["entropy_only"]["free"] == 1.0
    assert report["below_median_entropy"]["vepo"] == 0.0  # its picks are the uncertain ones
    text = markdown_report(report)
    assert "| VEPO, not entropy (0) |" in text and "Token kinds (1 annotated" in text
    # without annotations: the token lists stay, the kinds are said to be missing
    assert "no token kinds" in markdown_report(token_report(finished, {}))


def test_figure_exports_as_pdf(tmp_path):
    _, finished, annotations = _finished()
    path = save_report_figure(token_report(finished, annotations), tmp_path / "picks.pdf")
    assert path.read_bytes()[:4] == b"%PDF"


def test_annotations_key_rows_as_batch_does(tmp_path):
    ex = make_example("count", 3, 0.5)
    rows = [
        {
            "id": "a",
            "image": "x.png",
            "question": ex.question,
            "family": "count",
            "seed": 3,
            "difficulty": 0.5,
        },
        {"image": "y.png", "question": "q?", "segments": [["The", "template"], [" red", "visual"]]},
        {"image": "z.png", "question": "plain"},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    found = annotations_of(path)
    assert set(found) == {"a", "row-1"} and found["a"].target == ex.target
    assert found["row-1"].annotate("The blue") == [(0, 3, "template"), (3, 8, "visual")]
    assert set(suite_annotations("heldout", 1, ["color", "read"])) == {
        "heldout-color-1",
        "heldout-read-1",
    }


def test_batch_tab_handler_shows_the_report_for_the_suite():
    ex, finished, _ = _finished()  # the suite source: held-out ids, annotations rebuilt
    markdown, figure, pdf = tab_outputs(finished, "built-in suite", 1, ["color"], [])
    assert "Token kinds (1 annotated" in markdown and figure is not None
    assert Path(pdf).read_bytes()[:4] == b"%PDF"
    assert tab_outputs([], "built-in suite", 1, ["color"], []) == ("", None, None)


@pytest.mark.slow
@pytest.mark.skipif(
    not (Path(DEFAULT_MODEL) / "config.json").is_file(),
    reason="the embedded tiny model is not built (vepo_viz/tiny/model)",
)
def test_batch_command_prints_the_report_for_the_suite_samples(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    figure = tmp_path / "picks.pdf"
    done = subprocess.run(
        [sys.executable, "-m", "vepo_viz", "batch", "sample_data/samples.jsonl"]
        + ["--response-field", "target", "--limit", "4"]
        + ["--out", str(tmp_path / "s.parquet"), "--figure", str(figure)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| VEPO, not entropy (" in done.stdout and "| entropy, not VEPO (" in done.stdout
    assert "Token kinds (4 annotated examples)" in done.stdout
    assert figure.read_bytes()[:4] == b"%PDF"


def test_annotations_for_every_data_form(tmp_path):
    # "suite" rows are annotated from the suite itself, a JSONL from its lines, and data
    # without the suite's annotations (Parquet, datasets folders) gets none.
    from types import SimpleNamespace

    from vepo_viz.batch_tokens import annotations_for
    from vepo_viz.data import open_data
    from vepo_viz.data.columns import DataColumns
    from vepo_viz.data.rows import iter_records

    rows = list(iter_records(open_data("suite"), DataColumns(), max_rows=3, keep_images=False))
    finished = [(SimpleNamespace(key=r.key), None) for r in rows]
    found = annotations_for("suite", finished)
    assert set(found) == {r.key for r in rows}
    assert all(found[r.key].question == r.question for r in rows)
    assert annotations_for(tmp_path / "x.parquet", finished) == {}
