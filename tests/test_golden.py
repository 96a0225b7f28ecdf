"""The 12 samples' numbers equal the ones recorded before the "one path" redesign
(tests/golden.py writes them): a refactor must not move a single score or selection."""

import numpy as np
import pytest

from tests.golden import ARRAYS, GOLDEN_PATH, sample_numbers

pytestmark = pytest.mark.slow


def test_sample_numbers_are_unchanged():
    import json

    before = json.loads(GOLDEN_PATH.read_text())
    after = sample_numbers()
    assert sorted(after) == sorted(before)
    for case, old in before.items():
        new = after[case]
        assert new["response"] == old["response"], case
        assert new["tokens"] == old["tokens"], case
        for field in ARRAYS:
            a, b = np.asarray(new[field]), np.asarray(old[field])
            if a.dtype.kind in "biu":
                assert np.array_equal(a, b), (case, field)
            else:
                # Bit-identical on the machine that wrote the file; another CPU's float
                # kernels may round differently in the last place.
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=f"{case} {field}")
