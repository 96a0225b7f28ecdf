"""`vepo-viz tiny-train`, `vepo-viz tiny-eval`, `vepo-viz suite`: the embedded model and its data."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from vepo_viz.tiny.recipe import add_arguments

    p = subparsers.add_parser("tiny-train", help="train the embedded tiny VLM on the task suite")
    add_arguments(p)
    p.set_defaults(func=_train)

    p = subparsers.add_parser("tiny-eval", help="evaluate the embedded model (prints JSON)")
    p.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    p.add_argument("--n-per-family", type=int, default=100)
    p.add_argument("--n-token-per-family", type=int, default=40)
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.set_defaults(func=_eval)

    p = subparsers.add_parser("suite", help="export the procedural task suite as JSONL + images")
    p.add_argument("out", help="JSONL path; images go to images/ beside it")
    p.add_argument("--split", default="heldout", choices=["train", "heldout"])
    p.add_argument("--n-per-family", type=int, default=20)
    p.add_argument("--difficulty", type=float, default=0.5)
    p.add_argument("--families", nargs="*", default=None)
    p.set_defaults(func=_suite)


def _train(args: argparse.Namespace) -> int:
    from vepo_viz.tiny.train import TrainConfig, train

    fields = TrainConfig.__dataclass_fields__
    final = train(TrainConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    print(f"saved {final}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from vepo_viz.tiny.evaluate import main

    argv = [
        "--n-per-family",
        str(args.n_per_family),
        "--n-token-per-family",
        str(args.n_token_per_family),
    ]
    argv += ["--model", args.model] if args.model else []
    argv += ["--out", args.out] if args.out else []
    return main(argv)


def _suite(args: argparse.Namespace) -> int:
    from vepo_viz.errors import VepoInputError
    from vepo_viz.tasks import export_jsonl

    try:
        path = export_jsonl(args.out, args.split, args.n_per_family, args.families, args.difficulty)
    except ValueError as error:
        raise VepoInputError(str(error)) from error
    print(f"wrote {path}")
    return 0
