"""Where the engine saturates: run-steps/s against the number of runs and of CPU devices.

Article scale (500 points, 2-10-28-1 sigmoid with biases, ``mse``/``mean``, full batch,
float32, SGD lr 0.5, SG lr 0.1), regimes ``backprop`` and ``dni``, trained through the
public API as a sweep trains them: ``dnijax.engine.run_grid`` with its automatic run blocks
(``block_runs="auto"``) and one chunk. For each number of runs R (default 1, 16, 128, 1024,
20000) the steps are ``min(200, max(10, WORK // R))``, so every point does about the same
work (``WORK`` = 50,000 run-steps) and the largest grids stay affordable; run-steps/s
(one step of one run) does not depend on the step count once compilation is excluded.
Every point gets one untimed warm-up call of its shape (compilation there), then the best
of ``--repeats`` timed calls, each waited for with ``jax.block_until_ready``.

Devices: the same points with the CPU split into 1 device and into one device per core
(``engine.use_cpu_devices``, the ``--cpu-devices`` of ``dnijax compare`` and ``sweep``), the
runs sharded over them. The device count is fixed when JAX starts, so each count runs in a
subprocess of this script (``--devices``). Several processes (``--processes`` under
``jax.distributed``) are not timed here: on one machine they share the same cores as the
devices do, and add the collectives' cost.

    python benchmarks/scaling.py [--quick] [--runs 1,16,128,1024,20000] [--repeats 2]
        [--out DIR] [--overwrite]

``--quick`` (the CI smoke test): runs 1 and 16, 10 steps at most, one repeat, ``backprop``
only, on this process's devices alone (no fresh process per device count). Timings on a
shared machine scatter: compare points of the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import common
import numpy as np
from speed_measure import child_json, make_config, make_data

from dnijax import options

WORK = 50_000  # run-steps per point
REGIMES = ("backprop", "dni")


def steps_for(n_runs: int, max_steps: int) -> int:
    """The steps of a point of ``n_runs`` runs: about ``WORK`` run-steps in all."""
    return min(max_steps, max(10, WORK // n_runs))


def time_points(runs: tuple[int, ...], regimes: tuple[str, ...], repeats: int, max_steps: int):
    """The child of :func:`measure`: every point on this process's devices."""
    import jax

    from dnijax import engine

    x, labels = make_data("article")
    points = []
    for regime in regimes:
        for n in runs:
            steps = steps_for(n, max_steps)
            cfg = make_config("article", regime, steps)
            hyper = engine.stack_hyper(cfg, lr=[cfg.lr] * n)
            keys = engine.run_keys(0, n)

            def call(cfg=cfg, hyper=hyper, keys=keys):
                res = engine.run_grid(cfg, hyper, keys, (x, labels), chunks=1)
                jax.block_until_ready(res.state)

            start = time.perf_counter()
            call()
            first = time.perf_counter() - start
            best = min(_timed(call) for _ in range(repeats))
            points.append(
                {
                    "regime": regime,
                    "runs": n,
                    "steps": steps,
                    "best_s": best,
                    "first_s": first,
                    "run_steps_per_s": n * steps / best,
                }
            )
    return {"devices": engine.device_summary(), "points": points}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(devices: int, args: Any, regimes: tuple[str, ...], max_steps: int) -> dict:
    """Every point with the CPU split into ``devices`` devices, in a fresh process."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--devices",
        str(devices),
        "--runs",
        ",".join(map(str, args.runs)),
        "--repeats",
        str(args.repeats),
        "--regimes",
        ",".join(regimes),
        "--max-steps",
        str(max_steps),
    ]
    return child_json(cmd, timeout=3600)


def report(results: dict) -> str:
    """The table: run-steps/s per regime and number of runs, one column per device count."""
    from dnijax.report import markdown_table

    counts = [c["devices"] for c in results["counts"]]
    rows = []
    for regime in results["regimes"]:
        for n in results["runs"]:
            cells = [regime, f"{n:,}"]
            for count in results["counts"]:
                [p] = [p for p in count["points"] if p["regime"] == regime and p["runs"] == n]
                cells.append(f"{p['run_steps_per_s']:,.0f} ({p['steps']} steps)")
            rows.append(cells)
    return (
        f"run-steps/s at article scale, best of "
        f"{results['repeats']} after an untimed warm-up, {results['cores']} CPU cores; "
        f"automatic run blocks. Total time {results['seconds']:.0f}s.\n\n"
        + markdown_table(["regime", "runs", *[f"{c}" for c in counts]], rows)
    )


def figure(results: dict, path: str) -> None:
    """run-steps/s against runs (log-log), a line per device count, a panel per regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = results["regimes"]
    fig, axes = plt.subplots(1, len(regimes), figsize=(4.6 * len(regimes), 3.6), squeeze=False)
    for ax, regime in zip(axes[0], regimes, strict=True):
        for count in results["counts"]:
            pts = sorted(
                (p["runs"], p["run_steps_per_s"]) for p in count["points"] if p["regime"] == regime
            )
            ax.plot(*np.array(pts).T, marker="o", label=count["devices"])
        ax.set(xscale="log", yscale="log", xlabel="runs in the grid", title=regime)
        ax.set_ylabel("run-steps/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    common.save_figure(fig, path)


def main() -> None:
    parser = common.make_parser(__doc__, "scaling")
    parser.add_argument("--quick", action="store_true", help="runs 1 and 16, backprop only")
    parser.add_argument(
        "--runs", type=common.positive_list, default=None, help="grid sizes (default 1,...,20000)"
    )
    parser.add_argument("--repeats", type=common.positive(int), default=None)
    parser.add_argument("--devices", type=common.positive(int), help=argparse.SUPPRESS)
    parser.add_argument("--regimes", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-steps", type=common.positive(int), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.runs = args.runs or ((1, 16) if args.quick else (1, 16, 128, 1024, 20000))
    args.repeats = args.repeats or (1 if args.quick else 2)
    max_steps = args.max_steps or (10 if args.quick else 200)
    regimes = (
        tuple(args.regimes.split(",")) if args.regimes else REGIMES[:1] if args.quick else REGIMES
    )
    if args.devices:  # a child of measure()
        from dnijax import engine

        engine.use_cpu_devices(args.devices)
        print(json.dumps(time_points(args.runs, regimes, args.repeats, max_steps)))
        return
    common.claim(args, "scaling", common.published("scaling"))
    started = time.perf_counter()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts = []
    if args.quick:  # this process's devices only: no fresh process per device count
        counts.append(time_points(args.runs, regimes, args.repeats, max_steps))
    for devices in [] if args.quick else sorted({1, cores or 1}):
        print(f"timing on {devices} CPU device(s) ...", file=sys.stderr, flush=True)
        res = measure(devices, args, regimes, max_steps)
        if "error" in res:
            options.fail(f"the run on {devices} CPU device(s) failed: {res['error']}")
        counts.append(res)
    results = {
        "regimes": list(regimes),
        "runs": list(args.runs),
        "repeats": args.repeats,
        "work_run_steps": WORK,
        "max_steps": max_steps,
        "cores": cores,
        "counts": counts,
        "seconds": time.perf_counter() - started,
    }
    common.publish(args.out, "scaling", results, report, figure)


if __name__ == "__main__":
    main()
