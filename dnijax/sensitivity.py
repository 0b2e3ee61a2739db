"""Learning-rate sensitivity: final loss and divergence per (regime, learning rate).

The study runs in blocks, one per (regime, learning rate), each block all seeds
vmapped in one program (the program is compiled once per regime: the learning
rate is an array). Each finished block is written atomically under
``<out>/blocks/``; a rerun of the same command skips finished blocks, so an
interrupted sweep resumes without redoing or losing work.

One learning rate drives both the network and the SG modules (as in the article)
unless ``sg_lr`` is given.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from dnijax import compare, store, sweep
from dnijax.config import REGIMES


def block_name(regime: str, lr: float) -> str:
    """File name of a block: ``dni+noise`` at 0.3 -> ``dni-noise__lr0.3.json``."""
    return f"{regime.replace('+', '-')}__lr{lr:g}.json"


def manifest(preset: str, lrs: Sequence[float], regimes: Sequence[str], seeds: int,
             steps: int | None, sg_lr: float | None,
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The configuration that a sweep's output folder belongs to."""
    cfg = compare.preset_config(preset, steps=steps, sg_lr=sg_lr, overrides=overrides)
    return {"kind": "sweep", "preset": preset, "lrs": [float(v) for v in lrs],
            "regimes": list(regimes), "seeds": seeds, "sg_lr": sg_lr,
            "config": compare.config_dict(cfg, seeds)}


def run_block(preset: str, regime: str, lr: float, seeds: int, steps: int | None,
              sg_lr: float | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """All seeds of one (regime, learning rate) as one vmapped program."""
    cfg = compare.preset_config(preset, steps=steps, lr=lr, sg_lr=lr if sg_lr is None else sg_lr,
                                overrides=overrides).replace(regime=regime)
    _, grid = compare.preset_grid_inputs(preset, seeds)
    res = sweep.run_grid(cfg, sweep.stack_hyper(cfg, lr=[cfg.lr] * seeds), sweep.run_keys(0, seeds),
                         **dict(grid, sg=grid["sg"] if cfg.is_dni else None))
    summary = compare.summarize_runs(res, slice(0, seeds))
    summary.pop("loss_curve")
    return {"regime": regime, "lr": float(lr), **summary}


def run_sweep(out: str, preset: str, lrs: Sequence[float], regimes: Sequence[str] = REGIMES,
              seeds: int = 5, steps: int | None = None, sg_lr: float | None = None,
              overwrite: bool = False, log: Callable[[str], None] = print,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs (or resumes) a sweep into ``out`` and returns the assembled results."""
    meta = manifest(preset, lrs, regimes, seeds, steps, sg_lr, overrides)
    resumed = store.open_out_dir(out, meta, overwrite)
    blocks_dir = os.path.join(out, "blocks")
    os.makedirs(blocks_dir, exist_ok=True)
    todo = [(r, lr) for r in regimes for lr in lrs]
    done = 0
    for i, (regime, lr) in enumerate(todo):
        path = os.path.join(blocks_dir, block_name(regime, lr))
        if store.read_json(path) is not None:
            done += 1
            continue
        block = run_block(preset, regime, lr, seeds, steps, sg_lr, overrides)
        store.atomic_write_json(path, block)
        n_div = sum(d is not None for d in block["diverged_at"])
        log(f"[{i + 1}/{len(todo)}] {regime:15s} lr {lr:<8g} diverged {n_div}/{seeds}")
    if resumed and done:
        log(f"resumed: {done} of {len(todo)} blocks were already done")
    return assemble(out, meta)


def assemble(out: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Builds ``results.json``'s content from the block files."""
    regimes: dict[str, Any] = {}
    for regime in meta["regimes"]:
        cells = [store.read_json(os.path.join(out, "blocks", block_name(regime, lr)))
                 for lr in meta["lrs"]]
        healthy = [[v for v, d in zip(c["final_loss"], c["diverged_at"])
                    if d is None and v is not None] for c in cells]
        regimes[regime] = {
            "median_final_loss": [float(np.median(h)) if h else None for h in healthy],
            "mean_final_loss": [float(np.mean(h)) if h else None for h in healthy],
            "diverged_fraction": [float(np.mean([d is not None for d in c["diverged_at"]]))
                                  for c in cells],
            "mean_test_accuracy": [float(np.mean([a for a, d in zip(c["test_accuracy"],
                                                                    c["diverged_at"])
                                                  if d is None])) if h else None
                                   for c, h in zip(cells, healthy)],
            "final_loss": [c["final_loss"] for c in cells],
            "diverged_at": [c["diverged_at"] for c in cells],
        }
    return {"preset": meta["preset"], "config": meta["config"], "lrs": meta["lrs"],
            "sg_lr": meta["sg_lr"], "regimes": regimes}


def sweep_markdown(results: dict[str, Any]) -> str:
    """A table of median final loss (diverged fraction) per regime and learning rate."""
    lrs = results["lrs"]
    lines = ["| regime | " + " | ".join(f"lr {v:g}" for v in lrs) + " |",
             "|---|" + "---|" * len(lrs)]
    for name, r in results["regimes"].items():
        cells = [("diverged" if m is None else f"{m:.3g}") + (f" ({f:.0%} div)" if f else "")
                 for m, f in zip(r["median_final_loss"], r["diverged_fraction"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
