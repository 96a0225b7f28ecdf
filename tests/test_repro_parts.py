"""The mini-reproduction's parts without a model: the 95% interval, the doc blocks and the
command they name, what each rule selects (selected-vs-all metrics, token kinds), the
premise numbers (where image-read tokens sit in the entropy
ranking, which wrong readings were confident) and the annotation of a response's wrong
image-read token."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.test_train_selection import _signals
from vepo_viz.repro.doc import command_text, verdict_text, write_doc
from vepo_viz.repro.profile import (
    Response,
    _annotate,
    headroom,
    kind_metrics,
    premise_numbers,
    selection_metrics,
)
from vepo_viz.repro.run import COMMAND, grid_command
from vepo_viz.repro.summary import interval
from vepo_viz.tasks import make_example
from vepo_viz.train.config import TrainConfig
from vepo_viz.train.rules import TokenSignals, select_for_step


def test_interval_is_the_t_interval_of_the_mean():
    r = interval([0.5, 0.6, 0.7])
    assert r["mean"] == pytest.approx(0.6) and r["std"] == pytest.approx(0.1)
    half = 4.303 * 0.1 / 3**0.5
    assert r["ci95"] == pytest.approx((0.6 - half, 0.6 + half))


def _rule(mean, lo, hi):
    return {"acc_end_mean": mean, "acc_end_ci95": (lo, hi), "gain": {"ci95": (lo - 0.5, hi - 0.5)}}


def test_verdict_and_doc_blocks(tmp_path):
    summary = {"rules": {"vepo": _rule(0.8, 0.75, 0.85), "all": _rule(0.6, 0.5, 0.7)}}
    text = verdict_text(summary)
    assert "**vepo** (0.800)" in text and "lies above those of all" in text
    assert "excluding zero: vepo." in text  # all: (0.0, 0.2) touches zero
    doc = tmp_path / "doc.md"
    doc.write_text(
        "intro\n<!-- BEGIN repro:verdict -->\nold\n<!-- END repro:verdict -->\n"
        "<!-- BEGIN repro:premise -->\nkept\n<!-- END repro:premise -->\n"
    )
    assert write_doc(doc, summary) == ["verdict"]  # no profile yet: that block stays
    body = doc.read_text()
    assert "old" not in body and text in body and "kept" in body and body.startswith("intro")


ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_documented_commands_name_modules_that_run():
    named = {m for doc in DOCS for m in re.findall(r"python -m (vepo_viz[\w.]*)", doc.read_text())}
    assert {"vepo_viz.repro", "vepo_viz.repro.pool"} <= named
    for name in named:
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"{name} is named in the docs but does not exist"
        if spec.submodule_search_locations is not None:  # a package: needs its __main__
            assert importlib.util.find_spec(f"{name}.__main__") is not None, name


def test_doc_command_blocks_are_the_command_the_grid_writes(tmp_path):
    pattern = r"<!-- BEGIN repro:command -->\n(.*?)\n<!-- END repro:command -->"
    blocks = [b for doc in DOCS for b in re.findall(pattern, doc.read_text(), re.S)]
    assert len(blocks) >= 2
    for block in blocks:
        assert block.startswith(f"    {COMMAND} --init "), block[:60]
    # a grid started before the move wrote the old module name: read under today's
    started = tmp_path / "command.txt"
    started.write_text("python -m vepo_viz.train.repro --init tiny --out runs/r\n")
    assert grid_command(started) == f"{COMMAND} --init tiny --out runs/r"
    assert (
        command_text({"command": grid_command(started)})
        == f"    {COMMAND} --init tiny --out runs/r"
    )


class _Vocab:
    """A stand-in VLM: token i is the i-th string of the vocabulary, id 0 the end token."""

    eos_token_ids = (0,)

    def __init__(self, pieces):
        self.pieces = ["<end>", *pieces]

    def ids(self, text: str) -> list[int]:
        return [self.pieces.index(p) for p in re.findall(r"\s?\w+|[^\w\s]", text)] + [0]

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)

    def token_spans(self, ids, text):
        out, pos = [], 0
        for i in ids:
            out.append((pos, pos + len(self.pieces[i])))
            pos += len(self.pieces[i])
        return out


def test_annotate_finds_the_wrong_reading_also_in_swapped_order():
    ex = make_example("compare", 0, 1.0)
    colours = re.findall(r"the (\w+) one", ex.question)
    levels = re.findall(r" is (\d+)", ex.target)
    wrong = str(int(levels[1]) % 9 + 1)
    # the bars named in the other order: the reference levels swap with them
    named = [c for c in re.findall(r"The (\w+) bar is \d", ex.target)][0]
    other = next(c for c in colours if c != named)
    response = f"The {other} bar is {levels[1]}, the {named} bar is {wrong}."
    rest = ex.target[ex.target.index(". The") :]
    response += (
        rest.replace(f"The {named} bar", "TMP")
        .replace(f"the {other} bar", f"the {named} bar")
        .replace("TMP", f"The {other} bar")
    )
    vocab = _Vocab(sorted(set(re.findall(r"\s?\w+|[^\w\s]", response + ex.target))))
    prompt = SimpleNamespace(example=ex)
    kinds, wrong_at = _annotate(vocab, prompt, vocab.ids(response))
    assert kinds is not None and kinds[-1] == "template"
    tokens = [vocab.pieces[i] for i in vocab.ids(response)]
    assert [tokens[i].strip() for i in wrong_at] == ([wrong] if wrong != levels[0] else [])


def _response(kinds, correct, wrong_visual=None):
    return Response(None, [1] * len(kinds), "", float(correct), correct, tuple(kinds), wrong_visual)


def test_premise_numbers_rank_image_read_tokens_and_confident_misreadings():
    kinds = ["template", "visual", "template", "free", "answer"]
    responses = [_response(kinds, True), _response(kinds, False, [1])]
    entropy = torch.tensor([[0.0, 0.5, 0.0, 2.0, 0.1], [0.3, 0.01, 0.2, 2.0, 0.4]])
    signals = TokenSignals(
        mask=torch.ones(2, 5, dtype=torch.bool), logp_old=-entropy, entropy=entropy
    )
    cfg = TrainConfig(group_size=2)  # top 20%: one token per response
    p = premise_numbers(cfg, signals, responses, ["entropy", "random"])
    assert p["visual_tokens"] == 2 and p["visual_below_median"] == 0.5
    assert p["visual_entropy_rank"] == pytest.approx((0.75 + 0.0) / 2)
    assert (p["wrong_answers"], p["wrong_with_wrong_read"]) == (1, 1)
    assert p["wrong_read_confident"] == 1.0  # 0.01 < median 0.3: confidently wrong
    assert p["wrong_read_selected"]["entropy"] == 0.0  # entropy-only skips it
    h = headroom(responses, group_size=2)
    assert h["nonzero_adv_groups"] == 1.0 and h["sampled_acc"] == 0.5


def test_selection_metrics_compare_selected_with_all():
    signals, _ = _signals()
    sel = select_for_step(TrainConfig(selection="entropy"), signals, torch.Generator())
    m = selection_metrics(signals, sel, 0.7)
    assert m["entropy_selected"] > m["entropy_all"]  # entropy top-20% has the highest H
    assert set(m) >= {"jsd_selected", "jsd_all", "vis_selected", "vis_all"}
    everything = select_for_step(TrainConfig(selection="all"), signals, torch.Generator())
    m = selection_metrics(signals, everything, 0.7)
    assert m["entropy_selected"] == pytest.approx(m["entropy_all"])


def test_kind_metrics_counts_selected_token_kinds():
    mask = torch.tensor(
        [[True, True, True, False], [True, True, True, True], [True, True, False, False]]
    )
    selected = torch.tensor(
        [[True, False, False, False], [False, True, True, False], [True, True, False, False]]
    )
    kinds = [("visual", "template", "free"), ("template", "visual", "answer", "visual"), None]
    m = kind_metrics(kinds, selected, mask)
    assert m["share_visual"] == pytest.approx(2 / 3) and m["share_answer"] == pytest.approx(1 / 3)
    assert m["share_template"] == 0 and m["recall_visual"] == pytest.approx(2 / 3)
    assert m["kinds_rows"] == 2
    assert math.isnan(kind_metrics([None] * 3, selected, mask)["share_visual"])
