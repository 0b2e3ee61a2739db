"""Copy and Repeat Copy batches: what is shown, what must be recalled, and where it counts."""

import jax
import numpy as np
import pytest

from dnijax import copy_task as ct


@pytest.mark.parametrize("length", [1, 3, 5])
def test_copy_recalls_the_patterns_after_the_delimiter(length):
    b = ct.make_batch(jax.random.key(length), "copy", length, 3, max_length=5)
    x, y, mask = map(np.asarray, b)
    assert x.shape == (3, 11, 9) and y.shape == (3, 11, 8)
    np.testing.assert_array_equal(y[:, length + 1 : 2 * length + 1], x[:, :length, :8])
    assert (x[:, length, 8] == 1).all() and x[:, :, 8].sum() == 3  # one delimiter each
    assert (x[:, length:, :8] == 0).all()  # nothing shown after it
    np.testing.assert_array_equal(mask.sum(1), [length] * 3)
    assert (y[mask == 0] == 0).all()


def test_repeat_copy_repeats_and_ends_with_a_marker():
    b = ct.make_batch(jax.random.key(0), "repeat_copy", 2, 64, max_length=3, max_repeats=3)
    x, y, mask = map(np.asarray, b)
    assert x.shape == (64, 3 + 2 + 9, 10) and y.shape[-1] == 9
    repeats = np.rint(x[:, 2, 9] * 3).astype(int)
    assert set(repeats) == {1, 2, 3}
    for row, r in enumerate(repeats):
        for k in range(r):
            np.testing.assert_array_equal(y[row, 3 + 2 * k : 5 + 2 * k, :8], x[row, :2, :8])
        assert y[row, 3 + 2 * r, 8] == 1 and y[row, :, 8].sum() == 1
        assert mask[row].sum() == 2 * r + 1


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        ct.make_batch(jax.random.key(0), "sort", 2, 1, max_length=3)
