"""Statistics of runs over seeds: intervals, paired tests, and divergence-aware summaries.

Conventions used by every table, figure and JSON file of the project:

* **Interval of a mean**: the 95% Student-t confidence interval over the runs that
  did not diverge, ``mean ± t_{0.975, n-1} * sd / sqrt(n)``, cut to the range the
  quantity can take (``bounds``: accuracies in [0, 1], percentages in [0, 100], losses,
  step counts and lengths >= 0, cosines in [-1, 1], a difference of two such quantities
  within plus or minus the range's width). The true mean lies in that range, so the
  cut interval covers it exactly when the uncut one does: the coverage is the t
  interval's, and no interval claims an impossible value (a percentile bootstrap would
  also stay in range, but covers far less than 95% at the 2-10 seeds of most studies).
  ``n`` is always reported beside it. With one run there is no interval (``None``).
* **Paired comparison** of a regime with backprop, seed by seed (same data, same
  initial weights): the mean of the per-seed differences with its t interval, the
  number of seeds where the regime is lower ("wins") out of n, and the two-sided
  Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``). The difference, its
  interval and the p-value use the seeds where both runs stayed finite; wins count
  every seed, a diverged run losing to a finite one.
* **Interval of a proportion** (the share of runs that reach a goal): the 95% Wilson
  score interval, in [0, 1] for any n.
* **Divergence is counted, never dropped**: a summary reports the diverged fraction,
  and a median over runs treats a diverged run's loss as +inf, so a cell where most
  runs diverged reads as diverged.

Examples:
  >>> from dnijax import stats
  >>> s = stats.mean_ci([1.0, 2.0, 3.0], bounds=stats.REAL)
  >>> round(s["mean"], 3), [round(v, 3) for v in s["ci95"]], s["n"]
  (2.0, [-0.484, 4.484], 3)
  >>> stats.mean_ci([0.9, 1.0, 1.0], bounds=stats.PROBABILITY)["ci95"][1]  # an accuracy
  1.0
  >>> stats.healthy_values([0.1, None, 0.3], [None, 12, None]).tolist()
  [0.1, 0.3]
  >>> stats.median_with_failures([0.1, 0.2, 0.3], [None, 5, 9])  # 2 of 3 diverged
  inf
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

INTERVAL = (
    "95% Student-t interval of the mean over runs that did not diverge, cut to the quantity's range"
)
Bounds = tuple[float, float]
PROBABILITY: Bounds = (0.0, 1.0)  # accuracies and fractions
PERCENT: Bounds = (0.0, 100.0)  # accuracies and errors in percent
NONNEGATIVE: Bounds = (0.0, math.inf)  # losses, step counts, lengths solved
COSINE: Bounds = (-1.0, 1.0)
REAL: Bounds = (-math.inf, math.inf)
PAIRED_TEST = "Wilcoxon signed-rank, two-sided, on per-seed differences"
PROPORTION_INTERVAL = "95% Wilson score interval of a proportion"


def healthy_values(values: Sequence[Any], diverged: Sequence[Any]) -> np.ndarray:
    """The values of the runs that did not diverge (``diverged`` entry ``None``), as floats."""
    return np.array(
        [v for v, d in zip(values, diverged, strict=True) if d is None and v is not None],
        dtype=float,
    )


def difference_bounds(bounds: Bounds) -> Bounds:
    """The range of ``a - b`` for ``a`` and ``b`` in ``bounds``."""
    width = bounds[1] - bounds[0]
    return (-width, width)


def _t_interval(values: np.ndarray, bounds: Bounds) -> list[float] | None:
    if values.size < 2:
        return None
    half = scipy_stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    mean = values.mean()
    return [float(max(mean - half, bounds[0])), float(min(mean + half, bounds[1]))]


def mean_ci(values: Sequence[float], *, bounds: Bounds) -> dict[str, Any]:
    """``{"mean", "ci95": [lo, hi] or None, "n"}`` of finite values (``None``s dropped);
    the interval is cut to ``bounds``, the range of the quantity (see the module doc)."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    return {
        "mean": float(v.mean()) if v.size else None,
        "ci95": _t_interval(v, bounds),
        "n": int(v.size),
    }


def band(samples: np.ndarray, *, bounds: Bounds) -> dict[str, list]:
    """:func:`mean_ci` of every column of ``samples`` (runs x points, e.g. a curve over
    records): ``{"mean", "ci95_lo", "ci95_hi"}``, lists with ``None`` where undefined."""
    cells = [
        mean_ci(np.asarray(samples)[:, k].tolist(), bounds=bounds)
        for k in range(np.shape(samples)[1])
    ]
    return {
        "mean": [c["mean"] for c in cells],
        "ci95_lo": [c["ci95"][0] if c["ci95"] else None for c in cells],
        "ci95_hi": [c["ci95"][1] if c["ci95"] else None for c in cells],
    }


def summarize(values: Sequence[Any], diverged: Sequence[Any], *, bounds: Bounds) -> dict[str, Any]:
    """:func:`mean_ci` over the healthy runs, plus ``n_runs`` and ``diverged_fraction``."""
    out = mean_ci(healthy_values(values, diverged).tolist(), bounds=bounds)
    out["n_runs"] = len(diverged)
    out["diverged_fraction"] = (
        float(np.mean([d is not None for d in diverged])) if len(diverged) else 0.0
    )
    return out


def median_with_failures(values: Sequence[Any], diverged: Sequence[Any]) -> float:
    """The median over all runs, a diverged (or non-finite) run counting as +inf."""
    v = [
        float("inf") if d is not None or v is None else float(v)
        for v, d in zip(values, diverged, strict=True)
    ]
    return float(np.median(v)) if v else float("nan")


def paired(
    values: Sequence[Any],
    baseline: Sequence[Any],
    diverged: Sequence[Any],
    baseline_diverged: Sequence[Any],
    lower_is_better: bool = True,
    *,
    bounds: Bounds,
) -> dict[str, Any]:
    """Paired comparison of ``values`` with ``baseline``, seed by seed (see the module doc);
    ``bounds`` is the range of the compared quantity (the difference's interval is cut to
    :func:`difference_bounds`).

    Returns:
      ``{"mean_diff", "ci95", "wins", "n", "n_both_finite", "p_value", "test"}`` where
      ``mean_diff`` is ``values - baseline`` averaged over the seeds where both are finite.
    """
    sign = 1.0 if lower_is_better else -1.0
    as_score = lambda v, d: float("inf") if d is not None or v is None else sign * float(v)  # noqa
    a = [as_score(v, d) for v, d in zip(values, diverged, strict=True)]
    b = [as_score(v, d) for v, d in zip(baseline, baseline_diverged, strict=True)]
    wins = sum(x < y for x, y in zip(a, b, strict=True))
    diffs = np.array(
        [
            (x - y) * sign
            for x, y in zip(a, b, strict=True)
            if math.isfinite(x) and math.isfinite(y)
        ],
        dtype=float,
    )
    p_value = None
    if diffs.size and np.all(diffs == 0):
        p_value = 1.0
    elif diffs.size >= 2:
        p_value = float(scipy_stats.wilcoxon(diffs, zero_method="wilcox").pvalue)
    return {
        "mean_diff": float(diffs.mean()) if diffs.size else None,
        "ci95": _t_interval(diffs, difference_bounds(bounds)),
        "wins": int(wins),
        "n": len(a),
        "n_both_finite": int(diffs.size),
        "p_value": p_value,
        "test": PAIRED_TEST,
    }


def proportion_ci(successes: int, n: int) -> dict[str, Any]:
    """``{"fraction", "ci95": [lo, hi] or None, "k", "n"}``: the share of ``n`` runs that
    succeeded, with its 95% Wilson score interval (``scipy.stats.binomtest``), which stays
    in [0, 1] and keeps close to its coverage for any n, 0 and n successes included.

    Examples:
      >>> from dnijax import stats
      >>> [round(v, 4) for v in stats.proportion_ci(0, 10)["ci95"]]
      [0.0, 0.2775]
    """
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    if n == 0:
        return {"fraction": None, "ci95": None, "k": 0, "n": 0}
    ci = scipy_stats.binomtest(successes, n).proportion_ci(0.95, method="wilson")
    return {
        "fraction": successes / n,
        "ci95": [max(float(ci.low), 0.0), min(float(ci.high), 1.0)],
        "k": int(successes),
        "n": int(n),
    }


def steps_to_fraction(
    steps: Sequence[int] | np.ndarray, loss: Sequence[float] | np.ndarray, fraction: float = 0.9
) -> int | None:
    """The first recorded step at which a run has made ``fraction`` of its own loss drop
    (from the first record to the last): a target that depends on the run, so it carries
    information whatever the scale of the loss. ``None`` if the loss did not drop."""
    values = np.asarray(loss, dtype=float)
    if values.size < 2 or not np.all(np.isfinite(values)) or values[-1] >= values[0]:
        return None
    target = values[0] - fraction * (values[0] - values[-1])
    return int(np.asarray(steps)[np.argmax(values <= target)])


def format_mean_ci(summary: dict[str, Any], fmt: str = ".4g") -> str:
    """``"m [lo, hi] (n=k)"`` for a :func:`mean_ci`/:func:`summarize` result."""
    if summary.get("mean") is None:
        return "n/a"
    ci = summary.get("ci95")
    interval = f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else ""
    return f"{summary['mean']:{fmt}}{interval} (n={summary['n']})"
