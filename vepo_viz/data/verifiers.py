"""Answer verifiers: is a response's final answer the reference answer? `VERIFIERS`.

One registry entry per way of checking, chosen per dataset (`DataColumns.verifier`, the
`--verifier` flag); each returns the suite's `Verdict` (correct, well-formed, the answer
it read), so rewards and accuracies mean the same everywhere:

- suite: the procedural suite's "... the answer is X." template (tasks.verify);
- exact: the final answer equals the reference after normalisation (case, spaces,
  LaTeX wrappers, end punctuation);
- numeric: the last number of the answer equals the reference's within a relative
  tolerance, units and degree signs stripped, `\\frac{3}{4}` and 3/4 read as 0.75;
- multiple-choice: the chosen letter ((B), B., "option B") or an option's text;
- math-verify: LaTeX equivalence through the `math-verify` package, when installed;
- auto: one of the above per row, from what the reference answer looks like.

The final answer of a free-form response is its last \\boxed{...}, else what follows
"answer is" / "Answer:", else its last line.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass

from vepo_viz.errors import VepoInputError
from vepo_viz.registry import Registry
from vepo_viz.tasks.base import Verdict, verify

NUMERIC_REL_TOL = 1e-4
"""Relative tolerance of the numeric verifier (and an absolute one of the same size near 0)."""
SHORT_ANSWER = 40
"""A response this short without an answer marker counts as a bare, well-formed answer."""

Check = Callable[[str, str, tuple[str, ...] | None], Verdict]


@dataclass(frozen=True)
class Verifier:
    """One way to check an answer: check(response, answer, options) -> Verdict."""

    name: str
    description: str
    check: Check


VERIFIERS: Registry[Verifier] = Registry("verifier", reference="auto")

# ---- reading the final answer -----------------------------------------------------------

_MARKER_RE = re.compile(r"(?:answer is|answer:|answer\s*=)\s*(.+)$", re.IGNORECASE | re.DOTALL)


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def final_answer(response: str) -> tuple[str, bool]:
    """(the final answer of a free-form response, whether a marker or brevity made it
    well-formed): the last \\boxed{...}, else what follows "answer is", else the last line."""
    boxed = _last_boxed(response)
    if boxed is not None:
        return boxed.strip(), True
    marked = _MARKER_RE.search(response.strip())
    if marked:
        return marked.group(1).strip(), True
    lines = [line for line in response.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    return last, 0 < len(response.strip()) <= SHORT_ANSWER


# ---- normalisation ------------------------------------------------------------------------

_LATEX_WRAP_RE = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\{([^{}]*)\}")


def normalise(text: str) -> str:
    """Lower case, LaTeX text wrappers and $ removed, spaces collapsed, end punctuation
    stripped: what the exact verifier compares."""
    text = _LATEX_WRAP_RE.sub(r"\1", text)
    text = text.replace("$", "").replace("\\(", "").replace("\\)", "")
    text = text.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    text = re.sub(r"\s+", " ", text).strip().lower()
    return text.strip(" .,;:!")


def _check_exact(response: str, answer: str, options=None) -> Verdict:
    predicted, well_formed = final_answer(response)
    norm = normalise(predicted)
    return Verdict(
        correct=bool(norm) and norm == normalise(answer),
        well_formed=well_formed,
        predicted=norm or None,
    )


# ---- numbers -----------------------------------------------------------------------------

_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*([-+]?[\d.]+)\s*\}\s*\{\s*([-+]?[\d.]+)\s*\}")
_SLASH_RE = re.compile(r"([-+]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")
_NUMBER_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> float | None:
    """The last number in `text` (fractions and \\frac evaluated, thousands separators,
    percent, degree signs and units ignored), or None."""
    text = _LATEX_WRAP_RE.sub(r"\1", text).replace("$", "")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"\^\s*\{?\\circ\}?|°|\\%|%", " ", text)
    text = _FRAC_RE.sub(lambda m: repr(_ratio(m.group(1), m.group(2))), text)
    text = _SLASH_RE.sub(lambda m: repr(_ratio(m.group(1), m.group(2))), text)
    numbers = _NUMBER_RE.findall(text)
    if not numbers:
        return None
    try:
        return float(numbers[-1])
    except ValueError:
        return None


def _ratio(top: str, bottom: str) -> float:
    try:
        return float(top) / float(bottom)
    except (ValueError, ZeroDivisionError):
        return float("nan")


def _check_numeric(response: str, answer: str, options=None) -> Verdict:
    predicted, well_formed = final_answer(response)
    got, want = parse_number(predicted), parse_number(answer)
    correct = (
        got is not None
        and want is not None
        and abs(got - want) <= NUMERIC_REL_TOL * max(1.0, abs(want))
    )
    return Verdict(
        correct=correct,
        well_formed=well_formed and got is not None,
        predicted=None if got is None else repr(got),
    )


# ---- multiple choice -----------------------------------------------------------------------

_LETTERS = "ABCDEFGHIJ"
_LETTER_RE = re.compile(
    r"^(?:\(?option\s+)?\(?([A-J])\)?(?:[.):]\s*|\s*$|\s+(?=\S))", re.IGNORECASE
)


def choice_letter(text: str, options: tuple[str, ...] | None = None) -> str | None:
    """The option letter `text` names: "(B)", "B.", "B. 30°", "option b", or the text of
    one of `options` (compared after normalisation); None if it names none."""
    text = text.strip()
    if options:
        norm = normalise(text)
        for i, option in enumerate(options[: len(_LETTERS)]):
            if norm == normalise(option) or norm == normalise(_strip_letter(option)):
                return _LETTERS[i]
    m = _LETTER_RE.match(text)
    if m:
        return m.group(1).upper()
    return None


def _strip_letter(option: str) -> str:
    return re.sub(r"^\(?[A-J][.):]\s*", "", option.strip())


def _check_choice(response: str, answer: str, options=None) -> Verdict:
    predicted, well_formed = final_answer(response)
    got, want = choice_letter(predicted, options), choice_letter(answer, options)
    if want is None:  # the reference is an option's text that is not among the options
        return _check_exact(response, answer)
    return Verdict(correct=got == want, well_formed=well_formed and got is not None, predicted=got)


# ---- math-verify ----------------------------------------------------------------------------


def math_verify_installed() -> bool:
    """Whether the optional `math-verify` package can be imported."""
    return importlib.util.find_spec("math_verify") is not None


def _check_math(response: str, answer: str, options=None) -> Verdict:
    if not math_verify_installed():
        raise VepoInputError(
            "the math-verify verifier needs the math-verify package: pip install math-verify "
            "(or choose another --verifier: " + ", ".join(VERIFIERS) + ")"
        )
    from math_verify import parse
    from math_verify import verify as math_equal

    predicted, well_formed = final_answer(response)
    gold = parse(f"${answer}$" if "$" not in answer else answer)
    got = parse(f"\\boxed{{{predicted}}}")
    correct = bool(gold) and bool(got) and bool(math_equal(gold, got))
    return Verdict(correct=correct, well_formed=well_formed and bool(got), predicted=predicted)


# ---- auto --------------------------------------------------------------------------------


def auto_choice(answer: str, options: tuple[str, ...] | None = None) -> str:
    """The verifier "auto" uses for a reference answer: multiple-choice for a letter,
    numeric for a number, math-verify for other LaTeX when installed, else exact."""
    stripped = answer.strip()
    if re.fullmatch(r"\(?[A-J]\)?", stripped) or (options and choice_letter(stripped, options)):
        return "multiple-choice"
    if re.fullmatch(
        r"[-+\d.,\s/%°]*\d[-+\d.,\s/%°]*|\\[dt]?frac\s*\{[\d.\s-]+\}\s*\{[\d.\s]+\}", stripped
    ):
        return "numeric"
    if "\\" in stripped and math_verify_installed():
        return "math-verify"
    return "exact"


def resolve(name: str, answer: str, options: tuple[str, ...] | None = None) -> str:
    """The verifier that checks `answer`: `name`, or auto's choice for it."""
    VERIFIERS.check(name)
    return auto_choice(answer, options) if name == "auto" else name


def check_answer(
    name: str, response: str, answer: str, options: tuple[str, ...] | None = None
) -> Verdict:
    """Verdict of `response` against `answer` with the verifier `name` ("auto" resolved)."""
    return VERIFIERS[resolve(name, answer, options)].check(response, answer, options)


def _check_auto(response: str, answer: str, options=None) -> Verdict:
    return check_answer("auto", response, answer, options)


def _check_suite(response: str, answer: str, options=None) -> Verdict:
    return verify(response, answer, tuple(options) if options else None)


for _entry in (
    Verifier("auto", "chosen per answer: a letter, a number, LaTeX or text", _check_auto),
    Verifier("suite", "the suite's '... the answer is X.' template", _check_suite),
    Verifier("exact", "equal after normalisation (case, spaces, LaTeX text)", _check_exact),
    Verifier("numeric", "equal numbers within a tolerance, units stripped", _check_numeric),
    Verifier("multiple-choice", "the same option letter or option text", _check_choice),
    Verifier("math-verify", "LaTeX equivalence (needs pip install math-verify)", _check_math),
):
    VERIFIERS.register(_entry)
