"""The mini-reproduction's tables, figures and doc blocks, from its summary.json.

docs/mini_reproduction.md holds blocks between `<!-- BEGIN repro:NAME -->` and
`<!-- END repro:NAME -->`; `write_doc` replaces each block's content with the table or text
`BLOCKS[NAME]` builds from the summary, so no number in the doc is typed by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

RULE_COLORS = {"all": "#7f7f7f", "entropy": "#1f77b4", "vepo": "#d62728", "random": "#2ca02c"}


def _cell(value) -> str:
    """A table cell: 3 decimals, "n/a" for a missing or NaN value."""
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _pct(value) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}%"


def markdown_profile_table(profile: dict) -> str:
    """What every rule selects on the same sampled responses."""
    lines = [
        "| rule | tokens trained on | mean entropy: selected / all | mean JSD: selected / all "
        "| visual sensitivity v: selected / all | selected tokens read off the image "
        "| free-choice | template | answer | recall of image-read tokens |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rule, r in profile.items():
        if not isinstance(r, dict) or "selected_fraction" not in r:
            continue
        lines.append(
            f"| {rule} | {_cell(r['selected_fraction'])} | {_cell(r['entropy_selected'])} / "
            f"{_cell(r['entropy_all'])} | {_cell(r.get('jsd_selected'))} / {_cell(r.get('jsd_all'))} | "
            f"{_cell(r.get('vis_selected'))} / {_cell(r.get('vis_all'))} | {_cell(r['share_visual'])} | "
            f"{_cell(r['share_free'])} | {_cell(r['share_template'])} | {_cell(r['share_answer'])} | "
            f"{_cell(r['recall_visual'])} |"
        )
    return "\n".join(lines)


def markdown_table(summary: dict) -> str:
    """Held-out accuracy per rule: start, end mean ± std, 95% interval, range, rewards."""
    lines = [
        "| rule | held-out acc. before | after: mean ± std | 95% interval | range "
        "| change (mean, 95% interval) | train reward, first 5 / last 5 steps | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule, r in summary["rules"].items():
        lo, hi = r.get("acc_end_ci95", (float("nan"),) * 2)
        gain = r.get("gain") or {"mean": float("nan"), "ci95": (float("nan"),) * 2}
        lines.append(
            f"| {rule} | {r['acc_start_mean']:.3f} | {r['acc_end_mean']:.3f} ± "
            f"{r['acc_end_std']:.3f} | {_cell(lo)} - {_cell(hi)} | {r['acc_end_min']:.3f} - "
            f"{r['acc_end_max']:.3f} | {gain['mean']:+.3f} ({_cell(gain['ci95'][0])} - "
            f"{_cell(gain['ci95'][1])}) | {_cell(r.get('reward_first5'))} / "
            f"{_cell(r.get('reward_last5'))} | {r['n_seeds']} |"
        )
    return "\n".join(lines)


def extra_table(extra: dict) -> str:
    """Greedy accuracy of the start model and every rule's final models on an extra set."""
    lines = [
        "| rule | start | after: mean ± std | 95% interval | range |",
        "|---|---|---|---|---|",
    ]
    for rule, r in extra["rules"].items():
        lo, hi = r["ci95"]
        lines.append(
            f"| {rule} | {extra['runs']['init']:.3f} | {r['mean']:.3f} ± {r['std']:.3f} "
            f"| {_cell(lo)} - {_cell(hi)} | {r['min']:.3f} - {r['max']:.3f} |"
        )
    return "\n".join(lines)


def premise_table(profile: dict) -> str:
    """Headroom and VEPO's premise on the starting model's own sampled responses."""
    h, p = profile["headroom"], profile["premise"]
    rows = [
        ("sampled responses (G per prompt, temperature of the run)", f"{profile['n_responses']}"),
        ("sampled accuracy", _pct(h["sampled_acc"])),
        ("groups with nonzero advantage (rewards differ)", _pct(h["nonzero_adv_groups"])),
        ("image-read tokens in those responses", f"{p['visual_tokens']}"),
        ("image-read tokens below their response's median entropy", _pct(p["visual_below_median"])),
        (
            "image-read tokens: mean percentile of their entropy within the response "
            "(0 = least, 1 = most uncertain token)",
            _cell(p["visual_entropy_rank"]),
        ),
        (
            "image-read tokens: mean entropy / mean of the responses' median entropy (nats)",
            f"{_cell(p['visual_entropy_mean'])} / {p['response_median_entropy_mean']:.2g}",
        ),
        ("wrong answers", f"{p['wrong_answers']}"),
        ("... with a wrong image-read token", f"{p['wrong_with_wrong_read']}"),
        (
            "... whose wrong image-read token was confident (below-median entropy)",
            _pct(p["wrong_read_confident"]),
        ),
    ]
    for rule, share in p["wrong_read_selected"].items():
        rows.append((f"... whose wrong image-read token is in {rule}'s selection", _pct(share)))
    lines = ["| measured on the pool | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def scan_table(scan: dict) -> str:
    """Every suite family, before choosing a pool: headroom and the premise numbers."""
    lines = [
        "| family | sampled accuracy | groups with nonzero advantage | image-read tokens "
        "| ... below median entropy | ... mean entropy percentile | recall of image-read "
        "tokens: entropy / vepo | wrong answers with a wrong reading | ... confident "
        "| ... in entropy's / vepo's selection |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for family, r in scan.items():
        h, p = r["headroom"], r["premise"]
        chosen = p["wrong_read_selected"]
        lines.append(
            f"| {family} | {_pct(h['sampled_acc'])} | {_pct(h['nonzero_adv_groups'])} "
            f"| {p['visual_tokens']} | {_pct(p['visual_below_median'])} "
            f"| {_cell(p['visual_entropy_rank'])} "
            f"| {_cell(r['entropy']['recall_visual'])} / {_cell(r['vepo']['recall_visual'])} "
            f"| {p['wrong_with_wrong_read']} of {p['wrong_answers']} "
            f"| {_pct(p['wrong_read_confident'])} "
            f"| {_pct(chosen.get('entropy'))} / {_pct(chosen.get('vepo'))} |"
        )
    return "\n".join(lines)


def pools_table(pools: dict) -> str:
    lines = [
        "| set | split | prompts scanned | kept (nonzero advantage) | sampled accuracy of the scanned |",
        "|---|---|---|---|---|",
    ]
    for name in ("train", "heldout"):
        r = pools.get(name)
        if r:
            lines.append(
                f"| {'training pool' if name == 'train' else 'held-out set'} | {r['split']} "
                f"| {r['scanned']} | {r['kept']} | {_pct(r['sampled_acc_scanned'])} |"
            )
    return "\n".join(lines)


def end_kinds_table(end: dict) -> str:
    """What each rule trains on at the end: its own final model's sampled responses."""
    lines = [
        "| rule (final model of seed 0) | sampled accuracy | nonzero-advantage groups "
        "| image-read | free-choice | template | answer | recall of image-read tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule, r in end.items():
        lines.append(
            f"| {rule} | {_pct(r['headroom']['sampled_acc'])} | "
            f"{_pct(r['headroom']['nonzero_adv_groups'])} | {_cell(r['share_visual'])} | "
            f"{_cell(r['share_free'])} | {_cell(r['share_template'])} | "
            f"{_cell(r['share_answer'])} | {_cell(r['recall_visual'])} |"
        )
    return "\n".join(lines)


def wall_text(summary: dict) -> str:
    n = len(summary["runs"])
    step = {r: v.get("step_s") for r, v in summary["rules"].items()}
    steps = ", ".join(f"{r} {_cell(s)} s" for r, s in step.items() if s)
    span = summary.get("grid_span_s", summary["grid_wall_s"])
    return (
        f"**Wall time:** {span / 60:.1f} minutes from the first of these {n} runs' start to "
        f"the last one's end ({summary.get('jobs', 2)} at a time, on a 2-core CPU machine "
        "shared with other jobs; the grid command skips finished runs, so this spans every "
        "invocation that ran them, pauses between invocations included); "
        f"{summary['sum_run_wall_s'] / 60:.1f} run-minutes of training in all, "
        f"{summary['sum_run_cpu_s'] / 60:.1f} CPU-minutes. Median seconds per step: {steps}."
    )


def verdict_text(summary: dict) -> str:
    """Which rule ends highest on held-out accuracy, and whether the intervals separate it."""
    rules = summary["rules"]
    if not rules:
        return "No finished runs."
    best = max(rules, key=lambda r: rules[r]["acc_end_mean"])
    lo = rules[best]["acc_end_ci95"][0]
    beaten = [r for r in rules if r != best and rules[r]["acc_end_ci95"][1] < lo]
    tied = [r for r in rules if r != best and r not in beaten]
    parts = [f"Highest mean held-out accuracy: **{best}** ({rules[best]['acc_end_mean']:.3f})."]
    if tied:
        parts.append(f"Its 95% interval overlaps those of {', '.join(tied)}: no separation.")
    if beaten:
        parts.append(f"Its interval lies above those of {', '.join(beaten)}.")
    gains = {r: v["gain"]["ci95"] for r, v in rules.items() if v.get("gain")}
    moved = [r for r, (a, b) in gains.items() if a > 0 or b < 0]
    parts.append(
        "Held-out change from the start, 95% interval excluding zero: "
        + (", ".join(moved) if moved else "none of the rules")
        + "."
    )
    return " ".join(parts)


def command_text(summary: dict) -> str:
    """The grid's command and, when the tables came from a later --summarise-only call
    (e.g. over the seeds that finished), that command too."""
    text = "    " + summary["command"]
    if summary.get("summarise_command"):
        text += (
            "\n\nThe tables and figures below were then written from the run folders by\n\n"
            "    " + summary["summarise_command"]
        )
    return text


BLOCKS = {
    "command": command_text,
    "pools": lambda s: pools_table(s["pools"]) if s.get("pools") else "(no mined pool)",
    "scan": lambda s: scan_table(s["scan"]),
    "premise": lambda s: premise_table(s["profile"]),
    "profile": lambda s: (
        markdown_profile_table(s["profile"]) + f"\n\nVEPO and entropy-only pick the same token for "
        f"{_pct(s['profile'].get('overlap_vepo_entropy'))} of VEPO's picks."
    ),
    "results": markdown_table,
    "pool_results": lambda s: (
        extra_table(s["extra_eval"]["pool"])
        if "pool" in s.get("extra_eval", {})
        else "(no pool evaluation)"
    ),
    "verdict": verdict_text,
    "end_kinds": lambda s: (
        end_kinds_table(s["end_profile"]) if s.get("end_profile") else "(skipped)"
    ),
    "wall": wall_text,
}


def write_doc(path: str | Path, summary: dict) -> list[str]:
    """Replace every repro block of the Markdown file at `path`; the names replaced."""
    path = Path(path)
    text = path.read_text()
    done = []
    for name, build in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- BEGIN repro:{name} -->\n).*?(\n<!-- END repro:{name} -->)", re.DOTALL
        )
        if pattern.search(text):
            try:
                content = build(summary)
            except KeyError:
                continue  # the summary lacks this part (e.g. the grid is still running)
            text = pattern.sub(lambda m, c=content: m.group(1) + c + m.group(2), text)
            done.append(name)
    path.write_text(text)
    return done


def write_figures(curves: dict, folder: str | Path) -> list[Path]:
    """The doc's figures: pool reward and held-out accuracy (left), entropy and visual
    sensitivity of the trained tokens (right), means over seeds."""
    from vepo_viz.train.curves import matplotlib_curves

    folder = Path(folder)
    return [
        matplotlib_curves(
            curves,
            folder / "mini_repro_curves.png",
            panels=("reward", "heldout", "entropy", "vis"),
            smooth=5,
            colors=RULE_COLORS,
        )
    ]
