"""Serving beyond this machine, without a server: users and hashes (vepo_viz.ui.auth), the
serving policy (vepo_viz.ui.policy), app.py's flags and environment, the page's banner and
the About tab's policy, and the Train tab's refusals."""

from __future__ import annotations

import argparse
import re

import gradio as gr
import pytest

from tests.test_train_tab import FORM
from tests.ui_fixtures import FakeBackend
from vepo_viz.errors import VepoInputError
from vepo_viz.ui import auth
from vepo_viz.ui import train_tab as tt
from vepo_viz.ui.app import build_app
from vepo_viz.ui.errors import UserFacingError
from vepo_viz.ui.launch import auth_kwargs, build_parser, main, serving_from_args
from vepo_viz.ui.policy import (
    REFUSED_MODEL,
    REFUSED_TRAIN,
    REFUSED_TRAIN_PATHS,
    REFUSED_TRAIN_TRL,
    PolicyBackend,
    ServingPolicy,
    is_loopback,
)

ENV = ("VEPO_VIZ_AUTH", "VEPO_VIZ_AUTH_FILE", "VEPO_VIZ_MODELS", "VEPO_VIZ_ALLOW_TRAIN")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def serving(*argv: str, runs_root: str = "runs/train"):
    return serving_from_args(build_parser().parse_args(list(argv)), runs_root=runs_root)


def test_hash_round_trip_and_constant_time_check(tmp_path):
    line = auth.hash_password("s3cret:with$signs", iterations=1000, salt="abc")
    assert line.startswith("pbkdf2_sha256$1000$abc$") and "s3cret" not in line
    assert auth.hash_password("x", 1000, "abc") == auth.hash_password("x", 1000, "abc")
    assert auth.hash_password("x", 1000) != auth.hash_password("x", 1000)  # random salt
    path = tmp_path / "users.txt"
    path.write_text(f"# team\n\nalice:{line}\nbob: plain pw \n")
    users = auth.Credentials.parse(["carol:c"], [path])
    assert set(users.users) == {"alice", "bob", "carol"}
    assert users.check("alice", "s3cret:with$signs")
    assert not users.check("alice", "s3cret") and not users.check("alice", line)
    assert users.check("bob", " plain pw ") and not users.check("bob", "plain pw")
    assert users.check("carol", "c") and not users.check("nobody", "c")
    assert not users.check("carol", "") and not auth.Credentials()


def test_bad_auth_lines_name_the_line_not_the_password(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text("alice:ok\nbob-without-colon-hunter2\n")
    with pytest.raises(VepoInputError, match=r"line 2: expected user:password") as info:
        auth.Credentials.parse(files=[path])
    assert "hunter2" not in str(info.value)
    with pytest.raises(VepoInputError, match="pbkdf2_sha256\\$<iterations>"):
        auth.Credentials.parse(["alice:pbkdf2_sha256$12$x"])
    with pytest.raises(VepoInputError, match="cannot read the auth file"):
        auth.Credentials.parse(files=[tmp_path / "missing.txt"])


def test_hash_helper_prints_a_line_app_py_accepts(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("pw 1\n"))
    assert auth.main(["hash", "--user", "dana", "--iterations", "2000", "--password-stdin"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("dana:pbkdf2_sha256$2000$")
    (tmp_path / "users").write_text(line + "\n")
    policy, users = serving("--host", "0.0.0.0", "--auth-file", str(tmp_path / "users"))
    assert users.check("dana", "pw 1") and policy.login
    assert auth_kwargs(users)["auth"] == users.check and auth_kwargs(auth.Credentials()) == {}


def test_loopback_keeps_everything_and_remote_is_restricted():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    local, _ = serving()
    assert local == ServingPolicy(host="127.0.0.1") and not local.remote
    assert local.allow_train and local.models is None and local.warning is None
    assert local.allows_model("/etc") and local.allows_model("any/hub-id")

    remote, users = serving("--host", "0.0.0.0", "--model", "Qwen/Qwen2.5-VL-3B-Instruct")
    assert remote.remote and not remote.allow_train and not users
    assert remote.models == ("Qwen/Qwen2.5-VL-3B-Instruct",)
    assert remote.allows_model("embedded") and remote.allows_model("")
    assert remote.allows_model(" Qwen/Qwen2.5-VL-3B-Instruct ")
    for name in ("Qwen/Qwen2-VL-2B-Instruct", "/etc", "/nonexistent", "../x", "~/models/a"):
        assert not remote.allows_model(name)
        with pytest.raises(UserFacingError) as info:
            remote.check_model(name)
        assert str(info.value) == REFUSED_MODEL
    assert "WITHOUT a login" in remote.warning and "--auth" in remote.warning

    shared, _ = serving("--share", "--auth", "a:b", "--allow-train")
    assert shared.remote and shared.login and shared.allow_train and shared.warning is None
    assert not serving("--no-allow-train")[0].allow_train


def test_models_lists_and_folders(tmp_path):
    folder = tmp_path / "models"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "config.json").write_text("{}")
    single = tmp_path / "single"
    single.mkdir()
    (single / "config.json").write_text("{}")
    policy, _ = serving(
        "--host", "10.0.0.5", "--models", f"{folder},org/m1", "--models", str(single)
    )
    assert policy.models == ("org/m1", str(single)) and policy.model_folders == (str(folder),)
    assert policy.allows_model(str(folder / "a")) and policy.allows_model(str(folder / "new"))
    assert policy.allows_model("org/m1") and policy.allows_model(str(single))
    assert not policy.allows_model(str(folder)) and not policy.allows_model(str(single / "x"))
    assert not policy.allows_model(f"{folder}/a/../../single")
    assert not policy.allows_model(str(tmp_path / "models-evil"))
    text = policy.describe()
    assert "`org/m1`" in text and f"folders inside `{folder}`" in text and "switched off" in text


def test_environment_for_docker(monkeypatch, tmp_path):
    (tmp_path / "users").write_text("eve:pw\n")
    monkeypatch.setenv("VEPO_VIZ_AUTH_FILE", str(tmp_path / "users"))
    monkeypatch.setenv("VEPO_VIZ_AUTH", "fred:x,gina:y")
    monkeypatch.setenv("VEPO_VIZ_MODELS", "org/a,org/b")
    monkeypatch.setenv("VEPO_VIZ_ALLOW_TRAIN", "1")
    policy, users = serving("--host", "0.0.0.0", runs_root=str(tmp_path / "runs"))
    assert set(users.users) == {"eve", "fred", "gina"} and users.check("gina", "y")
    assert policy.models == ("org/a", "org/b") and policy.allow_train
    assert policy.model_folders == (str(tmp_path / "runs"),)  # trained models may be opened
    policy, users = serving("--host", "0.0.0.0", "--auth", "h:z", "--no-allow-train")
    assert set(users.users) == {"eve", "h"} and not policy.allow_train


def test_bad_auth_flag_stops_app_py_before_serving(capsys):
    assert main(["--host", "0.0.0.0", "--auth", "no-colon"]) == 2
    assert "expected user:password" in capsys.readouterr().err


def _component(demo: gr.Blocks, elem_id: str):
    found = [c for c in demo.blocks.values() if getattr(c, "elem_id", None) == elem_id]
    return found[0] if found else None


def test_banner_and_about_tab_show_the_policy():
    open_remote = ServingPolicy.from_launch(host="0.0.0.0")
    demo = build_app(FakeBackend(), samples=[], policy=open_remote)
    assert "WITHOUT a login" in _component(demo, "vv-warning").value
    assert "served to: beyond this machine" in _component(demo, "vv-policy").value
    assert _component(demo, "vv-train-off") is not None
    start = _component(demo, "vv-train-start")
    assert start.interactive is False

    demo = build_app(FakeBackend(), samples=[])  # the old call: this machine's policy
    assert _component(demo, "vv-warning") is None and _component(demo, "vv-train-off") is None
    assert "this machine only" in _component(demo, "vv-policy").value
    names = {dep["api_name"] for dep in demo.config["dependencies"] if dep.get("api_name")}
    assert {"analyze", "compare", "batch", "on_start", "lambda", "on_open"} <= names


def test_policy_backend_refuses_before_the_backend_runs():
    fake = FakeBackend()
    guarded = PolicyBackend(fake, ServingPolicy.from_launch(host="0.0.0.0", models=["org/ok"]))
    with pytest.raises(UserFacingError, match=re.escape(REFUSED_MODEL)):
        guarded.analyze("/etc", None, "q", None, None)
    assert fake.calls == []
    guarded.analyze("org/ok", None, "q", "r", __import__("vepo_viz").AnalysisSettings())
    assert [c["model"] for c in fake.calls] == ["org/ok"] and guarded.calls is fake.calls


def test_train_form_refusals(tmp_path):
    off = ServingPolicy.from_launch(host="0.0.0.0")
    with pytest.raises(UserFacingError, match=re.escape(REFUSED_TRAIN)):
        tt.start_from_form(tmp_path, *FORM.values(), policy=off)
    assert list(tmp_path.iterdir()) == []
    on = ServingPolicy.from_launch(host="0.0.0.0", allow_train=True, runs_root=tmp_path)
    cfg = tt.form_config(tmp_path, **FORM, policy=on)  # tiny = the embedded model
    assert cfg.out == str(tmp_path / "r1")
    with pytest.raises(UserFacingError, match=re.escape(REFUSED_MODEL)):
        tt.form_config(tmp_path, **{**FORM, "model": "/etc"}, policy=on)
    with pytest.raises(UserFacingError, match=re.escape(REFUSED_MODEL)):
        tt.form_config(tmp_path, **{**FORM, "extra": 'model = "/etc"'}, policy=on)
    for extra in ('out = "/tmp/elsewhere"', 'data = "/etc/passwd"', 'eval_data = "/x.jsonl"'):
        with pytest.raises(UserFacingError) as info:
            tt.form_config(tmp_path, **{**FORM, "extra": extra}, policy=on)
        assert str(info.value) == REFUSED_TRAIN_PATHS
    with pytest.raises(UserFacingError) as info:  # TRL options reach services and files
        tt.form_config(tmp_path, **{**FORM, "extra": 'trl = { report_to = ["wandb"] }'}, policy=on)
    assert str(info.value) == REFUSED_TRAIN_TRL
    local = tt.form_config(tmp_path, **{**FORM, "extra": 'out = "/tmp/elsewhere"'})
    assert local.out == "/tmp/elsewhere"  # this machine: as before


def test_parser_keeps_its_old_defaults():
    args = build_parser().parse_args([])
    assert isinstance(args, argparse.Namespace)
    assert args.auth is None and args.auth_file is None and args.allow_train is None
    assert args.models is None


def test_docker_and_readme_show_the_authenticated_setup():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    dockerfile, readme = (root / "Dockerfile").read_text(), (root / "README.md").read_text()
    for text in (dockerfile, readme):
        assert "-e VEPO_VIZ_AUTH_FILE=/run/secrets/vepo-viz-users" in text
        assert "/run/secrets/vepo-viz-users:ro" in text and "--password-stdin" in text
    # nothing secret in the image: no ENV/ARG with credentials, no users file copied in
    assert not re.search(r"^\s*(ENV|ARG)\s+VEPO_VIZ_AUTH", dockerfile, re.M)
    assert not re.search(r"^\s*COPY\s+.*users", dockerfile, re.M)
    assert "--auth-file" in readme and "--allow-train" in readme and "--models" in readme


def test_app_py_warns_when_served_without_a_login(monkeypatch, caplog):
    launched = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: launched.append(kw))
    with caplog.at_level("WARNING", logger="vepo_viz.ui"):
        assert main(["--host", "0.0.0.0", "--port", "7861"]) == 0
    assert "WITHOUT a login" in caplog.text and "auth" not in launched[0]
    caplog.clear()
    assert main(["--host", "0.0.0.0", "--auth", "ann:pw"]) == 0
    assert "WITHOUT a login" not in caplog.text
    assert launched[1]["auth"]("ann", "pw") and not launched[1]["auth"]("ann", "x")
    assert launched[1]["server_name"] == "0.0.0.0"
