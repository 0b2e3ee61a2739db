"""Every figure, from plain results (dicts of lists, as written to JSON).

Figures draw the healthy runs (mean, its 95% interval cut to the quantity's range, as
:mod:`dnijax.stats` computes it and each figure states, min-max) with the diverged count
in the titles; :mod:`dnijax.report` writes them into a command's folder.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dnijax.stats import INTERVAL  # noqa: E402


def interval_footnote(fig: Any, what: str = "bands", fontsize: float = 7) -> None:
    """States under ``fig`` how its intervals (``what`` draws them) are made
    (:data:`dnijax.stats.INTERVAL`), and lays the figure out around the note."""
    fig.text(
        0.5, 0.005, f"{what}: {INTERVAL}", ha="center", va="bottom", fontsize=fontsize, color="0.35"
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))


COLORS = {
    "backprop": "#1f77b4",
    "dni": "#d62728",
    "backprop+noise": "#2ca02c",
    "dni+noise": "#ff7f0e",
    "cdni": "#8c564b",
    "fa": "#9467bd",
    "dfa": "#17becf",
    "fwdgrad": "#bcbd22",
    "fa+noise": "#c5b0d5",
    "dfa+noise": "#9edae5",
    "fwdgrad+noise": "#dbdb8d",
    "cdni+noise": "#c49c94",
}


def plot_loss_curves(results: dict[str, Any], path: str) -> None:
    """One panel per regime: mean loss with a min-max band over the healthy seeds, log
    scale; the other regimes' means in grey for reference."""
    cfg = results["config"]
    _plot_curves(
        results,
        path,
        "loss_curve",
        f"training loss ({cfg['loss']}, {cfg['reduction']})",
        log=True,
        title=f"preset {results['preset']}: training loss over {cfg['seeds']} seeds",
    )


def plot_length_curves(results: dict[str, Any], path: str) -> None:
    """A sequence task's comparison: one panel per regime, the curriculum's pattern length
    over episodes (mean, 95% interval and min-max band over the healthy seeds)."""
    cfg = results["config"]
    _plot_curves(
        results,
        path,
        "length_curve",
        "pattern length of the curriculum",
        log=False,
        title=f"task {results['preset']}: curriculum length over {cfg['seeds']} seeds",
        xlabel="episode",
    )


def _plot_curves(
    results: dict[str, Any],
    path: str,
    key: str,
    ylabel: str,
    *,
    log: bool,
    title: str,
    xlabel: str = "step",
) -> None:
    regimes = results["regimes"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=110, sharex=True, sharey=True)
    for ax, (name, r) in zip(axes.ravel(), regimes.items(), strict=False):
        for other, o in regimes.items():
            if other != name:
                ax.plot(o[key]["step"], np.array(o[key]["mean"], float), color="0.6", lw=0.8)
        c = r[key]
        n_div = sum(d is not None for d in r["diverged_at"])
        n = len(r["diverged_at"])
        ax.set_title(
            f"{name}: {n - n_div} of {n} seeds" + (f", {n_div} diverged" if n_div else ""),
            fontsize=10,
        )
        if not np.all(np.isnan(np.array(c["mean"], float))):
            ax.fill_between(
                c["step"],
                np.array(c["min"], float),
                np.array(c["max"], float),
                color=COLORS.get(name),
                alpha=0.12,
                lw=0,
                label="min–max",
            )
            if "ci95_lo" in c:
                ax.fill_between(
                    c["step"],
                    np.array(c["ci95_lo"], float),
                    np.array(c["ci95_hi"], float),
                    color=COLORS.get(name),
                    alpha=0.35,
                    lw=0,
                    label="95% CI of the mean",
                )
            ax.plot(
                c["step"], np.array(c["mean"], float), color=COLORS.get(name), lw=2, label="mean"
            )
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[1]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    axes[0, 0].legend(loc="upper right" if log else "upper left")
    fig.suptitle(f"{title} (grey: the other regimes' means)")
    interval_footnote(fig, "95% CI of the mean", fontsize=8)
    fig.savefig(path)
    plt.close(fig)


ALIGNMENTS = {
    "sg_alignment": ("SG module of layer {}", "cos(synthetic, true gradient)", "SG alignment"),
    "grad_alignment": (
        "layer {}",
        "cos(rule's signal, true gradient)",
        "alignment of each layer's signal to the true gradient",
    ),
}


def plot_alignment(results: dict[str, Any], path: str, key: str = "sg_alignment") -> None:
    """One panel per layer: the cosine to the true gradient over training, mean and 95%
    interval over the healthy seeds, for each regime that records ``key``
    (``sg_alignment``: each SG module's synthetic gradient; ``grad_alignment``: each
    layer's parameter signal, every rule)."""
    panel, ylabel, title = ALIGNMENTS[key]
    with_sg = {k: r for k, r in results["regimes"].items() if key in r}
    n_layers = max(len(r[key]["layers"]) for r in with_sg.values())
    fig, axes = plt.subplots(
        1, n_layers, figsize=(4.2 * n_layers, 3.4), dpi=110, sharey=True, squeeze=False
    )
    for i, ax in enumerate(axes[0]):
        for name, r in with_sg.items():
            a = r[key]
            if i >= len(a["layers"]):
                continue
            layer = a["layers"][i]
            as_float = lambda v: np.array([np.nan if x is None else x for x in v], float)  # noqa
            ax.plot(a["step"], as_float(layer["mean"]), color=COLORS.get(name), label=name)
            ax.fill_between(
                a["step"],
                as_float(layer["ci95_lo"]),
                as_float(layer["ci95_hi"]),
                color=COLORS.get(name),
                alpha=0.25,
                lw=0,
            )
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_title(panel.format(i + 1), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_ylim(-1.05, 1.05)
    fig.suptitle(
        f"preset {results['preset']}: {title}, mean and 95% CI over "
        f"{results['config']['seeds']} seeds",
        fontsize=10,
    )
    interval_footnote(fig)
    fig.savefig(path)
    plt.close(fig)


def plot_decision_regions(predict_fn, dataset, params: dict[str, Any], path: str) -> None:
    """Ground truth beside each regime's decision regions (class-1 probability), one seed.

    Args:
      predict_fn (Callable): ``predict_fn(net, grid_points) -> (P,) class-1 scores in [0, 1]``.
      dataset (Dataset): a :class:`~dnijax.data.Dataset` (2-D inputs).
      params: regime name -> final network of that seed.
    """
    x, y = dataset.x_train, dataset.y_train
    pad = 0.5 * (x.max(0) - x.min(0)) * 0.2
    lo, hi = x.min(0) - pad, x.max(0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    n = len(params) + 1
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 0.8, 3.6), dpi=110, sharex=True, sharey=True)
    axes[0].scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", s=8, edgecolors="none", vmin=0, vmax=1)
    axes[0].set_title("ground truth")
    filled = None
    for ax, (name, net) in zip(axes[1:], params.items(), strict=True):
        score = np.asarray(predict_fn(net, grid)).reshape(gx.shape)
        filled = ax.contourf(
            gx, gy, np.clip(score, 0, 1), levels=np.linspace(0, 1, 11), cmap="coolwarm", alpha=0.75
        )
        ax.contour(gx, gy, score, levels=[0.5], colors="k", linewidths=1)
        pred = np.asarray(predict_fn(net, x)) > 0.5
        ax.scatter(
            x[:, 0],
            x[:, 1],
            c=y,
            cmap="coolwarm",
            s=5,
            edgecolors="k",
            linewidths=0.2,
            vmin=0,
            vmax=1,
        )
        ax.set_title(f"{name}\ntrain acc {np.mean(pred == y):.3f}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if filled is not None:
        bar = fig.colorbar(filled, ax=list(axes), fraction=0.025, pad=0.01, ticks=[0, 0.5, 1])
        bar.ax.set_title("class-1\nscore", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    handles = [
        plt.Line2D([], [], ls="", marker="o", color=plt.get_cmap("coolwarm")(v), label=f"class {k}")
        for k, v in ((0, 0.0), (1, 1.0))
    ]
    axes[0].legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.8)
    fig.savefig(path)
    plt.close(fig)


def plot_sensitivity(results: dict[str, Any], path: str) -> None:
    """Heatmaps over (regime, learning rate): the median of the sweep's measure (final loss,
    or a sequence task's final error in bits) and the diverged fraction."""
    fig, axes = plt.subplots(1, 2, figsize=sensitivity_size(results), dpi=110)
    draw_sensitivity(results, fig, axes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sensitivity_size(results: dict[str, Any]) -> tuple[float, float]:
    """The size in inches of one row of :func:`plot_sensitivity`'s two heatmaps."""
    return (1.3 * len(results["lrs"]) + 5, 0.7 * len(results["regimes"]) + 2.2)


def draw_sensitivity(results: dict[str, Any], fig: Any, axes: Any, title: str = "") -> None:
    """Draws :func:`plot_sensitivity`'s two heatmaps on ``axes`` (two matplotlib axes of
    ``fig``), their titles prefixed by ``title``."""
    regimes = list(results["regimes"])
    lrs = results["lrs"]
    metric = results.get("metric", "final_loss")
    label = "final error (bits)" if metric == "final_error_bits" else "final loss"
    loss = np.array(
        [
            [np.nan if v is None else v for v in results["regimes"][r][f"median_{metric}"]]
            for r in regimes
        ],
        float,
    )
    frac = np.array([results["regimes"][r]["diverged_fraction"] for r in regimes], float)
    for ax, values, name, cmap in (
        (axes[0], np.log10(loss), f"log10 median {label} (diverged runs as +inf)", "viridis"),
        (axes[1], frac, "fraction of runs diverged", "Reds"),
    ):
        im = ax.imshow(
            values,
            cmap=cmap,
            aspect="auto",
            vmin=0 if cmap == "Reds" else None,
            vmax=1 if cmap == "Reds" else None,
        )
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs], rotation=45)
        ax.set_yticks(range(len(regimes)), regimes)
        ax.set_xlabel("learning rate")
        ax.set_title(title + name, fontsize=10)
        for i in range(len(regimes)):
            for j in range(len(lrs)):
                v = values[i, j]
                dark = (cmap == "viridis") != (cmap == "Reds" and v > 0.6)
                ax.text(
                    j,
                    i,
                    "diverged" if np.isnan(v) else f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="w" if dark and not np.isnan(v) else "k",
                )
        fig.colorbar(im, ax=ax, fraction=0.046)


def class1_score(config: dict[str, Any]):
    """``score(net, x)``: the class-1 score in [0, 1] of a single-output network with the
    comparison's ``config`` (activations, loss, reduction), for decision regions."""
    import jax
    import jax.numpy as jnp

    from dnijax import config as config_lib
    from dnijax import nets

    spec = config_lib.from_dict({**config, "update_prob": 1.0}).net_spec  # regime-free

    def score(net, x):
        out = nets.predict(jax.tree.map(jnp.asarray, net), jnp.asarray(x), spec)[:, 0]
        return jax.nn.sigmoid(out) if spec.loss == "bce" else out

    return score
