"""`vepo-viz analyze`: one image + question (+ response) -> per-token table and a saved result.

vepo-viz analyze --image chart.png --question "Which bar is tallest?"
vepo-viz analyze --image chart.png --question "..." --response "The blue bar." --out r.json
vepo-viz analyze --image chart.png --question "..." --group 8 --answer 7 --out group.json
"""

from __future__ import annotations

import argparse

from vepo_viz import settings
from vepo_viz.commands import common
from vepo_viz.limits import FLAG_PREFIX, RequestLimits


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (a clear message otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = no table), got {value}")
    return value


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "analyze",
        help="score the tokens of one response (generated or pasted)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--image", required=True, help="path to the image")
    parser.add_argument("--question", required=True, help="the question about the image")
    parser.add_argument(
        "--response", default=None, help="a response to score (default: the model generates one)"
    )
    parser.add_argument("--out", default=None, help="write the full result as JSON here")
    parser.add_argument(
        "--max-rows",
        type=non_negative_int,
        default=200,
        help="tokens shown in the table (default 200; 0 = none)",
    )
    add_group_arguments(parser.add_argument_group("a GRPO group (vepo_viz.group)"))
    common.add_model_arguments(parser)
    common.add_settings_arguments(parser)
    settings.add_flags(
        parser.add_argument_group("limits of one analysis"), RequestLimits, prefix=FLAG_PREFIX
    )
    parser.set_defaults(func=run)
    return parser


def add_group_arguments(group) -> None:
    from vepo_viz.data.verifiers import VERIFIERS
    from vepo_viz.train.rules import RULES, SCALE_REWARDS

    group.add_argument(
        "--group",
        type=int,
        default=None,
        metavar="G",
        help="sample G responses and show what one GRPO step credits to each token",
    )
    group.add_argument("--answer", default=None, help="the reference answer the verifier checks")
    group.add_argument(
        "--verifier", default="auto", choices=VERIFIERS.choices(), help="answer verifier"
    )
    group.add_argument(
        "--scale-rewards", default="group", choices=SCALE_REWARDS, help="TRL's scale_rewards"
    )
    group.add_argument(
        "--methods",
        nargs="+",
        default=["entropy", "vepo"],
        choices=RULES.choices(),
        help="token rules whose credit is shown (default: entropy vepo)",
    )
    group.add_argument(
        "--figure", default=None, help="also write the group figure (.pdf/.svg/.png)"
    )


def run(args: argparse.Namespace) -> int:
    if args.group is not None:
        return run_group(args)
    from vepo_viz.analysis import analyze
    from vepo_viz.io_errors import check_output_path, writing
    from vepo_viz.models.images import load_image
    from vepo_viz.render import notices

    config = common.settings_from_args(args)
    limits = RequestLimits(**settings.given_values(args, RequestLimits, prefix=FLAG_PREFIX))
    out = check_output_path(args.out) if args.out else None  # before the work: never lost
    image = load_image(args.image)  # before the (slow) model load: fail fast on a bad file
    model = common.load_model_from_args(args)
    result = analyze(model, image, args.question, args.response, config, limits=limits)
    source = "generated" if result.generated else "pasted"
    for line in notices.warnings(result):  # before the result, where it cannot be missed
        print(f"WARNING: {line}")
    print(f"model:    {result.model_id} ({model.family.label}, {model.device}, {model.dtype})")
    print(f"question: {result.question}")
    print(f"response ({source}, {len(result)} tokens): {result.response}")
    print()
    print(common.token_table(result, args.max_rows))
    print()
    print(
        f"selected: {int(result.selected_vepo.sum())} by {config.scoring.score_type} (VEPO) and "
        f"{int(result.selected_entropy.sum())} by entropy; overlap (Jaccard) "
        f"{result.overlap():.2f}; VEPO picks below median entropy: "
        f"{common.percent(result.low_entropy_share())}"
    )
    print("\n".join(notices.text_lines(result)[len(notices.warnings(result)) :]))
    print(f"time: {result.timing.get('total', 0.0):.2f} s")
    if out is not None:
        with writing(out):
            path = result.save(out)
        print(f"wrote {path}")
    return 0


def run_group(args: argparse.Namespace) -> int:
    """`--group G`: the group's rewards, advantages and per-method credit, as text."""
    from vepo_viz.errors import VepoInputError
    from vepo_viz.group import analyze_group
    from vepo_viz.io_errors import check_output_path, writing
    from vepo_viz.models.images import load_image
    from vepo_viz.render.group import save_group_figure

    if args.response is not None:
        raise VepoInputError("--group samples its own responses: leave out --response")
    config = common.settings_from_args(args)
    limits = RequestLimits(**settings.given_values(args, RequestLimits, prefix=FLAG_PREFIX))
    limits.check_group(args.group)
    out = check_output_path(args.out) if args.out else None
    figure = check_output_path(args.figure) if args.figure else None
    image = load_image(args.image)
    model = common.load_model_from_args(args)
    group = analyze_group(
        model, image, args.question, args.answer, args.group, seed=config.seed,
        settings=config, scale_rewards=args.scale_rewards, verifier=args.verifier, limits=limits,
    )  # fmt: skip
    for line in group.warnings:
        print(f"WARNING: {line}")
    credits = {m: group.credit(m) for m in args.methods}
    print(f"model:    {group.model_id}")
    print(f"question: {group.question}")
    print(f"answer:   {group.answer if group.answer is not None else '(none: rewards unknown)'}")
    print()
    for i in group.order:
        r = group.responses[i]
        print(
            f"reward {group.rewards[i]:.3g}  advantage {group.advantages[i]:+.3f}  {r.response!r}"
        )
        for m, c in credits.items():
            pushed = [
                f"{r.tokens[t]!r}{c.credit[i, t]:+.2f}" for t in range(len(r)) if c.credit[i, t]
            ]
            print(f"    {m:8} {' '.join(pushed) or '(no credit)'}")
    print()
    print("\n".join(group.summary(args.methods).lines()))
    print(f"time: {group.timing.get('total', 0.0):.2f} s")
    if out is not None:
        with writing(out):
            print(f"wrote {group.save(out)}")
    if figure is not None:
        with writing(figure):
            print(f"wrote {save_group_figure(group, figure, args.methods)}")
    return 0
