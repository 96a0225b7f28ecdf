"""The app served as if it were remote, through gradio_client and plain HTTP: a real server
on 127.0.0.1 with the policy and login of `app.py --host 0.0.0.0 --auth-file ...` (the
fake model backend: the refusals must come before any model is looked for)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from gradio_client import Client, handle_file

from tests.test_e2e_client import SETTINGS
from tests.test_train_tab import FORM
from tests.ui_fixtures import FakeBackend, serve_app
from vepo_viz.train.jobs import DEFAULT_RUNS_ROOT
from vepo_viz.ui.auth import hash_password
from vepo_viz.ui.launch import auth_kwargs, build_parser, serving_from_args
from vepo_viz.ui.policy import REFUSED_MODEL, REFUSED_TRAIN
from vepo_viz.ui.samples import load_samples

pytestmark = pytest.mark.slow

ALICE = ("alice", "correct horse battery staple")
BOB = ("bob", "plain-pw")


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """(url, backend, policy) of a server started with a non-loopback host's policy."""
    users = tmp_path_factory.mktemp("secrets") / "users.txt"
    users.write_text(f"{ALICE[0]}:{hash_password(ALICE[1], iterations=2000)}\nbob:plain-pw\n")
    args = build_parser().parse_args(
        ["--host", "0.0.0.0", "--auth-file", str(users), "--models", "org/allowed-vlm"]
    )
    policy, credentials = serving_from_args(args)
    assert policy.remote and policy.login and not policy.allow_train
    backend = FakeBackend()
    demo, url = serve_app("embedded", backend=backend, policy=policy, auth=auth_kwargs(credentials))
    yield url, backend, policy
    demo.close()


def analyze(client: Client, model: str):
    sample = load_samples()[0]
    return client.predict(
        image_path=handle_file(sample.image_path),
        question_text=sample.question,
        response_text="",
        model_name=model,
        **SETTINGS,
        api_name="/analyze",
    )


def test_no_login_no_api_access(remote):
    url, backend, _ = remote
    with pytest.raises(Exception, match="(?i)login|credentials"):
        Client(url, verbose=False)
    for path in ("config", "gradio_api/info"):
        assert httpx.get(url + path, timeout=10).status_code == 401
    call = httpx.post(url + "gradio_api/call/analyze", json={"data": []}, timeout=10)
    assert call.status_code == 401
    assert backend.calls == []


@pytest.mark.parametrize(
    "user,password", [("alice", "wrong"), ("alice", ""), ("mallory", ALICE[1]), ("bob", "Plain-pw")]
)
def test_a_wrong_password_is_refused(remote, user, password):
    url, _, _ = remote
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=(user, password), verbose=False)
    login = httpx.post(url + "login", data={"username": user, "password": password}, timeout=30)
    assert login.status_code >= 400 and not login.cookies


def test_a_logged_in_user_analyzes_with_an_allowed_model(remote):
    url, backend, _ = remote
    for user in (ALICE, BOB):
        client = Client(url, auth=user, verbose=False)
        summary, *_ = analyze(client, "embedded")
        assert "tokens**" in summary
    client = Client(url, auth=ALICE, verbose=False)
    summary, *_ = analyze(client, "org/allowed-vlm")
    assert "tokens**" in summary
    assert [c["model"] for c in backend.calls][-3:] == ["embedded", "embedded", "org/allowed-vlm"]


def test_no_training_without_allow_train(remote):
    url, _, _ = remote
    client = Client(url, auth=ALICE, verbose=False)
    name = f"remote-{uuid.uuid4().hex[:8]}"
    form = {**FORM, "name": name}
    with pytest.raises(Exception, match=REFUSED_TRAIN.split("(")[0].strip()):
        client.predict(*form.values(), api_name="/on_start")
    assert not (DEFAULT_RUNS_ROOT / name).exists()
    with pytest.raises(Exception, match="training from the app is switched off"):
        client.predict([], api_name="/stop")


def test_models_outside_the_list_get_one_answer(remote, tiny_model_dir, tmp_path):
    url, backend, _ = remote
    client = Client(url, auth=BOB, verbose=False)
    n_calls = len(backend.calls)
    not_a_vlm = tmp_path / "not-a-vlm"
    not_a_vlm.mkdir()
    candidates = [
        str(tiny_model_dir("qwen2_vl")),  # a real VLM folder on the server
        str(not_a_vlm),  # an existing folder that is no model
        "/etc",
        "/etc/passwd",  # an existing file
        str(tmp_path / "no-such-folder"),  # nothing there
        "someone/some-hub-model",  # a hub id
        "org/allowed-vlm/../../etc",
    ]
    messages = set()
    for name in candidates:
        with pytest.raises(Exception) as info:
            analyze(client, name)
        messages.add(str(info.value))
    assert len(messages) == 1, messages
    (message,) = messages
    assert REFUSED_MODEL in message
    assert not any(name in message for name in candidates)
    assert len(backend.calls) == n_calls  # refused before the backend (disk, network) ran


def test_compare_and_batch_apply_the_same_model_rule(remote, tmp_path):
    url, backend, _ = remote
    client = Client(url, auth=ALICE, verbose=False)
    sample = load_samples()[0]
    n_calls = len(backend.calls)
    messages = set()
    for b in ("/etc", str(tmp_path / "missing")):
        with pytest.raises(Exception) as info:
            client.predict(
                what="model",
                a="embedded",  # allowed, but B is refused before A runs
                b=b,
                image_path=handle_file(sample.image_path),
                question_text=sample.question,
                response_text="",
                model_name="embedded",
                **SETTINGS,
                api_name="/compare",
            )
        messages.add(str(info.value))
        with pytest.raises(Exception) as info:
            client.predict(
                source="built-in suite",
                n_per_family=1,
                families=["color"],
                files=[],
                model_name=b,
                **SETTINGS,
                api_name="/batch",
            )
        messages.add(str(info.value))
    assert len(backend.calls) == n_calls
    assert len(messages) == 1 and REFUSED_MODEL in messages.pop()
