"""The Batch tab's data sources without a model (FakeBackend): uploaded Parquet and
datasets folder files, the server's hub cache, the column fields and their messages;
and held-out accuracy per verifier in training."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest

from tests.data_fixtures import suite_rows, write_forms
from tests.ui_fixtures import FakeBackend
from vepo_viz.ui import batch as hbatch
from vepo_viz.ui.batch_tab import run_batch_tab
from vepo_viz.ui.errors import user_errors


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    return write_forms(tmp_path_factory.mktemp("forms"), suite_rows())


def _run(source, files=(), **inputs):
    backend = FakeBackend(responses={"embedded": "The answer is 3."})
    out = user_errors(run_batch_tab)(
        backend, source, 1, [], list(files), "embedded", None, **inputs
    )
    return backend, out


def test_uploaded_datasets_folder_and_parquet_give_the_same_rows(forms):
    folder_files = [str(p) for p in sorted(forms["datasets"].iterdir())]
    backend_a, (status, table, _, _, path_a) = _run(hbatch.SOURCES[2], folder_files)
    backend_b, (_, _, _, _, path_b) = _run(hbatch.SOURCES[2], [str(forms["parquet"])])
    assert "Scored 3 of 3" in status and "verifier" in status
    assert [c["question"] for c in backend_a.calls] == [c["question"] for c in backend_b.calls]
    assert list(table["family"]) == ["all"]  # Geo3K-like data has no family column
    a, b = pd.read_parquet(path_a), pd.read_parquet(path_b)
    pd.testing.assert_frame_equal(a, b)
    per_example = a.groupby("example_id")[["verifier", "correct"]].first()
    assert per_example["verifier"].tolist() == ["exact", "numeric", "numeric"]  # red, 1, 76
    assert per_example["correct"].tolist() == [False, False, False]  # "The answer is 3."


def test_group_by_max_rows_and_column_fields(forms):
    _, (_, table, _, _, _) = _run(hbatch.SOURCES[2], [str(forms["parquet"])], group_by="subject")
    assert list(table["subject"]) == ["colours", "numbers", "all"]
    backend, (status, *_) = _run(hbatch.SOURCES[2], [str(forms["parquet"])], max_rows=2)
    assert "Scored 2 of 2" in status and len(backend.calls) == 2
    with pytest.raises(gr.Error, match="its columns are: images, problem, answer, subject"):
        _run(hbatch.SOURCES[2], [str(forms["parquet"])], image_column="picture")
    with pytest.raises(gr.Error, match="max rows"):
        _run(hbatch.SOURCES[2], [str(forms["parquet"])], max_rows=10**6)
    with pytest.raises(gr.Error, match="upload Parquet file"):
        _run(hbatch.SOURCES[2], [str(forms["jsonl"])])
    _, (status, *_) = _run(hbatch.SOURCES[2], [str(forms["parquet"])], verifier="exact")
    assert "Accuracy (exact verifier)" in status and "numeric" not in status


def test_hub_dataset_from_the_server_cache(forms, tmp_path, monkeypatch):
    import huggingface_hub.constants

    repo = tmp_path / "datasets--owner--geo"
    (repo / "snapshots" / "abc" / "data").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    target = repo / "snapshots" / "abc" / "data" / "test-00000-of-00001.parquet"
    target.write_bytes(forms["parquet"].read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    _, (status, *_) = _run(hbatch.SOURCES[3], dataset_id="owner/geo")
    assert "Scored 3 of 3" in status
    with pytest.raises(gr.Error, match="not a hub dataset id"):
        _run(hbatch.SOURCES[3], dataset_id=str(forms["parquet"]))  # never a server path


def test_heldout_accuracy_per_verifier(monkeypatch):
    from PIL import Image

    from vepo_viz.train import trl_data
    from vepo_viz.train.config import TrainConfig
    from vepo_viz.train.data import TaskPrompt

    image = Image.new("RGB", (8, 8))
    prompts = [
        TaskPrompt("a", image, "q", "0.75", verifier="auto"),
        TaskPrompt("b", image, "q", "(B)", verifier="auto"),
        TaskPrompt("c", image, "q", "red", answer_space=("red",), verifier="suite"),
    ]
    answers = ["\\boxed{3/4}", "C", "so the answer is red."]
    monkeypatch.setattr(
        "vepo_viz.tiny.evaluate.generate_batch", lambda *args, **kwargs: list(answers)
    )
    model = SimpleNamespace(training=False, eval=lambda: None, train=lambda mode: None)
    out = trl_data.evaluate(model, None, prompts, TrainConfig(n_eval=3))
    assert out["heldout_acc"] == pytest.approx(2 / 3)
    assert out["heldout_acc_verifier_numeric"] == 1.0
    assert out["heldout_acc_verifier_multiple-choice"] == 0.0
    assert out["heldout_acc_verifier_suite"] == 1.0
