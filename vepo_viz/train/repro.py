"""Mini-reproduction: token-selection rules x seeds on the embedded model, same steps and data.

    python -m vepo_viz.train.repro --init tiny --out runs/repro \
        --rules all entropy vepo random --seeds 0 1 2 --steps 80 --jobs 2 \
        --pool-per-family 16 --heldout-per-family 40 --families color compare count spatial \
        --set prompts_per_step=8 group_size=8 lr=1e-4 eval_every=10 max_new_tokens=48 \
        --figures docs/figures

(docs/mini_reproduction.md has the exact command, data and results.)

Each (rule, seed) is one `vepo-viz train` process (TRL's GRPOTrainer with the vepo-viz
plug-in; run folder OUT/RULE-sSEED); for a given
seed every rule sees the same prompts in the same order and starts from the same weights.
--jobs runs that many processes at once, one torch thread each. Finished runs are skipped
when the script is run again (killed ones resume from their checkpoint). At the end it
writes OUT/summary.json, a Markdown table of held-out accuracy (mean, std and range over
seeds) and, with --figures, PNG curves averaged over seeds.

--init takes a model folder, or an SFT training checkpoint (a ckpt.pt state dict of
vepo_viz.tiny.train; --like names the model folder of the same architecture, default the
embedded model), exported to OUT/init first: an early checkpoint leaves the headroom a
short RL run needs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from vepo_viz.train.config import TrainConfig
from vepo_viz.train.jobs import RunPaths, read_metrics, read_status

POLL_S = 5.0
"""Seconds between checks of the grid's running processes."""

RULE_COLORS = {"all": "#7f7f7f", "entropy": "#1f77b4", "vepo": "#d62728", "random": "#2ca02c"}


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


def _column_mean(frame: pd.DataFrame, key: str) -> float | None:
    """Mean of a metrics column over steps; None where the run did not log it (TRL logs no
    selected-vs-all statistics for selection="all": every token is selected)."""
    if key not in frame or frame[key].isna().all():
        return None
    return float(frame[key].mean())


def summarise(out: Path, rules: list[str], seeds: list[int]) -> dict:
    """Held-out accuracy before/after per run, per rule mean/std/range, wall time."""
    runs = {}
    for rule in rules:
        for seed in seeds:
            df = read_metrics(out / f"{rule}-s{seed}")
            if df.empty or "heldout_acc" not in df:
                continue
            ev = df[df["heldout_acc"].notna()].sort_values("step")
            tr = df[df["reward"].notna()] if "reward" in df else pd.DataFrame()
            family_cols = [c for c in ev.columns if c.startswith("heldout_acc_")]
            runs[f"{rule}-s{seed}"] = {
                "rule": rule,
                "seed": seed,
                "acc_start": float(ev["heldout_acc"].iloc[0]),
                "acc_end": float(ev["heldout_acc"].iloc[-1]),
                "acc_end_family": {c[12:]: float(ev[c].iloc[-1]) for c in family_cols},
                "steps": int(tr["step"].max()) if not tr.empty else 0,
                "reward_first5": float(tr["reward"].head(5).mean()) if not tr.empty else None,
                "reward_last5": float(tr["reward"].tail(5).mean()) if not tr.empty else None,
                "wall_s": float(tr["elapsed_s"].max()) if "elapsed_s" in tr else None,
                "cpu_s": float(tr["process_cpu_s"].max()) if "process_cpu_s" in tr else None,
                "step_cpu_s": float(tr["step_s"].median()) if "step_s" in tr else None,
                **{
                    key: _column_mean(tr, key)
                    for key in ("entropy_selected", "entropy_all", "vis_selected", "vis_all")
                },
                **{
                    key: float(tr[key].mean())
                    for key in ("share_visual", "share_free", "share_template", "recall_visual")
                    if key in tr
                },
            }
    table = {}
    for rule in rules:
        ends = [r["acc_end"] for r in runs.values() if r["rule"] == rule]
        if not ends:
            continue
        table[rule] = {
            "n_seeds": len(ends),
            "acc_end_mean": statistics.mean(ends),
            "acc_end_std": statistics.stdev(ends) if len(ends) > 1 else 0.0,
            "acc_end_min": min(ends),
            "acc_end_max": max(ends),
            "acc_start_mean": statistics.mean(
                r["acc_start"] for r in runs.values() if r["rule"] == rule
            ),
            "reward_last5_mean": statistics.mean(
                r["reward_last5"] for r in runs.values() if r["rule"] == rule
            ),
        }
        for key in (
            "entropy_selected",
            "entropy_all",
            "vis_selected",
            "vis_all",
            "share_visual",
            "share_free",
            "recall_visual",
        ):
            values = [r[key] for r in runs.values() if r["rule"] == rule and r.get(key) is not None]
            table[rule][key] = statistics.mean(values) if values else None
    walls = [r["wall_s"] for r in runs.values() if r["wall_s"]]
    cpus = [r["cpu_s"] for r in runs.values() if r.get("cpu_s")]
    return {"runs": runs, "rules": table, "sum_run_wall_s": sum(walls), "sum_run_cpu_s": sum(cpus)}


def _load(model: str, cfg: TrainConfig):
    """A private copy of `model` (a folder, a hub id, or "tiny") as a models.VLM."""
    from vepo_viz.models import load_model
    from vepo_viz.train.trl_train import EMBEDDED_NAMES

    name = None if model in EMBEDDED_NAMES else model
    return load_model(
        name, device=cfg.device, dtype=None if cfg.dtype == "auto" else cfg.dtype, cache=False
    )


def _accuracy(model: str, prompts, cfg: TrainConfig) -> float:
    from vepo_viz.train.trl_data import evaluate

    vlm = _load(model, cfg)
    return evaluate(vlm.model, vlm.processor, prompts, cfg, vlm.max_image_pixels)["heldout_acc"]


def extra_eval(
    init: str, out: Path, rules: list[str], seeds: list[int], name: str, jsonl: str, settings: dict
) -> dict:
    """Greedy accuracy of the initial model and of every run's final model on `jsonl`
    (e.g. the training pool: how well each rule fitted the prompts it was rewarded on)."""
    from vepo_viz.train.data import load_jsonl

    prompts = load_jsonl(jsonl)
    base = TrainConfig.from_dict({**settings, "model": init, "n_eval": 0, "threads": 1})
    results = {"init": _accuracy(init, prompts, base)}
    for rule in rules:
        for seed in seeds:
            final = RunPaths(out / f"{rule}-s{seed}").final
            if (final / "config.json").exists():
                results[f"{rule}-s{seed}"] = _accuracy(str(final), prompts, base)
    by_rule = {}
    for rule in rules:
        values = [v for k, v in results.items() if k.startswith(f"{rule}-s")]
        if values:
            by_rule[rule] = {
                "mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
            }
    print(
        f"{name}: init {results['init']:.3f}; "
        + "; ".join(f"{r} {v['mean']:.3f} ± {v['std']:.3f}" for r, v in by_rule.items())
    )
    return {"jsonl": jsonl, "runs": results, "rules": by_rule}


def _token_kinds(vlm, prompt, token_ids: list[int]) -> tuple[str, ...] | None:
    """Kind of each response token ("visual", "template", "free", "answer"; the end-of-turn
    token is "template") when the prompt is a suite example and the response follows its
    template, else None."""
    from vepo_viz.tasks import token_kinds

    if prompt.example is None or not token_ids:
        return None
    n_end = 1 if token_ids[-1] in vlm.eos_token_ids else 0
    body = token_ids[: len(token_ids) - n_end]
    text = vlm.decode(body)
    spans = prompt.example.annotate(text)
    if spans is None:
        return None
    kinds = token_kinds(vlm.token_spans(body, text), spans, text) if body else []
    return tuple(kinds) + ("template",) * n_end


def _sampled_signals(cfg: TrainConfig, prompts, vlm, folder: Path):
    """(TokenSignals, completion ids, completion mask) of G sampled responses per prompt
    from the TRL plug-in's own rollout and score pass (clean + counterfactual, no update)."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from vepo_viz.train.trl_data import REWARD_FUNCS, prompt_rows
    from vepo_viz.train.trl_plugin import VEPOGRPOTrainer
    from vepo_viz.train.trl_train import trl_args

    rows = prompt_rows(prompts, cfg.prompt_suffix, vlm.max_image_pixels)
    trainer = VEPOGRPOTrainer(
        model=vlm.model,
        processing_class=vlm.processor,
        reward_funcs=REWARD_FUNCS,
        args=trl_args(cfg, folder, save_strategy="no"),
        train_dataset=Dataset.from_list(rows),
    )
    trainer.model.train()
    inputs = [dict(row) for row in trainer.train_dataset for _ in range(cfg.group_size)]
    out = GRPOTrainer._generate_and_score_completions(trainer, inputs)  # TRL's, no selection
    signals = trainer._signals(out, inputs, step=0)
    return signals, out["completion_ids"], out["completion_mask"].bool()


def selection_profile(
    init: str,
    jsonl: str,
    settings: dict,
    rules: list[str],
    n_prompts: int = 32,
    seed: int = 0,
) -> dict:
    """What each rule would train on, on the SAME sampled responses of the initial model.

    Samples G responses to the first n_prompts prompts of `jsonl` through the TRL plug-in,
    runs its score pass once (clean + the counterfactual view of `settings`, the VEPO
    reference's when none is given), applies every rule of RULES to those signals and
    reports entropy / visual sensitivity of the selected vs all tokens and, for suite
    prompts, the kinds of the selected tokens (read off the image, template, free
    choice, answer).
    """
    import tempfile

    import torch

    from vepo_viz.train.data import load_jsonl
    from vepo_viz.train.selection import kind_metrics, select_for_step, selection_metrics

    prompts = load_jsonl(jsonl)[:n_prompts]
    cfg = TrainConfig.from_dict(
        {
            **settings,
            "model": init,
            "seed": seed,
            "threads": 1,
            "prompts_per_step": len(prompts),
            "selection": "vepo",  # the score pass with a counterfactual view
        }
    )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    vlm = _load(init, cfg)
    with tempfile.TemporaryDirectory() as folder:
        signals, ids, mask = _sampled_signals(cfg, prompts, vlm, Path(folder))
    rows = [p for p in prompts for _ in range(cfg.group_size)]
    kinds = [
        _token_kinds(vlm, p, ids[i, : int(mask[i].sum())].tolist()) for i, p in enumerate(rows)
    ]
    out = {"n_responses": len(rows), "n_tokens": int(signals.mask.sum())}
    for rule in rules:
        rule_cfg = cfg.replace(selection=rule)
        selection = select_for_step(rule_cfg, signals, torch.Generator().manual_seed(seed))
        out[rule] = {
            **selection_metrics(signals, selection, cfg.alpha),
            **kind_metrics(kinds, selection.selected, signals.mask),
            "selected_fraction": float(selection.selected.sum()) / out["n_tokens"],
        }
    if len(rules) > 1 and "vepo" in rules and "entropy" in rules:
        v = select_for_step(cfg.replace(selection="vepo"), signals, torch.Generator())
        e = select_for_step(cfg.replace(selection="entropy"), signals, torch.Generator())
        out["overlap_vepo_entropy"] = float((v.selected & e.selected).sum()) / max(
            1, int(v.selected.sum())
        )
    return out


def _cell(value) -> str:
    """A table cell: 3 decimals, "n/a" for a missing or NaN value."""
    return "n/a" if value is None or value != value else f"{value:.3f}"


def markdown_profile_table(profile: dict) -> str:
    lines = [
        "| rule | tokens trained on | mean entropy: selected / all | mean JSD: selected / all "
        "| visual sensitivity v: selected / all | selected tokens read off the image "
        "| free-choice | template | answer | recall of image-read tokens |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rule, r in profile.items():
        if not isinstance(r, dict):
            continue
        lines.append(
            f"| {rule} | {_cell(r['selected_fraction'])} | {_cell(r['entropy_selected'])} / "
            f"{_cell(r['entropy_all'])} | {_cell(r.get('jsd_selected'))} / {_cell(r.get('jsd_all'))} | "
            f"{_cell(r.get('vis_selected'))} / {_cell(r.get('vis_all'))} | {_cell(r['share_visual'])} | "
            f"{_cell(r['share_free'])} | {_cell(r['share_template'])} | {_cell(r['share_answer'])} | "
            f"{_cell(r['recall_visual'])} |"
        )
    return "\n".join(lines)


def markdown_selection_table(summary: dict) -> str:
    """What each rule trained on, averaged over steps and seeds."""

    lines = [
        "| rule | entropy: selected / all | visual sensitivity: selected / all "
        "| share of selected tokens read off the image | recall of image-read tokens "
        "| share of free-choice tokens |",
        "|---|---|---|---|---|---|",
    ]
    for rule, r in summary["rules"].items():
        lines.append(
            f"| {rule} | {_cell(r['entropy_selected'])} / {_cell(r['entropy_all'])} "
            f"| {_cell(r['vis_selected'])} / {_cell(r['vis_all'])} | {_cell(r['share_visual'])} "
            f"| {_cell(r['recall_visual'])} | {_cell(r['share_free'])} |"
        )
    return "\n".join(lines)


def markdown_table(summary: dict) -> str:
    lines = [
        "| rule | held-out acc. before | after (mean ± std over seeds) | range | train reward, last 5 steps |",
        "|---|---|---|---|---|",
    ]
    for rule, r in summary["rules"].items():
        lines.append(
            f"| {rule} | {r['acc_start_mean']:.3f} | {r['acc_end_mean']:.3f} ± {r['acc_end_std']:.3f} "
            f"| {r['acc_end_min']:.3f} - {r['acc_end_max']:.3f} | {r['reward_last5_mean']:.3f} |"
        )
    return "\n".join(lines)


def mean_curves(out: Path, rules: list[str], seeds: list[int]) -> dict[str, pd.DataFrame]:
    """Per rule: metrics averaged over seeds at each step."""
    curves = {}
    for rule in rules:
        frames = []
        for seed in seeds:
            df = read_metrics(out / f"{rule}-s{seed}")
            if not df.empty:
                frames.append(df.select_dtypes("number").groupby("step").mean())
        if frames:
            curves[rule] = pd.concat(frames).groupby(level=0).mean().reset_index()
    return curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
        "--profile",
        type=int,
        default=32,
        help="prompts of the training data whose sampled responses every rule's selection is "
        "compared on (0 = skip)",
    )
    parser.add_argument("--families", nargs="+", default=["color", "compare", "count", "spatial"])
    parser.add_argument(
        "--extra-eval",
        nargs="*",
        default=[],
        help="NAME=path.jsonl: greedy accuracy of the initial and every final model on it",
    )
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    init = args.init
    if init.endswith(".pt"):
        from vepo_viz.tiny import DEFAULT_MODEL

        init = str(export_sft_checkpoint(init, args.like or DEFAULT_MODEL, out / "init"))
    settings = _parse_sets(args.set)
    if args.pool_per_family:
        from vepo_viz.tasks import export_jsonl

        pool = out / "data" / "pool" / "train_pool.jsonl"
        heldout = out / "data" / "heldout" / "heldout.jsonl"
        export_jsonl(pool, "train", args.pool_per_family, args.families)
        export_jsonl(heldout, "heldout", args.heldout_per_family, args.families)
        settings.update(
            data=str(pool),
            eval_data=str(heldout),
            n_eval=args.heldout_per_family * len(args.families),
        )
        args.extra_eval = [f"pool={pool}", *args.extra_eval]
    t0 = time.time()
    if not args.summarise_only:
        run_grid(init, out, args.rules, args.seeds, args.steps, args.jobs, settings)
    summary = summarise(out, args.rules, args.seeds)
    summary["grid_wall_s"] = time.time() - t0
    summary["init"] = init
    summary["settings"] = settings
    summary["extra_eval"] = {}
    for item in args.extra_eval:
        name, _, path = item.partition("=")
        summary["extra_eval"][name] = extra_eval(
            init, out, args.rules, args.seeds, name, path, settings
        )
    if args.profile and settings.get("data"):
        summary["profile"] = selection_profile(
            init, settings["data"], settings, args.rules, n_prompts=args.profile
        )
        print(markdown_profile_table(summary["profile"]))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(markdown_table(summary))
    print()
    print(markdown_selection_table(summary))
    if args.figures:
        from vepo_viz.train.curves import matplotlib_curves

        curves = mean_curves(out, args.rules, args.seeds)
        figures = Path(args.figures)
        matplotlib_curves(
            curves,
            figures / "mini_repro_curves.png",
            panels=("reward", "heldout", "entropy", "vis"),
            smooth=5,
            colors=RULE_COLORS,
        )
        print(f"figures in {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
