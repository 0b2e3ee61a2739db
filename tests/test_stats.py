"""Intervals that stay inside their quantity's range and keep the t interval's coverage."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from dnijax import stats

RANGES = [stats.PROBABILITY, stats.PERCENT, stats.NONNEGATIVE, stats.COSINE]


def uncut_interval(values):
    v = np.asarray(values, float)
    half = scipy_stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return v.mean() - half, v.mean() + half


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(RANGES), st.lists(st.floats(0, 1), min_size=2, max_size=12))
def test_an_interval_never_leaves_its_range(bounds, unit):
    low, high = bounds
    values = [low + u * (min(high, 1e3) - low) for u in unit]  # values inside the range
    ci = stats.mean_ci(values, bounds=bounds)["ci95"]
    assert low <= ci[0] <= np.mean(values) + 1e-9 and np.mean(values) - 1e-9 <= ci[1] <= high
    lo, hi = uncut_interval(values)
    assert ci == pytest.approx([max(lo, low), min(hi, high)])


def test_the_cut_covers_exactly_when_the_t_interval_does():
    """For a true mean inside the range, cutting never changes whether it is covered."""
    rng = np.random.RandomState(0)
    covered_t = covered_cut = 0
    for _ in range(2000):
        values = np.clip(rng.normal(0.97, 0.05, size=3), 0, 1)  # accuracies near 1
        lo, hi = uncut_interval(values)
        cut = stats.mean_ci(values.tolist(), bounds=stats.PROBABILITY)["ci95"]
        true_mean = 0.962  # approximately E[clip(N(0.97, 0.05))]; any value in [0, 1] works
        covered_t += lo <= true_mean <= hi
        covered_cut += cut[0] <= true_mean <= cut[1]
        assert (lo <= true_mean <= hi) == (cut[0] <= true_mean <= cut[1])
    assert covered_t == covered_cut


def test_near_one_accuracies_get_an_interval_that_stops_at_one():
    """The issue's case: three seeds near 100% once gave [0.982, 1.011]."""
    s = stats.summarize([0.99, 1.0, 0.9875], [None, None, None], bounds=stats.PROBABILITY)
    assert s["ci95"][1] == 1.0 and s["ci95"][0] < s["mean"] < 1.0


def test_a_band_of_cosines_stays_in_minus_one_to_one():
    band = stats.band(np.array([[0.9, -0.9], [-0.9, 0.95]]), bounds=stats.COSINE)
    assert band["ci95_lo"] == [-1.0, -1.0] and band["ci95_hi"] == [1.0, 1.0]


def test_paired_differences_are_cut_to_the_range_of_a_difference():
    assert stats.difference_bounds(stats.PERCENT) == (-100.0, 100.0)
    p = stats.paired([100.0, 0.0], [0.0, 0.0], [None, None], [None, None], bounds=stats.PERCENT)
    assert -100 <= p["ci95"][0] <= p["mean_diff"] == 50.0 <= p["ci95"][1] <= 100


def test_one_run_has_no_interval_and_none_values_are_dropped():
    assert stats.mean_ci([0.5], bounds=stats.PROBABILITY)["ci95"] is None
    assert stats.mean_ci([0.5, None, float("nan")], bounds=stats.PROBABILITY)["n"] == 1


@pytest.mark.parametrize(
    "k, n, lo, hi",
    [
        # Wilson by hand, z = 1.959964: centre (k + z^2/2) / (n + z^2), half-width
        # z sqrt(k (n - k) / n + z^2 / 4) / (n + z^2)
        (0, 10, 0.0, 3.841459 / 13.841459),
        (5, 10, 0.5 - 1.959964 * math.sqrt(2.5 + 0.960365) / 13.841459, None),
        (10, 10, 10 / 13.841459, 1.0),
    ],
)
def test_a_proportion_gets_the_wilson_interval(k, n, lo, hi):
    ci = stats.proportion_ci(k, n)
    hi = 1 - lo if hi is None else hi  # 5 of 10 is symmetric about 0.5
    assert ci["fraction"] == k / n and ci["n"] == n
    assert ci["ci95"] == pytest.approx([lo, hi], abs=1e-6)


def test_a_proportion_of_impossible_counts_is_refused():
    with pytest.raises(ValueError, match=r"successes must be in \[0, n=3\]"):
        stats.proportion_ci(4, 3)
    assert stats.proportion_ci(0, 0)["ci95"] is None
