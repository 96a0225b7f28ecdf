"""Two commands from a fresh clone: `python dev.py app` serves the app on the embedded
model, `python dev.py test` runs the test suite. Each creates and fills the project's
own virtual environment on first use (and again when a requirements file changes), so
nothing installed on the machine by hand is visible to it.

    python dev.py app [app.py flags]      e.g. python dev.py app --port 7861
    python dev.py test [pytest args]      e.g. python dev.py test -k golden
    python dev.py env [--dev]             only create/refresh the environment

The environment lives in `.venv/` (ignored by git); `VEPO_VIZ_VENV=/some/dir` puts it
elsewhere (CI uses a new temporary one). Standard library only: this file runs before
anything is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RUNTIME_REQUIREMENTS = ROOT / "requirements.txt"
DEV_REQUIREMENTS = ROOT / "requirements-dev.txt"
STAMP_NAME = "vepo-viz-installed.json"

# What each level installs: the runtime for the app, runtime + test tools for the tests.
LEVELS = {"runtime": (RUNTIME_REQUIREMENTS,), "dev": (RUNTIME_REQUIREMENTS, DEV_REQUIREMENTS)}


def venv_dir() -> Path:
    return Path(os.environ.get("VEPO_VIZ_VENV", ROOT / ".venv")).resolve()


def venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def torch_pin() -> str:
    """The torch requirement line of requirements.txt (installed first, on its own, so pip
    takes the pinned CPU build instead of resolving torch through another package)."""
    for line in RUNTIME_REQUIREMENTS.read_text().splitlines():
        if re.match(r"^torch\s*[=<>!~]", line.strip()):
            return line.split("#")[0].strip()
    raise SystemExit(f"no torch line in {RUNTIME_REQUIREMENTS}")


def install_commands(level: str) -> list[list[str]]:
    """The install steps (arguments after `python -m pip install`), as the README lists them."""
    requirements = DEV_REQUIREMENTS if level == "dev" else RUNTIME_REQUIREMENTS
    return [
        [torch_pin()],
        ["-r", str(requirements.relative_to(ROOT))],
        ["--no-deps", "-e", "."],
    ]


def fingerprint(level: str) -> str:
    digest = hashlib.sha256()
    for path in (*LEVELS[level], ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_env(level: str) -> Path:
    """Create the environment if missing and install `level` if its requirements changed
    since the last install; returns its Python."""
    folder = venv_dir()
    python = venv_python(folder)
    stamp_path = folder / STAMP_NAME
    stamp = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
    wanted = [name for name in LEVELS if name == level or (level == "dev" and name == "runtime")]
    if python.is_file() and all(stamp.get(name) == fingerprint(name) for name in wanted):
        return python
    if not python.is_file():
        print(f"dev.py: creating the environment in {folder}", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True, clear=True, system_site_packages=False).create(folder)
    print(f"dev.py: installing the {level} requirements (first use or changed)", file=sys.stderr)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for args in install_commands(level):
        cmd = [str(python), "-m", "pip", "install", "-q", *args]
        print("  $ python -m pip install " + " ".join(args), file=sys.stderr, flush=True)
        if subprocess.call(cmd, cwd=ROOT, env=env) != 0:
            raise SystemExit(f"dev.py: the install step failed: {' '.join(cmd)}")
    for name in wanted:
        stamp[name] = fingerprint(name)
    stamp_path.write_text(json.dumps(stamp, indent=1) + "\n")
    return python


def cpu_model() -> str:
    """The CPU's model name (x86 'model name', ARM 'CPU part'), for logs of float results."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "CPU part"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return f"{match.group(1).strip()} ({platform.machine()}, {os.cpu_count()} cores)"
    return platform.machine()


def run(python: Path, args: list[str]) -> int:
    """Run the environment's Python as an activated environment would (its bin/ first on
    PATH, so the tools it installed, e.g. hadolint, are found)."""
    env = dict(os.environ, VIRTUAL_ENV=str(python.parent.parent))
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    return subprocess.call([str(python), *args], cwd=ROOT, env=env)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in {"app", "test", "env"}:
        print(__doc__)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    command, rest = argv[0], argv[1:]
    if command == "env":
        ensure_env("dev" if "--dev" in rest else "runtime")
        return 0
    if command == "app":
        return run(ensure_env("runtime"), ["app.py", *rest])
    python = ensure_env("dev")
    print(f"CPU: {cpu_model()}", flush=True)
    run(
        python,
        [
            "-c",
            "import torch; print(f'torch {torch.__version__}, threads:', torch.get_num_threads())",
        ],
    )
    return run(python, ["-m", "pytest", "-q", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
