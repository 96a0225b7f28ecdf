"""`vepo-viz analyze`: one image + question (+ response) -> per-token table and a saved result.

vepo-viz analyze --image chart.png --question "Which bar is tallest?"
vepo-viz analyze --image chart.png --question "..." --response "The blue bar." --out r.json
"""

from __future__ import annotations

import argparse

from vepo_viz.commands import common


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
        "--max-rows", type=int, default=200, help="tokens shown in the table (default 200)"
    )
    common.add_model_arguments(parser)
    common.add_settings_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from vepo_viz.analysis import analyze
    from vepo_viz.models.images import load_image
    from vepo_viz.render import notices

    settings = common.settings_from_args(args)
    image = load_image(args.image)  # before the (slow) model load: fail fast on a bad file
    model = common.load_model_from_args(args)
    result = analyze(model, image, args.question, response=args.response, settings=settings)
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
        f"selected: {int(result.selected_vepo.sum())} by {settings.score_type} (VEPO) and "
        f"{int(result.selected_entropy.sum())} by entropy; overlap (Jaccard) "
        f"{result.overlap():.2f}; VEPO picks below median entropy: "
        f"{common.percent(result.low_entropy_share())}"
    )
    print("\n".join(notices.text_lines(result)[len(notices.warnings(result)) :]))
    print(f"time: {result.timing.get('total', 0.0):.2f} s")
    if args.out:
        path = result.save(args.out)
        print(f"wrote {path}")
    return 0
