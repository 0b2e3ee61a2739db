"""The rule family: backprop, DNI, cDNI, feedback alignment, direct feedback alignment and
forward gradients, each without and with gradient noise, under one protocol.

Networks: ReLU MLPs of depth 2, 4 and 8 (1, 3 and 7 hidden layers of ``--width`` units,
He init) on digits (8x8 images as 64 values) and on mnist1d (40-sample signals), and the
digits CNN of ``dni_cnn.py`` (two 5x5 conv blocks with pooling; 8 filters, where
``dni_cnn.py`` has 16, to fit the run in about 15 minutes). Every rule
gets the same budget: Adam, batch 64, ``--steps`` steps, its learning rate chosen from
``--lrs`` by the mean validation accuracy of ``--seeds / 2`` tuning seeds per rate (other
seeds than the reported ones), noise-free. The validation split is drawn from the training
set, as large as the test split (digits 360 rows, mnist1d 1000); the tuning runs and the
reported runs train on the rest of the training set (digits 1077 rows; mnist1d 2000 of its
3000, to fit the run in about 15 minutes: dnijax draws each minibatch as a permutation of
every row, which costs more than a small MLP's step at 3000 rows), so neither ever sees
the validation or the test rows. Then
``--seeds`` seeds per arm (without and with noise: annealed Gaussian noise, eta 0.01,
gamma 0.55, before Adam), paired by seed: seed s starts from the same weights under every
rule. Reported: the test error (%) with its 95% interval and n, diverged runs, the paired
difference from backprop, the steps to a target test accuracy (90% of backprop's mean
final test accuracy on that network), and the cosine of each layer's signal to the true
gradient along training (:func:`dnijax.train.grad_alignment`). DNI's and cDNI's SG
modules are linear and zero-initialised (the DNI paper's cDNI choice; on the CNN's conv
block a single 5x5 conv), regressing onto per-example gradients; ``fa`` and ``dfa`` draw
their fixed matrices with the network's He init.

Tuning and reporting grids have the same shapes, so each (network, rule) compiles one
program. Each network's results are saved as soon as it is done
(``rule_family.partial.json``), and a run with the same options that was interrupted resumes
after the last network it finished.

    python benchmarks/rule_family.py [--quick] [--seeds 8] [--steps 600] [--lrs ...]
"""

from __future__ import annotations

import os
import time
from typing import Any

import common
import numpy as np
from dni_cnn import cnn_layers

from dnijax import RunConfig, engine, stats, store
from dnijax.report import markdown_table

RULES = {
    "backprop": dict(regime="backprop"),
    "dni": dict(regime="dni"),
    "cdni": dict(regime="dni", conditioned=True),
    "fa": dict(regime="fa"),
    "dfa": dict(regime="dfa"),
    "fwdgrad": dict(regime="fwdgrad"),
}
ETA = 0.01
TARGET = 0.9  # of backprop's mean final test accuracy


MAX_TRAIN = 2000  # training rows at most: the minibatch draw costs O(rows) per step
CNN_FILTERS = 8  # dni_cnn.py's 16 cost a quarter of an hour here under six rules


class Split:
    """Validation rows (as many as the test rows, drawn from the training set), training
    rows (the rest of the training set, at most ``MAX_TRAIN``) and the test rows of one
    data set."""

    def __init__(self, ds: Any):
        n_val = len(ds.y_test)
        order = np.random.RandomState(0).permutation(len(ds.y_train))
        val, train = order[:n_val], order[n_val : n_val + MAX_TRAIN]
        self.name, self.n_features, self.n_classes = ds.name, ds.n_features, ds.n_classes
        self.train = (ds.x_train[train], ds.y_train[train])
        self.val = (ds.x_train[val], ds.y_train[val])
        self.test = (ds.x_test, ds.y_test)


def networks(width: int, depths: tuple[int, ...], data: tuple[str, ...]) -> list[tuple]:
    """``(label, data name, RunConfig fields)`` of every network of the study."""
    out = []
    for name in data:
        for depth in depths:
            out.append(
                (
                    f"{name} MLP-{depth}",
                    name,
                    dict(
                        hidden=(width,) * (depth - 1),
                        activations=("relu",) * (depth - 1) + ("identity",),
                    ),
                )
            )
    if "digits" in data and depths != (2,):
        out.append(("digits CNN", "digits", dict(layers=cnn_layers(CNN_FILTERS))))
    return out


def base_fields(split: Split, net: dict, steps: int) -> dict:
    widths = (split.n_features,) + net.get("hidden", ()) + (split.n_classes,)
    fields = dict(
        loss="xent",
        reduction="mean",
        init="he",
        optimizer="adam",
        batch_size=64,
        steps=steps,
        log_every=max(1, steps // 10),
        sg_init="zero",
        eta=ETA,
    )
    if "layers" in net:
        return dict(fields, widths=(split.n_features,), layers=net["layers"])
    return dict(fields, widths=widths, activations=net["activations"])


def run_rule(
    split: Split, fields: dict, rule: str, seeds: int, lrs: tuple[float, ...], label: str
) -> dict:
    """One rule on one network: its tuning grid (validation accuracy per learning rate) and
    its reported grid (both arms on the test data), one compiled program."""
    cfg = RunConfig(
        **{**fields, **RULES[rule], "regime": RULES[rule]["regime"] + "+noise", "lr": lrs[0]}
    )
    n_runs = 2 * seeds
    per_lr = n_runs // len(lrs)
    tune_lrs = [lr for lr in lrs for _ in range(per_lr)]
    tune_seeds = [1000 + s for _ in lrs for s in range(per_lr)]
    tune = engine.run_grid(
        cfg,
        engine.stack_hyper(cfg, lr=tune_lrs, eta=[0.0] * n_runs),
        engine.run_keys(tune_seeds),
        split.train,
        test=split.val,
        test_history=True,
        alignment=rule != "backprop",
        progress=common.progress_line(f"{label}, {rule}: tuning"),
    )
    val_acc = {
        lr: float(
            np.mean(
                np.where(
                    tune.diverged_at[i * per_lr : (i + 1) * per_lr] < 0,
                    tune.final["test_accuracy"][i * per_lr : (i + 1) * per_lr],
                    0.0,
                )
            )
        )
        for i, lr in enumerate(lrs)
    }
    best = max(lrs, key=lambda lr: (val_acc[lr], -lr))
    etas = [0.0] * seeds + [ETA] * seeds
    res = engine.run_grid(
        cfg,
        engine.stack_hyper(cfg, lr=[best] * n_runs, eta=etas),
        engine.run_keys(list(range(seeds)) * 2),
        split.train,
        test=split.test,
        test_history=True,
        alignment=rule != "backprop",
        progress=common.progress_line(f"{label}, {rule} at lr {best:g}"),
    )
    out = {"val_accuracy": {str(lr): a for lr, a in val_acc.items()}, "lr": best}
    for arm, runs in ((rule, slice(0, seeds)), (rule + "+noise", slice(seeds, n_runs))):
        diverged = [int(d) if d >= 0 else None for d in res.diverged_at[runs]]
        err = 100 * (1 - res.final["test_accuracy"][runs])
        acc_curve = res.history["test_accuracy"][runs]
        cell = {
            "test_error": err.tolist(),
            "diverged": diverged,
            "summary": stats.summarize(err.tolist(), diverged, bounds=stats.PERCENT),
            "step": res.history["step"].tolist(),
            "test_accuracy_curve": acc_curve.tolist(),
        }
        if "grad_alignment" in res.history:
            healthy = res.diverged_at[runs] < 0
            cos = res.history["grad_alignment"][runs][healthy]
            cell["alignment_step"] = res.history["step"][:-1].tolist()
            cell["alignment"] = [
                stats.band(cos[:, :, i], bounds=stats.COSINE) for i in range(cos.shape[-1])
            ]
        out[arm] = cell
    return out


def add_comparisons(cells: dict) -> None:
    """Per arm: the paired difference in test error from backprop's arm of the same noise,
    and the steps to the network's target accuracy (per seed; ``None``: not reached)."""
    for arm_noise in ("", "+noise"):
        base = cells["backprop"]["backprop" + arm_noise]
        target = TARGET * float(np.mean(1 - np.array(base["test_error"]) / 100))
        for rule, c in cells.items():
            cell = c[rule + arm_noise]
            cell["target_accuracy"] = target
            steps = cell["step"]
            cell["steps_to_target"] = [
                next((s for s, a in zip(steps, curve, strict=False) if a >= target), None)
                if d is None
                else None
                for curve, d in zip(cell["test_accuracy_curve"], cell["diverged"], strict=False)
            ]
            if rule != "backprop":
                cell["paired_vs_backprop"] = stats.paired(
                    cell["test_error"],
                    base["test_error"],
                    cell["diverged"],
                    base["diverged"],
                    bounds=stats.PERCENT,
                )


def fmt_error(cell: dict) -> str:
    s = cell["summary"]
    ci = s.get("ci95")
    div = sum(d is not None for d in cell["diverged"])
    if s["mean"] is None:
        return f"all {div} diverged"
    return (
        f"{s['mean']:.1f}"
        + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
        + f" (n={s['n']}"
        + (f", {div} diverged)" if div else ")")
    )


def fmt_steps(cell: dict) -> str:
    reached = [s for s in cell["steps_to_target"] if s is not None]
    n = len(cell["steps_to_target"])
    if not reached:
        return f"— (0/{n})"
    return f"{np.median(reached):.0f} ({len(reached)}/{n})"


def fmt_paired(cell: dict) -> str:
    p = cell.get("paired_vs_backprop")
    if not p or p["mean_diff"] is None:
        return "—"
    ci = p["ci95"]
    return f"{p['mean_diff']:+.1f}" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")


def overview(results: dict) -> str:
    """One row per network, one column per rule: the test error of the noise-free arm,
    mean [95% interval] over the seeds (n in the title), and the rate chosen."""
    rows = []
    for net in results["order"]:
        cells = results["networks"][net]
        row = [f"{net} ({cells['info']['params']:,})"]
        for rule in RULES:
            s = cells[rule][rule]["summary"]
            ci = s.get("ci95")
            lr = cells[rule]["lr"]
            edge = "†" if lr in (min(results["lrs"]), max(results["lrs"])) else ""
            row.append(
                "diverged"
                if s["mean"] is None
                else f"{s['mean']:.1f}"
                + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
                + f" @{lr:g}{edge}"
            )
        rows.append(row)
    return markdown_table(["network (parameters)"] + list(RULES), rows)


def markdown(results: dict) -> str:
    parts = [
        f"Test error %, noise-free arms, {results['seeds']} seeds each, mean [95% "
        "interval] @ the learning rate chosen on the validation split (†: at an end "
        "of the grid, so a rate beyond it might do better):\n\n" + overview(results)
    ]
    for net in results["order"]:
        cells = results["networks"][net]
        rows = []
        for rule in RULES:
            c = cells[rule]
            for arm in (rule, rule + "+noise"):
                cell = c[arm]
                rows.append(
                    [
                        arm,
                        f"{c['lr']:g}" if arm == rule else "″",
                        fmt_error(cell),
                        fmt_paired(cell),
                        fmt_steps(cell),
                    ]
                )
        info = cells["info"]
        parts.append(
            f"**{net}** ({info['params']:,} parameters; target accuracy "
            f"{100 * cells['backprop']['backprop']['target_accuracy']:.1f}%)\n\n"
            + markdown_table(
                [
                    "regime",
                    "lr (validation)",
                    "test error %",
                    "vs backprop (paired)",
                    "median steps to target (reached)",
                ],
                rows,
            )
        )
    return "\n".join(parts)


def figure(results: dict, path: str) -> None:
    """Row 1: test error along training (mean over the noise-free seeds) per network;
    row 2: the cosine of layer 1's signal to the true gradient, mean and 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnijax.figures import COLORS

    nets = results["order"]
    fig, axes = plt.subplots(2, len(nets), figsize=(3.6 * len(nets), 6.6), dpi=100, squeeze=False)
    for k, net in enumerate(nets):
        top, bottom = axes[0, k], axes[1, k]
        for rule in RULES:
            c = results["networks"][net].get(rule)
            if c is None:
                continue
            cell = c[rule]
            curve = 100 * (1 - np.mean(cell["test_accuracy_curve"], axis=0))
            top.plot(cell["step"], curve, color=COLORS.get(rule), label=rule)
            if "alignment" in cell:
                band = cell["alignment"][0]
                as_float = lambda v: np.array([np.nan if x is None else x for x in v])  # noqa
                bottom.plot(
                    cell["alignment_step"],
                    as_float(band["mean"]),
                    color=COLORS.get(rule),
                    label=rule,
                )
                bottom.fill_between(
                    cell["alignment_step"],
                    as_float(band["ci95_lo"]),
                    as_float(band["ci95_hi"]),
                    color=COLORS.get(rule),
                    alpha=0.2,
                    lw=0,
                )
        top.set_title(net, fontsize=10)
        top.grid(alpha=0.3)
        bottom.set_ylim(-1.05, 1.05)
        bottom.axhline(0, color="0.5", lw=0.8)
        bottom.set_xlabel("step")
        bottom.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test error % (mean over seeds)")
    axes[1, 0].set_ylabel("cos(layer 1's signal, true gradient)")
    axes[0, 0].legend(fontsize=7)
    common.save_figure(fig, path, intervals="alignment bands")


def main() -> None:
    parser = common.make_parser(__doc__, "rule_family")
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument(
        "--seeds", type=common.positive(int), help="seeds per arm (default 8; quick 2)"
    )
    parser.add_argument(
        "--steps",
        type=common.positive(int),
        help="training steps of every run (default 600; quick 20)",
    )
    parser.add_argument(
        "--width", type=common.positive(int), help="hidden units of the MLPs (default 32; quick 8)"
    )
    parser.add_argument(
        "--lrs",
        type=common.positive_floats,
        help="Adam learning rates to choose from on the validation split "
        "(default 3e-4,1e-3,3e-3,1e-2; quick 1e-3,3e-3)",
    )
    parser.add_argument(
        "--data",
        default="digits,mnist1d",
        help="comma-separated data sets: digits, mnist1d (default: both)",
    )
    args = parser.parse_args()
    data = tuple(args.data.split(","))
    unknown = set(data) - {"digits", "mnist1d"}
    if unknown or not data:
        parser.error(f"--data: unknown {', '.join(sorted(unknown))}; choose from digits, mnist1d")
    seeds = args.seeds or (2 if args.quick else 8)
    steps = args.steps or (20 if args.quick else 600)
    width = args.width or (8 if args.quick else 32)
    lrs = args.lrs or ((1e-3, 3e-3) if args.quick else (3e-4, 1e-3, 3e-3, 1e-2))
    if (2 * seeds) % len(lrs):
        parser.error(
            f"--lrs: {len(lrs)} rates do not divide the 2 x {seeds} runs of a grid "
            "(tuning and reported grids share one program); give a divisor"
        )
    depths = (2,) if args.quick else (2, 4, 8)
    if args.quick:  # one network, every rule: the smoke test of CI
        data = ("digits",)
    splits = {name: Split(common.load(name)) for name in data}
    partial = os.path.join(args.out, "rule_family.partial.json")  # the networks done so far
    common.claim(
        args, "rule_family", common.published("rule_family") + (os.path.basename(partial),)
    )
    t0 = time.time()
    results: dict = {
        "seeds": seeds,
        "steps": steps,
        "width": width,
        "lrs": list(lrs),
        "batch": 64,
        "optimizer": "adam",
        "eta": ETA,
        "target": TARGET,
        "networks": {},
        "order": [],
    }
    done = store.read_json(partial) or {}
    for label, name, net in networks(width, depths, data):
        results["order"].append(label)
        if label in done:  # an interrupted run of the same options: resume after it
            results["networks"][label] = done[label]
            print(f"  {label}: resumed from {partial}", flush=True)
            continue
        fields = base_fields(splits[name], net, steps)
        cells: dict = {}
        for rule in RULES:
            cells[rule] = run_rule(splits[name], fields, rule, seeds, lrs, label)
        add_comparisons(cells)
        cfg = RunConfig(**fields)
        cells["info"] = {"params": int(sum(np.prod(s) for s in _param_shapes(cfg)))}
        results["networks"][label] = cells
        store.atomic_write_json(partial, results["networks"])
    results["seconds"] = time.time() - t0  # this process's share, where a run resumed
    common.publish(args.out, "rule_family", results, report, figure)
    os.remove(partial)


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    lrs = ", ".join(f"{v:g}" for v in results["lrs"])
    return (
        f"# Rule family ({results['steps']} steps, Adam, batch 64, {results['seeds']} seeds "
        f"per arm, lr chosen per rule on a validation split from {lrs}): test error %, mean "
        f"[{stats.INTERVAL}]\n\n" + markdown(results) + f"\nTotal time {results['seconds']:.0f}s.\n"
    )


def _param_shapes(cfg: RunConfig) -> list[tuple[int, ...]]:
    import jax

    from dnijax import nets

    tree = jax.eval_shape(lambda k: nets.init_network(k, cfg.net_spec), jax.random.key(0))
    return [leaf.shape for leaf in jax.tree.leaves(tree)]


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
