"""`python app.py`: build the app and serve it (127.0.0.1:7860 unless told otherwise).

Served beyond this machine (another --host, or --share) the app asks for a login when
given users (--auth, --auth-file, or VEPO_VIZ_AUTH / VEPO_VIZ_AUTH_FILE) and applies the
remote serving policy (vepo_viz.ui.policy): no training unless --allow-train, only the
listed --models. Without a login it warns at start and shows a banner in the page.

Bounded work: every analysis is held to `RequestLimits` (--limit-* flags), the model
queue runs one model job at a time and holds at most --queue-size waiting events (a
user past it is told the queue is full), and the model cache keeps --cache-max-models.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from vepo_viz import settings
from vepo_viz.limits import FLAG_PREFIX, CacheSettings, RequestLimits
from vepo_viz.ui.auth import Credentials
from vepo_viz.ui.policy import ServingPolicy

CACHE_FLAG_PREFIX = "cache_"
"""Prefix of the model-cache flags (--cache-max-models, --cache-max-gb)."""

QUEUE_SIZE = 64
"""Default most events waiting in the app's queue (--queue-size)."""

log = logging.getLogger("vepo_viz.ui")


def _env_list(name: str) -> list[str]:
    """Comma-separated entries of an environment variable ([] when unset)."""
    return [e.strip() for e in os.environ.get(name, "").split(",") if e.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="vepo-viz: which tokens of a VLM's answer look at the image (Gradio app).",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("VEPO_VIZ_HOST", "127.0.0.1"),
        help="interface to bind (default 127.0.0.1; 0.0.0.0 serves the network, e.g. in Docker)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("VEPO_VIZ_PORT", "7860")),
        help="port (default 7860)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also open a public gradio.live link (off by default)"
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("VEPO_VIZ_MODEL", "embedded"),
        help="model the app starts with: 'embedded', a local folder or a hub id "
        "(e.g. Qwen/Qwen2.5-VL-3B-Instruct)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps"
    )
    parser.add_argument(
        "--dtype",
        default=None,
        help="float32, bfloat16 or float16 (default: bf16 on GPU, fp32 on CPU)",
    )
    parser.add_argument(
        "--preload", action="store_true", help="load the model before serving (fail fast)"
    )
    _serving_flags(parser)
    _run_flags(parser)
    _bound_flags(parser)
    return parser


def _run_flags(parser: argparse.ArgumentParser) -> None:
    """--max-runs and --keep-runs, from vepo_viz.train.app_runs.RunLimits (--keep-runs
    alone means true)."""
    from vepo_viz.settings import add_flags
    from vepo_viz.train.app_runs import RunLimits

    group = parser.add_argument_group("training runs started from the app")
    group.add_argument(
        "--runs-dir",
        default=None,
        help="folder the Train tab starts its runs in and lists runs from "
        "(default: $VEPO_VIZ_RUNS_DIR, else runs/train under the working directory)",
    )
    add_flags(group, RunLimits)
    keep = parser._option_string_actions["--keep-runs"]
    keep.nargs, keep.const = "?", True


def run_limits_from_args(args: argparse.Namespace):
    """The RunLimits of parsed app.py flags."""
    from vepo_viz.settings import build_config, given_values
    from vepo_viz.train.app_runs import RunLimits

    return build_config(RunLimits, given_values(args, RunLimits))


def _bound_flags(parser: argparse.ArgumentParser) -> None:
    """The bounds of one request, of the queue and of the model cache."""
    settings.add_flags(
        parser.add_argument_group("limits of one analysis"), RequestLimits, prefix=FLAG_PREFIX
    )
    group = parser.add_argument_group("queue and model cache")
    group.add_argument(
        "--queue-size",
        type=int,
        default=QUEUE_SIZE,
        help=f"most events waiting in the queue; more are refused (default {QUEUE_SIZE})",
    )
    settings.add_flags(group, CacheSettings, prefix=CACHE_FLAG_PREFIX)


def bounds_from_args(args: argparse.Namespace) -> tuple[RequestLimits, CacheSettings]:
    """The request limits and cache bounds of parsed app.py flags (VepoInputError if bad)."""
    from vepo_viz.errors import VepoInputError

    if args.queue_size < 1:
        raise VepoInputError(f"--queue-size must be >= 1, got {args.queue_size}")
    limits = RequestLimits(**settings.given_values(args, RequestLimits, prefix=FLAG_PREFIX))
    cache = settings.given_values(args, CacheSettings, prefix=CACHE_FLAG_PREFIX)
    return limits, CacheSettings(**cache)


def _serving_flags(parser: argparse.ArgumentParser) -> None:
    """Who may log in and what they may do (see vepo_viz.ui.policy)."""
    group = parser.add_argument_group("serving beyond this machine")
    group.add_argument(
        "--auth",
        action="append",
        metavar="USER:PASSWORD",
        default=None,
        help="a user who may log in (repeatable; default: $VEPO_VIZ_AUTH, comma-separated). "
        "The command line is visible to other local users: prefer --auth-file",
    )
    group.add_argument(
        "--auth-file",
        action="append",
        metavar="FILE",
        default=None,
        help="a file of user:password lines; a password may be a pbkdf2_sha256$... hash from "
        "`python -m vepo_viz.ui.auth hash --user NAME` (default: $VEPO_VIZ_AUTH_FILE)",
    )
    group.add_argument(
        "--allow-train",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let the Train tab start training processes (default: on for 127.0.0.1, off "
        "when served beyond it; $VEPO_VIZ_ALLOW_TRAIN=1 turns it on)",
    )
    group.add_argument(
        "--models",
        action="append",
        metavar="NAME",
        default=None,
        help="models a remote user may choose besides 'embedded' and --model: names, hub ids, "
        "model folders, or a folder of model folders (repeatable or comma-separated; "
        "default: $VEPO_VIZ_MODELS). Given on 127.0.0.1, the list applies there too",
    )


def runs_root_from_args(args: argparse.Namespace) -> str:
    """The Train tab's runs folder: --runs-dir, else $VEPO_VIZ_RUNS_DIR, else
    train.jobs.DEFAULT_RUNS_ROOT."""
    given = getattr(args, "runs_dir", None) or os.environ.get("VEPO_VIZ_RUNS_DIR")
    if given:
        return given
    from vepo_viz.train.jobs import DEFAULT_RUNS_ROOT

    return str(DEFAULT_RUNS_ROOT)


def serving_from_args(
    args: argparse.Namespace, runs_root: str | None = None
) -> tuple[ServingPolicy, Credentials]:
    """The serving policy and the users of parsed app.py flags (environment as fallback)."""
    entries = args.auth if args.auth is not None else _env_list("VEPO_VIZ_AUTH")
    files = args.auth_file if args.auth_file is not None else _env_list("VEPO_VIZ_AUTH_FILE")
    credentials = Credentials.parse(entries, files)
    models = args.models if args.models is not None else _env_list("VEPO_VIZ_MODELS")
    allow_train = args.allow_train
    if allow_train is None and os.environ.get("VEPO_VIZ_ALLOW_TRAIN"):
        allow_train = os.environ["VEPO_VIZ_ALLOW_TRAIN"].strip().lower() in ("1", "true", "yes")
    if runs_root is None:
        runs_root = runs_root_from_args(args)
    policy = ServingPolicy.from_launch(
        host=args.host,
        share=args.share,
        model=args.model,
        models=[m for entry in models for m in entry.split(",")],
        allow_train=allow_train,
        login=bool(credentials),
        runs_root=runs_root,
    )
    return policy, credentials


def auth_kwargs(credentials: Credentials) -> dict:
    """The login arguments of demo.launch() ({} without users: no login page)."""
    if not credentials:
        return {}
    return {"auth": credentials.check, "auth_message": "vepo-viz: log in to use this server"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from vepo_viz.errors import VepoInputError
    from vepo_viz.models.loading import configure_cache
    from vepo_viz.ui.app import build_app, launch_kwargs
    from vepo_viz.ui.backend import ModelBackend, model_key

    try:
        runs_root = runs_root_from_args(args)
        policy, credentials = serving_from_args(args, runs_root)
        run_limits = run_limits_from_args(args)
        limits, cache = bounds_from_args(args)
    except VepoInputError as error:
        print(f"app.py: {error}", file=sys.stderr)
        return 2
    if policy.warning:
        log.warning("WARNING: %s", policy.warning)
    configure_cache(cache)
    backend = ModelBackend(device=args.device, dtype=args.dtype, limits=limits)
    if args.preload:
        backend.model(model_key(args.model))
    demo = build_app(
        backend,
        default_model=args.model,
        policy=policy,
        run_limits=run_limits,
        runs_root=runs_root,
    )
    demo.queue(default_concurrency_limit=4, max_size=args.queue_size)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        **auth_kwargs(credentials),
        **launch_kwargs(),
    )
    return 0
