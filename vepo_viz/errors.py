"""Exceptions whose message is meant for the user (the CLI and the UI show it, no traceback).

Everything vepo-viz rejects on purpose raises a `VepoError` subclass. Anything else that
escapes is a bug.
"""

from __future__ import annotations


class VepoError(Exception):
    """Base class: a problem the user can fix; str(error) says what and how."""


class VepoInputError(VepoError, ValueError):
    """Bad input: unreadable image, empty question, a response with no tokens, bad settings."""


class ModelLoadError(VepoError, OSError):
    """The model cannot be loaded: not found (locally / offline), no image input, bad folder."""


class NumericsError(VepoError, ArithmeticError):
    """The model produced NaN/inf logits (often a float16 overflow: try float32 or bf16)."""
