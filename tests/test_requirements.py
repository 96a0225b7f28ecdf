"""Every third-party module a test imports is installed by requirements-dev.txt (listed
there or required by what is listed), or the test skips it with `pytest.importorskip`:
a fresh environment made by `python dev.py test` has no other packages."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {"tests", "vepo_viz", "app"}


def requirement_names(path: Path) -> set[str]:
    names: set[str] = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r"):
            names |= requirement_names(path.parent / line[2:].strip())
        elif line:
            names.add(canonicalize_name(Requirement(line).name))
    return names


def closure(names: set[str]) -> set[str]:
    """The distributions `names` install, following their requirements (markers evaluated,
    no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def test_imports(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(top-level modules imported, modules passed to pytest.importorskip)."""
    imported, skipped = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "importorskip"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            skipped.add(node.args[0].value.split(".")[0])
    return imported, skipped


test_imports.__test__ = False  # a helper, not a test


def unlisted_imports() -> dict[str, list[str]]:
    """{module: [test files]} for third-party modules neither installed by
    requirements-dev.txt nor skipped where they are imported."""
    installed = closure(requirement_names(ROOT / "requirements-dev.txt"))
    providers = metadata.packages_distributions()
    missing: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        imported, skipped = test_imports(ast.parse(path.read_text()))
        for module in sorted(imported - skipped - LOCAL - set(sys.stdlib_module_names)):
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            if not dists & installed:
                missing.setdefault(module, []).append(path.name)
    return missing


def test_every_test_import_is_a_dev_requirement():
    assert unlisted_imports() == {}


def test_the_check_finds_an_unlisted_import(tmp_path, monkeypatch):
    """The check's own power: IPython is found through requirements-dev.txt's ipython,
    and is reported once that line is gone."""
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert re.search(r"^ipython==", dev, re.MULTILINE)
    (tmp_path / "requirements.txt").write_text((ROOT / "requirements.txt").read_text())
    (tmp_path / "requirements-dev.txt").write_text(
        re.sub(r"^ipython==.*$", "", dev, flags=re.MULTILINE)
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("import IPython\nimport numpy\n")
    assert unlisted_imports() == {"IPython": ["test_x.py"]}
