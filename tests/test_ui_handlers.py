"""App handlers with a fake model backend (milliseconds each, no weights)."""

from __future__ import annotations

import json
import time

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.ui_fixtures import DEFAULT_RESPONSE, FakeBackend
from vepo_viz.errors import ModelLoadError, VepoInputError
from vepo_viz.ui import batch as hbatch
from vepo_viz.ui import handlers as h
from vepo_viz.ui.backend import model_key
from vepo_viz.ui.compare import compare
from vepo_viz.ui.controls import ControlValues
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.session import load_session, save_session

QUESTION = "What color is the diamond?"


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "scene.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(path)
    return str(path)


@pytest.fixture
def backend():
    return FakeBackend()


def run(backend, image_path, session=None, **controls):
    return user_errors(h.analyze)(
        backend, session, image_path, QUESTION, "", "embedded", ControlValues(**controls)
    )


def test_analyze_renders_every_view(backend, image_path):
    session, view, (clean, counterfactual, caption) = run(backend, image_path)
    assert len(backend.calls) == 1 and backend.calls[0]["response"] is None
    n = len(session.current.tokens)
    assert len(view.table) == n and len(view.token_choices) == n
    assert "VEPO only" in view.summary and "below-median entropy" in view.summary
    assert view.heatmap.data and view.scatter.data and view.detail.data
    assert clean.size == counterfactual.size == (96, 64)
    assert "normalised" in caption
    assert view.token is not None and 0 <= view.token < n


def test_same_inputs_reuse_the_analysis_and_new_inputs_rerun(backend, image_path):
    session, _, _ = run(backend, image_path)
    session2, view, _ = run(backend, image_path, session, ratio=0.5)
    assert len(backend.calls) == 1  # no model run: only re-scored
    assert session2.current.selected_vepo.sum() > session.current.selected_vepo.sum()
    run(backend, image_path, session2, cf_mode="no_image")
    run(backend, image_path, session2, n_draws=2)
    assert len(backend.calls) == 3


def test_an_analysis_is_scored_once(backend, image_path, monkeypatch):
    from vepo_viz.results import TokenAnalysis

    calls = []
    original = TokenAnalysis.rescore

    def counting(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TokenAnalysis, "rescore", counting)
    session, _, _ = run(backend, image_path, ratio=0.4, score_type="F")
    assert calls == []  # scored by the analysis with the selection settings, not again
    assert session.current is session.base
    reference = original(session.base, ratio=0.4, score_type="F")
    np.testing.assert_array_equal(session.current.scores, reference.scores)
    np.testing.assert_array_equal(session.current.selected_vepo, reference.selected_vepo)
    again, _, _ = run(backend, image_path, session, ratio=0.6, score_type="F")
    assert len(backend.calls) == 1 and len(calls) == 1  # same inputs: re-scored, no model
    assert again.current.selected_vepo.sum() >= session.current.selected_vepo.sum()


def test_rescore_is_fast_and_needs_no_model(backend, image_path):
    session, _, _ = run(backend, image_path)
    n_calls = len(backend.calls)
    started = time.perf_counter()
    new, view = h.rescore(session, 0.6, 0.3, "F", "response")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert len(backend.calls) == n_calls
    assert new.current.settings["score_type"] == "F" and new.current.settings["alpha"] == 0.3
    assert new.current.selected_vepo.sum() == np.ceil(0.6 * len(new.current.tokens))
    assert "top 60%" in view.summary
    # back to the stored settings: exactly the stored numbers
    back, _ = h.rescore(new, 0.2, 0.7, "D", "response")
    assert back.current is session.base


def test_token_detail_and_table_click(backend, image_path):
    session, _, _ = run(backend, image_path)
    fig = h.detail(session, 3)
    np.testing.assert_allclose(fig.data[0].x, session.current.top_probs[3], rtol=1e-6)
    assert h.token_from_table(session, [5, "x", 0.1]) == 5
    assert h.token_from_table(session, None) is None


@pytest.mark.parametrize(
    ("image", "question", "controls", "message"),
    [
        (None, QUESTION, {}, "no image"),
        ("IMG", "   ", {}, "question is empty"),
        ("IMG", QUESTION, {"ratio": 0}, "ratio"),
        ("IMG", QUESTION, {"ratio": 1.5}, "ratio"),
        ("IMG", QUESTION, {"alpha": -1}, "alpha"),
        ("IMG", QUESTION, {"sigma": float("nan")}, "sigma"),
        ("IMG", QUESTION, {"n_draws": 0}, "draws"),
        ("IMG", QUESTION, {"max_new_tokens": 2.5}, "max new tokens"),
        ("IMG", QUESTION, {"score_type": "Z"}, "score"),
        ("IMG", QUESTION, {"cf_mode": "nope"}, "mode"),
        ("IMG", QUESTION, {"seed": -3}, "seed"),
    ],
)
def test_bad_inputs_give_readable_errors(backend, image_path, image, question, controls, message):
    image = image_path if image == "IMG" else image

    def on_analyze():  # as the app's event: the components' values through from_api
        values = ControlValues.from_api(controls)
        return h.analyze(backend, None, image, question, "", "embedded", values)

    with pytest.raises(gr.Error, match=message):
        user_errors(on_analyze)()
    assert backend.calls == []


def test_broken_and_huge_image_files(backend, tmp_path, image_path):
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(open(image_path, "rb").read()[:60])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path, message in ((truncated, "truncated|corrupt|decode"), (text, "not an image")):
        with pytest.raises(gr.Error, match=message):
            run(backend, str(path))
    missing = tmp_path / "gone.png"
    with pytest.raises(gr.Error, match="not found"):
        run(backend, str(missing))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (VepoInputError("the response has no tokens"), "no tokens"),
        (ModelLoadError("model 'x/y' was not found locally"), "not found locally"),
        (RuntimeError("CUDA exploded"), "unexpected error .*CUDA exploded.*still running"),
        (MemoryError(), "out of memory"),
    ],
)
def test_model_errors_become_messages(image_path, error, message):
    with pytest.raises(gr.Error, match=message):
        run(FakeBackend(fail=error), image_path)


def test_rescore_and_export_before_any_analysis():
    for call in (
        lambda: user_errors(h.rescore)(None, 0.2, 0.7, "D", "response"),
        lambda: user_errors(h.export_file)(None, "pdf"),
        lambda: user_errors(save_session)(None),
    ):
        with pytest.raises(gr.Error, match="no analysis yet"):
            call()


def test_save_and_load_exactly(backend, image_path):
    session, view, images = run(backend, image_path, ratio=0.4)
    session, view = h.rescore(session, 0.4, 0.5, "C", "response")
    path = save_session(session)
    loaded, loaded_view, (clean, _, _) = load_session(path)
    a, b = session.current, loaded.current
    for name in (
        "entropy",
        "jsd",
        "kl",
        "scores",
        "selected_vepo",
        "selected_entropy",
        "top_probs",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.tokens == b.tokens and a.settings == b.settings and a.response == b.response
    assert loaded_view.summary == view.summary
    pd.testing.assert_frame_equal(loaded_view.table, view.table)
    assert np.array_equal(np.asarray(clean), np.asarray(images[0]))


def test_load_rejects_wrong_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something else"}))
    for path, message in ((bad, "not a JSON file"), (other, "not a saved"), (None, "choose")):
        with pytest.raises(gr.Error, match=message):
            user_errors(load_session)(str(path) if path else None)


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png", "tex", "html", "csv", "json"])
def test_export_every_format(backend, image_path, fmt):
    session, _, _ = run(backend, image_path)
    path = h.export_file(session, fmt, width_in=4, dpi=72, font_size=8)
    blob = open(path, "rb").read()
    assert path.endswith("." + fmt) and len(blob) > 200
    if fmt == "pdf":
        assert blob.startswith(b"%PDF")


def test_export_rejects_bad_options(backend, image_path):
    session, _, _ = run(backend, image_path)
    for kwargs, message in (
        ({"fmt": "docx"}, "unknown export format"),
        ({"fmt": "pdf", "dpi": 0}, "dpi"),
        ({"fmt": "pdf", "font_family": "Nope Sans"}, "not installed"),
        ({"fmt": "png", "width_in": "wide"}, "width"),
    ):
        fmt = kwargs.pop("fmt")
        with pytest.raises(gr.Error, match=message):
            user_errors(h.export_file)(session, fmt, **kwargs)


def test_compare_three_ways(backend, image_path):
    session, _, _ = run(backend, image_path)
    n_calls = len(backend.calls)
    text, diff, a, b = compare(
        backend, session, "score type", "D", "entropy", None, None, None, None, ControlValues()
    )
    assert len(backend.calls) == n_calls and "A: score D" in text and diff is not None
    text, diff, _, _ = compare(
        backend,
        session,
        "counterfactual mode",
        "gaussian",
        "no_image",
        image_path,
        QUESTION,
        "",
        "embedded",
        ControlValues(),
    )
    modes = [c["settings"].perturb.mode for c in backend.calls[-2:]]
    assert modes == ["gaussian", "no_image"]
    assert backend.calls[-1]["response"] == DEFAULT_RESPONSE  # B scores A's response
    assert "Selections differ" in text and diff is not None
    other = FakeBackend(responses={"m2": "x"})
    text, diff, _, _ = compare(
        other,
        session,
        "model",
        "embedded",
        "m2",
        image_path,
        QUESTION,
        "",
        "embedded",
        ControlValues(),
    )
    assert [c["model"] for c in other.calls] == ["embedded", "m2"]
    with pytest.raises(gr.Error, match="compare what"):
        user_errors(compare)(
            backend, session, "colour", "a", "b", None, None, None, None, ControlValues()
        )


def test_compare_with_different_tokenisations(backend, image_path):
    class Retokenising(FakeBackend):
        def analyze(self, model_name, image, question, response, settings, progress=None):
            if model_name == "other":
                response = "Totally different words."
            return super().analyze(model_name, image, question, response, settings, progress)

    text, diff, a, b = compare(
        Retokenising(),
        None,
        "model",
        "embedded",
        "other",
        image_path,
        QUESTION,
        "",
        "embedded",
        ControlValues(),
    )
    assert diff is None and "tokenised differently" in text and a is not None and b is not None


def test_model_key():
    assert model_key("") is None and model_key(" embedded ") is None and model_key(None) is None
    assert model_key("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"


def test_batch_suite_and_jsonl(backend, tmp_path, image_path):
    rows = hbatch.suite_rows(1, ["color", "count"])
    assert [r.family for r in rows] == ["color", "count"] and rows[0].image.is_file()
    seen = []
    finished, failures = hbatch.run_batch(
        backend, rows, "embedded", ControlValues().settings(), lambda f, d: seen.append(f)
    )
    assert failures == [] and len(finished) == 2
    assert seen[0] == 0 and seen[-1] == 1.0
    tokens, table, figs = hbatch.summarize(finished)
    assert list(table["family"]) == ["color", "count", "all"]
    assert table["tokens"].iloc[-1] == len(tokens)
    assert figs["scatter"].data and figs["low_entropy"].data
    out = pd.read_parquet(hbatch.write_parquet(tokens))
    assert len(out) == len(tokens)
    assert {"example_id", "family", "entropy", "selected_vepo"} <= set(out)

    # an uploaded JSONL with its image (paths keep their folders; matched by name)
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(
        json.dumps({"id": "a", "image": "images/scene.png", "question": "Q1?", "family": "c"})
        + "\n\n"
        + json.dumps({"id": "b", "image": "scene.png", "question": "Q2?", "response": "It is red."})
        + "\n"
    )
    rows = hbatch.jsonl_rows([str(jsonl), image_path])
    assert [r.question for r in rows] == ["Q1?", "Q2?"] and rows[1].response == "It is red."
    assert all(r.image.is_file() for r in rows)


def test_batch_bad_inputs_and_failing_rows(tmp_path, image_path):
    jsonl = tmp_path / "d.jsonl"
    for content, message in (
        ("{bad", "not valid JSON"),
        (json.dumps({"question": "q"}), "needs a non-empty string 'image'"),
        (json.dumps({"image": "missing.png", "question": "q"}), "was not uploaded"),
        (json.dumps({"image": "/etc/passwd", "question": "q"}), "relative path"),
        ("", "no examples"),
    ):
        jsonl.write_text(content)
        with pytest.raises(gr.Error, match=message):
            user_errors(hbatch.jsonl_rows)([str(jsonl), image_path])
    with pytest.raises(gr.Error, match="exactly one"):
        user_errors(hbatch.jsonl_rows)([image_path])
    with pytest.raises(gr.Error, match="unknown families"):
        user_errors(hbatch.suite_rows)(1, ["nope"])
    finished, failures = hbatch.run_batch(
        FakeBackend(fail=VepoInputError("bad image")),
        hbatch.suite_rows(1, ["color"]),
        None,
        ControlValues().settings(),
    )
    assert finished == [] and "bad image" in failures[0][1]
    with pytest.raises(gr.Error, match="no example could be analysed"):
        user_errors(hbatch.summarize)(finished)


def test_build_app_and_launch_defaults():
    from vepo_viz.ui.app import build_app, launch_kwargs
    from vepo_viz.ui.launch import build_parser

    demo = build_app(FakeBackend(), samples=[])
    names = {dep["api_name"] for dep in demo.config["dependencies"] if dep.get("api_name")}
    assert {"analyze", "rescore", "export", "load", "compare", "batch"} <= names
    args = build_parser().parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860 and not args.share
    assert launch_kwargs()["max_file_size"]
