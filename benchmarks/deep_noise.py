"""Neelakantan et al.'s deep-network experiment, scaled to this machine, and its DNI twin.

20 hidden layers of 50 ReLU units, plain SGD at lr 0.1 and 0.01, paper noise
(eta 0.01, gamma 0.55) after global-norm clipping, under the paper's inits, with and
without noise, on offline data (scikit-learn's digits by default). Each cell reports
the best and the average test accuracy over its runs (2 learning rates x seeds, as
the paper pools its 2 x 20 runs), beside the paper's MNIST figures. The same grid
with DNI (zero-init linear SG modules, paper topology, SG lr = lr / 10) answers a
question neither paper asked.

Every run of one regime family is one compiled program: init, learning rate,
clipping threshold and noise on/off (eta 0) are per-run numbers.

    python benchmarks/deep_noise.py [--quick] [--data digits|mnist1d] [--out DIR]
"""

from __future__ import annotations

import itertools
import os
import time

import numpy as np

import common
from dnijax import RunConfig, engine
from dnijax.config import regime_name

# (label, init, scale, clip, paper (no noise best/avg), paper (noise best/avg))
SETTINGS = [
    ("simple init N(0, 0.1^2), no clipping", "normal", 0.1, None, (89.9, 43.1), (96.7, 52.7)),
    ("simple init, clip 100", "normal", 0.1, 100.0, (90.0, 46.3), (96.7, 52.3)),
    ("simple init, clip 10", "normal", 0.1, 10.0, (95.7, 51.6), (97.0, 53.6)),
    ("He init, clip 10", "he", 1.0, 10.0, (97.4, 91.7), (97.2, 91.7)),
    ("zero init, clip 10", "zeros", 0.0, 10.0, (11.4, 10.1), (94.5, 49.7)),
]
LRS = (0.1, 0.01)


def run_family(family: str, ds, depth: int, width: int, steps: int, seeds: int,
               batch: int) -> list[dict]:
    """All cells of one family (backprop or dni) as one vmapped program."""
    widths = (ds.n_features,) + (width,) * depth + (ds.n_classes,)
    cfg = RunConfig(regime=regime_name(family, True), widths=widths,
                    activations=("relu",) * depth + ("identity",),
                    loss="xent", reduction="mean", optimizer="sgd", lr=0.1, noise="paper",
                    eta=0.01, gamma=0.55, clip=10.0, steps=steps, batch_size=batch,
                    topology="paper", sg_init="zero")
    runs = list(itertools.product(range(len(SETTINGS)), LRS, (False, True), range(seeds)))
    hyper = engine.stack_hyper(
        cfg, lr=[lr for _, lr, _, _ in runs], sg_lr=[lr / 10 for _, lr, _, _ in runs],
        eta=[0.01 if noisy else 0.0 for _, _, noisy, _ in runs],
        clip=[np.inf if SETTINGS[s][3] is None else SETTINGS[s][3] for s, _, _, _ in runs])
    net = common.initial_nets(widths, [(SETTINGS[s][1], SETTINGS[s][2], seed)
                                       for s, _, _, seed in runs])
    res = engine.run_grid(cfg, hyper, engine.run_keys([seed for *_, seed in runs]),
                         (ds.x_train, ds.y_train), test=(ds.x_test, ds.y_test), net=net,
                         progress=common.progress_line(f"{family} ({len(runs)} runs)"))
    cells = []
    for s, setting in enumerate(SETTINGS):
        for noisy in (False, True):
            idx = [i for i, (si, _, n, _) in enumerate(runs) if si == s and n == noisy]
            acc = 100 * res.test_accuracy[idx]
            cells.append({"setting": setting[0], "noise": noisy, "best": float(acc.max()),
                          "average": float(acc.mean()), "runs": len(idx),
                          "diverged": int((res.diverged_at[idx] >= 0).sum()),
                          "paper": list(setting[5] if noisy else setting[4])})
    return cells


def table(cells: list[dict], family: str, with_paper: bool) -> str:
    head = "| setting | no noise: best / avg | noise: best / avg |"
    if with_paper:
        head += " paper no noise | paper noise |"
    lines = [head, "|---|---|---|" + ("---|---|" if with_paper else "")]
    for label, *_ in SETTINGS:
        off, on = (next(c for c in cells if c["setting"] == label and c["noise"] == n)
                   for n in (False, True))
        fmt = lambda c: (f"{c['best']:.1f} / {c['average']:.1f}"  # noqa: E731
                         + (f" ({c['diverged']} div)" if c["diverged"] else ""))
        row = f"| {label} | {fmt(off)} | {fmt(on)} |"
        if with_paper:
            row += f" {off['paper'][0]} / {off['paper'][1]} | {on['paper'][0]} / {on['paper'][1]} |"
        lines.append(row)
    return f"**{family}**\n\n" + "\n".join(lines) + "\n"


def figure(results: dict, path: str) -> None:
    """Best (marker) and average (bar) test accuracy per cell, noise off/on, per family."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    families = list(results["families"])
    fig, axes = plt.subplots(1, len(families), figsize=(6.5 * len(families), 4.2), dpi=110,
                             sharey=True, squeeze=False)
    labels = [label for label, *_ in SETTINGS]
    for ax, family in zip(axes[0], families):
        cells = results["families"][family]
        for k, noisy in enumerate((False, True)):
            row = [next(c for c in cells if c["setting"] == lab and c["noise"] == noisy)
                   for lab in labels]
            xs = np.arange(len(labels)) + (k - 0.5) * 0.38
            color = "#ff7f0e" if noisy else "#1f77b4"
            ax.bar(xs, [c["average"] for c in row], width=0.36, color=color, alpha=0.7,
                   label=f"{'noise' if noisy else 'no noise'}: average")
            ax.plot(xs, [c["best"] for c in row], "v", color=color, ms=7,
                    label=f"{'noise' if noisy else 'no noise'}: best")
            if family == "backprop":
                ax.plot(xs, [c["paper"][1] for c in row], "_", color="k", ms=14, mew=2,
                        label="paper average (MNIST)" if noisy else None)
        ax.set_xticks(range(len(labels)), [lab.replace(", ", ",\n") for lab in labels],
                      fontsize=8)
        ax.set_title(f"{family}: {results['depth']} x {results['width']} ReLU, "
                     f"{results['data']}, {results['steps']} steps")
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("test accuracy %")
    axes[0, 0].legend(fontsize=8)
    common.save_figure(fig, path)


def main() -> None:
    parser = common.base_parser(__doc__, "deep_noise")
    parser.add_argument("--depth", type=int)
    args = parser.parse_args()
    depth, width = (4, 16) if args.quick else (args.depth or 20, 50)
    steps = args.steps or (40 if args.quick else 2000)
    seeds = args.seeds or (1 if args.quick else 5)
    ds = common.load(args.data)
    t0 = time.time()
    results = {"data": args.data, "depth": depth, "width": width, "steps": steps,
               "seeds": seeds, "batch": 64, "lrs": list(LRS), "families": {}}
    md = [f"# Gradient noise in a deep ReLU net ({depth} x {width}, {args.data}, {steps} SGD "
          f"steps of batch 64, {seeds} seeds x 2 learning rates per cell)", "",
          "Test accuracy (%), best / average over the cell's runs; the paper's figures are "
          "MNIST, 40 runs per cell, far longer training.", ""]
    for family in ("backprop", "dni"):
        cells = run_family(family, ds, depth, width, steps, seeds, 64)
        results["families"][family] = cells
        md.append(table(cells, family, with_paper=family == "backprop"))
    md.append(f"Total time {time.time() - t0:.0f}s.")
    text = "\n".join(md)
    common.write(args.out, "deep_noise", results, text)
    figure(results, os.path.join(args.out, "deep_noise.png"))
    print(text)


if __name__ == "__main__":
    main()
