"""dev.py, the README's two commands: its install steps are the README's manual ones, it
installs on first use and when a requirements file changes, and not otherwise."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.golden import ROOT


@pytest.fixture
def dev(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("VEPO_VIZ_VENV", str(tmp_path / "venv"))
    return module


def test_the_install_steps_are_the_readmes(dev):
    readme = (ROOT / "README.md").read_text()
    steps = " && ".join(
        "pip install " + " ".join(args).replace(" -e .", " -e .")
        for args in dev.install_commands("dev")
    )
    assert f"    {steps}\n" in readme
    assert "    python dev.py app " in readme and "    python dev.py test " in readme
    assert dev.install_commands("dev")[0] == ["torch==2.13.0"]  # requirements.txt's pin


def test_installs_once_then_again_when_requirements_change(dev, monkeypatch):
    calls: list[list[str]] = []

    def fake_create(self, folder):
        python = dev.venv_python(dev.Path(folder))
        python.parent.mkdir(parents=True)
        python.write_text("")

    monkeypatch.setattr(dev.venv.EnvBuilder, "create", fake_create)
    monkeypatch.setattr(dev.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 0)
    dev.ensure_env("dev")
    assert len(calls) == 3 and calls[1][-2:] == ["-r", "requirements-dev.txt"]
    stamp = json.loads((dev.venv_dir() / dev.STAMP_NAME).read_text())
    assert set(stamp) == {"runtime", "dev"}
    dev.ensure_env("dev")
    dev.ensure_env("runtime")
    assert len(calls) == 3  # nothing changed: nothing installed
    monkeypatch.setattr(dev, "fingerprint", lambda level: "changed")
    dev.ensure_env("runtime")
    assert len(calls) == 6 and calls[4][-2:] == ["-r", "requirements.txt"]


def test_the_environment_has_no_system_site_packages(dev, monkeypatch):
    seen = {}

    def fake_init(self, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(dev.venv.EnvBuilder, "__init__", fake_init)
    with pytest.raises(SystemExit):
        dev.ensure_env("runtime")
    assert seen["system_site_packages"] is False and seen["clear"] is True


def test_help_and_bad_command(dev, capsys):
    assert dev.main(["--help"]) == 0 and "python dev.py app" in capsys.readouterr().out
    assert dev.main(["nonsense"]) == 2


def test_commands_run_with_the_environment_first_on_path(dev, monkeypatch):
    seen = {}
    monkeypatch.setattr(dev.subprocess, "call", lambda cmd, **kw: seen.update(kw) or 0)
    python = dev.venv_python(dev.venv_dir())
    assert dev.run(python, ["-c", "pass"]) == 0
    assert seen["env"]["PATH"].split(dev.os.pathsep)[0] == str(python.parent)
    assert seen["env"]["VIRTUAL_ENV"] == str(python.parent.parent)
