"""Core types of the procedural task suite: examples, annotated target texts, verifiers.

Every example is a pure function of (family, seed, difficulty). Its target text is built
from segments, each labelled with the kind of token it holds:

- "visual":   a fact read off the image (a colour, a count, a number, left/right ...)
- "template": fixed reasoning/format words of the family's template
- "free":     a vision-independent free choice sampled at random ("So"/"Thus"/"Hence",
              which of two objects is named first ...): high entropy, no image needed
- "answer":   the final answer, or a conclusion drawn from visual facts already in the
              text ("taller" after both bars' levels): no new look at the image

Because we generate the data, we know which response tokens are read off the image.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from PIL import Image

KINDS = ("visual", "template", "free", "answer")
SPLITS = ("train", "heldout")
IMAGE_SIZE = 112

CONNECTIVES = ("So", "Thus", "Hence", "Therefore")
_ANSWER_RE = re.compile(r"answer is\s+([A-Za-z0-9-]+)\s*\.?\s*$")


@dataclass(frozen=True)
class Segment:
    """A piece of target text and the kind of its tokens."""

    text: str
    kind: str
    match: str | None = None
    """For a template segment: a regex it may match in another response instead of its
    exact text (a word fixed by an earlier free choice, e.g. the colour of the bar named
    second once the first is chosen). None: the exact text."""


@dataclass
class Example:
    """One task instance: image, question, reference answer and an annotated target text."""

    family: str
    seed: int
    difficulty: float
    image: Image.Image
    question: str
    answer: str
    segments: list[Segment]
    answer_space: tuple[str, ...]
    meta: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        return "".join(s.text for s in self.segments)

    def char_kinds(self) -> list[tuple[int, int, str]]:
        """(start, end, kind) character spans of the target text."""
        spans, pos = [], 0
        for s in self.segments:
            spans.append((pos, pos + len(s.text), s.kind))
            pos += len(s.text)
        return spans

    def annotate(self, response: str) -> list[tuple[int, int, str]] | None:
        """Kind spans of a model `response` that follows this example's template, else None.

        Template segments must appear verbatim (or match their `match`); each run of non-template segments matches
        any text in between (so a wrong colour or another connective is still located).
        """
        groups: list[tuple[str, str]] = []  # (kind, regex)
        for s in self.segments:
            if s.kind == "template":
                groups.append(("template", s.match or re.escape(s.text)))
            elif groups and groups[-1][0] == s.kind and groups[-1][1] == "(.+?)":
                continue  # adjacent slots of one kind form one group
            else:
                groups.append((s.kind, "(.+?)"))
        pattern = "".join(f"({rx})" if kind == "template" else rx for kind, rx in groups)
        m = re.fullmatch(pattern, response)
        if m is None:
            return None
        return [(m.start(i + 1), m.end(i + 1), kind) for i, (kind, _) in enumerate(groups)]

    def image_sha256(self) -> str:
        return hashlib.sha256(self.image.tobytes()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """Verifier output. reward: 1.0 correct, 0.1 well-formed but wrong, 0.0 malformed."""

    correct: bool
    well_formed: bool
    predicted: str | None

    @property
    def reward(self) -> float:
        if self.correct:
            return 1.0
        return 0.1 if self.well_formed else 0.0


def extract_answer(response: str) -> str | None:
    """The X of a final '... the answer is X.' (case-insensitive), else None."""
    m = _ANSWER_RE.search(response.strip())
    return m.group(1).lower() if m else None


def verify(response: str, answer: str, answer_space: tuple[str, ...] | None = None) -> Verdict:
    """Reward function: is `response` well-formed and does its final answer equal `answer`?"""
    predicted = extract_answer(response)
    well_formed = predicted is not None and (
        answer_space is None or predicted in {a.lower() for a in answer_space}
    )
    return Verdict(
        correct=predicted is not None and predicted == answer.lower(),
        well_formed=well_formed,
        predicted=predicted,
    )


def token_kinds(
    offsets: list[tuple[int, int]], spans: list[tuple[int, int, str]], text: str
) -> list[str]:
    """Kind of each token, from its character offsets and the target's kind spans.

    A token takes the kind of the span holding its first non-space character (byte-level
    BPE tokens carry their leading space).
    """
    kinds = []
    for start, end in offsets:
        pos = start
        while pos < end - 1 and text[pos].isspace():
            pos += 1
        kind = "template"
        for s0, s1, k in spans:
            if s0 <= pos < s1:
                kind = k
                break
        kinds.append(kind)
    return kinds


GRID = 4
"""The layout grid: 4 x 4 cells of 28 px, one per merged image token of the embedded model.
Objects sit one per cell (see families.py)."""
