"""`vepo-viz train`: start or resume a GRPO run from a TOML file and/or flags.

    vepo-viz train --config run.toml
    vepo-viz train --selection entropy --steps 40 --out runs/train/entropy
    python -m vepo_viz train --config run.toml --steps 80     # flags override the file

Every TrainConfig field is a flag (--group-size, --kl-beta, ...). Running the same command
again on a run folder with checkpoints resumes it with the same data order.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from vepo_viz.errors import VepoError
from vepo_viz.train.config import TrainConfig


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _field_docs() -> dict[str, str]:
    """Field docstrings of TrainConfig (the text under each field), for --help."""
    import ast
    import inspect

    from vepo_viz.train import config as config_module

    tree = ast.parse(inspect.getsource(config_module))
    docs: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "TrainConfig":
            body = node.body
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file of settings (flags override it)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config as TOML and exit"
    )
    docs = _field_docs()
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name.startswith("_"):
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{docs.get(f.name, '')} (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(flag, type=_bool, metavar="BOOL", default=None, help=help_text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs="*", default=None, help=help_text)
        else:
            parser.add_argument(flag, type=type(default), default=None, help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = [f.name for f in dataclasses.fields(TrainConfig) if not f.name.startswith("_")]
    overrides = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if args.config:
        return TrainConfig.from_toml(args.config, **overrides)
    return TrainConfig.from_dict(overrides)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        if args.print_config:
            print(cfg.to_toml(), end="")
            return 0
        from vepo_viz.train.trainer import train

        result = train(cfg)
    except VepoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.final_dir is not None:
        print(f"finished: model saved to {result.final_dir}")
    else:
        print(f"stopped after step {result.steps_done}; run the same command again to resume")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `train` subcommand to the `vepo-viz` parser's subparsers."""
    parser = subparsers.add_parser(
        "train",
        help="GRPO training with token selection (VEPO, entropy, VPPO, random, all)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m vepo_viz.train.cli ...` (the same as `vepo-viz train ...`)."""
    parser = argparse.ArgumentParser(prog="vepo-viz")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
