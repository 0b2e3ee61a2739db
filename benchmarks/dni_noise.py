"""Does gradient noise stabilise synthetic gradients? A 6-layer ReLU net on the article's data.

One quick 4-seed run (the tuned preset with 6 hidden ReLU layers of 64 and Adam at lr
1e-3) gave DNI 81% test accuracy and DNI+noise 98.5%. That run's SG modules learned at
the preset's SG lr 0.1 and got the noise too, so three explanations compete: noise
stabilises synthetic gradients; noise on the SG modules regularises an SG learning rate
that is too large; or chance. This benchmark separates them: the SG learning rate (0.1
as in that run, or the network's 1e-3) is crossed with where the noise goes (network and
SG modules, or the network only), each DNI / DNI+noise pair paired by seed (same data,
same initial weights), with backprop and backprop+noise beside them, and SG alignment
(cosine between synthetic and true gradients) recorded along training.

    python benchmarks/dni_noise.py [--quick] [--seeds N] [--steps N] [--out DIR]
"""

from __future__ import annotations

import time

import common
import numpy as np

from dnijax import engine, stats
from dnijax.config import regime_name
from dnijax.experiments import compare, presets
from dnijax.report import markdown_table

VARIANTS = {
    "SG lr 0.1, noise to net and SG (the first run)": dict(sg_lr=0.1, noise_to="all"),
    "SG lr 0.1, noise to the net only": dict(sg_lr=0.1, noise_to="network"),
    "SG lr 1e-3, noise to net and SG": dict(sg_lr=1e-3, noise_to="all"),
    "SG lr 1e-3, noise to the net only": dict(sg_lr=1e-3, noise_to="network"),
}


def run_family(rule: str, overrides: dict, seeds: int, steps: int, grid: dict, label: str) -> dict:
    """A rule without and with noise (eta 0 / the preset's eta) over ``seeds`` seeds, one
    program; returns the two regimes' per-seed results."""
    cfg = presets.preset_config("tuned", steps=steps, overrides=overrides).replace(
        regime=regime_name(rule, True)
    )
    etas = [0.0] * seeds + [cfg.eta] * seeds
    keys = engine.run_keys(np.concatenate([np.arange(seeds)] * 2))
    res = engine.run_grid(
        cfg,
        engine.stack_hyper(cfg, eta=etas),
        keys,
        **dict(grid, sg=None),
        alignment=cfg.uses_sg,
        test_history=True,
        progress=common.progress_line(f"{rule} and {rule}+noise, {label}"),
    )
    out = {}
    for half, noisy in enumerate((False, True)):
        runs = slice(half * seeds, (half + 1) * seeds)
        r = compare.summarize_runs(res, runs)
        r["summary"] = compare.summary_of(r)
        if cfg.uses_sg:
            r["sg_alignment"] = compare.alignment_curves(res, runs)
        acc = res.history["test_accuracy"][runs]
        r["test_accuracy_curve"] = (100 * acc).mean(0).tolist()
        out[regime_name(rule, noisy)] = r
    return out


def cell(r: dict) -> str:
    return stats.format_mean_ci(
        stats.summarize(
            [None if a is None else 100 * a for a in r["test_accuracy"]],
            r["diverged_at"],
            bounds=stats.PERCENT,
        ),
        ".1f",
    ) + (
        f", {sum(d is not None for d in r['diverged_at'])} div"
        if any(d is not None for d in r["diverged_at"])
        else ""
    )


def paired_cell(noisy: dict, plain: dict) -> list[str]:
    p = stats.paired(
        [None if a is None else 100 * a for a in noisy["test_accuracy"]],
        [None if a is None else 100 * a for a in plain["test_accuracy"]],
        noisy["diverged_at"],
        plain["diverged_at"],
        lower_is_better=False,
        bounds=stats.PERCENT,
    )
    ci = p["ci95"]
    diff = (
        "n/a"
        if p["mean_diff"] is None
        else f"{p['mean_diff']:+.1f}" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")
    )
    return [diff, f"{p['wins']}/{p['n']}", "n/a" if p["p_value"] is None else f"{p['p_value']:.2g}"]


def markdown(results: dict) -> str:
    rows = []
    bp = results["backprop"]
    rows.append(
        [
            "backprop (no SG modules)",
            cell(bp["backprop"]),
            cell(bp["backprop+noise"]),
            *paired_cell(bp["backprop+noise"], bp["backprop"]),
        ]
    )
    for name, fam in results["variants"].items():
        rows.append(
            [
                name,
                cell(fam["dni"]),
                cell(fam["dni+noise"]),
                *paired_cell(fam["dni+noise"], fam["dni"]),
            ]
        )
    return markdown_table(
        [
            "setting",
            "without noise",
            "with noise",
            "noise − without, paired",
            "noise higher on",
            "p",
        ],
        rows,
    )


def figure(results: dict, path: str) -> None:
    """Per variant: test accuracy (top) and layer-1 SG alignment (bottom), DNI vs DNI+noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = results["variants"]
    fig, axes = plt.subplots(
        2, len(variants), figsize=(4.0 * len(variants), 6.4), dpi=110, sharey="row", squeeze=False
    )
    for k, (name, fam) in enumerate(variants.items()):
        for regime, color in (("dni", "#d62728"), ("dni+noise", "#ff7f0e")):
            r = fam[regime]
            axes[0, k].plot(
                r["loss_curve"]["step"], r["test_accuracy_curve"], color=color, label=regime
            )
            a = r["sg_alignment"]
            layer = a["layers"][0]
            as_float = lambda v: np.array([np.nan if x is None else x for x in v], float)  # noqa
            axes[1, k].plot(a["step"], as_float(layer["mean"]), color=color, label=regime)
            axes[1, k].fill_between(
                a["step"],
                as_float(layer["ci95_lo"]),
                as_float(layer["ci95_hi"]),
                color=color,
                alpha=0.25,
                lw=0,
            )
        axes[0, k].set_title(name, fontsize=8)
        axes[1, k].set_xlabel("step")
        axes[1, k].axhline(0, color="0.5", lw=0.8)
        for ax in axes[:, k]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test accuracy % (mean over seeds)")
    axes[1, 0].set_ylabel("cos(SG, true gradient), layer 1")
    axes[1, 0].set_ylim(-1.05, 1.05)
    axes[0, 0].legend(fontsize=8)
    common.save_figure(fig, path, intervals="bands")


def main() -> None:
    parser = common.make_parser(__doc__, "dni_noise")
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--seeds", type=common.positive(int))
    parser.add_argument("--steps", type=common.positive(int))
    parser.add_argument("--width", type=common.positive(int))
    args = parser.parse_args()
    seeds = args.seeds or (2 if args.quick else 10)
    steps = args.steps or (20 if args.quick else 2000)
    width = args.width or (8 if args.quick else 64)
    net = dict(
        widths=(2,) + (width,) * 6 + (1,),
        activations=("relu",) * 6 + ("sigmoid",),
        optimizer="adam",
        lr=1e-3,
    )
    common.claim(args, "dni_noise", common.published("dni_noise"))
    _, grid = presets.grid_inputs("tuned", seeds, copies=2)
    t0 = time.time()
    results = {
        "seeds": seeds,
        "steps": steps,
        "width": width,
        "network": net,
        "backprop": run_family("backprop", net, seeds, steps, grid, "the network alone"),
        "variants": {},
    }
    for name, fields in VARIANTS.items():
        results["variants"][name] = run_family("dni", {**net, **fields}, seeds, steps, grid, name)
    results["seconds"] = time.time() - t0
    common.publish(args.out, "dni_noise", results, report, figure)


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    return (
        f"# Gradient noise and synthetic gradients: 2-{results['width']}x6-1 ReLU, Adam lr "
        f"{results['network']['lr']:g}, article data, {results['steps']} steps, "
        f"{results['seeds']} seeds\n\nTest accuracy %, mean [{stats.INTERVAL}] (n); paired: "
        f"with noise − without, per seed, 95% interval, {stats.PAIRED_TEST}.\n\n"
        + markdown(results)
        + f"\nTotal time {results['seconds']:.0f}s.\n"
    )


if __name__ == "__main__":
    main()
