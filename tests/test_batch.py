"""The batch library (vepo_viz.batch) without a model: progress callback, failures,
resume through the progress file, re-scoring with the current settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.fake import draw_scene, synthetic_analysis
from vepo_viz import batch
from vepo_viz.analysis import AnalysisSettings
from vepo_viz.errors import VepoInputError


def dataset(tmp_path, n: int = 3):
    draw_scene().save(tmp_path / "a.png")
    lines = [{"id": f"e{i}", "image": "a.png", "question": "q", "family": "f"} for i in range(n)]
    lines.append({"id": "gone", "image": "missing.png", "question": "q"})
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_score_rows_reports_progress_and_keeps_going(tmp_path):
    rows = batch.read_rows(dataset(tmp_path))[:3]
    seen = []

    def analyze_row(row):
        if row.key == "e1":
            raise VepoInputError("bad row")
        return synthetic_analysis(8, seed=row.index)

    finished, failures = batch.score_rows(
        rows, analyze_row, on_progress=lambda done, total, row: seen.append((done, total, row))
    )
    assert [r.key for r, _ in finished] == ["e0", "e2"]
    assert [(r.key, m) for r, m in failures] == [("e1", "bad row")]
    assert seen == [(0, 3, rows[0]), (1, 3, rows[1]), (2, 3, rows[2]), (3, 3, None)]
    with pytest.raises(RuntimeError):  # only `catch` errors are a row's failure
        batch.score_rows(rows, lambda row: (_ for _ in ()).throw(RuntimeError("bug")))


def test_plan_resumes_and_finished_rows_rescore(tmp_path):
    data = dataset(tmp_path)
    rows = batch.read_rows(data)
    out = tmp_path / "scores.parquet"

    def open_run(settings, restart=False):
        return batch.plan(rows, out, data_path=data, model="m", settings=settings, restart=restart)

    job = open_run(AnalysisSettings())
    assert [r.key for r in job.todo] == ["e0", "e1", "e2"] and job.n_resumed == 0
    assert [r.key for r, _ in job.failures] == ["gone"]
    batch.score_rows(
        job.todo[:2],
        lambda row: synthetic_analysis(8, seed=row.index),
        on_result=lambda row, result: job.progress.add(row, result.to_dict()),
    )
    again = open_run(AnalysisSettings(score_type="entropy"))  # scoring may change
    assert [r.key for r in again.todo] == ["e2"] and again.n_resumed == 2
    done = batch.finished_rows(again, AnalysisSettings(score_type="entropy"))
    assert [r.key for r, _ in done] == ["e0", "e1"]
    for _, result in done:  # scored with the settings of now: entropy scores are H
        np.testing.assert_allclose(result.scores, result.entropy, rtol=1e-6)
    frame = batch.write_parquet(done, out)
    assert out.is_file() and len(frame) == 16 and set(frame["example_id"]) == {"e0", "e1"}
    with pytest.raises(VepoInputError, match="other settings"):
        open_run(AnalysisSettings(top_k=3))
    assert open_run(AnalysisSettings(top_k=3), restart=True).n_resumed == 0
