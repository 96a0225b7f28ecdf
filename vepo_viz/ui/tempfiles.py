"""The app's temporary files: one folder per browser session, deleted when it ends.

Every download (exports, saved sessions, Parquet) and every batch's working copy lives
under one root folder of this process (`vepo-viz-app-*` in the system temp folder), in a
subfolder per gradio session. `end_session` (wired to `demo.unload`) deletes a session's
subfolder when its tab closes; `scratch` folders (a batch's uploads) are deleted when the
block ends; the whole root goes when the process exits. Gradio's own copies of uploads
and outputs are aged out by `gr.Blocks(delete_cache=...)` (`CACHE_CLEANUP`).
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_CLEANUP = (600, 3600)
"""gr.Blocks(delete_cache=(every s, older than s)): gradio's copies of uploads and
outputs are deleted every 10 minutes once an hour old."""

SHARED = "shared"
"""Subfolder of work done outside any session (a direct call of a handler)."""

END_GRACE_S = 120.0
"""Seconds between a session's end (demo.unload) and the deletion of its files. Gradio
also fires unload when a client's heartbeat stream drops under load, and a download of
the session's files may still be in flight then; new work of the session cancels it."""

_root: Path | None = None
_lock = threading.Lock()
_pending: dict[str, threading.Timer] = {}


def root() -> Path:
    """This process's folder of temporary files (made on first use, deleted at exit)."""
    global _root
    with _lock:
        if _root is None or not _root.is_dir():
            _root = Path(tempfile.mkdtemp(prefix="vepo-viz-app-"))
            atexit.register(shutil.rmtree, _root, True)
        return _root


def current_session() -> str:
    """The gradio session hash of the request being handled (SHARED outside one)."""
    try:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    except ImportError:  # pragma: no cover - gradio is a dependency of the app
        request = None
    session = getattr(request, "session_hash", None) if request is not None else None
    return _safe(session) if session else SHARED


def new_dir(prefix: str, session: str | None = None) -> Path:
    """A new folder for one output, inside the session's folder."""
    name = _safe(session or current_session())
    with _lock:
        timer = _pending.pop(name, None)
    if timer is not None:  # the session is still working: keep its files
        timer.cancel()
    folder = root() / name
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=folder))


def end_session(session: str | None, grace_s: float = 0.0) -> None:
    """Delete the files of a session that ended (its tab was closed): now, or after
    `grace_s` seconds unless the session makes new files before then."""
    if not session:
        return
    name = _safe(session)
    folder = root() / name
    if grace_s <= 0:
        shutil.rmtree(folder, ignore_errors=True)
        return
    timer = threading.Timer(grace_s, _delete_pending, (name, folder))
    timer.daemon = True
    with _lock:
        old = _pending.pop(name, None)
        _pending[name] = timer
    if old is not None:
        old.cancel()
    timer.start()


def _delete_pending(name: str, folder: Path) -> None:
    with _lock:
        if _pending.pop(name, None) is None:  # new work of the session cancelled it
            return
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A folder deleted when the block ends (however it ends)."""
    folder = new_dir(prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _safe(name: str) -> str:
    """`name` as one path component (a session hash comes from the client)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", str(name))[:64]
    return cleaned or SHARED
