"""Settings dataclasses as the one source of CLI flags, help texts and UI labels.

Every setting of vepo-viz is a field of a frozen dataclass (`ScoringConfig`,
`PerturbConfig`, `AnalysisSettings`, `TrainConfig`) with a docstring under it and a
default. This module reads those fields, so that a command-line flag, its `--help` text,
its default and the choices a registry allows are never written a second time:

    add_flags(parser, PerturbConfig, rename={"mode": "perturb"})   # --perturb, --sigma, ...
    values = given_values(args, PerturbConfig, rename={"mode": "perturb"})

Flags default to None ("not given"), so a value from a file or a parent config is only
overridden by what the user typed; the help text shows the dataclass default.

No torch here: building a parser, and `--help`, stays fast.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field name: the docstring written under it} of a dataclass (its own and its bases').

    Python keeps no attribute docstrings, so they are read from the class's source once.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # pragma: no cover - built without source
            continue
        body = ast.parse(source).body[0].body
        for stmt, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(getattr(nxt, "value", None), ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _scalar_type(cls: type, name: str) -> Any:
    """The type of a field with Optional removed (int | None -> int)."""
    hint = typing.get_type_hints(cls)[name]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else str
    return hint


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _is_table(hint: Any) -> bool:
    return hint is dict or typing.get_origin(hint) is dict


def parse_key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE of a table flag; VALUE is read as a TOML value (true, 0.3, "x", [1, 2]),
    else kept as the text itself."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        return key.strip(), raw
    try:
        return key.strip(), tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), raw


def _is_nested(cls: type, name: str) -> bool:
    hint = _scalar_type(cls, name)
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def flag_fields(cls: type, skip: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The fields of `cls` that become flags: public, not nested configs, not skipped."""
    return [
        f
        for f in dataclasses.fields(cls)
        if not f.name.startswith("_") and f.name not in skip and not _is_nested(cls, f.name)
    ]


def help_text(cls: type, f: dataclasses.Field) -> str:
    """The flag help of a field: its docstring, the choices (of its registry, or its
    `metadata={"choices": ...}` tuple), the default."""
    text = field_docs(cls).get(f.name, "")
    registry = f.metadata.get("registry")
    if registry is not None:
        text = f"{text} Choices: {registry.help()}."
    elif f.metadata.get("choices"):
        text = f"{text} Choices: {', '.join(map(str, f.metadata['choices']))}."
    default = field_default(f)
    shown = "unset" if default is None else repr(default)
    return f"{text} (default: {shown})".strip().replace("%", "%%")


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    prefix: str = "",
    rename: Mapping[str, str] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """One flag per field of `cls` (`--prefix-field-name`, or `--renamed`), default None."""
    rename = rename or {}
    for f in flag_fields(cls, skip):
        flag = "--" + (rename.get(f.name) or prefix + f.name).replace("_", "-")
        dest = _dest(f.name, prefix, rename)
        hint = _scalar_type(cls, f.name)
        kwargs: dict[str, Any] = {"default": None, "dest": dest, "help": help_text(cls, f)}
        if hint is bool:
            kwargs.update(type=parse_bool, metavar="BOOL")
        elif _is_table(hint):
            kwargs.update(type=parse_key_value, action="append", metavar="KEY=VALUE")
        elif typing.get_origin(hint) is tuple or hint is tuple:
            kwargs.update(nargs="*")
        elif hint in (int, float, str):
            kwargs.update(type=hint)
        parser.add_argument(flag, **kwargs)


def _dest(name: str, prefix: str, rename: Mapping[str, str]) -> str:
    return (rename.get(name) or prefix + name).replace("-", "_")


def given_values(
    args: argparse.Namespace,
    cls: type,
    *,
    prefix: str = "",
    rename: Mapping[str, str] | None = None,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """{field: value} of the flags `add_flags` made that the user gave (not None)."""
    rename = rename or {}
    out = {}
    for f in flag_fields(cls, skip):
        value = getattr(args, _dest(f.name, prefix, rename), None)
        if value is not None and _is_table(_scalar_type(cls, f.name)):
            out[f.name] = dict(value)
        elif value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


class LegacyMapping:
    """The legacy dict view of a settings dataclass: `config["seed"]`, `config.get(...)`.

    Results used to carry their settings as a dict; code and saved notebooks that index
    them like one keep working. Read-only: the dataclass stays the one source (a nested
    config comes back as the typed object, which indexes the same way).
    """

    __slots__ = ()

    _legacy_keys: ClassVar[Mapping[str, str]] = {}
    """{legacy key: the nested config field that holds it now}, e.g. "score_type" ->
    "scoring": `settings["score_type"]` reads `settings.scoring.score_type`."""

    def __getitem__(self, key: str) -> Any:
        if isinstance(key, str) and key in self._legacy_keys:
            return getattr(getattr(self, self._legacy_keys[key]), key)
        if not isinstance(key, str) or key not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        fields = self.__dataclass_fields__  # type: ignore[attr-defined]
        return isinstance(key, str) and (key in fields or key in self._legacy_keys)

    def __iter__(self):
        return iter(self.keys())

    def keys(self) -> list[str]:
        return list(self.__dataclass_fields__)  # type: ignore[attr-defined]


def build_config(cls: type, data: dict[str, Any], what: str | None = None):
    """`cls(**data)` for a settings dataclass, every problem as a VepoInputError: unknown
    keys (listed), and the dataclass's own validation (its message)."""
    from vepo_viz.errors import VepoInputError

    unknown = set(data) - set(cls.__dataclass_fields__)
    if unknown:
        what = what or cls.__name__
        raise VepoInputError(f"unknown {what} setting(s): {', '.join(sorted(unknown))}")
    try:
        return cls(**data)
    except VepoInputError:
        raise
    except ValueError as error:
        raise VepoInputError(str(error)) from error
