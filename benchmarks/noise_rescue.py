"""Does gradient noise rescue a zero-initialised deep net? Neelakantan et al.'s hardest
cell, rerun with 10 seeds per cell and 30,000 steps.

The paper's deep network (20 hidden layers of 50 ReLU units) with every weight and bias
initialised to zero cannot learn by backprop: every hidden unit outputs 0 and gets no
gradient. The paper reports that annealed Gaussian gradient noise rescues it (MNIST, 40
runs per cell: best 94.5% / average 49.7% with noise against 11.4% / 10.1% without). Here,
as in ``deep_noise.py`` (whose zero-init row this reruns): offline data (scikit-learn's
digits by default), plain SGD at lr 0.1 and 0.01, batch 64, global-norm clipping at 10,
then the paper's noise (eta 0.01, gamma 0.55) or none, ``--seeds`` seeds per cell (10) and
``--steps`` steps (30,000). Seed s draws the same minibatches with and without noise, so
noise's effect is paired by seed.

Per cell, like the paper: the best and the average final test accuracy (95% interval), and
the fraction of runs that train (final test accuracy at least ``TRAINS`` %, twice chance)
with its Wilson interval; the test accuracy along training, and the same figures at
``deep_noise.py``'s 2000 steps. All runs are one compiled program.

    python benchmarks/noise_rescue.py [--quick] [--data digits|mnist1d] [--seeds 10] [--steps 30000]
"""

from __future__ import annotations

import itertools
import time

import common
import numpy as np
from deep_noise import SETTINGS, base_config, cell, train_cells
from deep_noise import fmt as fmt_cell
from sg_target import fmt_pair

from dnijax import stats
from dnijax.report import markdown_table

ZERO = 4  # deep_noise.SETTINGS: zero init, clip 10
LRS = (0.1, 0.01)
ETA = 0.01
TRAINS = 20.0  # % test accuracy: a run trains when it ends at twice chance or more
SHORT = 2000  # deep_noise.py's budget
PAPER = {False: (11.4, 10.1), True: (94.5, 49.7)}  # best / average, MNIST, 40 runs (2 lrs)


def summary(acc: np.ndarray, diverged: np.ndarray) -> dict:
    """``deep_noise.cell`` (best, average with its 95% interval, divergences) of test
    accuracies in %, and the fraction of runs that train."""
    return {
        **cell(acc, diverged),
        "trains": stats.proportion_ci(int((acc >= TRAINS).sum()), int(acc.size)),
    }


def run(ds, depth: int, width: int, steps: int, seeds: int) -> dict:
    cfg = base_config("backprop", ds, depth, width, steps, 64)
    runs = [
        dict(setting=ZERO, lr=lr, eta=eta, seed=seed)
        for lr, eta, seed in itertools.product(LRS, (0.0, ETA), range(seeds))
    ]
    res = train_cells(cfg, ds, runs, "zero init", test_history=True)
    step = res.history["step"]
    at_short = int(np.searchsorted(step, min(SHORT, steps), side="right")) - 1
    cells = []
    for lr, eta in itertools.product(LRS, (0.0, ETA)):
        idx = [i for i, r in enumerate(runs) if r["lr"] == lr and r["eta"] == eta]
        curve = 100 * res.history["test_accuracy"][idx]
        final = 100 * res.final["test_accuracy"][idx]
        diverged = res.diverged_at[idx]
        cells.append(
            {
                "lr": lr,
                "noise": eta > 0,
                "final": final.tolist(),
                "diverged_at": [int(d) if d >= 0 else None for d in diverged],
                "at_end": summary(final, diverged >= 0),
                "at_short": summary(curve[:, at_short], diverged >= 0),
                "curve_step": step.tolist(),
                "curve": stats.band(curve, bounds=stats.PERCENT),
            }
        )
    return {"cells": cells, "short_step": int(step[at_short])}


def pooled(results: dict, noise: bool) -> dict:
    """Both learning rates' runs together, as the paper pools its 2 x 20 runs."""
    cells = [c for c in results["cells"] if c["noise"] == noise]
    final = np.concatenate([c["final"] for c in cells])
    diverged = np.array([d is not None for c in cells for d in c["diverged_at"]])
    return summary(final, diverged)


def fmt(s: dict) -> tuple[str, str]:
    """``deep_noise.fmt`` (best / average [95% CI]) and the fraction that trains."""
    t = s["trains"]
    return fmt_cell(s), f"{t['k']}/{t['n']} [{100 * t['ci95'][0]:.0f}, {100 * t['ci95'][1]:.0f}]%"


def markdown(results: dict) -> str:
    rows = []
    for c in results["cells"]:
        rows.append(
            [f"{c['lr']:g}", "paper's" if c["noise"] else "none"]
            + list(fmt(c["at_short"]))
            + list(fmt(c["at_end"]))
            + ["-"]
        )
    for noise in (False, True):
        rows.append(
            ["both (pooled)", "paper's" if noise else "none", "-", "-"]
            + list(fmt(pooled(results, noise)))
            + [" / ".join(map(str, PAPER[noise]))]
        )
    steps = results["steps"]
    table = markdown_table(
        [
            "lr",
            "noise",
            f"at {results['short_step']} steps: best / avg [95% CI]",
            "trains",
            f"at {steps} steps: best / avg [95% CI]",
            "trains",
            "paper (MNIST): best / avg",
        ],
        rows,
    )
    pairs = []
    for lr in LRS:
        off, on = (
            next(c for c in results["cells"] if c["lr"] == lr and c["noise"] == n)
            for n in (False, True)
        )
        p = stats.paired(
            on["final"],
            off["final"],
            on["diverged_at"],
            off["diverged_at"],
            lower_is_better=False,
            bounds=stats.PERCENT,
        )
        pairs.append([f"{lr:g}", *fmt_pair(p)])
    return (
        table
        + "\nNoise against none, paired by seed (final test accuracy, points):\n\n"
        + markdown_table(["lr", "noise - none", "seeds higher", "p (Wilcoxon)"], pairs)
    )


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    r = results
    return (
        f"# Gradient noise and a zero-initialised net ({r['depth']} x {r['width']} ReLU, "
        f"{r['data']}, SGD, batch 64, clip 10, {r['seeds']} seeds per cell)\n\n"
        f"Test accuracy (%): best / average [{stats.INTERVAL}; every run counts, a diverged "
        f"run with its last finite parameters]; trains: runs ending at >= {TRAINS:g}% "
        f"[{stats.PROPORTION_INTERVAL}]. The paper's figures are MNIST, 40 runs pooled "
        "over two learning rates.\n\n"
        f"{markdown(r)}\n{stats.PAIRED_TEST}. Total time {r['seconds']:.0f}s.\n"
    )


def figure(results: dict, path: str) -> None:
    """Mean test accuracy along training (95% band) per learning rate, noise and none,
    with every run's final accuracy beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LRS), figsize=(6 * len(LRS), 4.2), dpi=100, sharey=True)
    for ax, lr in zip(np.atleast_1d(axes), LRS, strict=True):
        for c in results["cells"]:
            if c["lr"] != lr:
                continue
            color = "#ff7f0e" if c["noise"] else "#1f77b4"
            label = "paper's noise" if c["noise"] else "no noise"
            band = c["curve"]
            lo = [np.nan if v is None else v for v in band["ci95_lo"]]
            hi = [np.nan if v is None else v for v in band["ci95_hi"]]
            ax.plot(c["curve_step"], band["mean"], color=color, label=f"{label}: mean")
            ax.fill_between(c["curve_step"], lo, hi, color=color, alpha=0.2)
            end = c["curve_step"][-1] * (1.02 if c["noise"] else 1.04)
            ax.plot([end] * len(c["final"]), c["final"], "_", color=color, ms=8)
        ax.axhline(TRAINS, color="0.5", lw=0.8, ls=":", label=f"trains: >= {TRAINS:g}%")
        ax.set_title(f"zero init, SGD lr {lr:g}, {results['seeds']} seeds per curve", fontsize=9)
        ax.set_xlabel("step (ticks at the right: each run's final accuracy)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel(f"test accuracy % ({results['data']})")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    common.save_figure(fig, path, intervals="bands")


def main() -> None:
    parser = common.base_parser(__doc__, "noise_rescue")
    args = parser.parse_args()
    depth, width = (4, 16) if args.quick else (20, 50)
    steps = args.steps or (60 if args.quick else 30_000)
    seeds = args.seeds or (2 if args.quick else 10)
    ds = common.load(args.data)
    common.claim(args, "noise_rescue", common.published("noise_rescue"))
    t0 = time.time()
    results = {
        "data": args.data,
        "depth": depth,
        "width": width,
        "steps": steps,
        "seeds": seeds,
        "init": SETTINGS[ZERO][0],
        "eta": ETA,
        "trains_at": TRAINS,
    }
    results.update(run(ds, depth, width, steps, seeds))
    results["seconds"] = time.time() - t0
    common.publish(args.out, "noise_rescue", results, report, figure)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
