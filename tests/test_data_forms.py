"""One dataset in three forms (datasets folder, Parquet, JSONL with image files) through
`vepo-viz batch`, the Batch tab's handler and `vepo-viz train`: identical scores in every
form; the batch Parquet and its sidecar say what made them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.data_fixtures import suite_rows, write_forms
from vepo_viz import __version__, cli
from vepo_viz.batch import meta_path

pytestmark = pytest.mark.slow

SCORE_COLUMNS = ["entropy", "jsd", "scores", "selected_vepo", "selected_entropy", "response"]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir):
    return str(tiny_model_dir("qwen2_vl"))


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    return write_forms(tmp_path_factory.mktemp("forms"), suite_rows())


@pytest.fixture(scope="module")
def cli_frames(forms, model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    frames = {}
    for form, path in forms.items():
        out_path = out / f"{form}.parquet"
        argv = ["batch", str(path), "--out", str(out_path), "--model", model_dir]
        code = cli.main([*argv, "--max-new-tokens", "5", "--group-by", "subject"])
        assert code == 0
        frames[form] = pd.read_parquet(out_path)
        frames[form].attrs["meta"] = json.loads(meta_path(out_path).read_text())
    return frames


def test_batch_cli_scores_are_identical_in_every_form(cli_frames, capsys):
    base = cli_frames["datasets"]
    assert len(base) > 0 and base["example_id"].nunique() == 3
    for form in ("parquet", "jsonl"):
        pd.testing.assert_frame_equal(
            cli_frames[form][SCORE_COLUMNS + ["question", "answer", "correct", "subject"]],
            base[SCORE_COLUMNS + ["question", "answer", "correct", "subject"]],
        )


def test_batch_parquet_carries_what_made_it(cli_frames, model_dir):
    frame = cli_frames["parquet"]
    for column in ("question", "response", "model_id", "answer", "verifier", "correct"):
        assert column in frame, column
    assert not frame["question"].str.contains("<image>").any()
    assert set(frame["verifier"]) <= {"numeric", "exact"}
    meta = frame.attrs["meta"]
    assert meta["model_id"] and meta["settings"]["max_new_tokens"] == 5
    assert meta["versions"]["vepo_viz"] == __version__ and "model_revision" in meta
    assert meta["data"].endswith("geo.parquet")


def test_batch_prints_accuracy_by_verifier_and_groups(forms, model_dir, tmp_path, capsys):
    out_path = tmp_path / "s.parquet"
    argv = ["batch", str(forms["parquet"]), "--out", str(out_path), "--model", model_dir]
    assert cli.main([*argv, "--max-new-tokens", "5", "--group-by", "subject"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy (numeric verifier)" in printed and "accuracy (exact verifier)" in printed
    assert "subject" in printed and "numbers" in printed and "colours" in printed


def test_batch_tab_matches_the_cli(forms, cli_frames, model_dir):
    from vepo_viz.ui import batch as hbatch
    from vepo_viz.ui.backend import ModelBackend
    from vepo_viz.ui.batch_tab import run_batch_tab

    backend = ModelBackend(device="cpu")
    uploads = {
        "datasets": [str(p) for p in sorted(forms["datasets"].iterdir())],
        "parquet": [str(forms["parquet"])],
    }
    for form, files in uploads.items():
        status, table, _, _, parquet_path = run_batch_tab(
            backend,
            hbatch.SOURCES[2],
            1,
            [],
            files,
            model_dir,
            None,
            max_rows=10,
            group_by="subject",
            max_new_tokens_value=5,
        )
        assert "Scored 3 of 3" in status and "Accuracy (numeric verifier)" in status
        assert list(table["subject"]) == ["colours", "numbers", "all"]
        tab = pd.read_parquet(parquet_path)
        pd.testing.assert_frame_equal(
            tab[SCORE_COLUMNS + ["correct"]], cli_frames[form][SCORE_COLUMNS + ["correct"]]
        )


def _first_step(out_dir):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    step = next(json.loads(line) for line in lines if json.loads(line).get("step") == 1)
    return {k: v for k, v in step.items() if not k.endswith("_s") and "time" not in k}


def test_train_one_step_on_every_form(forms, tmp_path):
    import torch

    threads = torch.get_num_threads()
    steps = {}
    for form, path in forms.items():
        out = tmp_path / form
        argv = ["train", "--data", str(path), "--out", str(out), "--model", "tiny"]
        argv += ["--steps", "1", "--prompts-per-step", "3", "--group-size", "2"]
        # no --threads: it would set torch's thread count for the rest of this process
        argv += ["--max-new-tokens", "8", "--n-eval", "0", "--ckpt-every", "0"]
        assert cli.main(argv) == 0
        steps[form] = _first_step(out)
    assert "reward" in steps["datasets"] and "accuracy" in steps["datasets"]
    assert steps["datasets"] == steps["parquet"] == steps["jsonl"]
    assert torch.get_num_threads() == threads  # later tests (golden numbers) see the same
