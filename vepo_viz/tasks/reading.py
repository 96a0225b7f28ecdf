"""Which tokens of a suite response read the image, and which of them read it wrong.

A response that follows its example's template is annotated with the template's kinds
(tasks.base.Example.annotate); each image-read ("visual") span is compared with the
reference target's, in order. The first token of a span that states another fact is a
misread token: the place a wrong answer went wrong. Used by the group view
(vepo_viz.group) and the mini-reproduction's premise numbers (repro.profile).
"""

from __future__ import annotations

from collections.abc import Sequence

from vepo_viz.tasks.base import Example, token_kinds


def _visual_texts(text: str, spans) -> list[str]:
    return [text[s0:s1].strip() for s0, s1, kind in spans if kind == "visual"]


def read_tokens(
    example: Example, text: str, offsets: Sequence[tuple[int, int]]
) -> tuple[list[str], list[int]] | None:
    """(kind of each token, positions of misread tokens) of a response `text` whose
    tokens span `offsets`, or None when it does not follow the example's template.

    A response that names the two bars of a comparison in the other order than the
    reference target states their levels in that order too: the reference is swapped.
    """
    spans = example.annotate(text)
    if spans is None:
        return None
    offsets = [(int(a), int(b)) for a, b in offsets]
    kinds = token_kinds(offsets, spans, text)
    target_spans = example.annotate(example.target) or []
    reference = _visual_texts(example.target, target_spans)
    free = [text[s0:s1] for s0, s1, k in spans if k == "free"]
    target_free = [example.target[s0:s1] for s0, s1, k in target_spans if k == "free"]
    if example.family == "compare" and free[:1] != target_free[:1]:
        reference = reference[::-1]
    wrong = []
    visual = [(s0, s1) for s0, s1, k in spans if k == "visual"]
    for (s0, s1), ref in zip(visual, reference, strict=False):
        if text[s0:s1].strip() != ref:
            starts = [i for i, (a, b) in enumerate(offsets) if b > s0 and a < s1]
            first = next((i for i in starts if text[offsets[i][0] : offsets[i][1]].strip()), None)
            if first is not None:
                wrong.append(first)
    return kinds, wrong
