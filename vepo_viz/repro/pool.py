"""A training pool with headroom: suite prompts the starting model does not always answer alike.

GRPO learns only from groups whose sampled rewards differ (a group of G equal rewards has
zero advantage). The embedded model answers almost every suite question right, so a pool
of random suite prompts is mostly zero-advantage groups. `mine_pool` keeps, from a split,
the prompts whose G sampled responses (temperature of `settings`) did not all get the same
reward; the same rule on the held-out split gives a held-out set of equally hard prompts
that no run trains on. Both are ordinary JSONL files (tasks.write_examples).

    python -m vepo_viz.repro.pool --out runs/pool --families read count --n 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vepo_viz.tasks import iter_split, write_examples

CHUNK = 24
"""Candidate prompts sampled per rollout."""

SCAN_TOKENS = 48
"""Answer length of the family scan: every family's template fits (the longest embedded
answer is 39 tokens, tiny/README.md)."""


def mine_pool(
    init: str,
    split: str,
    families: list[str],
    difficulty: float,
    n_keep: int,
    settings: dict,
    max_candidates: int = 400,
    seed: int = 0,
) -> tuple[list, dict]:
    """(examples kept, counts): the first n_keep prompts of `split` whose sampled group had
    nonzero advantage, scanning at most max_candidates prompts in split order."""
    from vepo_viz.repro.profile import sample_responses
    from vepo_viz.train.data import _suite_prompt

    per_family = -(-max_candidates // len(families))
    candidates = list(iter_split(split, per_family, families, difficulty))[:max_candidates]
    kept, scanned, correct = [], 0, 0
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start : start + CHUNK]
        prompts = [_suite_prompt(ex.family, ex.seed, difficulty, split) for ex in chunk]
        _, cfg, _, responses = sample_responses(init, prompts, settings, seed)
        G = cfg.group_size
        for i, ex in enumerate(chunk):
            group = responses[i * G : (i + 1) * G]
            correct += sum(r.correct for r in group)
            if len({r.reward for r in group}) > 1 and len(kept) < n_keep:
                kept.append(ex)
        scanned += len(chunk)
        print(f"{split}: {len(kept)}/{n_keep} kept of {scanned} scanned", flush=True)
        if len(kept) >= n_keep:
            break
    counts = {
        "split": split,
        "scanned": scanned,
        "kept": len(kept),
        "sampled_acc_scanned": correct / max(1, scanned * G),
        "group_size": G,
        "temperature": cfg.temperature,
    }
    return kept, counts


def scan_families(
    init: str,
    difficulty: float,
    n_prompts: int,
    settings: dict,
    rules: list[str],
    families: list[str] | None = None,
) -> dict:
    """{family: repro.profile.profile_prompts result} on the first n_prompts train-split
    prompts of every suite family at `difficulty`: which family has headroom, and on which
    VEPO's premise holds (image-read tokens confident, wrong readings missed by entropy).
    Answers may be SCAN_TOKENS long at least, so that no family's template is cut (a grid
    may train with shorter answers on a family whose template is short)."""
    from vepo_viz.repro.profile import profile_prompts
    from vepo_viz.tasks import FAMILIES
    from vepo_viz.train.data import suite_prompts

    settings = {**settings, "max_new_tokens": max(SCAN_TOKENS, settings.get("max_new_tokens", 0))}
    out = {}
    for family in families or list(FAMILIES):
        prompts = suite_prompts("train", n_prompts, [family], difficulty)
        out[family] = profile_prompts(init, prompts, settings, rules)
        print(f"scan: {family} done", flush=True)
    return out


def build_pools(
    init: str,
    out: Path,
    families: list[str],
    difficulty: float,
    n_train: int,
    n_heldout: int,
    settings: dict,
) -> dict:
    """OUT/pool/train_pool.jsonl and OUT/heldout/heldout.jsonl, mined (skipped when
    OUT/pools.json exists: a rerun reuses them). Returns pools.json's content."""
    record = out / "pools.json"
    if record.exists():
        return json.loads(record.read_text())
    info = {"families": families, "difficulty": difficulty}
    for split, n, path in (
        ("train", n_train, out / "pool" / "train_pool.jsonl"),
        ("heldout", n_heldout, out / "heldout" / "heldout.jsonl"),
    ):
        examples, counts = mine_pool(init, split, families, difficulty, n, settings)
        write_examples(path, examples, split)
        info[split] = {**counts, "path": str(path)}
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(info, indent=2))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vepo_viz.repro.pool", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--init", default="tiny")
    parser.add_argument("--out", required=True)
    parser.add_argument("--families", nargs="+", default=["read", "count"])
    parser.add_argument("--difficulty", type=float, default=1.0)
    parser.add_argument("--n", type=int, default=64, help="training prompts kept")
    parser.add_argument("--n-heldout", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    args = parser.parse_args(argv)
    settings = {"group_size": args.group_size, "temperature": args.temperature}
    info = build_pools(
        args.init, Path(args.out), args.families, args.difficulty, args.n, args.n_heldout, settings
    )
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
