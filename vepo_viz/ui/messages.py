"""Error texts fit for the page: no server paths of uploaded files.

Gradio stores every upload under its temp folder (`GRADIO_TEMP_DIR`, else
<tmp>/gradio/<hash>/name.png), and error messages of Pillow, json and the loaders name
that path. The user uploaded "name.png", so that is what a message shows.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def temp_roots() -> list[str]:
    """Folders whose files a message names by file name only (longest first)."""
    roots = {os.path.realpath(tempfile.gettempdir()), tempfile.gettempdir()}
    if os.environ.get("GRADIO_TEMP_DIR"):
        roots.add(os.environ["GRADIO_TEMP_DIR"])
        roots.add(os.path.realpath(os.environ["GRADIO_TEMP_DIR"]))
    return sorted((r.rstrip("/\\") for r in roots if r), key=len, reverse=True)


def hide_paths(message: str) -> str:
    """`message` with every path inside a temp folder replaced by its file name."""
    for root in temp_roots():
        pattern = re.escape(root) + r"[/\\][^\s'\"`,;:()<>\[\]]*"
        message = re.sub(pattern, lambda m: Path(m.group(0).rstrip(".")).name or "file", message)
    return message
