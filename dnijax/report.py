"""Tables and figures from plain results (dicts of lists, as written to JSON).

Diverged runs are never averaged in: tables count them separately and figures
draw the healthy runs' band with the diverged count in the legend.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"backprop": "#1f77b4", "dni": "#d62728", "backprop+noise": "#2ca02c",
          "dni+noise": "#ff7f0e"}


def healthy_values(values: Sequence[Any], diverged: Sequence[Any]) -> np.ndarray:
    """The values of the runs that did not diverge, as floats."""
    return np.array([v for v, d in zip(values, diverged) if d is None and v is not None],
                    dtype=float)


def _mean_std(values: np.ndarray, fmt: str) -> str:
    if values.size == 0:
        return "n/a"
    return f"{values.mean():{fmt}} ± {values.std():{fmt}}"


def steps_to_target(curve: dict[str, list], target: float) -> int | None:
    """First recorded step at which the mean loss curve is at or below ``target``."""
    for step, value in zip(curve["step"], curve["mean"]):
        if value is not None and value <= target:
            return int(step)
    return None


def summary_markdown(results: dict[str, Any]) -> str:
    """A markdown table: final loss and accuracies (mean ± std over the seeds that did
    not diverge), steps to a target loss, and diverged runs per regime."""
    regimes = results["regimes"]
    finals = [np.mean(healthy_values(r["final_loss"], r["diverged_at"]))
              for r in regimes.values() if healthy_values(r["final_loss"], r["diverged_at"]).size]
    # target: within 25% of the best regime's mean final loss
    target = 1.25 * float(min(finals)) if finals else float("nan")
    cfg = results["config"]
    lines = [f"### dnijax compare: preset `{results['preset']}`, {cfg['seeds']} seeds, "
             f"{cfg['steps']} steps, lr {cfg['lr']:g}"
             + (f", SG lr {cfg['sg_lr']:g}" if cfg.get("sg_lr") else "") +
             f", {cfg['noise']} noise eta {cfg['eta']:g}", "",
             f"| regime | final loss | train accuracy | test accuracy | steps to loss "
             f"{target:.4g} | diverged |",
             "|---|---|---|---|---|---|"]
    for name, r in regimes.items():
        div = r["diverged_at"]
        n_div = sum(d is not None for d in div)
        when = f" (at {', '.join(str(d) for d in div if d is not None)})" if n_div else ""
        reached = steps_to_target(r["loss_curve"], target)
        lines.append(
            f"| {name} | {_mean_std(healthy_values(r['final_loss'], div), '.4g')} "
            f"| {_mean_std(healthy_values(r['final_accuracy'], div), '.3f')} "
            f"| {_mean_std(healthy_values(r['test_accuracy'], div), '.3f')} "
            f"| {'not reached' if reached is None else reached} "
            f"| {n_div}/{len(div)}{when} |")
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
                            color=COLORS.get(name), alpha=0.25, lw=0, label="min–max")
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
                                     "(healthy runs)", "viridis"),
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
                ax.text(j, i, "all\ndiverged" if np.isnan(v) else f"{v:.2f}", ha="center",
                        va="center", fontsize=8, color="w" if dark and not np.isnan(v) else "k")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
