"""Why DNI sits at chance on the digits CNN: the scaled protocol, one deviation at a time
moved toward the paper's.

The start is ``dni_cnn.py``'s scaled protocol (``dnijax.experiments.protocols.CNN``):
digits as 8x8x1 images, two 5x5 conv blocks of 16 filters with pooling, a dense output
layer, SG modules with two hidden layers of 16 (conv, then dense), Adam 1e-3 for network
and SG modules, batch 64, 1500 steps, SG modules regressing the per-example gradient.
Each row changes one setting toward the paper and keeps the others: the SG target
(``sg_target="batch"``, what PyTorch and TensorFlow DNI code regresses onto), the SG scale
(0.1, what recurrent reimplementations use), the paper's learning rate (Adam 3e-5), wider SG
modules (64, the paper's 128 halved for compute), the paper's batch (256) and a longer
budget (3000 steps). Backprop and the output layer alone, on the scaled protocol, frame
the table. Batch norm, the paper's other convention, is not a dnijax layer kind yet, so it
has no row.

Paired: seed s starts from the same initial network in every row, and draws the same
minibatches in every row but the batch-256 one. Reported per row: DNI's test error (%)
with its 95% interval and n, and the per-seed difference from the scaled protocol's DNI
with its 95% interval, the seeds it lowers and the Wilcoxon p.

    python benchmarks/cnn_ablation.py [--quick] [--seeds 8] [--steps 1500]
"""

from __future__ import annotations

import time

import common
import numpy as np
from dni_cnn import base_config, run_arm
from sg_target import fmt_pair

from dnijax import stats
from dnijax.report import markdown_table

# (key, the setting, its scaled value -> the value tried, RunConfig fields changed)
FACTORS = (
    ("sg_target", "SG target", "per-example gradient -> batch-mean loss's", {"sg_target": "batch"}),
    ("sg_scale", "SG scale", "1 -> 0.1", {"sg_scale": 0.1}),
    ("lr", "learning rate", "Adam 1e-3 -> 3e-5 (the paper's)", {"lr": 3e-5}),
    ("sg_width", "SG width", "16 -> 64 (paper 128)", {"sg_hidden": (64, 64)}),
    ("batch", "batch", "64 -> 256 (the paper's)", {"batch_size": 256}),
    ("budget", "budget", "1500 -> 3000 steps (paper 500k)", "double"),
)
QUICK_FACTORS = ("sg_scale",)  # the smoke test: DNI and one factor


def changed(base: dict, change) -> dict:
    """``base`` with one factor's change (``"double"``: twice the steps, as many records)."""
    if change == "double":
        return dict(base, steps=2 * base["steps"], log_every=2 * base["log_every"])
    return {**base, **change}


def markdown(results: dict) -> str:
    cells = results["cells"]
    rows = []
    for key, c in cells.items():
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
            "test error % (mean [95% CI], n)",
            "diverged",
            "vs scaled DNI, points (paired)",
            "seeds lower",
            "p (Wilcoxon)",
        ],
        rows,
    )


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    return (
        f"# DNI on the digits CNN, one deviation at a time ({results['filters']} filters, "
        f"{results['steps']} steps at the start, {results['seeds']} seeds)\n\n"
        f"{markdown(results)}\n"
        "The rows after DNI's each change one setting; batch norm has no row (no "
        f"batch-norm layer kind yet). {stats.INTERVAL}; {stats.PAIRED_TEST}. "
        f"Total time {results['seconds']:.0f}s.\n"
    )


def figure(results: dict, path: str) -> None:
    """Each factor's paired effect on DNI's test error, with its 95% interval."""
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
    ax.set_xlabel("DNI test error, change from the scaled protocol (points, paired by seed)")
    ax.grid(alpha=0.3, axis="x")
    common.save_figure(fig, path, intervals="error bars")


def main() -> None:
    parser = common.base_parser(__doc__, "cnn_ablation")
    args = parser.parse_args()
    if args.data != "digits":
        parser.error("--data: the CNN reads 8x8 images; only digits has them")
    filters = 4 if args.quick else 16
    steps = args.steps or (20 if args.quick else 1500)
    seeds = args.seeds or (2 if args.quick else 8)
    common.claim(args, "cnn_ablation", common.published("cnn_ablation"))
    ds = common.load("digits")
    base = base_config(ds, filters, steps, args.quick)
    base["log_every"] = steps // 2 if args.quick else steps // 10
    t0 = time.time()
    results: dict = {
        "data": "digits",
        "filters": filters,
        "steps": steps,
        "seeds": seeds,
        "cells": {},
        "paired": {},
    }

    def run(key: str, arm: str, label: str, change: str, fields: dict) -> dict:
        cell = run_arm(ds, arm, False, fields, seeds, alignment=False)
        cell.update(label=label, change=change)
        results["cells"][key] = cell
        return cell

    if not args.quick:
        run("backprop", "backprop", "backprop", "(scaled protocol)", base)
        run("no backprop", "no backprop", "output layer only", "(scaled protocol)", base)
    start = run("dni", "dni", "DNI", "(scaled protocol)", base)
    for key, what, change, fields in FACTORS:
        if args.quick and key not in QUICK_FACTORS:
            continue
        cell = run(key, "dni", f"DNI, {what}", change, changed(base, fields))
        results["paired"][key] = stats.paired(
            cell["test_error"],
            start["test_error"],
            cell["diverged"],
            start["diverged"],
            bounds=stats.PERCENT,
        )
    results["seconds"] = time.time() - t0
    common.publish(args.out, "cnn_ablation", results, report, figure)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
