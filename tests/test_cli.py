"""`vepo-viz analyze` and `vepo-viz batch` on a tiny random model, in process."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.fake import draw_scene
from vepo_viz import batch as batch_library
from vepo_viz import cli
from vepo_viz.commands import batch as batch_command
from vepo_viz.results import TokenAnalysis


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir):
    return str(tiny_model_dir("qwen2_vl"))


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "scene.png"
    draw_scene().save(path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_commands(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "analyze" in out and "batch" in out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["analyze", "--help"])
    assert exit_info.value.code == 0
    assert "--response" in capsys.readouterr().out


@pytest.mark.slow
def test_python_dash_m_runs():
    out = subprocess.run(
        [sys.executable, "-m", "vepo_viz", "--help"], capture_output=True, text=True, check=True
    )
    assert "batch" in out.stdout


def test_analyze_prints_table_and_writes_result(capsys, model_dir, image_path, tmp_path):
    out_path = tmp_path / "result.json"
    code, out, err = run(
        capsys,
        "analyze",
        "--image",
        image_path,
        "--question",
        "What colour is the square?",
        "--response",
        "The square is red.",
        "--model",
        model_dir,
        "--out",
        out_path,
    )
    assert code == 0, err
    for column in ("token", "H", "JSD", "|dH|", "score", "ent", "vepo"):
        assert column in out
    assert " square" in out and "wrote" in out
    result = TokenAnalysis.load(out_path)
    assert result.response == "The square is red." and not result.generated


def test_analyze_generates_when_no_response(capsys, model_dir, image_path):
    code, out, err = run(
        capsys,
        "analyze",
        "--image",
        image_path,
        "--question",
        "Describe it.",
        "--model",
        model_dir,
        "--max-new-tokens",
        "6",
        "--score-type",
        "A",
        "--draws",
        "2",
    )
    assert code == 0, err
    assert "generated" in out and "by A" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image", "missing.png", "--question", "What?"], "image file not found"),
        (["--question", "  "], "question is empty"),
        (["--ratio", "1.5"], "ratio"),
        (["--response", ""], "has no tokens"),
    ],
)
def test_analyze_errors_are_one_line(extra, message, capsys, model_dir, image_path):
    argv = ["analyze", "--image", image_path, "--question", "What?", "--model", model_dir]
    code, _, err = run(capsys, *argv, *extra)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_model_offline(capsys, image_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    argv = ["analyze", "--image", image_path, "--question", "What?", "--model", "no-one/none"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "not found locally" in err


def test_unexpected_errors_are_reported_without_traceback(capsys, monkeypatch, image_path):
    def boom(args):
        raise RuntimeError("kaput")

    monkeypatch.setattr("vepo_viz.commands.analyze.run", boom)
    code, _, err = run(capsys, "analyze", "--image", image_path, "--question", "x")
    assert code == 1 and "kaput" in err and "Traceback" not in err


# ---- batch ------------------------------------------------------------------------


def write_dataset(folder, rows):
    (folder / "imgs").mkdir(exist_ok=True)
    draw_scene().save(folder / "imgs" / "a.png")
    draw_scene(64, 64).save(folder / "imgs" / "b.png")
    path = folder / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


ROWS = [
    {"id": "a1", "image": "imgs/a.png", "question": "What colour?", "family": "color"},
    {"id": "b1", "image": "imgs/b.png", "question": "Which shape?", "response": "A circle."},
    {"image": "imgs/a.png", "question": "How many?", "response": "Two.", "family": "count"},
]


@pytest.mark.slow
def test_batch_writes_parquet_and_resumes(capsys, model_dir, tmp_path, monkeypatch):
    data = write_dataset(tmp_path, ROWS)
    out_path = tmp_path / "out" / "scores.parquet"
    argv = ["batch", data, "--out", out_path, "--model", model_dir, "--max-new-tokens", "5"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    frame = pd.read_parquet(out_path)
    assert set(frame["example_id"]) == {"a1", "b1", "row-2"}
    for column in ("family", "position", "token", "entropy", "jsd", "scores", "selected_vepo"):
        assert column in frame
    assert "selection overlap" in out and "below their response's median" in out
    assert "color" in out and "count" in out  # per-family breakdown
    assert "3 to go" in err

    # Re-running skips finished rows: analyze is never called.
    def no_analysis(*args, **kwargs):
        raise AssertionError("a finished row was analysed again")

    monkeypatch.setattr("vepo_viz.analysis.analyze", no_analysis)
    code, out, err = run(capsys, *argv)
    assert code == 0 and "3 already scored, 0 to go" in err
    assert pd.read_parquet(out_path).equals(frame)

    # Changing only scoring settings re-scores the stored rows without the model.
    code, out, err = run(capsys, *argv, "--score-type", "entropy")
    assert code == 0, err
    rescored = pd.read_parquet(out_path)
    assert (rescored["selected_vepo"] == rescored["selected_entropy"]).all()
    # Other settings need --restart.
    code, _, err = run(capsys, *argv, "--draws", "2")
    assert code == 2 and "--restart" in err


@pytest.mark.slow
def test_batch_reports_failed_rows_and_retries_them(capsys, model_dir, tmp_path):
    rows = ROWS[1:] + [{"id": "bad", "image": "imgs/nope.png", "question": "What?"}]
    data = write_dataset(tmp_path, rows)
    out_path = tmp_path / "scores.parquet"
    argv = ["batch", data, "--out", out_path, "--model", model_dir]
    code, _, err = run(capsys, *argv)
    assert code == 1 and "failed: bad" in err and "image file not found" in err
    assert set(pd.read_parquet(out_path)["example_id"]) == {"b1", "row-1"}
    code, _, err = run(capsys, *argv)
    assert code == 1 and "2 already scored, 1 to go" in err


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json}\n", "not valid JSON"),
        ('{"image": "a.png"}\n', "question"),
        ('["a", "b"]\n', "JSON object"),
        ("\n\n", "no examples"),
        ('{"id": 1, "image": "a.png", "question": "q"}\n' * 2, "duplicate id"),
        ('{"image": "a.png", "question": "q", "response": 3}\n', "must be a string"),
    ],
)
def test_batch_rejects_bad_files_before_any_work(content, message, capsys, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(content)
    code, _, err = run(capsys, "batch", data)
    assert code == 2 and message in err and "Traceback" not in err


def test_batch_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "batch", tmp_path / "none.jsonl")
    assert code == 2 and "dataset not found" in err


def test_aggregates_on_synthetic_results():
    from tests.fake import synthetic_analysis

    rows = [
        batch_library.Row(i, f"r{i}", tmp, "q", None, fam)
        for i, (tmp, fam) in enumerate([(None, "x"), (None, "x"), (None, "y")])
    ]
    finished = [(row, synthetic_analysis(10, seed=row.index)) for row in rows]
    agg = batch_library.aggregate(finished)
    assert agg["all"]["examples"] == 3 and agg["all"]["tokens"] == 30
    assert set(agg["families"]) == {"x", "y"}
    assert agg["all"]["entropy_low_entropy_share"] == 0.0  # top-entropy picks are never low
    text = batch_command.format_aggregates(agg)
    assert "Jaccard" in text and "x" in text
