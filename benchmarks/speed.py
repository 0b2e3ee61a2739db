"""Speed of the dnijax sweep engine against honest baselines, on equal work, in one run.

Article scale (500 points, 2-10-28-1 sigmoid with biases, ``mse``/``mean``, full
batch, float32, SGD lr 0.5, SG lr 0.1, the same number of steps for every
method), for each regime ``backprop``, ``dni``, ``backprop+noise``,
``dni+noise``, these columns (run-steps/s counts one step of one run, so methods
that train different numbers of runs compare directly):

* ``engine``: ``dnijax.engine.run_grid`` (public API, all runs vmapped, steps
  scanned, with its finite checks, optax updates and history), 128 runs.
* ``tight numpy`` (the MAIN baseline): ``baselines.numpy_runs``, a hand-written
  numpy loop with explicit backward formulas and in-place updates, one run after
  another, as a numpy user writes it. It is the main baseline because it is what
  the engine replaces: the way such experiments are written without it (the
  article's own script is such a loop), written for speed rather than generality;
  fewer runs are timed since it is sequential.
* ``reference``: ``dnijax.reference.trajectory``, the general numpy reference
  built for readability and checked against the engine, one run after another.
  It takes noise as an input, so it runs WITHOUT noise in the ``+noise`` regimes
  (marked in the table); its ratios are there for continuity with earlier
  figures, not as the target's yardstick.
* ``torch``: ``baselines.torch_runs``, PyTorch on CPU, all runs batched along a
  leading axis with ``bmm``/``baddbmm``, backward written by hand for backprop and
  DNI, noise included; each call with torch's default thread count or one thread,
  whichever a short untimed probe right before it finds faster (on a loaded
  2-core machine two threads can run ~15x slower than one, waiting for a
  descheduled peer; on an idle one they can be twice as fast).
  Skipped when torch does not import (``pip install -e ".[torch]"``).
* ``lean JAX``: ``baselines.make_jax_lean``, a minimal jitted ``vmap(scan)``: no
  finite checks, optax or history, and no RNG in the noise-free regimes: the
  engine's ceiling.
* ``engine (N x cpu)``: the engine again with the CPU split into one device per
  core (``engine.use_cpu_devices``, the ``--cpu-devices`` of ``dnijax compare`` and
  ``sweep``) and the 128 runs sharded over them, from the same starting points.
  The device count is fixed when JAX starts, so it is timed in a subprocess after
  the other columns (warm-up untimed, best of ``--repeats``). A single CPU device
  runs each step's small operations one after another on about one core, while
  torch's ``bmm`` uses both; this column is the engine on the cores torch gets.

Equal work: every method trains the same shapes for the same steps in the same
regime (noise included wherever the method supports it) from identical starting
points (``baselines.init_runs``; the sequential methods take the first runs of the
same stack). Every method gets one untimed warm-up call of the timed shape first
(JAX programs compile there; jax results are waited for with
``jax.block_until_ready`` before the clock is read); then ``--repeats`` rounds
time every method once each, interleaved, and the fastest time of each method
counts. Compile time (engine, lean JAX) is the warm-up call's time minus the best
run time. Memory is measured in a pass of its own, never inside a timed section:
``tracemalloc`` peak of a separate untimed call for numpy and the reference, and
XLA's memory analysis (``engine.compiled_bytes``) for the engine.

Wide scale (7 layers of 256 units, ReLU, ``xent``, one batch of 256, 8 runs):
the engine's backprop GFLOP/s (matmul FLOPs counted from the layer shapes, see
:func:`step_flops`) as a fraction of XLA's float32 1024^3 matmul throughput measured
in the same run (before and after the timings, the higher counted), and the DNI /
backprop time ratio against their FLOP ratio (the reference, one run, is shown for
context).

Also recorded: the BLAS numpy uses (``threadpoolctl.threadpool_info()``:
library, version, CPU kernel, threads) with the environment variables
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` as this process sees them, numpy's
float32 1024^3 matmul throughput beside XLA's, and ``compile_default_compare``:
the cold and warm compile times of the default ``dnijax compare``
(``speed_measure.compile_s_default_compare``): two fresh subprocesses share an empty
persistent compilation cache and each calls
``dnijax.experiments.compare.run_compare("tuned", seeds=10, steps=20)`` twice; compile
time = first call's time - second call's (the second reuses the in-memory jit cache; both
include the same data preparation and running). The first process is cold (and fills the
cache), the second warm. The default's 2000 steps are cut to 20 because only compilation
is measured: the programs have the same structure, only their scan lengths (steps per
record, records per chunk) differ.

The README's full-run command unsets ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``
for that one command, because on this project's machine they force an older
OpenBLAS kernel on numpy (slower matmuls, which would flatter the engine); this
script never changes the environment itself, it only records it:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/speed.py --repeats 3 --out runs/speed

    python benchmarks/speed.py [--quick] [--repeats N] [--runs R] [--out DIR] [--overwrite]

The script is three modules: this one (the runs and the command line), ``speed_measure.py``
(timers, machine probes, the problems, one call of each method) and ``speed_report.py``
(tables and targets); the baselines are ``baselines.py``.

Sizes: 200 steps, 8 tight-numpy runs, 4 reference runs, wide scale 100 steps x 8
runs, a 20,000-run grid for the peak memory, best of 3; ``--quick`` (the CI smoke test,
about 50 s on 2 cores): the regimes ``backprop`` and ``dni+noise`` only (together they take
every code path; the all-cores column times ``backprop`` alone), 50 steps, 4 and 2
sequential runs, wide scale shrunk to 2 layers of 32 units, 10 steps x 2 runs, a 128-run
grid for the memory, the default compare's compile measured on 2 seeds of ``backprop``,
best of 1. Timings on a shared machine scatter: compare figures from the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import baselines
import common
import jax
import numpy as np
from speed_measure import (
    WIDE,
    WIDE_QUICK,
    blas_info,
    child_json,
    compile_s_default_compare,
    describe_blas,
    engine_call,
    engine_memory_mb,
    grid_peak_memory,
    import_torch,
    make_config,
    make_data,
    matmul_peak_gflops,
    numpy_matmul_gflops,
    reference_call,
    step_flops,
    time_methods,
    torch_thread_probe,
    traced_peak_mb,
)
from speed_report import apply_peak, report, targets, worst

from dnijax import REGIMES, engine, train

QUICK_REGIMES = ("backprop", "dni+noise")


# ---------------------------------------------------------------- timing helpers
def article_regime(
    regime: str, steps: int, n_batched: int, n_numpy: int, n_ref: int, repeats: int, torch
) -> dict:
    cfg = make_config("article", regime, steps)
    x, labels = make_data("article")
    y = np.asarray(train.make_data(cfg, x, labels).y, np.float32)
    params, sgs = baselines.init_runs(n_batched, cfg.widths, seed=0)
    dni = cfg.uses_sg
    first = lambda stack, n: [(p[:n], q[:n]) for p, q in stack]  # noqa: E731
    lr, sg_lr, eta = cfg.lr, cfg.sg_lr, cfg.eta
    common = {"steps": steps, "lr": lr, "sg_lr": sg_lr, "eta": eta, "seed": 0}

    # engine: the same starting points, in its layout (stacked reference layout)
    net, sg = baselines.to_reference(params, sgs)
    methods: dict[str, Callable] = {"engine": engine_call(cfg, x, labels, n_batched, net, sg)}

    np_params, np_sgs = first(params, n_numpy), first(sgs, n_numpy)

    def numpy_fn():
        return baselines.numpy_runs(regime, np_params, np_sgs if dni else None, x, y, **common)

    methods["tight_numpy"] = numpy_fn

    ref_starts = [
        baselines.to_reference(
            baselines.run_of(params, r), baselines.run_of(sgs, r) if dni else None
        )
        for r in range(n_ref)
    ]
    methods["reference"] = reference_call(cfg, ref_starts, x, y, steps)

    prepare, probes = {}, []
    if torch is not None:
        prepare["torch"] = lambda: probes.append(
            torch_thread_probe(torch, regime, params, sgs if dni else None, x, y, lr, sg_lr)
        )

        def torch_fn():
            before = torch.get_num_threads()
            torch.set_num_threads(probes[-1]["threads"])
            try:
                baselines.torch_runs(regime, params, sgs if dni else None, x, y, **common)
            finally:
                torch.set_num_threads(before)

        methods["torch"] = torch_fn

    lean = baselines.make_jax_lean(regime, steps, float(lr), float(sg_lr), float(eta))
    j_params = jax.device_put(tuple(tuple(p) for p in params))
    j_sgs = jax.device_put(tuple(tuple(p) for p in sgs)) if dni else None
    jx, jy, key = jax.device_put(x), jax.device_put(y), jax.random.key(0)
    methods["lean_jax"] = lambda: jax.block_until_ready(lean(j_params, j_sgs, jx, jy, key))

    times = time_methods(methods, repeats, prepare)
    runs = {
        "engine": n_batched,
        "tight_numpy": n_numpy,
        "reference": n_ref,
        "lean_jax": n_batched,
        "torch": n_batched,
    }
    flops = step_flops(cfg.widths, x.shape[0], regime)
    row: dict[str, Any] = {}
    for name, t in times.items():
        rate = runs[name] * steps / t["best_s"]
        row[name] = {
            "run_steps_per_s": rate,
            "runs": runs[name],
            "steps": steps,
            "best_s": t["best_s"],
            "noise": cfg.noisy and name != "reference",
            "gflops": rate * flops / 1e9,
        }
    for name in ("engine", "lean_jax"):
        row[name]["compile_s"] = max(0.0, times[name]["first_s"] - times[name]["best_s"])
    if probes:  # the thread count of the fastest timed call, and every call's
        calls = times["torch"]["calls_s"]
        best_call = 1 + int(np.argmin(calls[1:]))
        row["torch"].update(
            threads=probes[best_call]["threads"],
            threads_per_call=[p["threads"] for p in probes],
            calls_s=calls,
            probes=[p["probe_run_steps_per_s"] for p in probes],
        )

    # memory, a pass of its own
    row["engine"]["memory_mb"] = engine_memory_mb(cfg, x, labels, n_batched)
    row["tight_numpy"]["memory_mb"] = traced_peak_mb(numpy_fn)
    row["reference"]["memory_mb"] = traced_peak_mb(methods["reference"])

    eng = row["engine"]["run_steps_per_s"]
    ratios = {
        "engine_over_tight_numpy": eng / row["tight_numpy"]["run_steps_per_s"],
        "engine_over_reference": eng / row["reference"]["run_steps_per_s"],
        "engine_over_torch": eng / row["torch"]["run_steps_per_s"] if "torch" in row else None,
        "engine_over_lean_jax": eng / row["lean_jax"]["run_steps_per_s"],
    }
    return {"methods": row, "ratios": ratios, "flops_per_step": flops}


def engine_on_cpu_devices(
    n_devices: int, steps: int, n_runs: int, repeats: int, regimes: tuple[str, ...] = REGIMES
) -> dict:
    """The engine at article scale with the CPU split into ``n_devices`` devices
    (``engine.use_cpu_devices``, one per core) and the runs sharded over them, from the
    same starting points as the other columns. The device count is fixed when JAX
    starts, so this runs in a subprocess of this script (``--engine-devices``), after
    the single-device timings; warm-up untimed, best of ``repeats``."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--engine-devices",
        str(n_devices),
        "--runs",
        str(n_runs),
        "--repeats",
        str(repeats),
        "--steps",
        str(steps),
        "--regimes",
        ",".join(regimes),
    ]
    return child_json(cmd, timeout=1800)


def time_engine_on_devices(
    n_devices: int, steps: int, n_runs: int, repeats: int, regimes: tuple[str, ...] = REGIMES
) -> dict:
    """The child of :func:`engine_on_cpu_devices`: run-steps/s per regime."""
    engine.use_cpu_devices(n_devices)
    x, labels = make_data("article")
    out: dict[str, Any] = {"devices": engine.device_summary()}
    for regime in regimes:
        cfg = make_config("article", regime, steps)
        net, sg = baselines.to_reference(*baselines.init_runs(n_runs, cfg.widths, seed=0))
        times = time_methods(
            {"engine": engine_call(cfg, x, labels, n_runs, net, sg, mesh=True)}, repeats
        )["engine"]
        out[regime] = {
            "run_steps_per_s": n_runs * steps / times["best_s"],
            "runs": n_runs,
            "steps": steps,
            "best_s": times["best_s"],
            "compile_s": max(0.0, times["first_s"] - times["best_s"]),
        }
    return out


def add_all_cores(article: dict, cores: dict) -> None:
    """Puts the multi-device engine's figures (if measured) beside each regime's."""
    for regime, res in article.items():
        m = res["methods"]
        if regime not in cores:
            continue
        m["engine_all_cores"] = dict(cores[regime], devices=cores["devices"])
        rate = cores[regime]["run_steps_per_s"]
        res["ratios"].update(
            engine_all_cores_over_engine=rate / m["engine"]["run_steps_per_s"],
            engine_all_cores_over_tight_numpy=rate / m["tight_numpy"]["run_steps_per_s"],
            engine_all_cores_over_torch=rate / m["torch"]["run_steps_per_s"]
            if "torch" in m
            else None,
        )


def wide_scale(steps: int, n_runs: int, repeats: int, wide: tuple = WIDE) -> dict:
    x, labels = make_data("wide", wide)
    out = {}
    for regime in ("backprop", "dni"):
        cfg = make_config("wide", regime, steps, wide)
        y = np.asarray(train.make_data(cfg, x, labels).y)
        st = train.init_state(cfg.program(), cfg.hyper(), jax.random.key(0))
        as_numpy = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float32), tree)  # noqa: E731
        starts = [(as_numpy(st.net), as_numpy(st.sg))]
        methods = {
            "engine": engine_call(cfg, x, labels, n_runs),
            "reference": reference_call(cfg, starts, x, y, steps),
        }
        times = time_methods(methods, repeats)
        flops = step_flops(cfg.widths, x.shape[0], regime)
        row: dict[str, Any] = {"flops_per_step": flops}
        for name, runs in (("engine", n_runs), ("reference", 1)):
            rate = runs * steps / times[name]["best_s"]
            row[name] = {
                "run_steps_per_s": rate,
                "runs": runs,
                "steps": steps,
                "best_s": times[name]["best_s"],
                "gflops": rate * flops / 1e9,
            }
        row["engine"]["compile_s"] = max(
            0.0, times["engine"]["first_s"] - times["engine"]["best_s"]
        )
        row["engine"]["memory_mb"] = engine_memory_mb(cfg, x, labels, n_runs)
        row["engine"]["vs_reference"] = (
            row["engine"]["run_steps_per_s"] / row["reference"]["run_steps_per_s"]
        )
        out[regime] = row
    return out


def main() -> None:
    parser = common.make_parser(__doc__, "speed")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="backprop and dni+noise only, 50 steps, 16 runs, one repeat "
        "(about 40 s; the CI smoke test)",
    )
    parser.add_argument(
        "--runs",
        type=common.positive(int),
        default=None,
        help="runs of the batched methods at article scale (default 128; 16 with --quick)",
    )
    parser.add_argument("--steps", type=common.positive(int), default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--engine-devices", type=common.positive(int), default=None, help=argparse.SUPPRESS
    )
    parser.add_argument("--regimes", default=None, help=argparse.SUPPRESS)  # for the child
    parser.add_argument(
        "--repeats",
        type=common.positive(int),
        default=None,
        help="time each method this many times (interleaved), keep the best "
        "(default: 1 with --quick, 3 otherwise)",
    )
    args = parser.parse_args()
    repeats = max(1, args.repeats or (1 if args.quick else 3))
    steps = args.steps or (50 if args.quick else 200)
    n_batched = args.runs or (16 if args.quick else 128)
    regimes = (
        tuple(args.regimes.split(",")) if args.regimes else QUICK_REGIMES if args.quick else REGIMES
    )
    if args.engine_devices:  # the child of engine_on_cpu_devices
        print(
            json.dumps(
                time_engine_on_devices(args.engine_devices, steps, n_batched, repeats, regimes)
            )
        )
        return
    common.claim(args, "speed", common.published("speed")[:2])
    n_numpy, n_ref = (4, 2) if args.quick else (8, 4)
    wide_steps, wide_runs = (10, 2) if args.quick else (100, 8)
    started = time.perf_counter()

    torch = import_torch()
    blas = blas_info()  # after torch's import, so its libraries are listed too
    peak_start = matmul_peak_gflops()
    np_peak = numpy_matmul_gflops()
    torch_line = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads by default"
        if torch
        else "torch not installed (its column is skipped)"
    )
    n_cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )  # the cores this process may use
    machine = {
        "device": jax.devices()[0].device_kind,
        "cpu_cores": n_cores,
        "blas": describe_blas(blas),
        "torch": torch_line,
        "jax": jax.__version__,
        "numpy": np.__version__,
    }
    article = {}
    for regime in regimes:
        print(f"  timing article scale, {regime} ...", file=sys.stderr, flush=True)
        article[regime] = article_regime(regime, steps, n_batched, n_numpy, n_ref, repeats, torch)
    cores: dict[str, Any] = {"error": "one CPU core, or not a CPU run"}
    if jax.default_backend() == "cpu" and n_cores > 1:
        print(f"  timing the engine on {n_cores} CPU devices ...", file=sys.stderr, flush=True)
        cores = engine_on_cpu_devices(
            n_cores, steps, n_batched, repeats, regimes[:1] if args.quick else regimes
        )
        if "error" in cores:
            print(f"engine on {n_cores} CPU devices: not measured ({cores['error']})")
        add_all_cores(article, cores)
    print("  timing wide scale ...", file=sys.stderr, flush=True)
    wide_shape = WIDE_QUICK if args.quick else WIDE
    wide = wide_scale(wide_steps, wide_runs, repeats, wide_shape)
    # the XLA peak again: a load spike during the first measurement would flatter every
    # fraction of it (the higher of the two counts)
    peak_end = matmul_peak_gflops()
    peak = max(peak_start, peak_end)
    apply_peak(article, peak)
    apply_peak(wide, peak)
    vs_numpy, worst_numpy = worst(article, "engine_over_tight_numpy")
    vs_torch, worst_torch = worst(article, "engine_over_torch")
    vs_ref, _ = worst(article, "engine_over_reference")
    bp, dni = wide["backprop"], wide["dni"]
    summary: dict[str, Any] = {
        "matmul_peak_gflops": peak,
        "matmul_peak_gflops_start_end": [peak_start, peak_end],
        "numpy_matmul_gflops": np_peak,
        "machine": machine,
        "blas": blas,
        "article_scale": {
            "speedup_vs_numpy": vs_numpy,  # against the tight numpy loop, worst regime
            "speedup_vs_tight_numpy": vs_numpy,
            "worst_regime_vs_tight_numpy": worst_numpy,
            "speedup_vs_reference": vs_ref,
            "speedup_vs_torch": vs_torch,
            "worst_regime_vs_torch": worst_torch,
            "engine_over_lean_jax": article["backprop"]["ratios"]["engine_over_lean_jax"],
            "all_cores_speedup_vs_tight_numpy": worst(article, "engine_all_cores_over_tight_numpy")[
                0
            ],
            "all_cores_speedup_vs_torch": worst(article, "engine_all_cores_over_torch")[0],
            "all_cores_error": cores.get("error"),
            "speedup_vs_numpy_per_regime": {
                k: v["ratios"]["engine_over_tight_numpy"] for k, v in article.items()
            },
            "runs": n_batched,
            "numpy_runs": n_numpy,
            "reference_runs": n_ref,
            "steps": steps,
            "repeats": repeats,
            "details": article,
        },
        "wide_scale": {
            "backprop_fraction_of_matmul_peak": bp["engine"]["fraction_of_matmul_peak"],
            "dni_over_backprop_time": bp["engine"]["run_steps_per_s"]
            / dni["engine"]["run_steps_per_s"],
            "dni_over_backprop_flops": dni["flops_per_step"] / bp["flops_per_step"],
            "runs": wide_runs,
            "steps": wide_steps,
            "shape": list(wide_shape),
            "details": wide,
        },
    }
    grid_runs, grid_steps = (128, 5) if args.quick else (20000, 10)
    print(f"  a {grid_runs}-run grid's peak memory ...", file=sys.stderr, flush=True)
    summary["grid_memory"] = grid_peak_memory(grid_runs, grid_steps)
    print("  compile time of the default compare ...", file=sys.stderr, flush=True)
    summary["compile_default_compare"] = compile_s_default_compare(args.quick)
    summary["targets"] = targets(summary)
    missed = [t["target"] for t in summary["targets"][:5] if t["met"] is False]
    if missed:  # a speed target missed: where the engine's time goes
        import profile_step  # here: importing it starts JAX (the child above must not)

        runs, steps_p = (8, 10) if args.quick else (n_batched, steps)
        print(f"  {len(missed)} speed target(s) missed: profiling ...", file=sys.stderr)
        rows = profile_step.ablation(runs, steps_p, repeats)
        summary["profile"] = [dict(zip(profile_step.HEADER, row, strict=True)) for row in rows]
        summary["profile_runs"], summary["profile_steps"] = runs, steps_p
    summary["wall_s"] = time.perf_counter() - started
    common.publish(args.out, "speed", summary, report)


if __name__ == "__main__":
    main()
