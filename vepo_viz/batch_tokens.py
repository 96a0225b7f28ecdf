"""Which tokens VEPO and entropy-only pick over a scored dataset: the paper's qualitative claim.

The paper's claim: VEPO picks content tokens tied to the figure, entropy-only picks
formatting and discourse markers. Over the finished rows of a batch (`vepo_viz.batch`):
the tokens each rule picks most often, with the VEPO-only and entropy-only differences;
the share of each token kind ("visual" = read off the image, "template", "free" choice,
"answer") when the data carries the suite's annotations (its "segments", or the family,
seed and difficulty it was exported with); the share of picks below their response's
median entropy; and one figure (PNG or PDF by suffix) for papers.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vepo_viz.tasks import KINDS, Example, Segment, make_example, token_kinds

RULES = ("vepo", "entropy", "vepo_only", "entropy_only")
"""The pick sets reported: each rule's picks, and the picks of one rule and not the other."""

TOP_N = 10
"""Tokens listed per pick set."""


def annotations_of(path: str | Path) -> dict[str, Example]:
    """The suite annotation of each annotated line of a JSONL, keyed as batch rows are
    (its "id", else "row-<index>"): the example itself when family, seed and difficulty
    rebuild it, else its "segments". Lines without either are left out."""
    out: dict[str, Example] = {}
    index = 0
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        key = str(record["id"]) if record.get("id") is not None else f"row-{index}"
        index += 1
        example = _rebuilt(record)
        if example is None and isinstance(record.get("segments"), list):
            segments = [Segment(str(t), str(k)) for t, k in record["segments"]]
            example = Example(
                family=str(record.get("family") or ""),
                seed=-1,
                difficulty=float("nan"),
                image=None,
                question=str(record.get("question", "")),
                answer=str(record.get("answer", "")),
                segments=segments,
                answer_space=(),
            )
        if example is not None:
            out[key] = example
    return out


def _rebuilt(record: dict) -> Example | None:
    try:
        example = make_example(record["family"], int(record["seed"]), float(record["difficulty"]))
    except (KeyError, TypeError, ValueError):
        return None
    return example if example.question == record.get("question") else None


def suite_annotations(split: str, n_per_family: int, families: list[str]) -> dict[str, Example]:
    """The annotations of the suite rows `tasks.export_jsonl` writes (ids split-family-seed)."""
    from vepo_viz.tasks import iter_split

    return {
        f"{split}-{ex.family}-{ex.seed}": ex for ex in iter_split(split, n_per_family, families)
    }


def _kinds(example: Example | None, result) -> list[str] | None:
    if example is None:
        return None
    spans = example.annotate(result.response)
    if spans is None:
        return None
    return token_kinds([tuple(o) for o in np.asarray(result.offsets)], spans, result.response)


def token_report(finished: list, annotations: dict[str, Example] | None = None) -> dict[str, Any]:
    """Most-picked tokens, kind shares and below-median-entropy shares of each pick set.

    finished: (row, TokenAnalysis) pairs (`batch.finished_rows`); annotations: by row key
    (`annotations_of`, `suite_annotations`); rows without one count in the token lists only.
    """
    counts = {rule: Counter() for rule in RULES}
    kinds = {rule: Counter() for rule in (*RULES, "all")}
    below = {rule: [0, 0] for rule in RULES}
    annotated = 0
    for row, result in finished:
        vepo = np.asarray(result.selected_vepo, bool)
        entropy = np.asarray(result.selected_entropy, bool)
        sets = {
            "vepo": vepo,
            "entropy": entropy,
            "vepo_only": vepo & ~entropy,
            "entropy_only": entropy & ~vepo,
        }
        h = np.asarray(result.entropy, float)
        low = h < np.median(h) if len(h) else h.astype(bool)
        row_kinds = _kinds((annotations or {}).get(row.key), result)
        if row_kinds is not None and len(row_kinds) == len(h):
            annotated += 1
            kinds["all"].update(row_kinds)
        else:
            row_kinds = None
        for rule, chosen in sets.items():
            picked = np.flatnonzero(chosen)
            counts[rule].update(result.tokens[i] for i in picked)
            below[rule][0] += int(low[picked].sum())
            below[rule][1] += len(picked)
            if row_kinds is not None:
                kinds[rule].update(row_kinds[i] for i in picked)
    return {
        "examples": len(finished),
        "annotated_examples": annotated,
        "top_tokens": {rule: counts[rule].most_common(TOP_N) for rule in RULES},
        "picks": {rule: below[rule][1] for rule in RULES},
        "below_median_entropy": {
            rule: (n / total if total else math.nan) for rule, (n, total) in below.items()
        },
        "kind_shares": {
            rule: {k: c[k] / sum(c.values()) for k in KINDS} if sum(c.values()) else {}
            for rule, c in kinds.items()
        },
    }


LABELS = {
    "vepo": "VEPO",
    "entropy": "entropy-only",
    "vepo_only": "VEPO, not entropy",
    "entropy_only": "entropy, not VEPO",
    "all": "all tokens",
}


def _token(text: str) -> str:
    return repr(text)[1:-1].replace("|", "\\|") or "(empty)"


def markdown_report(report: dict) -> str:
    """The report as Markdown tables (the Batch tab shows it, the CLI prints it)."""
    lines = ["| picks | most picked tokens (count) | picks below median entropy |"]
    lines.append("|---|---|---|")
    for rule in RULES:
        top = ", ".join(f"`{_token(t)}` ({n})" for t, n in report["top_tokens"][rule]) or "-"
        share = report["below_median_entropy"][rule]
        pct = "n/a" if share != share else f"{100 * share:.1f}%"
        lines.append(f"| {LABELS[rule]} ({report['picks'][rule]}) | {top} | {pct} |")
    shares = report["kind_shares"]
    if shares.get("all"):
        lines += ["", f"Token kinds ({report['annotated_examples']} annotated examples):", ""]
        lines.append("| picks | " + " | ".join(KINDS) + " |")
        lines.append("|---" * (len(KINDS) + 1) + "|")
        for rule in (*RULES, "all"):
            row = shares.get(rule) or {}
            cells = " | ".join(f"{100 * row[k]:.1f}%" if row else "-" for k in KINDS)
            lines.append(f"| {LABELS[rule]} | {cells} |")
    else:
        lines += ["", "(no token kinds: the data carries no suite annotations)"]
    return "\n".join(lines)


def report_figure(report: dict):
    """A matplotlib figure: kind shares of each pick set (left, when annotated) and the
    share of picks below the median entropy (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = report["kind_shares"]
    with_kinds = bool(shares.get("all"))
    fig, axes = plt.subplots(1, 2 if with_kinds else 1, figsize=(9 if with_kinds else 4.5, 3.2))
    axes = np.atleast_1d(axes)
    names = [LABELS[r] for r in RULES]
    if with_kinds:
        order = [*RULES, "all"]
        left = np.zeros(len(order))
        for kind, color in zip(KINDS, ("#d62728", "#7f7f7f", "#1f77b4", "#2ca02c"), strict=True):
            values = np.array([(shares.get(r) or {}).get(kind, 0.0) for r in order])
            axes[0].barh([LABELS[r] for r in order], values, left=left, label=kind, color=color)
            left += values
        axes[0].set_xlim(0, 1)
        axes[0].invert_yaxis()
        axes[0].set_title("token kinds of the picks", fontsize=9)
        axes[0].legend(fontsize=7, loc="lower right")
    values = [report["below_median_entropy"][r] for r in RULES]
    axes[-1].barh(names, [0 if v != v else v for v in values], color="#9467bd")
    axes[-1].set_xlim(0, 1)
    axes[-1].invert_yaxis()
    axes[-1].set_title("share of picks below the median entropy", fontsize=9)
    fig.tight_layout()
    return fig


def save_report_figure(report: dict, path: str | Path) -> Path:
    """The figure as PNG, PDF or SVG (by the suffix of `path`)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = report_figure(report)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def annotations_for(spec: str | Path, finished: list) -> dict[str, Example]:
    """The suite annotations of a batch's rows: a JSONL's own, or the suite's (its rows are
    the held-out examples in the order data.readers yields them); {} for other data."""
    if str(spec) == "suite":
        from vepo_viz.data.readers import SUITE_UNBOUNDED
        from vepo_viz.tasks import iter_split

        want, out = {row.key for row, _ in finished}, {}
        for ex in iter_split("heldout", SUITE_UNBOUNDED):
            key = f"heldout-{ex.family}-{ex.seed}"
            if key in want:
                out[key] = ex
                if len(out) == len(want):
                    break
        return out
    path = Path(spec)
    if path.suffix.lower() == ".jsonl" and path.is_file():
        return annotations_of(path)
    return {}


def cli_section(finished: list, data_path: str | Path, figure: str | Path | None = None) -> str:
    """What `vepo-viz batch` prints after its aggregates (and the figure it writes)."""
    report = token_report(finished, annotations_for(data_path, finished))
    text = "\n" + markdown_report(report)
    if figure:
        text += f"\nfigure: {save_report_figure(report, figure)}"
    return text


def tab_outputs(finished: list, source: str, n_per_family, families, files, folder=None):
    """The Batch tab's token report: (Markdown, figure, PDF path). Suite rows are the
    held-out split `ui.batch.suite_rows` exports; an upload is annotated from its JSONL."""
    import tempfile

    from vepo_viz.tasks import FAMILIES

    if not finished:
        return "", None, None
    if source == "uploaded JSONL":
        jsonl = [str(getattr(f, "name", f)) for f in files or []]
        jsonl = [p for p in jsonl if p.lower().endswith(".jsonl")]
        annotations = annotations_of(jsonl[0]) if jsonl else {}
    elif source != "built-in suite":  # Parquet, datasets folders, hub: no suite annotations
        annotations = {}
    else:
        annotations = suite_annotations("heldout", int(n_per_family), list(families or FAMILIES))
    report = token_report(finished, annotations)
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="vepo-viz-tokens-"))
    pdf = folder / "token_picks.pdf"
    save_report_figure(report, pdf)
    return markdown_report(report), report_figure(report), str(pdf)
