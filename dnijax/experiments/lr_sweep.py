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
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from dnijax import engine, report, stats, store
from dnijax.config import REGIMES, RunConfig
from dnijax.experiments import compare, presets


def block_name(regime: str, lr: float) -> str:
    """File name of a block: ``dni+noise`` at 0.3 -> ``dni-noise__lr0.3.json``."""
    return f"{regime.replace('+', '-')}__lr{lr:g}.json"


def manifest(config: RunConfig, preset: str, lrs: Sequence[float], regimes: Sequence[str],
             seeds: int, sg_lr: float | None, data: str | None = None) -> dict[str, Any]:
    """The configuration that a sweep's output folder belongs to: its preset ``config``
    (before the swept numbers) and the sweep's own settings (``data``: the data spec,
    recorded in ``config``)."""
    return {"kind": "sweep", "preset": preset, "lrs": [float(v) for v in lrs],
            "regimes": list(regimes), "seeds": seeds, "sg_lr": sg_lr,
            "config": compare.config_dict(config, seeds, data)}


def run_block(config: RunConfig, regime: str, lr: float, sg_lr: float | None, seeds: int,
              grid: dict[str, Any]) -> dict[str, Any]:
    """All seeds of one (regime, learning rate) as one vmapped program: ``config`` with
    that regime and lr (and ``sg_lr``, or the lr itself), on ``grid``, the seeds' data
    (:func:`presets.grid_inputs`' keywords)."""
    cfg = config.replace(regime=regime, lr=lr, sg_lr=lr if sg_lr is None else sg_lr)
    res = engine.run_grid(cfg, engine.stack_hyper(cfg, lr=[cfg.lr] * seeds),
                          engine.run_keys(0, seeds),
                          **dict(grid, sg=grid["sg"] if cfg.uses_sg else None))
    summary = compare.summarize_runs(res, slice(0, seeds), compare.loss_bounds(cfg.loss))
    summary.pop("loss_curve")
    return {"regime": regime, "lr": float(lr), "devices": engine.device_summary(), **summary}


def run_sweep(out: str, preset: str, lrs: Sequence[float], regimes: Sequence[str] = REGIMES,
              seeds: int = 5, steps: int | None = None, sg_lr: float | None = None,
              overwrite: bool = False, log: Callable[[str], None] = print,
              overrides: dict[str, Any] | None = None,
              data: str | None = None) -> dict[str, Any]:
    """Runs (or resumes) a sweep into ``out`` and returns the assembled results
    (``data``: a ``--data`` spec, :func:`dnijax.data.resolve`; ``None``: the preset's)."""
    config = presets.preset_config(preset, steps=steps, sg_lr=sg_lr, overrides=overrides,
                                   data=data)
    meta = manifest(config, preset, lrs, regimes, seeds, sg_lr, data)
    resumed = store.claim_out_dir(out, meta, overwrite, report.SWEEP_OUTPUTS)
    blocks_dir = os.path.join(out, "blocks")
    os.makedirs(blocks_dir, exist_ok=True)
    todo = [(r, lr) for r in regimes for lr in lrs]
    done = 0
    grid = None  # the seeds' data, made once for every block that runs
    for i, (regime, lr) in enumerate(todo):
        path = os.path.join(blocks_dir, block_name(regime, lr))
        if store.read_json(path) is not None:
            done += 1
            continue
        if grid is None:
            _, grid = presets.grid_inputs(preset, seeds, data=data)
        block = run_block(config, regime, lr, sg_lr, seeds, grid)
        store.atomic_write_json(path, block)
        n_div = sum(d is not None for d in block["diverged_at"])
        log(f"[{i + 1}/{len(todo)}] {regime:15s} lr {lr:<8g} diverged {n_div}/{seeds}")
    if resumed and done:
        log(f"resumed: {done} of {len(todo)} blocks were already done")
    return assemble(out, meta)


def assemble(out: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Builds ``results.json``'s content from the block files."""
    regimes: dict[str, Any] = {}
    devices: set[str] = set()  # blocks of a resumed sweep may have run on other devices
    for regime in meta["regimes"]:
        cells = [store.read_json(os.path.join(out, "blocks", block_name(regime, lr)))
                 for lr in meta["lrs"]]
        devices.update(c.get("devices", "unrecorded") for c in cells)
        bounds = compare.loss_bounds(meta["config"]["loss"])
        loss = [stats.summarize(c["final_loss"], c["diverged_at"], bounds=bounds)
                for c in cells]
        medians = [stats.median_with_failures(c["final_loss"], c["diverged_at"]) for c in cells]
        regimes[regime] = {
            "median_final_loss": [m if np.isfinite(m) else None for m in medians],
            "mean_final_loss": [s["mean"] for s in loss],
            "mean_final_loss_ci95": [s["ci95"] for s in loss],
            "n_healthy": [s["n"] for s in loss],
            "diverged_fraction": [s["diverged_fraction"] for s in loss],
            "mean_test_accuracy": [
                stats.summarize(c["test_accuracy"], c["diverged_at"],
                                bounds=stats.PROBABILITY)["mean"] for c in cells],
            "final_loss": [c["final_loss"] for c in cells],
            "final_accuracy": [c["final_accuracy"] for c in cells],
            "test_accuracy": [c["test_accuracy"] for c in cells],
            "diverged_at": [c["diverged_at"] for c in cells],
        }
    return {"preset": meta["preset"], "config": meta["config"], "lrs": meta["lrs"],
            "sg_lr": meta["sg_lr"], "devices": ", ".join(sorted(devices)), "regimes": regimes}
