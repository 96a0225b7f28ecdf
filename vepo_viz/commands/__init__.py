"""Subcommands of `vepo-viz`: each module has `register(subparsers)` (see vepo_viz.cli)."""
