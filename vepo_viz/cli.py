"""Command line: `vepo-viz <command>` (also `python -m vepo_viz <command>`).

Each command lives in its own module with a `register(subparsers)` function that adds
its parser and sets `func` (called with the parsed args; returns the exit code). To add a
command, append its module to COMMANDS. Errors meant for the user (`VepoError`) print
one line and exit 2; set VEPO_VIZ_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS: tuple[str, ...] = (
    "vepo_viz.commands.analyze",
    "vepo_viz.commands.batch",
    "vepo_viz.commands.tiny",
    "vepo_viz.train.cli",
)
"""Modules that define `register(subparsers)`, in the order `--help` lists them."""

EXIT_USER_ERROR = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vepo-viz",
        description="Which tokens of a VLM's answer look at the image, and which ones RL trains on.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from vepo_viz.errors import VepoError

    try:
        return int(args.func(args) or 0)
    except VepoError as error:
        print(f"vepo-viz {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"vepo-viz {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - last resort: a message, not a traceback
        if os.environ.get("VEPO_VIZ_DEBUG"):
            raise
        print(
            f"vepo-viz {args.command}: unexpected error ({type(error).__name__}: {error}). "
            "This is a bug; rerun with VEPO_VIZ_DEBUG=1 for the traceback and report it.",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
