"""The app's temporary files: per session, deleted when the session ends; a batch's
working copy deleted when the batch finishes; uploads linked, not copied."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import gradio as gr
import pytest
from PIL import Image

from tests.ui_fixtures import FakeBackend
from vepo_viz.ui import tempfiles
from vepo_viz.ui.controls import API_SUFFIX, ControlValues
from vepo_viz.ui.errors import scrub_paths


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "scene.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(path)
    return str(path)


def test_session_folders_are_deleted_when_the_session_ends():
    a = tempfiles.new_dir("export", session="sess-a")
    b = tempfiles.new_dir("export", session="sess-b")
    (a / "x.json").write_text("{}")
    assert a.parent == tempfiles.root() / "sess-a"
    tempfiles.end_session("sess-a")
    assert not a.exists() and b.is_dir()
    tempfiles.end_session("../../etc")  # a client-sent hash never leaves the root
    assert tempfiles.root().is_dir()


def test_session_of_the_current_request(monkeypatch):
    from gradio.context import LocalContext

    token = LocalContext.request.set(SimpleNamespace(session_hash="abc/../x"))
    try:
        folder = tempfiles.new_dir("export")
    finally:
        LocalContext.request.reset(token)
    assert folder.parent.name == "abc____x"  # one safe path component
    assert tempfiles.current_session() == tempfiles.SHARED


def test_scratch_is_deleted_however_the_block_ends():
    with pytest.raises(RuntimeError):
        with tempfiles.scratch("batch") as folder:
            (folder / "f").write_text("x")
            raise RuntimeError("boom")
    assert not folder.exists()


def test_the_app_deletes_a_session_on_unload_and_ages_gradio_files(monkeypatch):
    import time

    from vepo_viz.ui.app import build_app

    monkeypatch.setattr(tempfiles, "END_GRACE_S", 0.1)  # the app waits END_GRACE_S

    demo = build_app(FakeBackend(), samples=[])
    assert demo.delete_cache == tempfiles.CACHE_CLEANUP
    unload = [fn for fn in demo.fns.values() if any(t[1] == "unload" for t in fn.targets)]
    assert len(unload) == 1
    folder = tempfiles.new_dir("export", session="closing")
    from gradio.helpers import special_args

    # gradio hands the closing session's request to the unload function
    args, *_ = special_args(unload[0].fn, inputs=[], request=gr.Request(session_hash="closing"))
    unload[0].fn(*args)
    deadline = time.time() + 5
    while folder.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not folder.exists()


def _batch_fn(demo):
    return next(fn for fn in demo.fns.values() if fn.api_name == "batch").fn


def test_batch_uploads_are_linked_and_deleted_when_the_batch_finishes(tmp_path, image_path):
    from vepo_viz.ui.app import build_app

    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "image": "scene.png", "question": "Q?"}) + "\n")
    before = {p for p in tempfiles.root().rglob("batch-*")}
    settings = {f + API_SUFFIX: v for f, v in vars(ControlValues()).items()}
    status, *_, parquet = _batch_fn(build_app(FakeBackend(), samples=[]))(
        "uploaded JSONL",
        1,
        [],
        [str(jsonl), image_path],
        "embedded",
        progress=lambda *a, **k: None,
        **settings,
    )
    assert "1" in status and parquet
    assert {p for p in tempfiles.root().rglob("batch-*")} == before  # working copy gone


def test_uploads_are_hard_links(tmp_path, image_path):
    from vepo_viz.ui import batch as hbatch

    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(json.dumps({"image": "scene.png", "question": "Q?"}) + "\n")
    rows = hbatch.jsonl_rows([str(jsonl), image_path], tmp_path / "work")
    assert rows[0].image.stat().st_ino == os.stat(image_path).st_ino


def test_messages_never_show_temp_paths():
    import tempfile

    upload = f"{tempfile.gettempdir()}/gradio/0123abcd/cat photo.png"
    text = scrub_paths(f"cannot decode image {upload.replace(' ', '_')} (truncated?)")
    assert text == "cannot decode image cat_photo.png (truncated?)"
    assert scrub_paths("no model folder at /home/me/model") == "no model folder at /home/me/model"


def test_a_session_end_with_grace_waits_and_new_work_cancels_it():
    # unload also fires when a client's heartbeat drops under load: its files must outlive
    # a grace period, and work of the same session keeps them.
    import time

    kept = tempfiles.new_dir("export", session="sess-grace")
    tempfiles.end_session("sess-grace", grace_s=0.3)
    assert kept.is_dir()  # not at once
    tempfiles.new_dir("export", session="sess-grace")  # the session is back: cancelled
    time.sleep(0.6)
    assert kept.is_dir()
    tempfiles.end_session("sess-grace", grace_s=0.2)
    deadline = time.time() + 5
    while kept.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not kept.exists()  # gone once the grace period passed without new work
