"""Every table, and the writers of a command's outputs, from plain results (dicts of lists,
as written to JSON); the figures are :mod:`dnijax.figures`.

Diverged runs are never averaged in: tables count them separately (:mod:`dnijax.stats`).
The writers put a command's outputs in its folder, atomically, and
:func:`read_results` reads a finished folder back for ``dnijax report``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from dnijax import stats, store
from dnijax.figures import (
    class1_score,
    plot_alignment,
    plot_decision_regions,
    plot_length_curves,
    plot_loss_curves,
    plot_sensitivity,
)

COMPARE_OUTPUTS = (
    "results.json",
    "final_params.npz",
    "summary.md",
    "results.csv",
    "loss_curves.png",
    "decision_regions.png",
    "alignment.png",
    "grad_alignment.png",
)
TASK_COMPARE_OUTPUTS = ("results.json", "summary.md", "results.csv", "length_curves.png")
SWEEP_OUTPUTS = ("results.json", "summary.md", "results.csv", "sensitivity.png", "blocks")


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
    diff = (
        "n/a"
        if paired["mean_diff"] is None
        else f"{paired['mean_diff']:+.3g}" + (f" [{ci[0]:+.3g}, {ci[1]:+.3g}]" if ci else "")
    )
    p = "n/a" if paired["p_value"] is None else f"{paired['p_value']:.2g}"
    return [diff, f"{paired['wins']}/{paired['n']}", p]


def summary_markdown(results: dict[str, Any]) -> str:
    """A comparison's table: final loss, test accuracy and steps to 90% of each run's own
    loss drop (means with 95% intervals over the seeds that did not diverge), diverged runs,
    and each regime against backprop, paired by seed (:mod:`dnijax.stats`); a sequence
    task's, :func:`task_summary_markdown`."""
    regimes = results["regimes"]
    cfg = results["config"]
    if cfg.get("task"):
        return task_summary_markdown(results)
    lines = [
        f"### dnijax compare: preset `{results['preset']}`, {cfg['seeds']} seeds, "
        f"{cfg['steps']} steps, lr {cfg['lr']:g}"
        + (f", SG lr {cfg['sg_lr']:g}" if cfg.get("sg_lr") else "")
        + f", {cfg['noise']} noise eta {cfg['eta']:g}",
        "",
        f'Means with their {stats.INTERVAL} (n). "vs backprop": the per-seed '
        "difference in final loss (regime − backprop, same data and initial weights) "
        "with its 95% interval, the seeds on which the regime's loss is lower, and the "
        f"p-value ({stats.PAIRED_TEST}).",
        "",
    ]
    rows = []
    for name, r in regimes.items():
        div = r["diverged_at"]
        n_div = sum(d is not None for d in div)
        when = f" (at {', '.join(str(d) for d in div if d is not None)})" if n_div else ""
        summary = r["summary"]
        paired = r.get("paired_vs_backprop", {}).get("final_loss")
        rows.append(
            [
                name,
                stats.format_mean_ci(summary["final_loss"], ".4g"),
                stats.format_mean_ci(summary["test_accuracy"], ".3f"),
                stats.format_mean_ci(summary["steps_to_90pct_drop"], ".0f"),
                f"{n_div}/{len(div)}{when}",
                *_paired_cells(paired),
            ]
        )
    lines.append(
        markdown_table(
            [
                "regime",
                "final loss",
                "test accuracy",
                "steps to 90% of its loss drop",
                "diverged",
                "final loss vs backprop",
                "lower on",
                "p",
            ],
            rows,
        ).rstrip()
    )
    which = " (the article’s exact data and weights)" if results["preset"] == "seed" else ""
    start = next(iter(regimes.values()))["initial_loss"][0]
    finals_0 = ", ".join(
        f"{name} "
        + (
            f"diverged at {r['diverged_at'][0]}"
            if r["diverged_at"][0] is not None
            else format(r["final_loss"][0], ".4g")
        )
        for name, r in regimes.items()
    )
    lines += ["", f"Seed 0{which}: loss {start:.4g} at step 0 -> {finals_0}"]
    return "\n".join(lines) + "\n"


def task_summary_markdown(results: dict[str, Any]) -> str:
    """A sequence task's table: the longest length solved and the final error (means with
    95% intervals over the seeds that did not diverge), diverged runs, and each regime
    against backprop in length solved, paired by seed."""
    cfg = results["config"]
    task = results["preset"].replace("_", "-")  # as the command line spells it
    lines = [
        f"### dnijax compare --task {task}: {cfg['seeds']} seeds, "
        f"{cfg['steps']} episodes of {cfg['batch_size']} sequences, {cfg['core']} "
        f"{cfg['hidden']}, windows of {cfg['window']}, lengths {cfg['start_length']}.."
        f"{cfg['max_length']}, {cfg['optimizer']} lr {cfg['lr']:g}"
        + (f", SG lr {cfg['sg_lr']:g}" if cfg.get("sg_lr") else "")
        + f", {cfg['noise']} noise eta {cfg['eta']:g}",
        "",
        f'Means with their {stats.INTERVAL} (n). "solved": the longest pattern length '
        f"the curriculum passed (an episode's error under {cfg['threshold']:g} bits per "
        'target bit); "final error": bits per target bit, the mean over the last '
        'record\'s episodes. "vs backprop": the per-seed difference in length solved '
        "(regime − backprop, same initial weights and sequences) with its 95% interval, "
        f"the seeds on which the regime solved longer, and the p-value "
        f"({stats.PAIRED_TEST}).",
        "",
    ]
    rows = []
    for name, r in results["regimes"].items():
        div = r["diverged_at"]
        n_div = sum(d is not None for d in div)
        when = f" (at {', '.join(str(d) for d in div if d is not None)})" if n_div else ""
        paired = r.get("paired_vs_backprop", {}).get("solved")
        rows.append(
            [
                name,
                stats.format_mean_ci(r["summary"]["solved"], ".2f"),
                stats.format_mean_ci(r["summary"]["final_error_bits"], ".3f"),
                f"{n_div}/{len(div)}{when}",
                *_paired_cells(paired),
            ]
        )
    lines.append(
        markdown_table(
            ["regime", "solved", "final error", "diverged", "solved vs backprop", "longer on", "p"],
            rows,
        ).rstrip()
    )
    return "\n".join(lines) + "\n"


def sweep_markdown(results: dict[str, Any]) -> str:
    """Per regime and learning rate: the median of the sweep's measure (final loss; a
    sequence task's final error in bits per target bit) with diverged runs counted as +inf
    (so a cell where most runs diverged reads "diverged"), the diverged fraction, and the
    mean with its 95% interval over the runs that did not diverge (a sequence task's: of
    the longest length solved)."""
    metric = results.get("metric", "final_loss")
    task = metric == "final_error_bits"
    rows = []
    for name, r in results["regimes"].items():
        cells = []
        means = (
            zip(r["mean_solved"], r["mean_solved_ci95"], strict=True)
            if task
            else zip(r[f"mean_{metric}"], r[f"mean_{metric}_ci95"], strict=True)
        )
        for m, f, (mean, ci), n in zip(
            r[f"median_{metric}"], r["diverged_fraction"], means, r["n_healthy"], strict=True
        ):
            cell = "diverged" if m is None else f"{m:.3g}"
            if f:
                cell += f" ({f:.0%} div)"
            if mean is not None and n > 1 and m is not None:
                cell += f"; {'solved' if task else 'mean'} {mean:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"
            cells.append(cell)
        rows.append([name] + cells)
    measure = "final error (bits per target bit)" if task else "final loss"
    mean_of = "the mean longest length solved" if task else "the mean"
    legend = (
        f"Per cell: the median {measure} over all seeds, a diverged seed counting as "
        '+inf (so a cell where most seeds diverged reads "diverged"), the fraction of '
        f"seeds diverged, and {mean_of} over the seeds that did not diverge with its "
        f"{stats.INTERVAL}.\n\n"
    )
    return legend + markdown_table(["regime"] + [f"lr {v:g}" for v in results["lrs"]], rows)


def write_compare(
    out: str,
    results: dict[str, Any],
    datasets: Sequence[Any] = (),
    params: dict[str, Any] | None = None,
) -> list[str]:
    """Writes a comparison's ``results.json``, ``final_params.npz`` (seed 0's final networks,
    for 2-D inputs) and, through :func:`write_compare_outputs`, ``summary.md``,
    ``results.csv`` and figures into ``out``; returns the file names."""
    os.makedirs(out, exist_ok=True)
    store.atomic_write_json(os.path.join(out, "results.json"), results)
    written = ["results.json"]
    if results["config"].get("task"):  # a sequence task: no data, no decision regions
        return written + write_compare_outputs(out, results, None, None)
    if params is None:
        raise ValueError("write_compare: a feed-forward comparison needs its final params")
    seed0 = {k: v[0] for k, v in params.items()}
    if decision_regions_skipped(results["config"]) is None:
        store.atomic_write_bytes(os.path.join(out, "final_params.npz"), final_params_npz(seed0))
        written.append("final_params.npz")
    else:  # an earlier run's, into the same folder, would no longer match
        for stale in ("final_params.npz", "decision_regions.png"):
            if os.path.isfile(os.path.join(out, stale)):
                os.remove(os.path.join(out, stale))
    return written + write_compare_outputs(out, results, datasets[0], seed0)


def write_sweep(out: str, results: dict[str, Any]) -> list[str]:
    """Writes a sweep's ``results.json`` and, through :func:`write_sweep_outputs`,
    ``summary.md``, ``results.csv`` and heatmaps into ``out``; returns the file names."""
    store.atomic_write_json(os.path.join(out, "results.json"), results)
    return ["results.json"] + write_sweep_outputs(out, results)


# --- results.csv, final networks, and rebuilding a finished folder (dnijax report) ---------

CSV_COLUMNS = (
    "regime",
    "seed",
    "lr",
    "sg_lr",
    "eta",
    "final_loss",
    "final_accuracy",
    "test_accuracy",
    "diverged_at",
)
COMPARE_KEYS = (
    "initial_loss",
    "final_loss",
    "final_accuracy",
    "test_accuracy",
    "diverged_at",
    "summary",
    "loss_curve",
)
TASK_CSV_COLUMNS = (
    "regime",
    "seed",
    "lr",
    "sg_lr",
    "eta",
    "solved",
    "final_length",
    "final_error_bits",
    "diverged_at",
)
TASK_COMPARE_KEYS = (
    "solved",
    "final_length",
    "final_error_bits",
    "diverged_at",
    "summary",
    "length_curve",
    "error_curve",
)
SWEEP_KEYS = (
    "median_final_loss",
    "mean_final_loss",
    "mean_final_loss_ci95",
    "n_healthy",
    "diverged_fraction",
    "final_loss",
    "diverged_at",
)
TASK_SWEEP_KEYS = (
    "median_final_error_bits",
    "mean_final_error_bits",
    "mean_final_error_bits_ci95",
    "mean_solved",
    "mean_solved_ci95",
    "n_healthy",
    "diverged_fraction",
    "solved",
    "final_error_bits",
    "diverged_at",
)


def results_csv(results: dict[str, Any]) -> str:
    """``results.csv``: one row per run (``CSV_COLUMNS``), empty cells for ``None``; a
    float32 run's values at float32's shortest round-trip precision (:func:`csv_value`).

    A comparison's runs are (regime, seed), with ``lr``, ``sg_lr`` and ``eta`` from its config
    (a sequence task's, ``TASK_CSV_COLUMNS``: the length solved, the final curriculum length
    and error);
    a sweep's are (regime, lr, seed), ``sg_lr`` being the swept lr unless the sweep fixed it.
    ``eta`` is 0 for the regimes without noise (they run with eta 0). ``seed`` is the
    seed's index: its data are ``resolve(data, seed)``.
    """
    import csv
    import io

    from dnijax.config import parse_regime

    cfg = results["config"]
    float32 = cfg.get("dtype", "float32") == "float32"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    task = bool(cfg.get("task"))
    writer.writerow(TASK_CSV_COLUMNS if task else CSV_COLUMNS)
    keys = (TASK_CSV_COLUMNS if task else CSV_COLUMNS)[5:]
    sweep = "lrs" in results
    fixed_sg_lr = results["sg_lr"] if sweep else cfg.get("sg_lr")
    settings = [
        (lr, lr if fixed_sg_lr is None else fixed_sg_lr)
        for lr in (results["lrs"] if sweep else [cfg["lr"]])
    ]
    for name, r in results["regimes"].items():
        eta = cfg["eta"] if parse_regime(name)[1] else 0.0
        for i, (lr, sg_lr) in enumerate(settings):
            n = len(r["diverged_at"][i] if sweep else r["diverged_at"])
            columns = []
            for key in keys:
                values = r.get(key)  # sweeps before per-run accuracies were kept lack them
                values = values[i] if sweep and values is not None else values
                columns.append([None] * n if values is None else values)
            for seed, row in enumerate(zip(*columns, strict=True)):
                writer.writerow([name, seed, lr, sg_lr, eta, *(csv_value(v, float32) for v in row)])
    return buf.getvalue()


def csv_value(value: Any, float32: bool) -> Any:
    """A CSV cell: a float of a float32 run at float32's shortest round-trip digits
    (``0.98749995``, not ``0.9874999523162842``); anything else as it is."""
    if float32 and isinstance(value, float):
        return (
            np.format_float_positional(np.float32(value), unique=True, trim="-")
            if (value == 0 or 1e-4 <= abs(value) < 1e16)
            else np.format_float_scientific(np.float32(value), unique=True, trim="-")
        )
    return value


def decision_regions_skipped(config: dict[str, Any]) -> str | None:
    """Why a comparison with ``config`` gets no ``decision_regions.png`` (``None``: it gets
    one): the figure is drawn for 2-D inputs and a single output."""
    n_in, n_out = config["widths"][0], config["widths"][-1]
    if n_in != 2:
        return f"the inputs have {n_in} features; it is drawn for 2-D inputs"
    if n_out != 1:
        return f"the network has {n_out} outputs; it is drawn for a single output"
    return None


def final_params_npz(params: dict[str, Any]) -> bytes:
    """``final_params.npz`` of one network per regime (a list of layers ``{"w", "b"}``):
    arrays named ``<regime>/<layer>/<w|b>``."""
    import io

    arrays = {
        f"{name}/{i}/{k}": np.asarray(v)
        for name, net in params.items()
        for i, layer in enumerate(net)
        for k, v in layer.items()
    }
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=True, **arrays)  # numpy's default, named for its stubs
    return buf.getvalue()


def read_final_params(path: str) -> dict[str, Any] | None:
    """The networks of a ``final_params.npz`` (regime -> list of layers), ``None`` if the
    file is absent.

    Raises:
      ValueError: one line, when the file cannot be read as such.
    """
    if not os.path.isfile(path):
        return None
    nets: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                name, layer, leaf = key.rsplit("/", 2)
                nets.setdefault(name, {}).setdefault(int(layer), {})[leaf] = z[key]
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path!r} cannot be read ({' '.join(str(err).split())})") from err
    return {name: [layers[i] for i in sorted(layers)] for name, layers in nets.items()}


def write_compare_outputs(
    out: str, results: dict[str, Any], dataset: Any | None, params: dict[str, Any] | None
) -> list[str]:
    """Writes a comparison's ``summary.md``, ``results.csv``, ``loss_curves.png``,
    ``decision_regions.png`` (2-D inputs with seed 0's ``dataset`` and final networks
    ``params``, regime -> network; skipped where either is ``None``) and
    ``alignment.png`` (with SG modules) and ``grad_alignment.png`` (rules other than
    backprop); a sequence task's ``summary.md``, ``results.csv``
    and ``length_curves.png``. Returns the file names."""
    store.atomic_write_bytes(os.path.join(out, "summary.md"), summary_markdown(results).encode())
    store.atomic_write_bytes(os.path.join(out, "results.csv"), results_csv(results).encode())
    if results["config"].get("task"):
        store.atomic_savefig(
            lambda p: plot_length_curves(results, p), os.path.join(out, "length_curves.png")
        )
        return ["summary.md", "results.csv", "length_curves.png"]
    store.atomic_savefig(
        lambda p: plot_loss_curves(results, p), os.path.join(out, "loss_curves.png")
    )
    written = ["summary.md", "results.csv", "loss_curves.png"]
    if (
        decision_regions_skipped(results["config"]) is None
        and dataset is not None
        and params is not None
    ):
        nets = {k: params[k] for k in results["regimes"] if k in params}
        store.atomic_savefig(
            lambda p: plot_decision_regions(class1_score(results["config"]), dataset, nets, p),
            os.path.join(out, "decision_regions.png"),
        )
        written.append("decision_regions.png")
    for key, name in (("sg_alignment", "alignment.png"), ("grad_alignment", "grad_alignment.png")):
        if any(r.get(key, {}).get("layers") for r in results["regimes"].values()):
            store.atomic_savefig(
                lambda p, key=key: plot_alignment(results, p, key), os.path.join(out, name)
            )
            written.append(name)
    return written


def write_sweep_outputs(out: str, results: dict[str, Any]) -> list[str]:
    """Writes a sweep's ``summary.md``, ``results.csv`` and ``sensitivity.png``; returns the
    file names."""
    store.atomic_write_bytes(os.path.join(out, "summary.md"), sweep_markdown(results).encode())
    store.atomic_write_bytes(os.path.join(out, "results.csv"), results_csv(results).encode())
    store.atomic_savefig(
        lambda p: plot_sensitivity(results, p), os.path.join(out, "sensitivity.png")
    )
    return ["summary.md", "results.csv", "sensitivity.png"]


def read_results(out: str) -> tuple[str, dict[str, Any]]:
    """The kind (``compare`` or ``sweep``: a sweep's results have ``lrs``) and the results of
    a finished folder, its regimes in the order the command wrote them (``results.json``
    sorts keys: a comparison's order is ``REGIMES``, a sweep's its ``manifest.json``'s).

    Raises:
      ValueError: one line, when ``out`` is not a folder holding a compare's or a sweep's
        readable ``results.json``.
    """
    import json

    from dnijax.config import REGIMES

    if not os.path.isdir(out):
        raise ValueError(
            f"report: {out!r} is not a folder; give the output folder of a dnijax compare or sweep"
        )
    path = os.path.join(out, "results.json")
    if not os.path.isfile(path):
        raise ValueError(
            f"report: {out!r} has no results.json; give the output folder of a "
            "finished dnijax compare or sweep"
        )
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"report: {path!r} is not readable JSON ({err}); rerun the command that wrote it"
        ) from err
    kind = "sweep" if isinstance(results, dict) and "lrs" in results else "compare"
    shape = f"report: {path!r} does not hold the results of a dnijax compare or sweep"
    try:
        regimes, cfg = results["regimes"], results["config"]
        task = isinstance(cfg, dict) and bool(cfg.get("task"))
        needed = (
            (TASK_SWEEP_KEYS if task else SWEEP_KEYS)
            if kind == "sweep"
            else (TASK_COMPARE_KEYS if task else COMPARE_KEYS)
        )
        if (
            not regimes
            or not isinstance(cfg, dict)
            or any(k not in r for r in regimes.values() for k in needed)
        ):
            raise ValueError(shape)
        order = list(cfg.get("regimes") or REGIMES)  # a compare of other regimes records them
        if kind == "sweep":
            manifest = store.read_json(os.path.join(out, store.MANIFEST))
            order = (manifest or {}).get("regimes") or order
        rank = {name: i for i, name in enumerate(order)}
        results["regimes"] = dict(
            sorted(regimes.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        )
        # render the texts once: a wrong shape fails here, before anything is written
        (sweep_markdown if kind == "sweep" else summary_markdown)(results)
        results_csv(results)
        if kind == "compare" and not task:
            decision_regions_skipped(cfg)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as err:
        raise ValueError(shape) from err
    return kind, results


def rebuild(out: str) -> tuple[str, list[str], str | None]:
    """``dnijax report``: rebuilds a finished folder's ``summary.md``, ``results.csv`` and
    figures from its ``results.json`` (a comparison's decision regions from
    ``final_params.npz`` and seed 0's data, regenerated from the recorded config).

    Returns:
      The kind (``compare`` or ``sweep``), the files written, and why the decision regions
      were skipped (``None`` if they were drawn or do not apply).
    """
    from dnijax.experiments import presets

    kind, res = read_results(out)
    if kind == "sweep":
        return kind, write_sweep_outputs(out, res), None
    if res["config"].get("task"):
        return kind, write_compare_outputs(out, res, None, None), None
    dataset, params = None, None
    skipped = decision_regions_skipped(res["config"])
    if skipped is None:
        try:
            params = read_final_params(os.path.join(out, "final_params.npz"))
            if params is None:
                skipped = "the folder has no final_params.npz (rerun compare to get it)"
            else:
                spec = None if res["preset"] == "seed" else res["config"].get("data")
                dataset = presets.preset_data(res["preset"], 0, spec)[0]
        except ValueError as err:
            skipped = str(err)
    return kind, write_compare_outputs(out, res, dataset, params), skipped
