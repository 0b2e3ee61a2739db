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
float32 1024^3 matmul throughput beside XLA's, and ``compile_s_default_compare``:
the compile time of the default ``dnijax compare``, measured in a fresh
subprocess with the persistent compilation cache disabled (``DNIJAX_CACHE`` set
empty, ``JAX_COMPILATION_CACHE_DIR`` removed from the child's environment) that
calls ``dnijax.experiments.compare.run_compare("tuned", seeds=10, steps=20)``
twice: compile time = first call's time - second call's (the second reuses the
in-memory jit cache; both include the same data preparation and running). The
default's 2000 steps are cut to 20 because only compilation is measured: the
programs have the same structure, only their scan lengths (steps per record,
records per chunk) differ.

The README's full-run command unsets ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``
for that one command, because on this project's machine they force an older
OpenBLAS kernel on numpy (slower matmuls, which would flatter the engine); this
script never changes the environment itself, it only records it:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/speed.py --repeats 3 --out runs/speed

    python benchmarks/speed.py [--quick] [--repeats N] [--runs R] [--out DIR] [--overwrite]

Sizes: 200 steps, 8 tight-numpy runs, 4 reference runs, wide scale 100 steps x 8
runs, best of 3; ``--quick`` (CI smoke runs, about 75 s on 2 cores): 50 steps,
4 and 2 sequential runs, wide 25 steps x 4 runs, best of 1. Timings on a shared
machine scatter: compare figures from the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import baselines
import common
import jax
import jax.numpy as jnp
import numpy as np

from dnijax import RunConfig, engine, parse_regime, reference, store, train
from dnijax.report import markdown_table

REGIMES = ("backprop", "dni", "backprop+noise", "dni+noise")
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS")
TARGETS = {"vs_tight_numpy": 5.0, "vs_tight_numpy_stretch": 8.0, "vs_torch": 2.0,
           "over_lean_jax": 0.9, "wide_fraction_of_peak": 0.6, "dni_time_over_flops": 1.2}


# ---------------------------------------------------------------- timing helpers
def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def matmul_peak_gflops(n: int = 1024, reps: int = 20) -> float:
    """float32 matmul throughput of this machine through XLA (best of ``reps``)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = min(_timed(lambda: jax.block_until_ready(f(a))) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def numpy_matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    """float32 matmul throughput of numpy's BLAS (best of ``reps``, warm-up outside)."""
    a = np.random.default_rng(0).standard_normal((n, n), np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = min(_timed(lambda: np.matmul(a, a, out=out)) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def time_methods(methods: dict[str, Callable[[], Any]], repeats: int,
                 prepare: dict[str, Callable[[], Any]] | None = None) -> dict[str, dict]:
    """One untimed warm-up call of every method (its seconds kept, for compile time),
    then ``repeats`` interleaved rounds timing each once; the best time counts.

    ``prepare[name]``, if given, runs untimed right before each call of ``name``."""
    prepare = prepare or {}
    calls: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(1 + repeats):
        for name, fn in methods.items():
            if name in prepare:
                prepare[name]()
            calls[name].append(_timed(fn))
    return {name: {"best_s": min(t[1:]), "first_s": t[0], "calls_s": t}
            for name, t in calls.items()}


def traced_peak_mb(fn: Callable[[], Any]) -> float:
    """``tracemalloc`` peak of one untimed call of ``fn``, in MiB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- environment
def blas_info() -> dict:
    """numpy's BLAS (threadpoolctl) and the OpenBLAS environment variables as seen here."""
    info: dict[str, Any] = {"env": {k: os.environ.get(k) for k in OPENBLAS_ENV}}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["threadpoolctl"] = None
        try:  # numpy >= 1.25: the BLAS numpy was built against (not the loaded kernel)
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            info["numpy"] = {"internal_api": blas.get("name"), "version": blas.get("version"),
                             "source": "numpy.show_config (threadpoolctl missing)"}
        except Exception:  # noqa: BLE001 - a record, never a failure
            info["numpy"] = None
        return info
    pools = threadpool_info()
    blas = [p for p in pools if p.get("user_api") == "blas"]
    mine = [p for p in blas if "numpy" in str(p.get("filepath", ""))] or blas[:1]
    keys = ("internal_api", "version", "architecture", "corename", "num_threads",
            "threading_layer", "filepath")
    info["numpy"] = {k: mine[0].get(k) for k in keys if k in mine[0]} if mine else None
    info["threadpoolctl"] = pools
    return info


def describe_blas(info: dict) -> str:
    np_blas = info.get("numpy") or {}
    kernel = np_blas.get("architecture") or np_blas.get("corename") or "?"
    env = ", ".join(f"{k}={info['env'][k]!r}" for k in OPENBLAS_ENV[:2])
    return (f"numpy BLAS: {np_blas.get('internal_api', '?')} {np_blas.get('version', '?')}, "
            f"kernel {kernel}, {np_blas.get('num_threads', '?')} threads; {env}")


def child_json(cmd: list[str], timeout: float, **kwargs: Any) -> dict:
    """Runs ``cmd`` and returns the JSON object on the last line of its output, or
    ``{"error": why}`` when it fails, times out or prints no JSON."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             check=False, **kwargs)
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["no message"])[-1]}
        return json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    except (IndexError, json.JSONDecodeError) as err:
        return {"error": f"no JSON result: {type(err).__name__}: {err}"}


def compile_s_default_compare(timeout: float = 600.0) -> dict:
    """Compile seconds of the default ``dnijax compare`` (see the module docstring)."""
    code = ("import json, time\n"
            "from dnijax.experiments import compare\n"
            "t = []\n"
            "for _ in range(2):\n"
            "    s = time.perf_counter()\n"
            "    compare.run_compare('tuned', seeds=10, steps=20)\n"
            "    t.append(time.perf_counter() - s)\n"
            "print(json.dumps({'first_s': t[0], 'second_s': t[1]}))\n")
    env = dict(os.environ, DNIJAX_CACHE="")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    with tempfile.TemporaryDirectory() as tmp:
        res = child_json([sys.executable, "-c", code], timeout, env=env, cwd=tmp)
    if "error" in res:
        return {"compile_s": None, "error": res["error"]}
    res["compile_s"] = res["first_s"] - res["second_s"]
    return res


# ---------------------------------------------------------------- problems
def step_flops(widths, batch: int, regime: str) -> float:
    """Matmul FLOPs of one step (paper topology, linear SG modules)."""
    pairs = list(zip(widths[:-1], widths[1:]))
    fwd = sum(2 * batch * a * b for a, b in pairs)
    if parse_regime(regime)[0] == "backprop":
        return fwd + fwd + (fwd - 2 * batch * pairs[0][0] * pairs[0][1])  # dW and dh
    extra = fwd  # dW of every layer
    for i, (_, n) in enumerate(pairs[:-1]):
        nxt = pairs[i + 1][1]
        extra += 2 * batch * n * n * 2 + 2 * batch * n * nxt  # SG fwd + grad, target vjp
    return fwd + extra


def make_config(scale: str, regime: str, steps: int) -> RunConfig:
    if scale == "article":
        return RunConfig(regime=regime, widths=(2, 10, 28, 1), activations="sigmoid",
                         reduction="mean", lr=0.5, sg_lr=0.1, init="glorot", eta=0.01,
                         steps=steps, log_every=steps)
    return RunConfig(regime=regime, widths=(256,) * 7 + (10,), activations=("relu",) * 6 + (
        "identity",), loss="xent", reduction="mean", lr=0.01, sg_lr=0.001, init="he",
        steps=steps, log_every=steps)


def make_data(scale: str):
    rng = np.random.RandomState(0)
    if scale == "article":
        x = rng.randn(500, 2).astype(np.float32)
        return x, (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    x = rng.randn(256, 256).astype(np.float32)
    return x, rng.randint(0, 10, 256).astype(np.int32)


def engine_call(cfg: RunConfig, x, labels, n_runs: int, net=None, sg=None,
                mesh: bool = False) -> Callable:
    """One whole ``run_grid`` call (a single chunk), waited for; ``mesh``: sharded over
    every device."""
    hyper = engine.stack_hyper(cfg, lr=[cfg.lr] * n_runs)
    keys = engine.run_keys(0, n_runs)

    def call():
        res = engine.run_grid(cfg, hyper, keys, (x, labels), net=net,
                              sg=sg if cfg.uses_sg else None, mesh=mesh, chunks=1)
        jax.block_until_ready(res.state)

    return call


def engine_memory_mb(cfg: RunConfig, x, labels, n_runs: int) -> float:
    hyper = engine.stack_hyper(cfg, lr=[cfg.lr] * n_runs)
    keys = engine.run_keys(0, n_runs)
    n_records = cfg.steps // cfg.log_every
    return engine.compiled_bytes(cfg, hyper, keys, (x, labels), n_records) / 2 ** 20


def reference_call(cfg: RunConfig, starts: list, x, y, steps: int) -> Callable:
    """``reference.trajectory`` for each start in turn (never with noise)."""

    def call():
        for net, sg in starts:
            reference.trajectory(cfg.signal, net, sg, x, y, steps,
                                 blocks=cfg.net_spec.blocks, loss=cfg.loss,
                                 reduction=cfg.reduction, lr=cfg.lr, sg_lr=cfg.sg_lr,
                                 topology=cfg.topology)

    return call


def sweep_memory_gib(n_runs: int) -> float:
    """Compiled memory (arguments + outputs + temporaries) of one chunk of an article-scale
    DNI+noise grid of ``n_runs`` runs, from XLA's memory analysis, plus its history."""
    cfg = make_config("article", "dni+noise", 2000)
    x, labels = make_data("article")
    hyper = engine.stack_hyper(cfg, lr=[cfg.lr] * n_runs)
    keys = engine.run_keys(0, n_runs)
    return engine.compiled_bytes(cfg, hyper, keys, (x, labels), n_records=100) / 2 ** 30


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---------------------------------------------------------------- article scale
def torch_thread_probe(torch, regime: str, params, sgs, x, y, lr: float, sg_lr: float,
                       probe_steps: int = 10, probe_calls: int = 2) -> dict:
    """The faster of torch's default thread count and one thread, right now: each
    timed torch call is preceded by this untimed probe (``probe_steps`` steps, best of
    ``probe_calls``) and runs with its choice.

    On a loaded 2-core machine two intra-op threads can wait for a descheduled peer
    and run ~15x slower than one thread (measured here: ~700 against ~12k run-steps/s),
    while on an idle one they are up to twice as fast; the load changes within a run,
    so the choice is made afresh before every call: torch gets its better setting,
    and the pathological one does not cost minutes."""
    before = torch.get_num_threads()
    rates = {}
    try:
        for th in sorted({before, 1}, reverse=True):
            torch.set_num_threads(th)
            best = min(_timed(lambda: baselines.torch_runs(
                regime, params, sgs, x, y, probe_steps, lr, sg_lr)) for _ in range(probe_calls))
            rates[th] = params[0][0].shape[0] * probe_steps / best
    finally:
        torch.set_num_threads(before)
    return {"threads": max(rates, key=rates.get), "probe_run_steps_per_s": rates}


def article_regime(regime: str, steps: int, n_batched: int, n_numpy: int, n_ref: int,
                   repeats: int, torch) -> dict:
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
    numpy_fn = lambda: baselines.numpy_runs(regime, np_params, np_sgs if dni else None,  # noqa: E731
                                            x, y, **common)
    methods["tight_numpy"] = numpy_fn

    ref_starts = [baselines.to_reference(baselines.run_of(params, r),
                                         baselines.run_of(sgs, r) if dni else None)
                  for r in range(n_ref)]
    methods["reference"] = reference_call(cfg, ref_starts, x, y, steps)

    prepare, probes = {}, []
    if torch is not None:
        prepare["torch"] = lambda: probes.append(torch_thread_probe(
            torch, regime, params, sgs if dni else None, x, y, lr, sg_lr))

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
    runs = {"engine": n_batched, "tight_numpy": n_numpy, "reference": n_ref,
            "lean_jax": n_batched, "torch": n_batched}
    flops = step_flops(cfg.widths, x.shape[0], regime)
    row: dict[str, Any] = {}
    for name, t in times.items():
        rate = runs[name] * steps / t["best_s"]
        row[name] = {"run_steps_per_s": rate, "runs": runs[name], "steps": steps,
                     "best_s": t["best_s"], "noise": cfg.noisy and name != "reference",
                     "gflops": rate * flops / 1e9}
    for name in ("engine", "lean_jax"):
        row[name]["compile_s"] = max(0.0, times[name]["first_s"] - times[name]["best_s"])
    if probes:  # the thread count of the fastest timed call, and every call's
        calls = times["torch"]["calls_s"]
        best_call = 1 + int(np.argmin(calls[1:]))
        row["torch"].update(threads=probes[best_call]["threads"],
                            threads_per_call=[p["threads"] for p in probes],
                            calls_s=calls, probes=[p["probe_run_steps_per_s"] for p in probes])

    # memory, a pass of its own
    row["engine"]["memory_mb"] = engine_memory_mb(cfg, x, labels, n_batched)
    row["tight_numpy"]["memory_mb"] = traced_peak_mb(numpy_fn)
    row["reference"]["memory_mb"] = traced_peak_mb(methods["reference"])

    eng = row["engine"]["run_steps_per_s"]
    ratios = {"engine_over_tight_numpy": eng / row["tight_numpy"]["run_steps_per_s"],
              "engine_over_reference": eng / row["reference"]["run_steps_per_s"],
              "engine_over_torch": eng / row["torch"]["run_steps_per_s"] if "torch" in row
              else None,
              "engine_over_lean_jax": eng / row["lean_jax"]["run_steps_per_s"]}
    return {"methods": row, "ratios": ratios, "flops_per_step": flops}


def print_article(out: dict, steps: int, repeats: int) -> None:
    any_regime = next(iter(out.values()))["methods"]
    runs = {k: v["runs"] for k, v in any_regime.items()}
    print(f"\narticle scale: 500 x 2-10-28-1 sigmoid with biases, mse/mean, full batch, "
          f"float32, SGD lr 0.5 / SG lr 0.1, {steps} steps; runs: engine "
          f"{runs['engine']}, tight numpy {runs['tight_numpy']} (one after another), "
          f"reference {runs['reference']}, torch {runs.get('torch', '-')}, lean JAX "
          f"{runs['lean_jax']}; best of {repeats}, warm-up untimed")
    print("\nrun-steps/s (one step of one run)")
    fmt = lambda v, f: "-" if v is None else format(v, f) + "x"  # noqa: E731
    rows = []
    for regime, res in out.items():
        m, r = res["methods"], res["ratios"]
        ref = f"{m['reference']['run_steps_per_s']:.0f}" + ("*" if parse_regime(regime)[1]
                                                             else "")
        torch_s = (f"{m['torch']['run_steps_per_s']:.0f} ({m['torch']['threads']}t)"
                   if "torch" in m else "-")
        cores = m.get("engine_all_cores", {}).get("run_steps_per_s")
        rows.append([regime, f"{m['engine']['run_steps_per_s']:.0f}",
                     "-" if cores is None else f"{cores:.0f}",
                     f"{m['tight_numpy']['run_steps_per_s']:.0f}", ref, torch_s,
                     f"{m['lean_jax']['run_steps_per_s']:.0f}",
                     f"{r['engine_over_tight_numpy']:.1f}x", fmt(r['engine_over_torch'], '.2f'),
                     fmt(r.get('engine_all_cores_over_tight_numpy'), '.1f'),
                     fmt(r.get('engine_all_cores_over_torch'), '.2f'),
                     f"{r['engine_over_lean_jax']:.2f}x", f"{r['engine_over_reference']:.1f}x"])
    devices = any_regime.get("engine_all_cores", {}).get("devices", "-")
    print(markdown_table(["regime", "engine", f"engine ({devices})", "tight numpy",
                          "reference", "torch (bmm)", "lean JAX", "engine / numpy",
                          "engine / torch", "all cores / numpy", "all cores / torch",
                          "engine / lean JAX", "engine / reference"], rows), end="")
    cores_note = ("  engine (N x cpu): the CPU split into one device per core, runs sharded, "
                  "timed in a subprocess after the other columns." if devices != "-" else "")
    print("* the reference runs without noise (it takes noise as an input); every other "
          "method draws its noise.  torch: (N t) = threads of its fastest call, chosen by an "
          f"untimed probe before each call.{cores_note}\n")
    rows = []
    for regime, res in out.items():
        m = res["methods"]
        rows.append([regime, f"{m['engine']['gflops']:.1f} "
                     f"({100 * m['engine']['fraction_of_matmul_peak']:.0f}%)",
                     f"{m['engine']['compile_s']:.2f}", f"{m['lean_jax']['compile_s']:.2f}",
                     f"{m['engine']['memory_mb']:.1f}", f"{m['tight_numpy']['memory_mb']:.2f}",
                     f"{m['reference']['memory_mb']:.2f}"])
    print(markdown_table(["regime", "engine GFLOP/s (% peak)", "engine compile s",
                          "lean JAX compile s", "engine compiled MB", "numpy peak MB",
                          "reference peak MB"], rows), end="")


def engine_on_cpu_devices(n_devices: int, steps: int, n_runs: int, repeats: int) -> dict:
    """The engine at article scale with the CPU split into ``n_devices`` devices
    (``engine.use_cpu_devices``, one per core) and the runs sharded over them, from the
    same starting points as the other columns. The device count is fixed when JAX
    starts, so this runs in a subprocess of this script (``--engine-devices``), after
    the single-device timings; warm-up untimed, best of ``repeats``."""
    cmd = [sys.executable, os.path.abspath(__file__), "--engine-devices", str(n_devices),
           "--runs", str(n_runs), "--repeats", str(repeats), "--steps", str(steps)]
    return child_json(cmd, timeout=1800)


def time_engine_on_devices(n_devices: int, steps: int, n_runs: int, repeats: int) -> dict:
    """The child of :func:`engine_on_cpu_devices`: run-steps/s per regime."""
    engine.use_cpu_devices(n_devices)
    x, labels = make_data("article")
    out: dict[str, Any] = {"devices": engine.device_summary()}
    for regime in REGIMES:
        cfg = make_config("article", regime, steps)
        net, sg = baselines.to_reference(*baselines.init_runs(n_runs, cfg.widths, seed=0))
        times = time_methods({"engine": engine_call(cfg, x, labels, n_runs, net, sg,
                                                    mesh=True)}, repeats)["engine"]
        out[regime] = {"run_steps_per_s": n_runs * steps / times["best_s"], "runs": n_runs,
                       "steps": steps, "best_s": times["best_s"],
                       "compile_s": max(0.0, times["first_s"] - times["best_s"])}
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
            if "torch" in m else None)


# ---------------------------------------------------------------- wide scale
def wide_scale(steps: int, n_runs: int, repeats: int) -> dict:
    x, labels = make_data("wide")
    out = {}
    for regime in ("backprop", "dni"):
        cfg = make_config("wide", regime, steps)
        y = np.asarray(train.make_data(cfg, x, labels).y)
        st = train.init_state(cfg.program(), cfg.hyper(), jax.random.key(0))
        as_numpy = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float32), tree)  # noqa: E731
        starts = [(as_numpy(st.net), as_numpy(st.sg))]
        methods = {"engine": engine_call(cfg, x, labels, n_runs),
                   "reference": reference_call(cfg, starts, x, y, steps)}
        times = time_methods(methods, repeats)
        flops = step_flops(cfg.widths, x.shape[0], regime)
        row: dict[str, Any] = {"flops_per_step": flops}
        for name, runs in (("engine", n_runs), ("reference", 1)):
            rate = runs * steps / times[name]["best_s"]
            row[name] = {"run_steps_per_s": rate, "runs": runs, "steps": steps,
                         "best_s": times[name]["best_s"], "gflops": rate * flops / 1e9}
        row["engine"]["compile_s"] = max(0.0, times["engine"]["first_s"]
                                         - times["engine"]["best_s"])
        row["engine"]["memory_mb"] = engine_memory_mb(cfg, x, labels, n_runs)
        row["engine"]["vs_reference"] = (row["engine"]["run_steps_per_s"]
                                         / row["reference"]["run_steps_per_s"])
        out[regime] = row
    return out


def print_wide(out: dict, steps: int, n_runs: int) -> None:
    print(f"\nwide scale: 7 layers of 256 (ReLU), xent/mean, batch 256, float32, {steps} "
          f"steps; engine {n_runs} runs, reference 1 run")
    rows = []
    for regime, r in out.items():
        e = r["engine"]
        rows.append([regime, f"{e['run_steps_per_s']:.1f}",
                     f"{r['reference']['run_steps_per_s']:.1f}", f"{e['vs_reference']:.2f}x",
                     f"{r['flops_per_step'] / 1e6:.1f}",
                     f"{e['gflops']:.1f} ({100 * e['fraction_of_matmul_peak']:.0f}%)",
                     f"{e['compile_s']:.2f}", f"{e['memory_mb']:.1f}"])
    print(markdown_table(["regime", "engine run-steps/s", "reference", "engine / reference",
                          "MFLOP per run-step", "engine GFLOP/s (% peak)", "engine compile s",
                          "engine compiled MB"], rows), end="")


# ---------------------------------------------------------------- summary
def apply_peak(tree: Any, peak: float) -> None:
    """Sets ``fraction_of_matmul_peak`` beside every ``gflops`` figure in ``tree``."""
    if isinstance(tree, dict):
        if "gflops" in tree:
            tree["fraction_of_matmul_peak"] = tree["gflops"] / peak
        for v in tree.values():
            apply_peak(v, peak)


def worst(article: dict, key: str) -> tuple[float | None, str | None]:
    vals = {k: v["ratios"][key] for k, v in article.items()
            if v["ratios"].get(key) is not None}
    if not vals:
        return None, None
    regime = min(vals, key=vals.get)
    return vals[regime], regime


def targets(summary: dict) -> list[dict]:
    """Each target's value and verdict, for the engine as it runs by default (one device);
    the all-cores figures are shown beside them, not judged."""
    a, w = summary["article_scale"], summary["wide_scale"]
    t = TARGETS
    numpy_v, torch_v = a["speedup_vs_tight_numpy"], a["speedup_vs_torch"]
    numpy_c, torch_c = a["all_cores_speedup_vs_tight_numpy"], a["all_cores_speedup_vs_torch"]
    cores = lambda v: "" if v is None else f"; all cores {v:.2f}x"  # noqa: E731
    time_over_flops = w["dni_over_backprop_time"] / w["dni_over_backprop_flops"]
    rows = [
        ("engine >= 5x tight numpy in every regime", numpy_v,
         f"{numpy_v:.1f}x (worst: {a['worst_regime_vs_tight_numpy']}){cores(numpy_c)}",
         numpy_v >= t["vs_tight_numpy"]),
        ("stretch: engine >= 8x tight numpy in every regime", numpy_v,
         f"{numpy_v:.1f}x{cores(numpy_c)}", numpy_v >= t["vs_tight_numpy_stretch"]),
        ("engine >= 2x batched torch in every regime", torch_v,
         "torch not installed" if torch_v is None else
         f"{torch_v:.2f}x (worst: {a['worst_regime_vs_torch']}){cores(torch_c)}",
         None if torch_v is None else torch_v >= t["vs_torch"]),
        ("engine >= 0.9x lean JAX (backprop)", a["engine_over_lean_jax"],
         f"{a['engine_over_lean_jax']:.2f}x", a["engine_over_lean_jax"] >= t["over_lean_jax"]),
        ("wide backprop >= 60% of XLA matmul peak", w["backprop_fraction_of_matmul_peak"],
         f"{100 * w['backprop_fraction_of_matmul_peak']:.0f}%",
         w["backprop_fraction_of_matmul_peak"] >= t["wide_fraction_of_peak"]),
        ("DNI/backprop time <= 1.2x their FLOP ratio", time_over_flops,
         (f"time ratio {w['dni_over_backprop_time']:.2f} / FLOP ratio "
          f"{w['dni_over_backprop_flops']:.2f} = {time_over_flops:.2f}"),
         time_over_flops <= t["dni_time_over_flops"]),
    ]
    return [{"target": n, "value": v, "measured": s, "met": m} for n, v, s, m in rows]


def main() -> None:
    parser = common.make_parser(__doc__, "speed")
    parser.add_argument("--quick", action="store_true",
                        help="50 steps, 16 runs, one repeat (about a minute; the CI smoke "
                             "test)")
    parser.add_argument("--runs", type=common.positive(int), default=None,
                        help="runs of the batched methods at article scale (default 128; "
                             "16 with --quick)")
    parser.add_argument("--steps", type=common.positive(int), default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument("--engine-devices", type=common.positive(int), default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=common.positive(int), default=None,
                        help="time each method this many times (interleaved), keep the best "
                             "(default: 1 with --quick, 3 otherwise)")
    args = parser.parse_args()
    repeats = max(1, args.repeats or (1 if args.quick else 3))
    steps = args.steps or (50 if args.quick else 200)
    n_batched = args.runs or (16 if args.quick else 128)
    if args.engine_devices:  # the child of engine_on_cpu_devices
        print(json.dumps(time_engine_on_devices(args.engine_devices, steps, n_batched,
                                                repeats)))
        return
    common.claim(args, "speed", ("speed.json",))
    n_numpy, n_ref = (4, 2) if args.quick else (8, 4)
    wide_steps, wide_runs = (25, 4) if args.quick else (100, 8)
    started = time.perf_counter()

    torch = import_torch()
    blas = blas_info()  # after torch's import, so its libraries are listed too
    peak_start = matmul_peak_gflops()
    np_peak = numpy_matmul_gflops()
    print(f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores; float32 1024^3 "
          f"matmul: XLA {peak_start:.1f} GFLOP/s, numpy {np_peak:.1f} GFLOP/s")
    print(describe_blas(blas))
    torch_line = (f"torch {torch.__version__}, {torch.get_num_threads()} threads by default"
                  if torch else "torch not installed (column skipped)")
    print(f"{torch_line}; jax {jax.__version__}, numpy {np.__version__}")

    article = {}
    for regime in REGIMES:
        print(f"  timing article scale, {regime} ...", file=sys.stderr, flush=True)
        article[regime] = article_regime(regime, steps, n_batched, n_numpy, n_ref, repeats,
                                         torch)
    n_cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)  # the cores this process may use
    cores: dict[str, Any] = {"error": "one CPU core, or not a CPU run"}
    if jax.default_backend() == "cpu" and n_cores > 1:
        print(f"  timing the engine on {n_cores} CPU devices ...", file=sys.stderr, flush=True)
        cores = engine_on_cpu_devices(n_cores, steps, n_batched, repeats)
        if "error" in cores:
            print(f"engine on {n_cores} CPU devices: not measured ({cores['error']})")
        add_all_cores(article, cores)
    print("  timing wide scale ...", file=sys.stderr, flush=True)
    wide = wide_scale(wide_steps, wide_runs, repeats)
    # the XLA peak again: a load spike during the first measurement would flatter every
    # fraction of it (the higher of the two counts)
    peak_end = matmul_peak_gflops()
    peak = max(peak_start, peak_end)
    apply_peak(article, peak)
    apply_peak(wide, peak)
    print(f"XLA matmul peak measured again after the timings: {peak_end:.1f} GFLOP/s; "
          f"fractions of peak use the higher, {peak:.1f} GFLOP/s")
    print_article(article, steps, repeats)
    print_wide(wide, wide_steps, wide_runs)

    vs_numpy, worst_numpy = worst(article, "engine_over_tight_numpy")
    vs_torch, worst_torch = worst(article, "engine_over_torch")
    vs_ref, _ = worst(article, "engine_over_reference")
    bp, dni = wide["backprop"], wide["dni"]
    summary: dict[str, Any] = {
        "matmul_peak_gflops": peak,
        "matmul_peak_gflops_start_end": [peak_start, peak_end],
        "numpy_matmul_gflops": np_peak,
        "blas": blas,
        "article_scale": {
            "speedup_vs_numpy": vs_numpy,  # against the tight numpy loop, worst regime
            "speedup_vs_tight_numpy": vs_numpy,
            "worst_regime_vs_tight_numpy": worst_numpy,
            "speedup_vs_reference": vs_ref,
            "speedup_vs_torch": vs_torch,
            "worst_regime_vs_torch": worst_torch,
            "engine_over_lean_jax": article["backprop"]["ratios"]["engine_over_lean_jax"],
            "all_cores_speedup_vs_tight_numpy": worst(
                article, "engine_all_cores_over_tight_numpy")[0],
            "all_cores_speedup_vs_torch": worst(article, "engine_all_cores_over_torch")[0],
            "all_cores_error": cores.get("error"),
            "speedup_vs_numpy_per_regime": {k: v["ratios"]["engine_over_tight_numpy"]
                                            for k, v in article.items()},
            "runs": n_batched, "numpy_runs": n_numpy, "reference_runs": n_ref,
            "steps": steps, "repeats": repeats, "details": article},
        "wide_scale": {
            "backprop_fraction_of_matmul_peak": bp["engine"]["fraction_of_matmul_peak"],
            "dni_over_backprop_time": bp["engine"]["run_steps_per_s"]
            / dni["engine"]["run_steps_per_s"],
            "dni_over_backprop_flops": dni["flops_per_step"] / bp["flops_per_step"],
            "runs": wide_runs, "steps": wide_steps, "details": wide},
    }
    summary["memory_1024_runs_gib"] = sweep_memory_gib(1024)
    print(f"\ncompiled memory of a 1024-run article-scale DNI+noise sweep (100 records of "
          f"{2000 // 100} steps per chunk): {summary['memory_1024_runs_gib']:.3f} GiB")
    cmp = compile_s_default_compare()
    summary["compile_s_default_compare"] = cmp["compile_s"]
    summary["compile_default_compare"] = cmp
    if cmp["compile_s"] is None:
        print(f"default compare compile time: not measured ({cmp['error']})")
    else:
        print(f"default `dnijax compare` compile time (fresh process, no persistent cache): "
              f"{cmp['compile_s']:.1f} s (first call {cmp['first_s']:.1f} s - second "
              f"{cmp['second_s']:.1f} s)")

    summary["targets"] = targets(summary)
    print("\ntargets:")
    for t in summary["targets"]:
        verdict = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        print(f"  {t['target']:52s} {t['measured']:60s} {verdict}")
    summary["wall_s"] = time.perf_counter() - started
    print(f"\ntotal {summary['wall_s']:.0f} s")
    store.atomic_write_bytes(os.path.join(args.out, "speed.json"),
                             (json.dumps(summary, indent=1, default=str) + "\n").encode())
    print(f"wrote {os.path.join(args.out, 'speed.json')}")


if __name__ == "__main__":
    main()
