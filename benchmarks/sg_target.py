"""What the SG modules regress onto, on the digits CNN: the per-example gradient or the
gradient of the batch loss (``sg_target``: ``per_example`` | ``batch``).

dnijax's SG modules estimate the per-example gradient ``dl_b/dh_i`` (``per_example``, the
default); a PyTorch or TensorFlow implementation that differentiates the batch-mean loss
regresses them onto ``dJ/dh_i``, ``1/B`` times smaller (``batch``; ``docs/math.md``, "SG
target scale"). A perfect module gives the same layer update either way; the regression
does not run at the same speed. Here, on ``dni_cnn.py``'s network and protocol (digits,
16 filters, its conv and dense SG modules with two hidden layers, Adam, batch 64), DNI and
cDNI under both targets, paired by seed (seed s: the same initial network and minibatches
under every arm), with backprop beside them. Reported: test error (%) with its 95%
interval and n, and the per-seed difference batch - per_example.

    python benchmarks/sg_target.py [--quick] [--seeds 8] [--steps 1500] [--optimizer adam]
"""

from __future__ import annotations

import time

import common
import numpy as np
from dni_cnn import base_config, run_arm

from dnijax import stats
from dnijax.report import markdown_table

TARGETS = ("per_example", "batch")


def fmt_pair(pair: dict) -> list[str]:
    if pair["mean_diff"] is None:
        return ["n/a", "—", "—"]
    ci = pair["ci95"]
    diff = f"{pair['mean_diff']:+.1f}" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")
    p = "n/a" if pair["p_value"] is None else f"{pair['p_value']:.2g}"
    return [diff, f"{pair['wins']}/{pair['n']}", p]


def markdown(results: dict) -> str:
    cells = results["cells"]
    rows = [
        [
            c["label"],
            stats.format_mean_ci(c["summary"], ".1f"),
            f"{sum(d is not None for d in c['diverged'])}/{len(c['diverged'])}",
        ]
        for c in cells.values()
    ]
    table = markdown_table(["arm", "test error % (mean [95% CI], n)", "diverged"], rows)
    pairs = [[rule] + fmt_pair(results["paired"][rule]) for rule in results["paired"]]
    return (
        table
        + "\n"
        + markdown_table(
            [
                "rule",
                "batch − per_example, test error points (paired)",
                "lower under batch",
                "p (Wilcoxon)",
            ],
            pairs,
        )
    )


def figure(results: dict, path: str) -> None:
    """Test error along training, mean and 95% band over the seeds, per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for i, c in enumerate(results["cells"].values()):
        color = plt.get_cmap("tab10")(i)
        band = c["curve_test_error"]
        as_float = lambda v: np.array([np.nan if x is None else x for x in v], float)  # noqa
        ax.plot(c["curve_step"], as_float(band["mean"]), color=color, label=c["label"])
        ax.fill_between(
            c["curve_step"],
            as_float(band["ci95_lo"]),
            as_float(band["ci95_hi"]),
            color=color,
            alpha=0.2,
            lw=0,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("test error % (digits CNN)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    common.save_figure(fig, path, intervals="bands")


def main() -> None:
    parser = common.base_parser(__doc__, "sg_target")
    parser.add_argument(
        "--optimizer",
        choices=("adam", "sgd"),
        default="adam",
        help="the optimiser of network and SG modules (default adam)",
    )
    parser.add_argument(
        "--lr",
        type=common.positive(float),
        help="learning rate of both (default: adam 1e-3, sgd 0.1)",
    )
    args = parser.parse_args()
    if args.data != "digits":
        parser.error("--data: the CNN reads 8x8 images; only digits has them")
    filters = 4 if args.quick else 16
    steps = args.steps or (20 if args.quick else 1500)
    seeds = args.seeds or (2 if args.quick else 8)
    lr = args.lr or (1e-3 if args.optimizer == "adam" else 0.1)
    common.claim(args, "sg_target", common.published("sg_target"))
    ds = common.load("digits")
    base = base_config(ds, filters, steps, args.quick, args.optimizer, lr)
    t0 = time.time()
    results: dict = {
        "data": "digits",
        "filters": filters,
        "steps": steps,
        "seeds": seeds,
        "optimizer": args.optimizer,
        "lr": lr,
        "batch": 64,
        "cells": {},
        "paired": {},
    }
    if not args.quick:  # the smoke test: DNI under both targets only
        results["cells"]["backprop"] = run_arm(ds, "backprop", False, base, seeds)
    for rule in ("dni",) if args.quick else ("dni", "cdni"):
        for target in TARGETS:
            cell = run_arm(ds, rule, False, dict(base, sg_target=target), seeds)
            cell["label"] = f"{rule}, sg_target {target}"
            results["cells"][f"{rule} {target}"] = cell
        a, b = results["cells"][f"{rule} per_example"], results["cells"][f"{rule} batch"]
        results["paired"][rule] = stats.paired(
            b["test_error"], a["test_error"], b["diverged"], a["diverged"], bounds=stats.PERCENT
        )
    results["seconds"] = time.time() - t0
    common.publish(args.out, "sg_target", results, report, figure)


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    return (
        f"# SG target scale (digits CNN, {results['filters']} filters, "
        f"{results['optimizer']} {results['lr']:g}, batch 64, {results['steps']} steps, "
        f"{results['seeds']} seeds)\n\n{markdown(results)}\n"
        f"Paired differences are seed by seed (same initial weights and minibatches); "
        f"{stats.INTERVAL}; {stats.PAIRED_TEST}. Total time {results['seconds']:.0f}s.\n"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
