"""End to end through gradio_client: the real app on 127.0.0.1 with a real model (the
embedded one when present, else a tiny random Qwen2-VL built offline)."""

from __future__ import annotations

import threading

import httpx
import pytest
from gradio_client import Client, handle_file

from tests.ui_fixtures import embedded_model_ready, serve_app
from vepo_viz.ui.samples import load_samples

pytestmark = pytest.mark.slow

SETTINGS = dict(
    max_new_tokens_value=12,
    temperature_value=1.0,
    seed_value=0,
    cf_mode_value="gaussian",
    sigma_value=2.0,
    n_draws_value=1,
    ratio_value=0.2,
    alpha_value=0.7,
    score_type_value="D",
    scope_value="response",
)


@pytest.fixture(scope="module")
def app(tiny_model_dir):
    model = "embedded" if embedded_model_ready() else str(tiny_model_dir("qwen2_vl"))
    demo, url = serve_app(model, max_file_size="1mb")
    yield url, model
    demo.close()


@pytest.fixture(scope="module")
def sample():
    return load_samples()[0]


def analyze(client, sample, model, question=None, response="", **settings):
    return client.predict(
        image_path=handle_file(sample.image_path),
        question_text=question if question is not None else sample.question,
        response_text=response,
        model_name=model,
        **{**SETTINGS, **settings},
        api_name="/analyze",
    )


def test_analyze_rescore_export_through_the_api(app, sample):
    url, model = app
    assert url.startswith("http://127.0.0.1:")
    client = Client(url, verbose=False)
    summary, heatmap, scatter, table, token, detail, clean, counterfactual, caption = analyze(
        client, sample, model
    )
    n_tokens = len(table["data"])
    assert 1 <= n_tokens <= 12
    assert f"**{n_tokens} tokens**" in summary and "VEPO only" in summary
    assert heatmap and scatter and detail
    assert clean and counterfactual and "clean image" in caption
    header = table["headers"]
    assert {"entropy", "jsd", "visual_sensitivity", "score", "selected_vepo"} <= set(header)

    # re-scoring uses the session's stored analysis: no image, no model
    summary2, *_ = client.predict(
        ratio_value=1.0,
        alpha_value=0.7,
        score_type_value="D",
        scope_value="response",
        token_index=None,
        api_name="/rescore",
    )
    assert f"VEPO (D, alpha=0.70) picks **{n_tokens}**" in summary2

    pdf = client.predict(
        export_format="pdf",
        panel_names=["entropy", "visual_sensitivity", "score", "selection"],
        width_inches=5,
        font_family="DejaVu Sans",
        font_size_pt=9,
        dpi_value=150,
        colormap="cividis",
        show_legend=True,
        show_colorbar=True,
        latex_colours_by="score",
        api_name="/export",
    )
    blob = open(pdf, "rb").read()
    assert blob.startswith(b"%PDF") and len(blob) > 3000

    # save the analysis and load it back: the same views, no model
    saved = client.predict(
        export_format="json",
        panel_names=["score"],
        width_inches=5,
        font_family="DejaVu Sans",
        font_size_pt=9,
        dpi_value=150,
        colormap="cividis",
        show_legend=True,
        show_colorbar=True,
        latex_colours_by="score",
        api_name="/export",
    )
    fresh = Client(url, verbose=False)
    loaded = fresh.predict(handle_file(saved), api_name="/load")
    assert loaded[0] == summary2  # the summary, exactly as saved (ratio 1.0)
    assert (
        loaded[3]["data"]
        == client.predict(
            ratio_value=1.0,
            alpha_value=0.7,
            score_type_value="D",
            scope_value="response",
            token_index=None,
            api_name="/rescore",
        )[3]["data"]
    )
    assert loaded[11] == 1.0  # the ratio slider is set to the saved ratio


def test_bad_input_gives_a_message_and_the_app_keeps_serving(app, sample):
    url, model = app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="question is empty"):
        analyze(client, sample, model, question="   ")
    with pytest.raises(Exception, match="not found|no model folder|cannot"):
        analyze(client, sample, "/nonexistent/model/folder")
    with pytest.raises(Exception, match="minimum"):  # the slider's own bounds check
        analyze(client, sample, model, ratio_value=0)
    with pytest.raises(Exception, match="not in the list of choices"):
        analyze(client, sample, model, score_type_value="Z")
    summary, *_ = analyze(client, sample, model, response="It is red.")
    assert "tokens" in summary  # still serving


def test_unreadable_images_give_messages(app, sample, tmp_path):
    url, model = app
    client = Client(url, verbose=False)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    cut = tmp_path / "cut.png"
    cut.write_bytes(open(sample.image_path, "rb").read()[:80])
    for path, message in ((text, "not an image"), (cut, "truncated|corrupt|decode")):
        with pytest.raises(Exception, match=message):
            client.predict(
                image_path=handle_file(str(path)),
                question_text=sample.question,
                response_text="",
                model_name=model,
                **SETTINGS,
                api_name="/analyze",
            )


def test_upload_over_the_limit_is_rejected(app):
    url, _ = app
    reply = httpx.post(
        url + "gradio_api/upload",
        files={"files": ("big.png", b"0" * (1024 * 1024 + 10), "image/png")},
        timeout=30,
    )
    assert reply.status_code == 413
    assert "size" in reply.text.lower()


def test_concurrent_sessions_do_not_see_each_other(app, sample):
    url, model = app
    answers = {"a": "It is red.", "b": "The square is blue and small."}
    results: dict[str, str] = {}

    def user(name: str) -> None:
        client = Client(url, verbose=False)
        analyze(client, sample, model, response=answers[name])
        summary, heatmap, scatter, table, *_ = client.predict(
            ratio_value=0.5,
            alpha_value=0.7,
            score_type_value="D",
            scope_value="response",
            token_index=None,
            api_name="/rescore",
        )
        results[name] = "".join(str(row[1]) for row in table["data"])

    threads = [threading.Thread(target=user, args=(n,)) for n in answers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert set(results) == {"a", "b"}
    for name, text in answers.items():
        assert results[name].replace("\u2423", " ").replace(" ", "") == text.replace(" ", "")
