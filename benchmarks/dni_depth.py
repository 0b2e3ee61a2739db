"""The DNI paper's FCN depth series with matched controls, scaled to this machine.

N-layer fully connected ReLU nets (N-1 hidden layers, He init, no batch norm), Adam,
batch 256, on offline data (``mnist1d`` by default: 40-sample 1-D signals, 10 classes,
hard enough that training only the output layer is clearly worse than backprop), for
N = 3..6. The SG module's architecture (linear, or an MLP with two hidden ReLU layers
of the network's width) is crossed with conditioning on the label (DNI, cDNI), four
columns, so "conditioning helps" and "the smaller module helps" can be told apart.
Every learning rate gets its own backprop and "no backprop" (output layer only)
baselines. Linear cDNI also runs asynchronously (each layer with its SG module updates
with probability p per step; a skipped layer keeps its parameters and its Adam state).
Test error (%), mean with its 95% Student-t interval over seeds, beside the paper's
Table 1, and SG alignment along training (cosine between synthetic and true gradients).

All runs of one (depth, column) at every learning rate (and every p) are one program.

    python benchmarks/dni_depth.py [--quick] [--data mnist1d|digits] [--lrs 1e-3,1e-4]
"""

from __future__ import annotations

import itertools
import time

import common
import numpy as np

from dnijax import RunConfig, engine, stats
from dnijax.experiments import protocols
from dnijax.report import markdown_table

# the DNI paper, Table 1 (MNIST FCN test error %), as commonly cited
PAPER = {
    3: {"backprop": 2.0, "dni": 1.9, "cdni": 2.2},
    4: {"backprop": 1.8, "dni": 2.2, "cdni": 1.9},
    5: {"backprop": 1.8, "dni": 3.4, "cdni": 1.7},
    6: {"backprop": 1.8, "dni": 4.3, "cdni": 1.6},
}
PROBS = (1.0, 0.5, 0.2, 0.1)


def columns(width: int) -> dict[str, dict]:
    """Column name -> RunConfig fields."""
    mlp = (width, width)
    return {
        "backprop": dict(regime="backprop"),
        "no backprop": dict(regime="backprop", train_hidden=False),
        "dni linear": dict(regime="dni"),
        "dni mlp": dict(regime="dni", sg_hidden=mlp),
        "cdni linear": dict(regime="dni", conditioned=True),  # update_prob per run
        "cdni mlp": dict(regime="dni", conditioned=True, sg_hidden=mlp),
    }


def base_config(ds, n_layers: int, width: int, steps: int) -> dict:
    """The RunConfig fields every column shares: the scaled protocol's
    (``dnijax.experiments.protocols.FCN``: xent/mean, He init, Adam, batch 256), an
    ``n_layers``-layer ReLU net of ``width`` units, zero-initialised SG modules, 20 records."""
    return {
        **protocols.FCN.fields("scaled"),
        "widths": (ds.n_features,) + (width,) * (n_layers - 1) + (ds.n_classes,),
        "activations": ("relu",) * (n_layers - 1) + ("identity",),
        "steps": steps,
        "log_every": max(1, steps // 20),
        "sg_init": "zero",
    }


def run_depth(
    ds,
    n_layers: int,
    width: int,
    steps: int,
    seeds: int,
    lrs: tuple[float, ...],
    only: tuple[str, ...] | None = None,
) -> dict:
    """Every column at one depth: ``{lr: {column: cell}}``."""
    base = base_config(ds, n_layers, width, steps)
    out: dict = {str(lr): {} for lr in lrs}
    for name, fields in columns(width).items():
        if only and name not in only:
            continue
        probs = PROBS if name == "cdni linear" else (1.0,)
        cfg = RunConfig(**base, **fields, lr=lrs[0], update_prob=min(probs))
        runs = list(itertools.product(lrs, probs, range(seeds)))
        hyper = engine.stack_hyper(
            cfg, lr=[lr for lr, _, _ in runs], update_prob=[p for _, p, _ in runs]
        )
        res = engine.run_grid(
            cfg,
            hyper,
            engine.run_keys([s for *_, s in runs]),
            (ds.x_train, ds.y_train),
            test=(ds.x_test, ds.y_test),
            test_history=True,
            alignment=cfg.uses_sg,
            progress=common.progress_line(f"{n_layers} layers, {name}"),
        )
        for lr, p in itertools.product(lrs, probs):
            idx = [i for i, (q, pp, _) in enumerate(runs) if q == lr and pp == p]
            label = name if p == 1.0 else f"{name} p={p:g}"
            err = 100 * (1 - res.final["test_accuracy"][idx])
            summary = stats.mean_ci(err.tolist(), bounds=stats.PERCENT)
            c = {
                "test_error": summary["mean"],
                "ci95": summary["ci95"],
                "n": summary["n"],
                "per_seed": err.tolist(),
                "diverged": int((res.diverged_at[idx] >= 0).sum()),
                "curve_step": res.history["step"].tolist(),
                "curve_test_error": (100 * (1 - res.history["test_accuracy"][idx]))
                .mean(0)
                .tolist(),
            }
            if "sg_alignment" in res.history:
                c["alignment_step"] = res.history["step"][:-1].tolist()
                c["alignment"] = res.history["sg_alignment"][idx].mean(0).T.tolist()
            out[str(lr)][label] = c
    return out


def fmt(c: dict) -> str:
    ci = c["ci95"]
    return (
        f"{c['test_error']:.1f}"
        + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
        + (f" ({c['diverged']} div)" if c["diverged"] else "")
    )


def markdown(results: dict) -> str:
    depths = sorted(results["depths"], key=int)
    parts = []
    for lr in results["lrs"]:
        names = list(results["depths"][depths[0]][str(lr)])
        rows = []
        for d in depths:
            row = results["depths"][d][str(lr)]
            paper = PAPER.get(int(d))
            ref = f"{paper['backprop']} / {paper['dni']} / {paper['cdni']}" if paper else "—"
            rows.append([d] + [fmt(row[n]) for n in names] + [ref])
        parts.append(
            f"**Adam lr {lr:g}**\n\n"
            + markdown_table(["layers"] + names + ["paper bp / DNI / cDNI"], rows)
        )
    return "\n".join(parts)


def figure(results: dict, path: str) -> None:
    """Row 1: test error along training per depth (first lr); row 2: SG alignment of the
    first hidden layer's module along training (first lr)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = sorted(results["depths"], key=int)
    lr = str(results["lrs"][0])
    names = list(results["depths"][depths[0]][lr])
    color = {n: plt.get_cmap("tab10")(i) for i, n in enumerate(names)}
    fig, axes = plt.subplots(
        2, len(depths), figsize=(4.2 * len(depths), 7.2), dpi=110, squeeze=False, sharey="row"
    )
    for k, d in enumerate(depths):
        top, bottom = axes[0, k], axes[1, k]
        for name, c in results["depths"][d][lr].items():
            ls = "--" if " p=" in name else "-"
            top.plot(c["curve_step"], c["curve_test_error"], ls, color=color[name], label=name)
            if "alignment" in c:
                bottom.plot(
                    c["alignment_step"], c["alignment"][0], ls, color=color[name], label=name
                )
        top.set_title(f"{d} layers, Adam lr {float(lr):g}", fontsize=10)
        top.grid(alpha=0.3)
        bottom.set_xlabel("step")
        bottom.axhline(0, color="0.5", lw=0.8)
        bottom.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"test error % ({results['data']}, mean over seeds)")
    axes[1, 0].set_ylabel("cos(SG, true gradient), layer 1")
    axes[0, -1].legend(fontsize=7)
    common.save_figure(fig, path)


def main() -> None:
    parser = common.base_parser(__doc__, "dni_depth", default_data="mnist1d")
    parser.add_argument("--width", type=common.positive(int))
    parser.add_argument(
        "--lrs",
        type=common.positive_floats,
        help="comma-separated Adam learning rates (default 1e-3,1e-4)",
    )
    parser.add_argument(
        "--depths", type=common.positive_list, help="comma-separated layer counts (default 3,4,5,6)"
    )
    parser.add_argument("--columns", help="subset of: " + ", ".join(columns(1)))
    args = parser.parse_args()
    unknown = set(args.columns.split(",")) - set(columns(1)) if args.columns else set()
    if unknown:
        parser.error(
            f"--columns: unknown {', '.join(sorted(unknown))}; choose from {', '.join(columns(1))}"
        )
    width = args.width or (16 if args.quick else 96)
    steps = args.steps or (40 if args.quick else 2000)
    seeds = args.seeds or (1 if args.quick else 3)
    depths = (3,) if args.quick else (3, 4, 5, 6)
    depths = args.depths or depths
    lrs = args.lrs or ((1e-3,) if args.quick else (1e-3, 1e-4))
    only = tuple(args.columns.split(",")) if args.columns else None
    ds = common.load(args.data)
    common.claim(args, "dni_depth", common.published("dni_depth"))
    t0 = time.time()
    results = {
        "data": args.data,
        "width": width,
        "steps": steps,
        "seeds": seeds,
        "optimizer": "adam",
        "lrs": list(lrs),
        "batch": 256,
        "depths": {},
    }
    for n in depths:
        results["depths"][str(n)] = run_depth(ds, n, width, steps, seeds, lrs, only)
    results["seconds"] = time.time() - t0
    common.publish(args.out, "dni_depth", results, report, figure)


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    return (
        f"# DNI depth series ({results['data']}, width {results['width']}, batch 256, "
        f"{results['steps']} steps, {results['seeds']} seeds): test error %, mean "
        f"[{stats.INTERVAL}]\n\n" + markdown(results) + f"\nTotal time {results['seconds']:.0f}s.\n"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
