"""`Registry`: one table per extension point, from which everything else is derived.

vepo-viz has six extension points: the views, i.e. counterfactual modes
(`perturb.MODES`), per-token signals (`models.engine.SIGNALS`), score types (`scoring.SCORE_TYPES`),
training selection rules (`train.rules.RULES`), answer verifiers
(`data.verifiers.VERIFIERS`) and VLM families (`models.families.FAMILIES`). Each is a
`Registry`: an ordered table of named entries. The UI's choices, the CLI's flags and
help, config validation and the docs read the table when they are built, so adding an
entry (one `register` call in the module that owns the table, plus its test) is all it
takes for every surface to offer it.

A registry behaves like the tuple of its names where the code used to have one
(`for name in SCORE_TYPES`, `name in SCORE_TYPES`, `list(SCORE_TYPES)`), and like a
mapping of entries by name (`SCORE_TYPES["D"]`).

Pure Python: no torch, no I/O, so the UI and the CLI can read a table cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

from vepo_viz.errors import VepoInputError


class Entry(Protocol):
    name: str
    description: str


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """An ordered table of named entries (each with `.name` and `.description`).

    Args:
        what: what an entry is, for messages ("score type", "counterfactual mode", ...).
        reference: the default entry's name (the paper's reference), named in messages.
    """

    def __init__(self, what: str, reference: str | None = None) -> None:
        self.what = what
        self.reference = reference
        self._entries: dict[str, E] = {}

    # -- building ----------------------------------------------------------------------

    def register(self, entry: E) -> E:
        """Add `entry` (its `.name` must be new). Returns it, so it can decorate."""
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} needs a non-empty string name, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> E:
        """Remove and return the entry `name` (tests use `registered` instead)."""
        return self._entries.pop(name)

    @contextmanager
    def registered(self, entry: E) -> Iterator[E]:
        """`with REGISTRY.registered(entry):` the entry exists inside the block only."""
        self.register(entry)
        try:
            yield entry
        finally:
            self.unregister(entry.name)

    # -- reading -----------------------------------------------------------------------

    def names(self, where: Callable[[E], bool] | None = None) -> tuple[str, ...]:
        """Entry names in registration order (those for which `where(entry)`, if given)."""
        return tuple(n for n, e in self._entries.items() if where is None or where(e))

    def view(self, where: Callable[[E], bool]) -> RegistryView:
        """A live, filtered view of the names (iterable, `in`, `len`), e.g. the pixel-space
        modes: entries registered later appear in it too."""
        return RegistryView(self, where)

    def entries(self) -> tuple[E, ...]:
        return tuple(self._entries.values())

    def get(self, name: str, default: E | None = None) -> E | None:
        return self._entries.get(name, default)

    def __getitem__(self, name: str) -> E:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise KeyError(self.unknown_message(name)) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"

    # -- derived surfaces --------------------------------------------------------------

    def unknown_message(self, name: object, names: tuple[str, ...] | None = None) -> str:
        names = self.names() if names is None else names
        ref = f" ({self.reference!r} is the reference)" if self.reference in names else ""
        return f"unknown {self.what} {name!r}; choose one of {', '.join(names)}{ref}"

    def check(self, name: object, where: Callable[[E], bool] | None = None) -> str:
        """`name` if it is a registered entry (satisfying `where`), else VepoInputError
        with the list of choices."""
        names = self.names(where)
        if not isinstance(name, str) or name not in names:
            raise VepoInputError(self.unknown_message(name, names))
        return name

    def choices(self, where: Callable[[E], bool] | None = None) -> list[tuple[str, str]]:
        """(label, name) pairs for a UI dropdown: "name: description"."""
        return [
            (f"{n}: {self._entries[n].description}" if self._entries[n].description else n, n)
            for n in self.names(where)
        ]

    def help(self, where: Callable[[E], bool] | None = None) -> str:
        """One line for a CLI flag's help: the choices, the reference marked."""
        names = self.names(where)
        return ", ".join(f"{n} (reference)" if n == self.reference else n for n in names)

    def markdown(self) -> str:
        """A Markdown table of the entries (for docs and the About tab)."""
        lines = [f"| {self.what} | description |", "|---|---|"]
        for entry in self._entries.values():
            mark = " (reference)" if entry.name == self.reference else ""
            lines.append(f"| `{entry.name}`{mark} | {entry.description} |")
        return "\n".join(lines)


class RegistryView:
    """The names of a registry's entries that satisfy a predicate, read at each use."""

    def __init__(self, registry: Registry, where: Callable[[Entry], bool]) -> None:
        self._registry, self._where = registry, where

    def _names(self) -> tuple[str, ...]:
        return self._registry.names(self._where)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __len__(self) -> int:
        return len(self._names())

    def __add__(self, other) -> tuple[str, ...]:
        return self._names() + tuple(other)

    def __repr__(self) -> str:
        return repr(self._names())
