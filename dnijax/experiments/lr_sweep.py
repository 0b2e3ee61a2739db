"""The learning-rate sweep: final loss and divergence per (regime, learning rate).

A cell's median counts a diverged run as +inf (:mod:`dnijax.stats`), so a cell where
most runs diverged reads as diverged; its mean has a 95% interval over the runs
that did not diverge. The study runs in blocks, one per (regime, learning rate),
each block all seeds vmapped in one program (the program is compiled once per
regime: the learning rate is an array). Each finished block is written atomically under
``<out>/blocks/``; a rerun of the same command skips finished blocks, so an
interrupted sweep resumes without redoing or losing work.

One learning rate drives both the network and the SG modules (as in the article)
unless ``sg_lr`` is given.

A sequence task (``task``, :data:`presets.TASKS`) sweeps the same way on the same engine;
its cells' measure is the final error in bits per target bit (lower is better, diverged
runs as +inf), with the mean longest length solved beside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dnijax import distributed, engine, report, stats, store
from dnijax.config import REGIMES, RunConfig
from dnijax.experiments import compare, presets


def block_name(regime: str, lr: float) -> str:
    """File name of a block: ``dni+noise`` at 0.3 -> ``dni-noise__lr0.3.json``."""
    return f"{regime.replace('+', '-')}__lr{lr:g}.json"


def metric_of(config: dict[str, Any]) -> str:
    """The measure of a sweep's cells: ``final_loss``, or a sequence task's
    ``final_error_bits``."""
    return "final_error_bits" if config.get("task") else "final_loss"


def manifest(
    config: RunConfig,
    preset: str,
    lrs: Sequence[float],
    regimes: Sequence[str],
    *,
    seeds: int,
    sg_lr: float | None,
    data: str | None = None,
) -> dict[str, Any]:
    """The configuration that a sweep's output folder belongs to: its preset ``config``
    (before the swept numbers) and the sweep's own settings (``data``: the data spec,
    recorded in ``config``)."""
    return {
        "kind": "sweep",
        "preset": preset,
        "lrs": [float(v) for v in lrs],
        "regimes": list(regimes),
        "seeds": seeds,
        "sg_lr": sg_lr,
        "config": compare.config_dict(config, seeds, data),
    }


def run_block(
    config: RunConfig,
    regime: str,
    lr: float,
    sg_lr: float | None,
    seeds: int,
    grid: dict[str, Any] | None,
) -> dict[str, Any]:
    """All seeds of one (regime, learning rate) as one vmapped program: ``config`` with
    that regime and lr (and ``sg_lr``, or the lr itself), on ``grid``, the seeds' data
    (:func:`presets.grid_inputs`' keywords; ``None`` for a sequence task)."""
    cfg = config.replace(regime=regime, lr=lr, sg_lr=lr if sg_lr is None else sg_lr)
    hyper, keys = engine.stack_hyper(cfg, lr=[cfg.lr] * seeds), engine.run_keys(0, seeds)
    if cfg.task is not None:  # a sequence task: no data
        res = engine.run_grid(cfg, hyper, keys, None)
        summary = compare.summarize_task_runs(res, slice(0, seeds), cfg.max_length)
    else:
        if grid is None:
            raise ValueError("run_block: a feed-forward sweep needs grid, the seeds' data")
        res = engine.run_grid(
            cfg, hyper, keys, **dict(grid, sg=grid["sg"] if cfg.uses_sg else None)
        )
        summary = compare.summarize_runs(res, slice(0, seeds), compare.loss_bounds(cfg.loss))
    for curve in ("loss_curve", "length_curve", "error_curve"):
        summary.pop(curve, None)
    return {"regime": regime, "lr": float(lr), "devices": engine.device_summary(), **summary}


def run_sweep(
    out: str,
    preset: str,
    lrs: Sequence[float],
    regimes: Sequence[str] = REGIMES,
    *,
    seeds: int = 5,
    steps: int | None = None,
    sg_lr: float | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    overrides: dict[str, Any] | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """Runs (or resumes) a sweep into ``out`` and returns the assembled results
    (``data``: a ``--data`` spec, :func:`dnijax.data.resolve`; ``None``: the preset's).
    ``preset`` may name a sequence task (:data:`presets.TASKS`), which takes no data.
    In a multi-process run (:mod:`dnijax.distributed`) every process calls it alike;
    process 0 alone reads and writes ``out`` (and logs), and every process returns the
    results."""
    if preset in presets.TASKS:
        config = presets.task_config(preset, steps=steps, sg_lr=sg_lr, overrides=overrides)
    else:
        config = presets.preset_config(
            preset, steps=steps, sg_lr=sg_lr, overrides=overrides, data=data
        )
    meta = manifest(config, preset, lrs, regimes, seeds=seeds, sg_lr=sg_lr, data=data)
    # in a multi-process run process 0 alone reads and writes ``out``, and tells the others
    # what it found (dnijax.distributed.on_writer), so every process runs the same blocks
    resumed = distributed.on_writer(store.claim_out_dir, out, meta, overwrite, report.SWEEP_OUTPUTS)
    blocks_dir = os.path.join(out, "blocks")
    distributed.on_writer(os.makedirs, blocks_dir, exist_ok=True)
    todo = [(r, lr) for r in regimes for lr in lrs]
    paths = [os.path.join(blocks_dir, block_name(r, lr)) for r, lr in todo]
    finished = distributed.on_writer(lambda: [store.read_json(p) is not None for p in paths])
    if not distributed.is_writer():
        log = _quiet
    done = 0
    grid = None  # the seeds' data, made once for every block that runs
    for i, (regime, lr) in enumerate(todo):
        if finished[i]:
            done += 1
            continue
        if grid is None and config.task is None:
            _, grid = presets.grid_inputs(preset, seeds, data=data)
        block = run_block(config, regime, lr, sg_lr, seeds, grid)
        distributed.on_writer(store.atomic_write_json, paths[i], block)
        n_div = sum(d is not None for d in block["diverged_at"])
        log(f"[{i + 1}/{len(todo)}] {regime:15s} lr {lr:<8g} diverged {n_div}/{seeds}")
    if resumed and done:
        log(f"resumed: {done} of {len(todo)} blocks were already done")
    return distributed.on_writer(assemble, out, meta)


def _quiet(message: str) -> None:
    """The log of a process that does not write (its messages are process 0's)."""


def assemble(out: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Builds ``results.json``'s content from the block files: per regime and learning rate,
    the median of the sweep's measure (:func:`metric_of`) with diverged runs as +inf, its
    mean and 95% interval over the healthy runs, the diverged fraction and every run's
    values."""
    regimes: dict[str, Any] = {}
    devices: set[str] = set()  # blocks of a resumed sweep may have run on other devices
    metric = metric_of(meta["config"])
    task = metric == "final_error_bits"
    for regime in meta["regimes"]:
        cells = []
        for lr in meta["lrs"]:
            path = os.path.join(out, "blocks", block_name(regime, lr))
            cell = store.read_json(path)
            if cell is None:
                raise ValueError(f"sweep: no readable block {path}; run the sweep to finish it")
            cells.append(cell)
        devices.update(c.get("devices", "unrecorded") for c in cells)
        bounds = stats.NONNEGATIVE if task else compare.loss_bounds(meta["config"]["loss"])
        measure = [stats.summarize(c[metric], c["diverged_at"], bounds=bounds) for c in cells]
        medians = [stats.median_with_failures(c[metric], c["diverged_at"]) for c in cells]
        r = regimes[regime] = {
            f"median_{metric}": [m if np.isfinite(m) else None for m in medians],
            f"mean_{metric}": [s["mean"] for s in measure],
            f"mean_{metric}_ci95": [s["ci95"] for s in measure],
            "n_healthy": [s["n"] for s in measure],
            "diverged_fraction": [s["diverged_fraction"] for s in measure],
        }
        if task:
            solved = [
                stats.summarize(
                    c["solved"], c["diverged_at"], bounds=(0.0, float(meta["config"]["max_length"]))
                )
                for c in cells
            ]
            r.update(
                {
                    "mean_solved": [s["mean"] for s in solved],
                    "mean_solved_ci95": [s["ci95"] for s in solved],
                }
            )
            keys = ("solved", "final_length", "final_error_bits", "diverged_at")
        else:
            r["mean_test_accuracy"] = [
                stats.summarize(c["test_accuracy"], c["diverged_at"], bounds=stats.PROBABILITY)[
                    "mean"
                ]
                for c in cells
            ]
            keys = ("final_loss", "final_accuracy", "test_accuracy", "diverged_at")
        r.update({k: [c[k] for c in cells] for k in keys})
    return {
        "preset": meta["preset"],
        "config": meta["config"],
        "lrs": meta["lrs"],
        "sg_lr": meta["sg_lr"],
        "metric": metric,
        "devices": ", ".join(sorted(devices)),
        "regimes": regimes,
    }
