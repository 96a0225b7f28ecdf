"""The batch library (vepo_viz.batch) without a model: progress callback, failures,
resume through the progress file, re-scoring with the current settings."""

from __future__ import annotations

import json
from dataclasses import replace

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
    entropy = AnalysisSettings(scoring={"score_type": "entropy"})
    again = open_run(entropy)  # scoring may change
    assert [r.key for r in again.todo] == ["e2"] and again.n_resumed == 2
    done = batch.finished_rows(again, entropy)
    assert [r.key for r, _ in done] == ["e0", "e1"]
    for _, result in done:  # scored with the settings of now: entropy scores are H
        np.testing.assert_allclose(result.scores, result.entropy, rtol=1e-6)
    frame = batch.write_parquet(done, out)
    assert out.is_file() and len(frame) == 16 and set(frame["example_id"]) == {"e0", "e1"}
    with pytest.raises(VepoInputError, match="other settings"):
        open_run(AnalysisSettings(top_k=3))
    assert open_run(AnalysisSettings(top_k=3), restart=True).n_resumed == 0


# ---- fingerprints: a resume never mixes old and new data ---------------------------------


def _open(rows, out, data, **kw):
    return batch.plan(rows, out, data_path=data, model="m", settings=AnalysisSettings(), **kw)


def _score(job):
    batch.score_rows(
        job.todo, lambda row: synthetic_analysis(8, seed=row.index), on_result=job.record
    )


def test_changed_question_or_image_is_rescored_never_reused(tmp_path):
    data = dataset(tmp_path)
    out = tmp_path / "scores.parquet"
    job = _open(batch.read_rows(data), out, data)
    _score(job)
    assert _open(batch.read_rows(data), out, data).todo == []
    # the same ids, one question changed and one image redrawn
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    lines[1]["question"] = "another question"
    draw_scene(64, 64).save(tmp_path / "b.png")
    lines[2]["image"] = "b.png"
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    again = _open(batch.read_rows(data), out, data)
    assert [r.key for r in again.todo] == ["e1", "e2"] == [r.key for r in again.changed]
    assert [r.key for r, _ in batch.finished_rows(again, AnalysisSettings())] == ["e0"]
    _score(again)
    done = batch.finished_rows(_open(batch.read_rows(data), out, data), AnalysisSettings())
    assert [r.key for r, _ in done] == ["e0", "e1", "e2"]
    assert done[1][0].question == "another question"
    # the image file itself changing under the same path is a change too
    draw_scene(32, 32).save(tmp_path / "b.png")
    assert [r.key for r in _open(batch.read_rows(data), out, data).todo] == ["e2"]


def test_other_data_into_the_same_out_is_refused(tmp_path):
    data = dataset(tmp_path)
    out = tmp_path / "scores.parquet"
    _score(_open(batch.read_rows(data), out, data))
    other = tmp_path / "other.jsonl"
    other.write_text(data.read_text())
    with pytest.raises(VepoInputError) as info:
        _open(batch.read_rows(other), out, other)
    message = str(info.value)
    assert "other data" in message and "--restart" in message and "--out elsewhere" in message
    assert _open(batch.read_rows(other), out, other, restart=True).n_resumed == 0


def test_legacy_progress_rows_without_fingerprint_are_rescored(tmp_path):
    data = dataset(tmp_path)
    out = tmp_path / "scores.parquet"
    job = _open(batch.read_rows(data), out, data)
    _score(job)
    progress = batch.progress_path(out)
    lines = progress.read_text().splitlines()
    legacy = [lines[0]] + [
        json.dumps({k: v for k, v in json.loads(line).items() if k != "fingerprint"})
        for line in lines[1:]
    ]
    progress.write_text("\n".join(legacy) + "\n")
    assert len(_open(batch.read_rows(data), out, data).todo) == 3


def test_aggregate_accuracy_by_verifier_and_group():
    from vepo_viz.batch import Row

    answers = [("3", "numeric"), ("B", "multiple-choice"), ("red", "exact"), (None, "auto")]
    finished = []
    for i, (answer, _) in enumerate(answers):
        row = Row(i, f"r{i}", None, "q", None, "f", answer=answer, extra=(("level", str(i % 2)),))
        response = "the answer is 3" if i == 0 else "the answer is C"
        result = replace(synthetic_analysis(6, seed=i), response=response)
        finished.append((row, result))
    agg = batch.aggregate(finished, group_by="level")
    assert agg["verifiers"] == {
        "exact": {"examples": 1, "accuracy": 0.0},
        "multiple-choice": {"examples": 1, "accuracy": 0.0},
        "numeric": {"examples": 1, "accuracy": 1.0},
    }
    assert set(agg["families"]) == {"0", "1"} and agg["group_by"] == "level"
    assert agg["all"]["answered"] == 3 and agg["all"]["accuracy"] == pytest.approx(1 / 3)
    frame = batch.to_frame(finished)
    per_example = frame.groupby("example_id")["correct"].first()
    assert per_example.iloc[:3].tolist() == [True, False, False] and per_example.isna().iloc[3]
    assert "level" in frame and set(frame["question"]) == {"q"}


def test_parquet_metadata_and_sidecar(tmp_path):
    import pyarrow.parquet as pq

    from vepo_viz.batch import Row

    finished = [(Row(0, "r0", None, "q", None, None, answer="3"), synthetic_analysis(5, seed=1))]
    meta = batch.run_metadata(finished, model="m", settings=AnalysisSettings(), data="d")
    out = tmp_path / "s.parquet"
    batch.write_parquet(finished, out, meta)
    stored = json.loads(pq.read_schema(out).metadata[b"vepo_viz"])
    assert stored == json.loads(batch.meta_path(out).read_text()) == meta
    assert stored["settings"] == AnalysisSettings().to_dict() and stored["data"] == "d"
    assert {"model_id", "model_revision", "versions", "columns"} <= set(stored)
