"""Output paths checked before the work, and OS errors on them as clear messages.

A finished analysis (or batch, or checkpoint) must never be lost to a bad `--out`: the
commands call `check_output_path` before any model work, and write through `writing`,
which turns an OSError (permission, disk full, a folder where a file should be, a
read-only disk) into an `OutputPathError` (a VepoError: one line, exit status 2).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vepo_viz.errors import VepoError


class OutputPathError(VepoError, OSError):
    """An output path that cannot be written (says why and what to do)."""


def check_output_path(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """`path` as a Path, if a file can be written there (its missing parent folders can
    be created); else an OutputPathError. Nothing is created."""
    out = Path(path).expanduser()
    if str(path).strip() == "":
        raise OutputPathError(f"{what} is empty: give a file name such as result.json")
    if out.is_dir():
        raise OutputPathError(
            f"{what} {out} is a folder; give a file name such as {out / 'result.json'}"
        )
    if out.exists():
        if not os.access(out, os.W_OK):
            raise OutputPathError(f"{what} {out} exists and is read-only (permission denied)")
        return out
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(
            f"{what} {out}: {ancestor} is a file, not a folder, so nothing can be written below it"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"{what} {out}: the folder {ancestor} is not writable (permission denied); choose "
            "a folder you can write to"
        )
    return out


def describe(error: OSError, path: str | os.PathLike[str], action: str = "write") -> str:
    """One line saying why `action` on `path` failed and what to do."""
    reasons = {
        errno.ENOSPC: "no space left on the device; free some space or choose another place",
        errno.EDQUOT: "the disk quota is exceeded; free some space or choose another place",
        errno.EACCES: "permission denied; choose a place you can write to",
        errno.EPERM: "permission denied; choose a place you can write to",
        errno.EROFS: "the file system is read-only; choose another place",
        errno.EISDIR: "it is a folder; give a file name inside it",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENAMETOOLONG: "the name is too long",
    }
    reason = reasons.get(error.errno, error.strerror or type(error).__name__)
    return f"cannot {action} {path}: {reason}"


@contextmanager
def writing(path: str | os.PathLike[str], action: str = "write") -> Iterator[None]:
    """Run a block that writes `path`; an OSError in it becomes an OutputPathError."""
    try:
        yield
    except OutputPathError:
        raise
    except OSError as error:
        raise OutputPathError(describe(error, path, action)) from error
