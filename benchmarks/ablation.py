"""One deviation at a time: what the ablation benchmarks (``cnn_ablation.py``,
``fcn_ablation.py``) share.

An ablation starts from a scaled protocol's DNI arm, changes one setting toward the paper
per row and keeps the others, and compares each row with the start seed by seed. A
*factor* is ``(key, the setting, "scaled -> tried", change)``, where ``change`` is a dict
of RunConfig fields or ``"double"`` (twice the steps, as many records). Backprop and the
output layer alone, on the scaled protocol, frame the table.

Paired: seed s starts from the same initial network in every row and draws the same
minibatches wherever the batch size is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import common
from dni_cnn import run_arm
from sg_target import fmt_pair

from dnijax import stats
from dnijax.report import markdown_table

Factor = tuple[str, str, str, "dict | str"]


class Metric(NamedTuple):
    """What an ablation's cells measure: each cell's per-seed list is ``cell[key]``."""

    key: str
    label: str  # the table's column
    unit: str  # of a paired difference
    bounds: stats.Bounds
    lower_is_better: bool


ERROR = Metric("test_error", "test error % (mean [95% CI], n)", "points", stats.PERCENT, True)
FRAME = (
    ("backprop", "backprop", "backprop"),
    ("no backprop", "no backprop", "output layer only"),
)  # (key, arm, label) of the rows that frame a feed-forward ablation


def changed(base: dict, change: dict | str) -> dict:
    """``base`` with one factor's change (``"double"``: twice the steps, as many records)."""
    if change == "double":
        return dict(base, steps=2 * base["steps"], log_every=2 * base["log_every"])
    return {**base, **change}


def data_cells(ds, seeds: int) -> Callable[[str, dict, str], dict]:
    """The cell of a feed-forward ablation: ``dni_cnn.run_arm`` on ``ds``, no noise."""
    return lambda arm, fields, label: run_arm(ds, arm, False, fields, seeds, alignment=False)


def run(
    cell_of: Callable[[str, dict, str], dict],
    base: dict,
    factors: Sequence[Factor],
    quick: tuple[str, ...] | None,
    metric: Metric = ERROR,
    frame: Sequence[tuple[str, str, str]] = FRAME,
) -> dict:
    """The ``frame`` rows (unless ``quick``), the start (arm ``dni``) and every factor of
    ``factors`` (of ``quick`` only, where it is given); ``cell_of(arm, fields, label)``
    trains one row. Returns ``{"cells", "paired", "seconds"}``."""
    t0 = time.time()
    cells: dict = {}
    paired: dict = {}

    def cell(key: str, arm: str, label: str, change: str, fields: dict) -> dict:
        c = cell_of(arm, fields, label)
        c.update(label=label, change=change)
        cells[key] = c
        return c

    if quick is None:
        for key, arm, label in frame:
            cell(key, arm, label, "(scaled protocol)", base)
    start = cell("dni", "dni", "DNI", "(scaled protocol)", base)
    for key, what, change, fields in factors:
        if quick is not None and key not in quick:
            continue
        c = cell(key, "dni", f"DNI, {what}", change, changed(base, fields))
        paired[key] = stats.paired(
            c[metric.key],
            start[metric.key],
            c["diverged"],
            start["diverged"],
            metric.lower_is_better,
            bounds=metric.bounds,
        )
    return {"cells": cells, "paired": paired, "seconds": time.time() - t0}


def markdown(results: dict, metric: Metric = ERROR) -> str:
    """The table: each row's measure, its divergences and its paired effect."""
    rows = []
    for key, c in results["cells"].items():
        pair = results["paired"].get(key)
        rows.append(
            [
                c["label"],
                c["change"],
                stats.format_mean_ci(c["summary"], ".1f"),
                f"{sum(d is not None for d in c['diverged'])}/{len(c['diverged'])}",
            ]
            + (fmt_pair(pair) if pair else ["-", "-", "-"])
        )
    return markdown_table(
        [
            "row",
            "change from the scaled protocol",
            metric.label,
            "diverged",
            f"vs scaled DNI, {metric.unit} (paired)",
            "seeds lower" if metric.lower_is_better else "seeds higher",
            "p (Wilcoxon)",
        ],
        rows,
    )


def figure(results: dict, path: str, metric: Metric = ERROR) -> None:
    """Each factor's paired effect on DNI's measure, with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = results["paired"]
    keys = [k for k in pairs if pairs[k]["mean_diff"] is not None]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(keys) + 1.4), dpi=110)
    for y, key in enumerate(keys):
        p = pairs[key]
        lo, hi = p["ci95"] or (p["mean_diff"], p["mean_diff"])
        ax.errorbar(
            p["mean_diff"],
            y,
            xerr=[[p["mean_diff"] - lo], [hi - p["mean_diff"]]],
            fmt="o",
            color="C0",
            capsize=3,
        )
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([results["cells"][k]["change"] for k in keys], fontsize=8)
    ax.invert_yaxis()
    what = metric.label.split(" (")[0]
    ax.set_xlabel(f"DNI {what}, change from the scaled protocol ({metric.unit}, paired by seed)")
    ax.grid(alpha=0.3, axis="x")
    common.save_figure(fig, path, intervals="error bars")
