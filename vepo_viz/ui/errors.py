"""How the app shows a problem: a readable gr.Error, never a traceback.

`user_errors` wraps every handler: a problem the user can fix (VepoError, ValueError, bad
files) becomes a gr.Error with its message, anything else a short "unexpected error"
message; the traceback goes to the server log and the app keeps serving. Messages never
show the server's temporary paths (an upload's /tmp/gradio/<hash>/x.png reads "x.png").
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable

from vepo_viz.errors import VepoError
from vepo_viz.ui.messages import hide_paths

log = logging.getLogger("vepo_viz.ui")


class UserFacingError(Exception):
    """Raised by handlers for messages shown as-is (converted to gr.Error by the wrapper)."""


scrub_paths = hide_paths
"""`message` with every path under a temporary folder cut to its file name (one rule for
every error text: vepo_viz.ui.messages)."""


def _error(message: str):
    import gradio as gr

    return gr.Error(scrub_paths(message), print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Turn any exception of `fn` into a readable gr.Error (the app keeps serving)."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as error:
            error.message = hide_paths(str(error.message))
            raise
        except (UserFacingError, VepoError) as error:
            raise _error(str(error)) from error
        except (ValueError, KeyError, OSError) as error:
            log.info("rejected input in %s: %s", fn.__name__, error)
            raise _error(f"{error}") from error
        except MemoryError as error:
            raise _error(
                "out of memory: try a shorter max new tokens, a smaller image or a smaller model"
            ) from error
        except Exception as error:  # noqa: BLE001 - a user never sees a traceback
            log.error("unexpected error in %s:\n%s", fn.__name__, traceback.format_exc())
            raise _error(
                f"unexpected error ({type(error).__name__}: {error}). The app is still running; "
                "the server log has the details."
            ) from error

    return wrapper
