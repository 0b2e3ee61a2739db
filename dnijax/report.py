"""Every table and figure, from plain results (dicts of lists, as written to JSON).

Diverged runs are never averaged in: tables count them separately and figures
draw the healthy runs' band with the diverged count in the legend. The writers
at the end put a command's outputs in its folder, atomically.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dnijax import store  # noqa: E402
from dnijax import stats  # noqa: E402

COLORS = {"backprop": "#1f77b4", "dni": "#d62728", "backprop+noise": "#2ca02c",
          "dni+noise": "#ff7f0e"}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table: one header row, then one row per entry of ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _paired_cells(paired: dict[str, Any] | None) -> list[str]:
    """``[difference [CI], wins/n, p]`` of a paired comparison, or dashes."""
    if paired is None:
        return ["—", "—", "—"]
    ci = paired["ci95"]
    diff = "n/a" if paired["mean_diff"] is None else f"{paired['mean_diff']:+.3g}" + (
        f" [{ci[0]:+.3g}, {ci[1]:+.3g}]" if ci else "")
    p = "n/a" if paired["p_value"] is None else f"{paired['p_value']:.2g}"
    return [diff, f"{paired['wins']}/{paired['n']}", p]


def summary_markdown(results: dict[str, Any]) -> str:
    """A comparison's table: final loss, test accuracy and steps to 90% of each run's own
    loss drop (means with 95% intervals over the seeds that did not diverge), diverged runs,
    and each regime against backprop, paired by seed (:mod:`dnijax.stats`)."""
    regimes = results["regimes"]
    cfg = results["config"]
    lines = [f"### dnijax compare: preset `{results['preset']}`, {cfg['seeds']} seeds, "
             f"{cfg['steps']} steps, lr {cfg['lr']:g}"
             + (f", SG lr {cfg['sg_lr']:g}" if cfg.get("sg_lr") else "") +
             f", {cfg['noise']} noise eta {cfg['eta']:g}", "",
             f"Means with their {stats.INTERVAL} (n). \"vs backprop\": the per-seed "
             "difference in final loss (regime − backprop, same data and initial weights) "
             "with its 95% interval, the seeds on which the regime's loss is lower, and the "
             f"p-value ({stats.PAIRED_TEST}).", ""]
    rows = []
    for name, r in regimes.items():
        div = r["diverged_at"]
        n_div = sum(d is not None for d in div)
        when = f" (at {', '.join(str(d) for d in div if d is not None)})" if n_div else ""
        summary = r["summary"]
        paired = r.get("paired_vs_backprop", {}).get("final_loss")
        rows.append([name, stats.format_mean_ci(summary["final_loss"], ".4g"),
                     stats.format_mean_ci(summary["test_accuracy"], ".3f"),
                     stats.format_mean_ci(summary["steps_to_90pct_drop"], ".0f"),
                     f"{n_div}/{len(div)}{when}", *_paired_cells(paired)])
    lines.append(markdown_table(["regime", "final loss", "test accuracy",
                                 "steps to 90% of its loss drop", "diverged",
                                 "final loss vs backprop", "lower on", "p"], rows).rstrip())
    which = " (the article’s exact data and weights)" if results["preset"] == "seed" else ""
    start = next(iter(regimes.values()))["initial_loss"][0]
    finals_0 = ", ".join(
        f"{name} " + (f"diverged at {r['diverged_at'][0]}" if r["diverged_at"][0] is not None
                      else format(r["final_loss"][0], ".4g")) for name, r in regimes.items())
    lines += ["", f"Seed 0{which}: loss {start:.4g} at step 0 -> {finals_0}"]
    return "\n".join(lines) + "\n"


def plot_loss_curves(results: dict[str, Any], path: str) -> None:
    """One panel per regime: mean loss with a min-max band over the healthy seeds, log
    scale; the other regimes' means in grey for reference."""
    regimes = results["regimes"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=110, sharex=True, sharey=True)
    for ax, (name, r) in zip(axes.ravel(), regimes.items()):
        for other, o in regimes.items():
            if other != name:
                ax.plot(o["loss_curve"]["step"], np.array(o["loss_curve"]["mean"], float),
                        color="0.6", lw=0.8)
        c = r["loss_curve"]
        n_div = sum(d is not None for d in r["diverged_at"])
        n = len(r["diverged_at"])
        title = f"{name}: {n - n_div} of {n} seeds" + (f", {n_div} diverged" if n_div else "")
        ax.set_title(title, fontsize=10)
        if not np.all(np.isnan(np.array(c["mean"], float))):
            ax.fill_between(c["step"], np.array(c["min"], float), np.array(c["max"], float),
                            color=COLORS.get(name), alpha=0.12, lw=0, label="min–max")
            if "ci95_lo" in c:
                ax.fill_between(c["step"], np.array(c["ci95_lo"], float),
                                np.array(c["ci95_hi"], float), color=COLORS.get(name),
                                alpha=0.35, lw=0, label="95% CI of the mean")
            ax.plot(c["step"], np.array(c["mean"], float), color=COLORS.get(name), lw=2,
                    label="mean")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[1]:
        ax.set_xlabel("step")
    cfg = results["config"]
    for ax in axes[:, 0]:
        ax.set_ylabel(f"training loss ({cfg['loss']}, {cfg['reduction']})")
    axes[0, 0].legend(loc="upper right")
    fig.suptitle(f"preset {results['preset']}: training loss over {cfg['seeds']} seeds "
                 "(grey: the other regimes' means)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_alignment(results: dict[str, Any], path: str) -> None:
    """One panel per SG module: cosine between its synthetic gradient and the true gradient
    over training, mean and 95% interval over the healthy seeds, for each regime with SG
    modules."""
    with_sg = {k: r for k, r in results["regimes"].items() if "sg_alignment" in r}
    n_layers = max(len(r["sg_alignment"]["layers"]) for r in with_sg.values())
    fig, axes = plt.subplots(1, n_layers, figsize=(4.2 * n_layers, 3.4), dpi=110,
                             sharey=True, squeeze=False)
    for i, ax in enumerate(axes[0]):
        for name, r in with_sg.items():
            a = r["sg_alignment"]
            if i >= len(a["layers"]):
                continue
            layer = a["layers"][i]
            as_float = lambda v: np.array([np.nan if x is None else x for x in v], float)  # noqa
            ax.plot(a["step"], as_float(layer["mean"]), color=COLORS.get(name), label=name)
            ax.fill_between(a["step"], as_float(layer["ci95_lo"]), as_float(layer["ci95_hi"]),
                            color=COLORS.get(name), alpha=0.25, lw=0)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_title(f"SG module of layer {i + 1}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("cos(synthetic, true gradient)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"preset {results['preset']}: SG alignment, mean and 95% CI over "
                 f"{results['config']['seeds']} seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_decision_regions(predict_fn, dataset, params: dict[str, Any], path: str) -> None:
    """Ground truth beside each regime's decision regions (class-1 probability), one seed.

    Args:
      predict_fn: ``predict_fn(net, grid_points) -> (P,) class-1 scores in [0, 1]``.
      dataset: a :class:`~dnijax.data.Dataset` (2-D inputs).
      params: regime name -> final network of that seed.
    """
    x, y = dataset.x_train, dataset.y_train
    pad = 0.5 * (x.max(0) - x.min(0)) * 0.2
    lo, hi = x.min(0) - pad, x.max(0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    n = len(params) + 1
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), dpi=110, sharex=True, sharey=True)
    axes[0].scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", s=8, edgecolors="none")
    axes[0].set_title("ground truth")
    for ax, (name, net) in zip(axes[1:], params.items()):
        score = np.asarray(predict_fn(net, grid)).reshape(gx.shape)
        ax.contourf(gx, gy, score, levels=np.linspace(0, 1, 11), cmap="coolwarm", alpha=0.75)
        ax.contour(gx, gy, score, levels=[0.5], colors="k", linewidths=1)
        pred = np.asarray(predict_fn(net, x)) > 0.5
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", s=5, edgecolors="k",
                   linewidths=0.2)
        ax.set_title(f"{name}\ntrain acc {np.mean(pred == y):.3f}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_sensitivity(results: dict[str, Any], path: str) -> None:
    """Heatmaps over (regime, learning rate): median final loss and diverged fraction."""
    regimes = list(results["regimes"])
    lrs = results["lrs"]
    loss = np.array([[np.nan if v is None else v
                      for v in results["regimes"][r]["median_final_loss"]] for r in regimes], float)
    frac = np.array([results["regimes"][r]["diverged_fraction"] for r in regimes], float)
    fig, axes = plt.subplots(1, 2, figsize=(1.3 * len(lrs) + 5, 0.7 * len(regimes) + 2.2),
                             dpi=110)
    for ax, values, title, cmap in ((axes[0], np.log10(loss), "log10 median final loss "
                                     "(diverged runs as +inf)", "viridis"),
                                    (axes[1], frac, "fraction of runs diverged", "Reds")):
        im = ax.imshow(values, cmap=cmap, aspect="auto",
                       vmin=0 if cmap == "Reds" else None, vmax=1 if cmap == "Reds" else None)
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs], rotation=45)
        ax.set_yticks(range(len(regimes)), regimes)
        ax.set_xlabel("learning rate")
        ax.set_title(title, fontsize=10)
        for i in range(len(regimes)):
            for j in range(len(lrs)):
                v = values[i, j]
                dark = (cmap == "viridis") != (cmap == "Reds" and v > 0.6)
                ax.text(j, i, "diverged" if np.isnan(v) else f"{v:.2f}", ha="center",
                        va="center", fontsize=8, color="w" if dark and not np.isnan(v) else "k")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sweep_markdown(results: dict[str, Any]) -> str:
    """Per regime and learning rate: the median final loss with diverged runs counted as
    +inf (so a cell where most runs diverged reads "diverged"), the diverged fraction, and
    the mean with its 95% interval over the runs that did not diverge."""
    rows = []
    for name, r in results["regimes"].items():
        cells = []
        for m, f, mean, ci, n in zip(r["median_final_loss"], r["diverged_fraction"],
                                     r["mean_final_loss"], r["mean_final_loss_ci95"],
                                     r["n_healthy"]):
            cell = "diverged" if m is None else f"{m:.3g}"
            if f:
                cell += f" ({f:.0%} div)"
            if mean is not None and n > 1 and m is not None:
                cell += f"; mean {mean:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"
            cells.append(cell)
        rows.append([name] + cells)
    return markdown_table(["regime"] + [f"lr {v:g}" for v in results["lrs"]], rows)


def class1_score(config: dict[str, Any]):
    """``score(net, x)``: the class-1 score in [0, 1] of a single-output network with the
    comparison's ``config`` (activations, loss, reduction), for decision regions."""
    import jax
    import jax.numpy as jnp

    from dnijax import nets
    spec = nets.make_net_spec(config["activations"], config["loss"], config["reduction"])

    def score(net, x):
        out = nets.predict(jax.tree.map(jnp.asarray, net), jnp.asarray(x), spec)[:, 0]
        return jax.nn.sigmoid(out) if spec.loss == "bce" else out

    return score


def write_compare(out: str, results: dict[str, Any], datasets: Sequence[Any],
                  params: dict[str, Any]) -> list[str]:
    """Writes a comparison's ``results.json``, ``summary.md`` and figures into ``out``;
    returns the file names."""
    os.makedirs(out, exist_ok=True)
    store.atomic_write_json(os.path.join(out, "results.json"), results)
    store.atomic_write_bytes(os.path.join(out, "summary.md"), summary_markdown(results).encode())
    store.atomic_savefig(lambda p: plot_loss_curves(results, p),
                         os.path.join(out, "loss_curves.png"))
    store.atomic_savefig(lambda p: plot_decision_regions(
        class1_score(results["config"]), datasets[0], {k: v[0] for k, v in params.items()}, p),
        os.path.join(out, "decision_regions.png"))
    written = ["results.json", "summary.md", "loss_curves.png", "decision_regions.png"]
    if any(r.get("sg_alignment", {}).get("layers") for r in results["regimes"].values()):
        store.atomic_savefig(lambda p: plot_alignment(results, p),
                             os.path.join(out, "alignment.png"))
        written.append("alignment.png")
    return written


def write_sweep(out: str, results: dict[str, Any]) -> list[str]:
    """Writes a sweep's ``results.json``, ``summary.md`` and heatmaps into ``out``."""
    store.atomic_write_json(os.path.join(out, "results.json"), results)
    store.atomic_write_bytes(os.path.join(out, "summary.md"), sweep_markdown(results).encode())
    store.atomic_savefig(lambda p: plot_sensitivity(results, p),
                         os.path.join(out, "sensitivity.png"))
    return ["results.json", "summary.md", "sensitivity.png"]
