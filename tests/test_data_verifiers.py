"""Answer verifiers (vepo_viz.data.verifiers) against tables of real-looking answers:
(response, reference answer, [options,] expected correct)."""

from __future__ import annotations

import pytest

from vepo_viz.data import VERIFIERS, check_answer, final_answer
from vepo_viz.data import verifiers as v
from vepo_viz.errors import VepoInputError

EXACT = [
    ("The answer is Paris.", "paris", True),
    ("the answer is  New   York", "New York", True),
    ("Answer: red", "Red", True),
    ("\\boxed{\\text{blue}}", "blue", True),
    ("$yes$", "Yes", True),
    ("No.", "no", True),
    ("Final answer: triangle ABC", "triangle abc", True),
    ("I think it is a cat.\nAnswer: dog", "dog", True),
    ("The answer is cat.", "dog", False),
    ("red", "blue", False),
    ("\\boxed{left}", "right", False),
    ("", "yes", False),
    ("The answer is: square", "square", True),
    ("answer = circle", "circle", True),
    ("So the answer is \\mathrm{AB}.", "ab", True),
    ("The answer is yes!", "yes", True),
    ("It is 30°", "30 degrees", False),
    ("Answer: the left one", "left", False),
    ("left", "LEFT", True),
    ("The answer is B.", "B", True),
    ("\\boxed{x+1}", "x + 1", False),
    ("Answer: x + 1", "x + 1", True),
]

NUMERIC = [
    ("\\boxed{\\frac{3}{4}}", "0.75", True),
    ("The answer is 0.75.", "\\frac{3}{4}", True),
    ("So x = 3/4, the answer is 3/4", "0.75", True),
    ("B. 30°", "30", True),
    ("30 degrees", "30", True),
    ("The answer is 30^\\circ.", "30", True),
    ("The angle is 30^{\\circ}", "30°", True),
    ("Answer: 12 cm", "12", True),
    ("Answer: 1,000", "1000", True),
    ("The answer is 45%", "45", True),
    ("\\boxed{-2.5}", "-5/2", True),
    ("\\boxed{\\dfrac{40}{3}}", "13.3333", True),
    ("The answer is 13.33", "\\frac{40}{3}", False),
    ("The answer is 7.", "8", False),
    ("Answer: 0.7", "0.75", False),
    ("I don't know", "3", False),
    ("The answer is 1e3", "1000", True),
    ("x = 2, so y = 5. The answer is 5.", "5", True),
    ("\\boxed{$6$}", "6.0", True),
    ("The area is 24 square units", "24", True),
    ("The answer is 0", "0.00001", True),
    ("The answer is 0.001", "0", False),
    ("Answer: 3.14159", "3.1416", True),
    ("The answer is 13.33333", "\\frac { 40 } { 3 }", True),
]

OPTIONS = ("30°", "45°", "60°", "90°")
CHOICE = [
    ("(B)", "B", None, True),
    ("B", "(B)", None, True),
    ("B. 30°", "B", None, True),
    ("The answer is (C).", "C", None, True),
    ("Answer: D", "d", None, True),
    ("\\boxed{A}", "A", None, True),
    ("option B", "B", None, True),
    ("B)", "B", None, True),
    ("The answer is A.", "B", None, False),
    ("(C)", "B", None, False),
    ("45°", "B", OPTIONS, True),
    ("The answer is 60°", "C", OPTIONS, True),
    ("B. 45°", "45°", OPTIONS, True),
    ("A", "30°", OPTIONS, True),
    ("90°", "A", OPTIONS, False),
    ("Answer: b.", "B", None, True),
    ("Because the lines are parallel, the answer is E", "E", None, True),
    ("The answer is Because", "B", None, False),
    ("\\boxed{(D)}", "D", None, True),
    ("C: 60°", "C", OPTIONS, True),
    ("I am not sure", "A", None, False),
]

SUITE = [
    ("The bar is red, so the answer is red.", "red", True),
    ("So the answer is 3.", "3", True),
    ("the answer is left", "left", True),
    ("The answer is blue.", "red", False),
    ("red", "red", False),  # the suite's template is required
]


@pytest.mark.parametrize("response, answer, expected", EXACT)
def test_exact(response, answer, expected):
    assert check_answer("exact", response, answer).correct is expected


@pytest.mark.parametrize("response, answer, expected", NUMERIC)
def test_numeric(response, answer, expected):
    assert check_answer("numeric", response, answer).correct is expected


@pytest.mark.parametrize("response, answer, options, expected", CHOICE)
def test_multiple_choice(response, answer, options, expected):
    assert check_answer("multiple-choice", response, answer, options).correct is expected


@pytest.mark.parametrize("response, answer, expected", SUITE)
def test_suite(response, answer, expected):
    assert check_answer("suite", response, answer).correct is expected


def test_tables_are_large_enough():
    assert min(len(EXACT), len(NUMERIC), len(CHOICE)) >= 20


MATH = [
    ("\\boxed{\\frac{3}{4}}", "0.75", True),
    ("\\boxed{\\frac{1}{2}}", "\\frac{2}{4}", True),
    ("The answer is \\boxed{2\\sqrt{3}}", "\\sqrt{12}", True),
    ("\\boxed{x^2}", "x^2", True),
    ("\\boxed{3}", "4", False),
]


@pytest.mark.parametrize("response, answer, expected", MATH)
def test_math_verify_when_installed(response, answer, expected):
    pytest.importorskip("math_verify")
    assert check_answer("math-verify", response, answer).correct is expected


def test_math_verify_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(v, "math_verify_installed", lambda: False)
    with pytest.raises(VepoInputError, match="pip install math-verify"):
        check_answer("math-verify", "\\boxed{1}", "1")
    assert v.auto_choice("\\sqrt{2}") == "exact"  # auto never picks a missing verifier


@pytest.mark.parametrize(
    "answer, options, chosen",
    [
        ("B", None, "multiple-choice"),
        ("(C)", None, "multiple-choice"),
        ("0.75", None, "numeric"),
        ("\\frac{3}{4}", None, "numeric"),
        ("\\frac { 40 } { 3 }", None, "numeric"),  # Geometry3K's spacing
        ("30°", None, "numeric"),
        ("1,000", None, "numeric"),
        ("45°", ("30°", "45°"), "multiple-choice"),
        ("Paris", None, "exact"),
    ],
)
def test_auto_chooses_by_answer(answer, options, chosen):
    assert v.resolve("auto", answer, options) == chosen


def test_final_answer_and_registry():
    assert final_answer("x \\boxed{\\frac{1}{2}} y") == ("\\frac{1}{2}", True)
    assert final_answer("Let me think.\nIt is 3, so the answer is 3.") == ("3.", True)
    assert final_answer("Long reasoning without a marker " * 3)[1] is False
    assert set(VERIFIERS) >= {"auto", "suite", "exact", "numeric", "multiple-choice"}
    with pytest.raises(VepoInputError, match="choose one of"):
        check_answer("bogus", "a", "a")


def test_training_rewards_use_each_rows_verifier():
    from vepo_viz.train.trl_data import correct, verifier_reward, well_formed

    completions = ["The answer is 0.75.", "the answer is B", "So the answer is red."]
    answers = ["\\frac{3}{4}", "(B)", "red"]
    spaces = [[], [], ["red", "blue"]]
    verifiers = ["auto", "multiple-choice", "suite"]
    assert verifier_reward(completions, answers, spaces, verifier=verifiers) == [1.0, 1.0, 1.0]
    assert correct(["3/4", "C", "red"], answers, spaces, verifier=verifiers) == [1.0, 0.0, 0.0]
    assert well_formed(["3/4", "C", "red"], answers, spaces, verifier=verifiers) == [1.0, 1.0, 0.0]
    # without a verifier column (old datasets), the suite's
    assert verifier_reward(["The answer is 3."], ["3"], [[]]) == [1.0]
    assert verifier_reward(["3"], ["3"], [[]]) == [0.0]
