"""The mini-reproduction's numbers from its run folders: per-run accuracy, reward and cost,
per-rule mean, spread and 95% interval over seeds, extra evaluations, mean curves."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd

from vepo_viz.train.config import TrainConfig
from vepo_viz.train.jobs import RunPaths, read_metrics, read_status

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}
"""Two-sided 95% quantiles of Student's t by degrees of freedom (larger: 2.262 down to 1.96)."""

KIND_KEYS = ("share_visual", "share_free", "share_template", "recall_visual")


def interval(values: list[float]) -> dict:
    """Mean, standard deviation, range and the 95% t-interval of the mean over seeds."""
    n = len(values)
    mean = statistics.mean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    t = T_975.get(n - 1, 2.262 if n <= 11 else 1.96)
    half = t * std / math.sqrt(n) if n > 1 else float("nan")
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "min": min(values),
        "max": max(values),
        "ci95": (mean - half, mean + half),
    }


def _column_mean(frame: pd.DataFrame, key: str) -> float | None:
    """Mean of a metrics column over steps; None where the run did not log it (TRL logs no
    selected-vs-all statistics for selection="all": every token is selected)."""
    if key not in frame or frame[key].isna().all():
        return None
    return float(frame[key].mean())


def run_record(run_dir: Path, rule: str, seed: int) -> dict | None:
    """One finished run's held-out accuracy before/after, rewards, zero-advantage share and cost."""
    df = read_metrics(run_dir)
    if df.empty or "heldout_acc" not in df or read_status(run_dir).get("state") != "finished":
        return None  # an unfinished run's last evaluation is not its end
    ev = df[df["heldout_acc"].notna()].sort_values("step")
    tr = df[df["reward"].notna()] if "reward" in df else pd.DataFrame()
    family_cols = [c for c in ev.columns if c.startswith("heldout_acc_")]
    return {
        "rule": rule,
        "seed": seed,
        "acc_start": float(ev["heldout_acc"].iloc[0]),
        "acc_end": float(ev["heldout_acc"].iloc[-1]),
        "acc_end_family": {c[12:]: float(ev[c].iloc[-1]) for c in family_cols},
        "steps": int(tr["step"].max()) if not tr.empty else 0,
        "reward_first5": float(tr["reward"].head(5).mean()) if not tr.empty else None,
        "reward_last5": float(tr["reward"].tail(5).mean()) if not tr.empty else None,
        "zero_adv_first": _first(tr, "zero_adv_groups"),
        "zero_adv_mean": _column_mean(tr, "zero_adv_groups"),
        "wall_s": float(tr["elapsed_s"].max()) if "elapsed_s" in tr else None,
        "cpu_s": float(tr["process_cpu_s"].max()) if "process_cpu_s" in tr else None,
        "step_s": float(tr["step_s"].median()) if "step_s" in tr else None,
        **{
            key: _column_mean(tr, key)
            for key in ("entropy_selected", "entropy_all", "vis_selected", "vis_all")
        },
    }


def _first(frame: pd.DataFrame, key: str) -> float | None:
    if key not in frame or frame[key].isna().all():
        return None
    return float(frame[key].dropna().iloc[0])


def summarise(out: Path, rules: list[str], seeds: list[int]) -> dict:
    """Held-out accuracy before/after per run, per rule mean/std/range/95% CI, wall time."""
    runs = {}
    for rule in rules:
        for seed in seeds:
            record = run_record(out / f"{rule}-s{seed}", rule, seed)
            if record is not None:
                runs[f"{rule}-s{seed}"] = record
    table = {}
    for rule in rules:
        mine = [r for r in runs.values() if r["rule"] == rule]
        if not mine:
            continue
        acc = interval([r["acc_end"] for r in mine])
        table[rule] = {
            "n_seeds": acc["n"],
            "acc_end_mean": acc["mean"],
            "acc_end_std": acc["std"],
            "acc_end_min": acc["min"],
            "acc_end_max": acc["max"],
            "acc_end_ci95": acc["ci95"],
            "acc_start_mean": statistics.mean(r["acc_start"] for r in mine),
            "gain": interval([r["acc_end"] - r["acc_start"] for r in mine]),
        }
        for key in (
            "reward_first5",
            "reward_last5",
            "zero_adv_first",
            "zero_adv_mean",
            "entropy_selected",
            "entropy_all",
            "vis_selected",
            "vis_all",
            "step_s",
        ):
            values = [r[key] for r in mine if r.get(key) is not None]
            table[rule][key] = statistics.mean(values) if values else None
    walls = [r["wall_s"] for r in runs.values() if r["wall_s"]]
    cpus = [r["cpu_s"] for r in runs.values() if r.get("cpu_s")]
    return {"runs": runs, "rules": table, "sum_run_wall_s": sum(walls), "sum_run_cpu_s": sum(cpus)}


def grid_span_s(out: Path, names: list[str]) -> float:
    """Seconds from the first run's config (written when the grid started) to the last
    metrics line of the runs `names`: the grid's wall time over those runs."""
    starts = [(out / n / "config.toml").stat().st_mtime for n in names]
    ends = [RunPaths(out / n).metrics.stat().st_mtime for n in names]
    return max(ends) - min(starts) if names else 0.0


def _accuracy(model: str, prompts, cfg: TrainConfig) -> float:
    from vepo_viz.repro.profile import load_vlm
    from vepo_viz.train.trl_data import evaluate

    vlm = load_vlm(model, cfg)
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
            by_rule[rule] = interval(values)
    print(
        f"{name}: init {results['init']:.3f}; "
        + "; ".join(f"{r} {v['mean']:.3f} ± {v['std']:.3f}" for r, v in by_rule.items())
    )
    return {"jsonl": jsonl, "runs": results, "rules": by_rule}


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
