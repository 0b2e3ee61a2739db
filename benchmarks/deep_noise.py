"""Neelakantan et al.'s deep-network experiment, scaled to this machine, and its DNI twin.

Part 1, the paper's table: 20 hidden layers of 50 ReLU units, plain SGD at lr 0.1 and
0.01, batch 64, paper noise (eta 0.01, gamma 0.55) after global-norm clipping, under the
paper's inits, with and without noise, on offline data (scikit-learn's digits by
default). Each cell reports the best and the average test accuracy over its runs (2
learning rates x seeds, pooled as the paper pools its 2 x 20 runs), the average with its
95% Student-t interval, beside the paper's MNIST figures. The same grid with DNI
(zero-init linear SG modules, paper topology, SG lr = lr / 10) answers a question
neither paper asked.

Part 2, the test of part 1's explanation. Part 1 trains 2000 steps, where the paper
trained far longer; if that is why noise does not rescue the poorly initialised nets
here, training longer must show it. The poorly initialised rows (simple init without
clipping and with clip 10, zero init with clip 10) train ``--long-steps`` steps (default
5x part 1) at lr 0.1 with the paper's three eta values (0.01, 0.3, 1.0) and without
noise, with the noise after the clipping (the paper's order for its other tasks) and
before it (the paper does not state the order for MNIST). Test accuracy is recorded
along training, so the table shows it at part 1's budget and at the end.

Every run of one family or part is one compiled program: init, learning rate, clipping
threshold, eta (0 = no noise) are per-run numbers.

    python benchmarks/deep_noise.py [--quick] [--data digits|mnist1d] [--out DIR]
"""

from __future__ import annotations

import itertools
import time

import common
import numpy as np

from dnijax import RunConfig, engine, stats
from dnijax.config import regime_name
from dnijax.report import markdown_table

# (label, init, scale, clip, paper (no noise best/avg), paper (noise best/avg))
SETTINGS = [
    ("simple init N(0, 0.1^2), no clipping", "normal", 0.1, None, (89.9, 43.1), (96.7, 52.7)),
    ("simple init, clip 100", "normal", 0.1, 100.0, (90.0, 46.3), (96.7, 52.3)),
    ("simple init, clip 10", "normal", 0.1, 10.0, (95.7, 51.6), (97.0, 53.6)),
    ("He init, clip 10", "he", 1.0, 10.0, (97.4, 91.7), (97.2, 91.7)),
    ("zero init, clip 10", "zeros", 0.0, 10.0, (11.4, 10.1), (94.5, 49.7)),
]
LRS = (0.1, 0.01)
POOR = (0, 2, 4)  # the poorly initialised rows that part 2 trains longer
ETAS = (0.0, 0.01, 0.3, 1.0)


def base_config(
    family: str, ds, depth: int, width: int, steps: int, batch: int, noise_before_clip: bool = False
) -> RunConfig:
    widths = (ds.n_features,) + (width,) * depth + (ds.n_classes,)
    return RunConfig(
        regime=regime_name(family, True),
        widths=widths,
        activations=("relu",) * depth + ("identity",),
        loss="xent",
        reduction="mean",
        optimizer="sgd",
        lr=0.1,
        noise="paper",
        eta=0.01,
        gamma=0.55,
        clip=10.0,
        steps=steps,
        batch_size=batch,
        topology="paper",
        sg_init="zero",
        noise_before_clip=noise_before_clip,
    )


def train_cells(cfg: RunConfig, ds, runs: list[dict], label: str, test_history: bool = False):
    """Trains ``runs`` (dicts with setting, lr, eta, seed) as one vmapped program."""
    hyper = engine.stack_hyper(
        cfg,
        lr=[r["lr"] for r in runs],
        sg_lr=[r["lr"] / 10 for r in runs],
        eta=[r["eta"] for r in runs],
        clip=[
            np.inf if SETTINGS[r["setting"]][3] is None else SETTINGS[r["setting"]][3] for r in runs
        ],
    )
    net = common.initial_nets(
        cfg.widths,
        [(SETTINGS[r["setting"]][1], SETTINGS[r["setting"]][2], r["seed"]) for r in runs],
    )
    return engine.run_grid(
        cfg,
        hyper,
        engine.run_keys([r["seed"] for r in runs]),
        (ds.x_train, ds.y_train),
        test=(ds.x_test, ds.y_test),
        net=net,
        test_history=test_history,
        progress=common.progress_line(f"{label} ({len(runs)} runs)"),
    )


def cell(acc: np.ndarray, diverged: np.ndarray) -> dict:
    """Best and average (with its 95% interval) of test accuracies in %, all runs counted
    (a diverged run with the accuracy of its last finite parameters), and divergences."""
    avg = stats.mean_ci(acc.tolist(), bounds=stats.PERCENT)
    return {
        "best": float(acc.max()),
        "average": avg["mean"],
        "ci95": avg["ci95"],
        "runs": int(acc.size),
        "diverged": int(diverged.sum()),
    }


def run_table(
    family: str, ds, depth: int, width: int, steps: int, seeds: int, batch: int
) -> list[dict]:
    """Part 1: all cells of one family (backprop or dni) as one program."""
    cfg = base_config(family, ds, depth, width, steps, batch)
    runs = [
        dict(setting=s, lr=lr, eta=0.01 if noisy else 0.0, seed=seed)
        for s, lr, noisy, seed in itertools.product(
            range(len(SETTINGS)), LRS, (False, True), range(seeds)
        )
    ]
    res = train_cells(cfg, ds, runs, family)
    cells = []
    for s, setting in enumerate(SETTINGS):
        for noisy in (False, True):
            idx = [i for i, r in enumerate(runs) if r["setting"] == s and (r["eta"] > 0) == noisy]
            cells.append(
                {
                    "setting": setting[0],
                    "noise": noisy,
                    **cell(100 * res.final["test_accuracy"][idx], res.diverged_at[idx] >= 0),
                    "paper": list(setting[5] if noisy else setting[4]),
                }
            )
    return cells


def run_long(
    ds, depth: int, width: int, steps: int, short_steps: int, seeds: int, batch: int
) -> list[dict]:
    """Part 2: the poorly initialised rows, longer, at each eta, noise after and before
    the clipping (the no-clipping row once: the order does not matter there)."""
    cells = []
    for before in (False, True):
        settings = [s for s in POOR if not before or SETTINGS[s][3] is not None]
        cfg = base_config("backprop", ds, depth, width, steps, batch, noise_before_clip=before)
        runs = [
            dict(setting=s, lr=0.1, eta=eta, seed=seed)
            for s, eta, seed in itertools.product(settings, ETAS, range(seeds))
        ]
        res = train_cells(
            cfg, ds, runs, f"long, noise {'before' if before else 'after'} clip", test_history=True
        )
        step = res.history["step"]
        at_short = int(np.searchsorted(step, short_steps, side="right")) - 1
        for s in settings:
            for eta in ETAS:
                idx = [i for i, r in enumerate(runs) if r["setting"] == s and r["eta"] == eta]
                curve = 100 * res.history["test_accuracy"][idx]
                cells.append(
                    {
                        "setting": SETTINGS[s][0],
                        "eta": eta,
                        "order": "noise before clip" if before else "noise after clip",
                        "at_short": cell(curve[:, at_short], res.diverged_at[idx] >= 0),
                        **cell(100 * res.final["test_accuracy"][idx], res.diverged_at[idx] >= 0),
                        "curve_step": step.tolist(),
                        "curve_mean": curve.mean(0).tolist(),
                    }
                )
    return cells


def fmt(c: dict) -> str:
    ci = c["ci95"]
    avg = f"{c['average']:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
    return f"{c['best']:.1f} / {avg}" + (f" ({c['diverged']} div)" if c["diverged"] else "")


def table(cells: list[dict], with_paper: bool) -> str:
    rows = []
    for label, *_ in SETTINGS:
        off, on = (
            next(c for c in cells if c["setting"] == label and c["noise"] == n)
            for n in (False, True)
        )
        row = [label, fmt(off), fmt(on)]
        if with_paper:
            row += [" / ".join(map(str, off["paper"])), " / ".join(map(str, on["paper"]))]
        rows.append(row)
    head = ["setting", "no noise: best / avg [95% CI]", "noise: best / avg [95% CI]"]
    return markdown_table(head + (["paper no noise", "paper noise"] if with_paper else []), rows)


def long_table(cells: list[dict], short_steps: int, steps: int) -> str:
    rows = [
        [
            c["setting"],
            c["order"]
            if SETTINGS[[s[0] for s in SETTINGS].index(c["setting"])][3] is not None
            else "(no clipping)",
            "none" if c["eta"] == 0 else f"{c['eta']:g}",
            fmt(c["at_short"]),
            fmt(c),
        ]
        for c in cells
    ]
    return markdown_table(
        ["setting", "order", "eta", f"at {short_steps} steps", f"at {steps} steps"], rows
    )


SHORT = {0: "simple, no clip", 2: "simple, clip 10", 4: "zero, clip 10"}


def figure(results: dict, path: str) -> None:
    """Part 1: average (bar, 95% CI) and best (marker) per cell, per family. Part 2: mean
    test accuracy along training per setting and eta, noise after and before the clipping."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(results["families"])
    fig, axes = plt.subplots(
        1, len(families) + 2, figsize=(5.6 * (len(families) + 2), 4.4), dpi=100, squeeze=False
    )
    labels = [label for label, *_ in SETTINGS]
    for ax, family in zip(axes[0], families, strict=False):
        cells = results["families"][family]
        for k, noisy in enumerate((False, True)):
            row = [
                next(c for c in cells if c["setting"] == lab and c["noise"] == noisy)
                for lab in labels
            ]
            xs = np.arange(len(labels)) + (k - 0.5) * 0.38
            color = "#ff7f0e" if noisy else "#1f77b4"
            err = np.array(
                [
                    [c["average"] - c["ci95"][0], c["ci95"][1] - c["average"]]
                    if c["ci95"]
                    else [0, 0]
                    for c in row
                ]
            ).T
            ax.bar(
                xs,
                [c["average"] for c in row],
                width=0.36,
                color=color,
                alpha=0.7,
                yerr=err,
                capsize=3,
                label=f"{'noise' if noisy else 'no noise'}: average",
            )
            ax.plot(
                xs,
                [c["best"] for c in row],
                "v",
                color=color,
                ms=7,
                label=f"{'noise' if noisy else 'no noise'}: best",
            )
            if family == "backprop":
                ax.plot(
                    xs,
                    [c["paper"][1] for c in row],
                    "_",
                    color="k",
                    ms=14,
                    mew=2,
                    label="paper average (MNIST)" if noisy else None,
                )
        ax.set_xticks(range(len(labels)), [lab.replace(", ", ",\n") for lab in labels], fontsize=7)
        ax.set_title(
            f"{family}: {results['depth']} x {results['width']} ReLU, "
            f"{results['data']}, {results['steps']} steps",
            fontsize=9,
        )
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=7)
    styles = {0.0: ":", 0.01: "-", 0.3: "--", 1.0: "-."}
    colors = dict(zip(POOR, ("#1f77b4", "#2ca02c", "#d62728"), strict=False))
    for ax, order in zip(axes[0, -2:], ("noise after clip", "noise before clip"), strict=False):
        for c in results["long"]:
            s = labels.index(c["setting"])
            if c["order"] != order and SETTINGS[s][3] is not None:
                continue
            if order == "noise before clip" and SETTINGS[s][3] is None:
                continue
            ax.plot(
                c["curve_step"],
                c["curve_mean"],
                styles[c["eta"]],
                color=colors[s],
                label=f"{SHORT[s]}, " + ("no noise" if c["eta"] == 0 else f"eta {c['eta']:g}"),
            )
        ax.axvline(results["steps"], color="0.5", lw=0.8)
        ax.set_title(f"part 2: lr 0.1, {order}, mean of {results['long_seeds']} seeds", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2, loc="upper left")
    common.save_figure(fig, path, intervals="error bars")


def main() -> None:
    parser = common.base_parser(__doc__, "deep_noise")
    parser.add_argument("--depth", type=common.positive(int))
    parser.add_argument(
        "--long-steps", type=common.positive(int), help="steps of part 2 (default 5x --steps)"
    )
    parser.add_argument(
        "--long-seeds", type=common.positive(int), help="seeds of part 2 (default 2)"
    )
    args = parser.parse_args()
    depth, width = (4, 16) if args.quick else (args.depth or 20, 50)
    steps = args.steps or (40 if args.quick else 2000)
    seeds = args.seeds or (1 if args.quick else 3)
    long_steps = args.long_steps or 5 * steps
    long_seeds = args.long_seeds or (1 if args.quick else 2)
    ds = common.load(args.data)
    common.claim(args, "deep_noise", common.published("deep_noise"))
    t0 = time.time()
    results = {
        "data": args.data,
        "depth": depth,
        "width": width,
        "steps": steps,
        "seeds": seeds,
        "batch": 64,
        "lrs": list(LRS),
        "long_steps": long_steps,
        "long_seeds": long_seeds,
        "families": {},
    }
    for family in ("backprop", "dni"):
        results["families"][family] = run_table(family, ds, depth, width, steps, seeds, 64)
    results["long"] = run_long(ds, depth, width, long_steps, steps, long_seeds, 64)
    results["seconds"] = time.time() - t0
    common.publish(args.out, "deep_noise", results, report, figure)


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    r = results
    md = [
        f"# Gradient noise in a deep ReLU net ({r['depth']} x {r['width']}, {r['data']}, SGD, "
        "batch 64)",
        "",
        f"## Part 1: the paper's table ({r['steps']} steps, {r['seeds']} seeds x 2 learning "
        "rates per cell)",
        "",
        f"Test accuracy (%), best / average [{stats.INTERVAL}; here every run counts, a "
        "diverged run with the accuracy of its last finite parameters]; the paper's figures "
        "are MNIST, 40 runs per cell, far longer training.",
        "",
    ]
    for family, cells in r["families"].items():
        md += [f"**{family}**", "", table(cells, with_paper=family == "backprop")]
    md += [
        f"## Part 2: the poorly initialised rows trained {r['long_steps']} steps (lr 0.1, "
        f"{r['long_seeds']} seeds per cell)",
        "",
        "Test accuracy (%), best / average [95% CI]; eta is the noise variance at step 0.",
        "",
        long_table(r["long"], r["steps"], r["long_steps"]),
        f"Total time {r['seconds']:.0f}s.",
    ]
    return "\n".join(md)


if __name__ == "__main__":
    main()
