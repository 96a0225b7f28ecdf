"""The 12 samples' numbers equal the stored ones (tests/golden.py writes them) at
tolerances derived from float32 rounding (tests/golden.py says how), on any CPU and
thread count: a refactor must not move a score or a selection beyond rounding. The
comparison itself is tested too: it holds at stored numbers moved by 1e-5 and fails at a
change that flips a selection."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from tests import golden

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def before() -> dict:
    return json.loads(golden.GOLDEN_PATH.read_text())


@pytest.fixture(scope="module")
def after() -> dict:
    return golden.sample_numbers()


def test_sample_numbers_are_unchanged(before, after):
    result = golden.compare(before, after)
    if result.ties:  # allowed, and said: a reader of the log sees every one
        warnings.warn("selection ties at the cut:\n" + "\n".join(result.ties), stacklevel=1)
    assert result.problems == []


@pytest.mark.parametrize("threads", ["1", "2"])
def test_unchanged_with_one_and_two_threads(threads):
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    done = subprocess.run(
        [sys.executable, str(golden.ROOT / "tests" / "golden.py"), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_comparison_holds_stored_numbers_moved_by_1e_5(before, after, seed):
    """Five times the largest difference seen between two CPUs (2.2e-6)."""
    assert golden.compare(golden.perturbed(before, 1e-5, seed), after).problems == []


def _cut(numbers: dict, name: str) -> tuple[int, int, bool]:
    """(selected, unselected) tokens at the cut of `name`, and whether their scores differ
    by more than their tolerances (flipping them is then a real change)."""
    selected = np.asarray(numbers[name], dtype=bool)
    scores = np.asarray(numbers[golden.SELECTIONS[name]], dtype=np.float64)
    tol = golden.tolerances(numbers)[golden.SELECTIONS[name]]
    inside = np.flatnonzero(selected)
    outside = np.flatnonzero(~selected)
    lowest_in = inside[np.argmin(scores[inside])]
    highest_out = outside[np.argmax(scores[outside])]
    clear = scores[lowest_in] - scores[highest_out] > tol[lowest_in] + tol[highest_out]
    return int(lowest_in), int(highest_out), bool(clear)


def _clear_cut(before: dict, name: str) -> tuple[str, int, int]:
    """The first case whose cut of `name` is clear, with its two tokens at the cut."""
    for case in sorted(before):
        i, j, clear = _cut(before[case], name)
        if clear:
            return case, i, j
    raise AssertionError(f"no case has a clear cut for {name}")


@pytest.mark.parametrize("name", list(golden.SELECTIONS))
def test_the_comparison_fails_at_a_flipped_selection(before, after, name):
    case, i, j = _clear_cut(before, name)
    flipped = {**before, case: dict(before[case])}
    selection = list(before[case][name])
    selection[i], selection[j] = False, True
    flipped[case][name] = selection
    problems = golden.compare(flipped, after).problems
    expected = f"{case}: {name}: token {j} "
    assert any(p.startswith(expected) and f"with token {i} " in p for p in problems), problems


@pytest.mark.parametrize(
    ("name", "change"),
    [("scores", 1e-2), ("visual_sensitivity", 1e-2), ("entropy", 1e-3), ("jsd", 1e-3)],
)
def test_the_comparison_fails_at_a_moved_number(before, after, name, change):
    case = "color-3/reference/pasted"
    moved = {**before, case: dict(before[case])}
    values = list(before[case][name])
    k = int(np.argsort(values)[len(values) // 2])  # a middle token (away from v = 1)
    values[k] += change
    moved[case][name] = values
    problems = golden.compare(moved, after).problems
    assert any(p.startswith(f"{case}: {name}[{k}]") for p in problems), problems


def test_a_tie_at_the_cut_is_reported_not_failed(before):
    """Two tokens on either side of the cut with scores within tolerance may swap."""
    case, i, j = _clear_cut(before, "selected_vepo")
    old = dict(before[case])
    scores = list(old["scores"])
    scores[j] = scores[i]  # a tie (in both runs)
    old["scores"] = scores
    new = dict(old)
    selection = list(old["selected_vepo"])
    selection[i], selection[j] = False, True
    new["selected_vepo"] = selection
    result = golden.compare({case: old}, {case: new})
    assert result.problems == []
    assert len(result.ties) == 1 and f"token {i} " in result.ties[0]
    assert f"with token {j} " in result.ties[0]
