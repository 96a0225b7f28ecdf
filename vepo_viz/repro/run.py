"""Mini-reproduction: token-selection rules x seeds on the embedded model, same steps and data.

    python -m vepo_viz.repro --init tiny --out runs/repro15 \
        --rules all entropy vepo random --seeds 0 1 2 3 4 --steps 40 --jobs 2 \
        --families read --difficulty 1.0 --scan 16 --mine 48 48 --profile 32 --end-profile 16 \
        --set prompts_per_step=4 group_size=8 temperature=1.3 lr=2e-4 eval_every=10 \
              max_new_tokens=32 ckpt_every=10 \
        --figures docs/figures --doc docs/mini_reproduction.md

(docs/mini_reproduction.md has the exact command, data and results.)

Each (rule, seed) is one `vepo-viz train` process (TRL's GRPOTrainer with the vepo-viz
plug-in; run folder OUT/RULE-sSEED); for a given
seed every rule sees the same prompts in the same order and starts from the same weights.
--jobs runs that many processes at once, one torch thread each. Finished runs are skipped
when the script is run again (killed ones resume from their checkpoint). --mine builds
the data first (repro.pool: prompts with headroom), --profile measures the starting model
on it (repro.profile: what each rule selects, VEPO's premise). At the end it writes
OUT/summary.json, the tables (repro.summary, repro.doc: held-out accuracy with mean, std,
range and 95% interval over seeds), with --figures the curves averaged over seeds, and
with --doc the blocks of docs/mini_reproduction.md.

--init takes a model folder, or an SFT training checkpoint (a ckpt.pt state dict of
vepo_viz.tiny.train; --like names the model folder of the same architecture, default the
embedded model), exported to OUT/init first: an early checkpoint leaves the headroom a
short RL run needs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from vepo_viz.repro.doc import RULE_COLORS, markdown_profile_table, markdown_table
from vepo_viz.repro.profile import selection_profile
from vepo_viz.repro.summary import extra_eval, grid_span_s, mean_curves, summarise
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.jobs import RunPaths, read_status

__all__ = [
    "RULE_COLORS",
    "export_sft_checkpoint",
    "main",
    "markdown_profile_table",
    "markdown_table",
    "run_grid",
    "selection_profile",
    "summarise",
]

POLL_S = 5.0
"""Seconds between checks of the grid's running processes."""

COMMAND = "python -m vepo_viz.repro"
"""The grid's command as OUT/command.txt, summary.json and the doc's command block write it."""

_OLD_COMMAND = "python -m vepo_viz.train.repro "
"""The same command in a command.txt written before the mini-reproduction left train/."""


def grid_command(path: Path) -> str:
    """The command a grid was started with (its OUT/command.txt), under today's module name."""
    text = path.read_text().strip()
    if text.startswith(_OLD_COMMAND):
        text = f"{COMMAND} {text[len(_OLD_COMMAND) :]}"
    return text


def export_sft_checkpoint(state_path: str | Path, like: str | Path, out: str | Path) -> Path:
    """A model folder from a tiny-model SFT ckpt.pt: the weights of `state_path` in the
    architecture and with the processor of the model folder `like` (e.g. the embedded
    model, the end of the same SFT run)."""
    import torch

    from vepo_viz.models import load_model

    vlm = load_model(str(like), device="cpu", cache=False)  # a private copy: overwritten
    model = vlm.model
    state = torch.load(str(state_path), weights_only=False, map_location="cpu")
    model.load_state_dict(state["model"])
    out = Path(out)
    model.save_pretrained(out)
    vlm.processor.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    (out / "sft_source.json").write_text(
        json.dumps({"checkpoint": str(state_path), "sft_step": int(state.get("step", -1))})
    )
    return out


def _parse_sets(items: list[str]) -> dict:
    """key=value pairs, values read as TOML scalars (numbers, true/false, "strings")."""
    from vepo_viz.train.config import _tomllib

    tomllib = _tomllib()
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def run_grid(
    init: str,
    out: Path,
    rules: list[str],
    seeds: list[int],
    steps: int,
    jobs: int,
    settings: dict,
) -> list[Path]:
    """Start every (rule, seed) run, at most `jobs` at once; wait for all. Run folders."""
    pending = []
    for seed in seeds:
        for rule in rules:
            run_dir = out / f"{rule}-s{seed}"
            cfg = TrainConfig.from_dict(
                {
                    "threads": 1,
                    **settings,
                    "model": init,
                    "out": str(run_dir),
                    "selection": rule,
                    "seed": seed,
                    "steps": steps,
                }
            )
            run_dir.mkdir(parents=True, exist_ok=True)
            cfg_path = run_dir / "config.toml"
            if read_status(run_dir).get("state") != "finished":
                cfg_path.write_text(cfg.to_toml())
                pending.append((run_dir, cfg_path))
    running: list[tuple[Path, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < jobs:
            run_dir, cfg_path = pending.pop(0)
            log = RunPaths(run_dir).log.open("ab")
            command = [sys.executable, "-m", "vepo_viz", "train", "--config", str(cfg_path)]
            running.append(
                (run_dir, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            )
            log.close()
            print(f"started {run_dir.name}", flush=True)
        time.sleep(POLL_S)
        for item in list(running):
            run_dir, process = item
            if process.poll() is not None:
                running.remove(item)
                state = read_status(run_dir).get("state")
                print(f"{run_dir.name}: exit {process.returncode} ({state})", flush=True)
    return [out / f"{rule}-s{seed}" for seed in seeds for rule in rules]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--init", required=True, help="model folder, or an SFT ckpt.pt")
    parser.add_argument(
        "--like",
        help="model folder whose architecture and processor an SFT ckpt.pt --init uses "
        "(default: the embedded model)",
    )
    parser.add_argument("--out", default="runs/repro")
    parser.add_argument("--rules", nargs="+", default=["all", "entropy", "vepo", "random"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="TrainConfig key=value pairs")
    parser.add_argument("--figures", help="folder for PNG curves (e.g. docs/figures)")
    parser.add_argument(
        "--doc", help="Markdown file whose repro blocks are rewritten (docs/mini_reproduction.md)"
    )
    parser.add_argument("--summarise-only", action="store_true")
    parser.add_argument(
        "--pool-per-family",
        type=int,
        default=0,
        help="export a fixed training pool (this many train-split prompts per family) and a "
        "held-out set to OUT/data, train on the pool and evaluate on the held-out set (which "
        "adds --extra-eval pool=...)",
    )
    parser.add_argument("--heldout-per-family", type=int, default=40)
    parser.add_argument(
        "--mine",
        type=int,
        nargs=2,
        metavar=("TRAIN", "HELDOUT"),
        help="instead of --pool-per-family: mine a training pool and a held-out set of that "
        "many prompts each whose sampled group (the --set group_size and temperature) has "
        "nonzero advantage (vepo_viz.repro.pool), at --difficulty",
    )
    parser.add_argument("--difficulty", type=float, default=1.0, help="suite difficulty (--mine)")
    parser.add_argument(
        "--profile",
        type=int,
        default=32,
        help="prompts of the training data whose sampled responses every rule's selection is "
        "compared on, with the premise numbers, before the grid (0 = skip)",
    )
    parser.add_argument(
        "--end-profile",
        type=int,
        default=0,
        help="prompts on which each rule's final model (seed --seeds[0]) is profiled under "
        "its own rule after the grid (0 = skip)",
    )
    parser.add_argument(
        "--scan",
        type=int,
        default=0,
        help="before mining: profile this many train-split prompts of EVERY suite family at "
        "--difficulty (headroom and the premise numbers per family; 0 = skip)",
    )
    parser.add_argument("--families", nargs="+", default=["color", "compare", "count", "spatial"])
    parser.add_argument(
        "--extra-eval",
        nargs="*",
        default=[],
        help="NAME=path.jsonl: greedy accuracy of the initial and every final model on it",
    )
    return parser


def _data(args, out: Path, init: str, settings: dict) -> dict:
    """The fixed pool and held-out set the grid uses (exported or mined); pools.json info."""
    pools = {}
    if args.mine:
        from vepo_viz.repro.pool import build_pools

        pools = build_pools(
            init, out / "data", args.families, args.difficulty, *args.mine, settings
        )
        pool, heldout = pools["train"]["path"], pools["heldout"]["path"]
        n_eval = pools["heldout"]["kept"]
    elif args.pool_per_family:
        from vepo_viz.tasks import export_jsonl

        pool = out / "data" / "pool" / "train_pool.jsonl"
        heldout = out / "data" / "heldout" / "heldout.jsonl"
        export_jsonl(pool, "train", args.pool_per_family, args.families)
        export_jsonl(heldout, "heldout", args.heldout_per_family, args.families)
        n_eval = args.heldout_per_family * len(args.families)
    else:
        return pools
    settings.update(data=str(pool), eval_data=str(heldout), n_eval=n_eval)
    args.extra_eval = [f"pool={pool}", *args.extra_eval]
    return pools


def _cached(path: Path, build):
    """JSON at `path`, built (and stored) when missing: a rerun skips finished parts."""
    if path.exists():
        return json.loads(path.read_text())
    value = build()
    path.write_text(json.dumps(value, indent=2))
    return value


def _end_profiles(args, out: Path, settings: dict) -> dict:
    """Each rule's own final model (first seed): what that rule trains on at the end."""
    result = {}
    for rule in args.rules:
        final = RunPaths(out / f"{rule}-s{args.seeds[0]}").final
        if not (final / "config.json").exists():
            continue
        profile = selection_profile(
            str(final), settings["data"], settings, [rule], n_prompts=args.end_profile
        )
        result[rule] = {**profile[rule], "headroom": profile["headroom"]}
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    init = args.init
    if init.endswith(".pt"):
        from vepo_viz.tiny import DEFAULT_MODEL

        init = str(export_sft_checkpoint(init, args.like or DEFAULT_MODEL, out / "init"))
    settings = _parse_sets(args.set)
    scan = None
    if args.scan:
        from vepo_viz.repro.pool import scan_families

        scan_rules = list(dict.fromkeys([*args.rules, "entropy", "vepo"]))
        scan = _cached(
            out / "scan.json",
            lambda: scan_families(init, args.difficulty, args.scan, settings, scan_rules),
        )
    pools = _data(args, out, init, settings)
    profile = None
    if args.profile and settings.get("data"):
        profile = _cached(
            out / "profile.json",
            lambda: selection_profile(
                init, settings["data"], settings, args.rules, n_prompts=args.profile
            ),
        )
        print(markdown_profile_table(profile))
    command = f"{COMMAND} " + shlex.join(argv or sys.argv[1:])
    if not args.summarise_only:
        (out / "command.txt").write_text(command + "\n")  # the grid's own command
    t0 = time.time()
    if not args.summarise_only:
        run_grid(init, out, args.rules, args.seeds, args.steps, args.jobs, settings)
    summary = summarise(out, args.rules, args.seeds)
    summary.update(grid_wall_s=time.time() - t0, init=init, settings=settings, jobs=args.jobs)
    started = out / "command.txt"
    summary["command"] = grid_command(started) if started.exists() else command
    if args.summarise_only:
        summary["summarise_command"] = command
    summary["pools"] = pools
    if profile is not None:
        summary["profile"] = profile
    if scan is not None:
        summary["scan"] = scan
    previous = out / "summary.json"
    # A rerun skips finished runs: the grid's wall time is the span of its runs.
    summary["grid_span_s"] = grid_span_s(out, list(summary["runs"]))
    if args.summarise_only:
        summary["grid_wall_s"] = summary["grid_span_s"]
    summary["extra_eval"] = {}
    for item in args.extra_eval:
        name, _, path = item.partition("=")
        summary["extra_eval"][name] = extra_eval(
            init, out, args.rules, args.seeds, name, path, settings
        )
    if args.end_profile and settings.get("data"):
        summary["end_profile"] = _cached(
            out / "end_profile.json", lambda: _end_profiles(args, out, settings)
        )
    previous.write_text(json.dumps(summary, indent=2))
    print(markdown_table(summary))
    if args.figures:
        from vepo_viz.repro.doc import write_figures

        for path in write_figures(mean_curves(out, args.rules, args.seeds), args.figures):
            print(f"figure {path}")
    if args.doc:
        from vepo_viz.repro.doc import write_doc

        print(f"{args.doc}: rewrote {', '.join(write_doc(args.doc, summary))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
