"""The DNI paper's FCN depth series, scaled to this machine, beside the paper's Table 1.

N-layer fully connected ReLU nets (N-1 hidden layers, He init, no batch norm), Adam,
batch 256, on offline data (scikit-learn's digits by default), for N = 3..6:
backprop; DNI (SG modules with two hidden ReLU layers of the network's width, zero
final layer); cDNI (linear SG conditioned on the one-hot label); "no backprop" (only
the output layer trained); then cDNI with each layer updating with probability
p in {1, 0.5, 0.2, 0.1} per step. Test error (%) per depth, mean over seeds, and
a figure of test error over training.

    python benchmarks/dni_depth.py [--quick] [--data digits|mnist1d] [--out DIR]
"""

from __future__ import annotations

import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import common  # noqa: E402
from dnijax import RunConfig, engine  # noqa: E402

# the DNI paper, Table 1 (MNIST FCN test error %), as cited in ANCHORS.md
PAPER = {3: {"backprop": 2.0, "dni": 1.9, "cdni": 2.2}, 4: {"backprop": 1.8, "dni": 2.2,
         "cdni": 1.9}, 5: {"backprop": 1.8, "dni": 3.4, "cdni": 1.7},
         6: {"backprop": 1.8, "dni": 4.3, "cdni": 1.6}}
PROBS = (1.0, 0.5, 0.2, 0.1)


def variants(width: int) -> dict[str, dict]:
    """Regime name -> RunConfig fields."""
    return {
        "backprop": dict(regime="backprop"),
        "no backprop": dict(regime="backprop", train_hidden=False),
        "dni": dict(regime="dni", sg_hidden=(width, width)),
        "cdni": dict(regime="dni", conditioned=True),  # update_prob swept per run
    }


def run_depth(ds, n_layers: int, width: int, steps: int, seeds: int, lr: float,
              only: tuple[str, ...] | None = None) -> dict:
    widths = (ds.n_features,) + (width,) * (n_layers - 1) + (ds.n_classes,)
    base = dict(widths=widths, activations=("relu",) * (n_layers - 1) + ("identity",),
                init="he", loss="xent", reduction="mean", optimizer="adam", lr=lr,
                steps=steps, log_every=steps // 20, batch_size=256, sg_init="zero")
    out = {}
    for name, fields in variants(width).items():
        if only and name not in only:
            continue
        probs = PROBS if name == "cdni" else (1.0,)
        cfg = RunConfig(**base, **fields, update_prob=min(probs))
        runs = [(p, s) for p in probs for s in range(seeds)]
        hyper = engine.stack_hyper(cfg, update_prob=[p for p, _ in runs])
        res = engine.run_grid(cfg, hyper, engine.run_keys([s for _, s in runs]),
                             (ds.x_train, ds.y_train), test=(ds.x_test, ds.y_test),
                             test_history=True,
                             progress=common.progress_line(f"{n_layers} layers, {name}"))
        for p in probs:
            idx = [i for i, (q, _) in enumerate(runs) if q == p]
            label = name if name != "cdni" or p == 1.0 else f"cdni p={p:g}"
            err = 100 * (1 - res.test_accuracy[idx])
            out[label] = {"test_error": float(err.mean()), "std": float(err.std()),
                          "per_seed": err.tolist(),
                          "diverged": int((res.diverged_at[idx] >= 0).sum()),
                          "curve_step": res.history["step"].tolist(),
                          "curve_test_error": (100 * (1 - res.history["test_accuracy"][idx])
                                               ).mean(0).tolist()}
    return out


def markdown(results: dict) -> str:
    depths = sorted(results["depths"], key=int)
    names = list(results["depths"][depths[0]])
    lines = ["| layers | " + " | ".join(names) + " | paper bp / DNI / cDNI |",
             "|---|" + "---|" * (len(names) + 1)]
    for d in depths:
        row = results["depths"][d]
        cells = [f"{row[n]['test_error']:.2f} ± {row[n]['std']:.2f}"
                 + (f" ({row[n]['diverged']} div)" if row[n]["diverged"] else "") for n in names]
        paper = PAPER.get(int(d))
        ref = f"{paper['backprop']} / {paper['dni']} / {paper['cdni']}" if paper else "—"
        lines.append(f"| {d} | " + " | ".join(cells) + f" | {ref} |")
    return "\n".join(lines) + "\n"


def figure(results: dict, path: str) -> None:
    depths = sorted(results["depths"], key=int)
    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.8), dpi=110,
                             sharey=True, squeeze=False)
    for ax, d in zip(axes[0], depths):
        for name, r in results["depths"][d].items():
            ax.plot(r["curve_step"], r["curve_test_error"], label=name,
                    ls="--" if name.startswith("cdni p=") else "-")
        ax.set_title(f"{d} layers")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel(f"test error % ({results['data']}, mean over seeds)")
    axes[0, -1].legend(fontsize=8)
    common.save_figure(fig, path)


def main() -> None:
    parser = common.base_parser(__doc__, "dni_depth")
    parser.add_argument("--width", type=int)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam lr of net and SG modules")
    parser.add_argument("--depths", help="comma-separated layer counts (default 3,4,5,6)")
    parser.add_argument("--regimes", help="subset of: backprop,no backprop,dni,cdni")
    args = parser.parse_args()
    width = args.width or (16 if args.quick else 256)
    steps = args.steps or (40 if args.quick else 2000)
    seeds = args.seeds or (1 if args.quick else 3)
    depths = (3, 4) if args.quick else (3, 4, 5, 6)
    if args.depths:
        depths = tuple(int(d) for d in args.depths.split(","))
    only = tuple(args.regimes.split(",")) if args.regimes else None
    ds = common.load(args.data)
    t0 = time.time()
    results = {"data": args.data, "width": width, "steps": steps, "seeds": seeds,
               "optimizer": "adam", "lr": args.lr, "batch": 256, "depths": {}}
    for n in depths:
        results["depths"][str(n)] = run_depth(ds, n, width, steps, seeds, args.lr, only)
    text = (f"# DNI depth series ({args.data}, width {width}, Adam lr {args.lr:g}, batch 256, "
            f"{steps} steps, {seeds} seeds): test error %\n\n" + markdown(results)
            + f"\nTotal time {time.time() - t0:.0f}s.\n")
    common.write(args.out, "dni_depth", results, text)
    figure(results, os.path.join(args.out, "dni_depth.png"))
    print(text)


if __name__ == "__main__":
    main()
