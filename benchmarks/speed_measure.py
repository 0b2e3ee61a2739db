"""The measurements of ``benchmarks/speed.py``: timers, the machine's probes (matmul
throughput, the BLAS numpy uses, the default compare's compile time), the problems (configs,
data, FLOP counts) and one call or one memory figure of each method.

Nothing here reads a clock inside a timed section but :func:`time_methods`, which times
each method's call alone (warm-up outside the timing, JAX results waited for).
"""

from __future__ import annotations

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
import jax
import jax.numpy as jnp
import numpy as np

from dnijax import RunConfig, engine, parse_regime, reference

OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


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
    return 2 * n**3 / best / 1e9


def numpy_matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    """float32 matmul throughput of numpy's BLAS (best of ``reps``, warm-up outside)."""
    a = np.random.default_rng(0).standard_normal((n, n), np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = min(_timed(lambda: np.matmul(a, a, out=out)) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def time_methods(
    methods: dict[str, Callable[[], Any]],
    repeats: int,
    prepare: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, dict]:
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
    return {
        name: {"best_s": min(t[1:]), "first_s": t[0], "calls_s": t} for name, t in calls.items()
    }


def traced_peak_mb(fn: Callable[[], Any]) -> float:
    """``tracemalloc`` peak of one untimed call of ``fn``, in MiB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def blas_info() -> dict:
    """numpy's BLAS (threadpoolctl) and the OpenBLAS environment variables as seen here."""
    info: dict[str, Any] = {"env": {k: os.environ.get(k) for k in OPENBLAS_ENV}}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["threadpoolctl"] = None
        try:  # numpy >= 1.25: the BLAS numpy was built against (not the loaded kernel)
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            info["numpy"] = {
                "internal_api": blas.get("name"),
                "version": blas.get("version"),
                "source": "numpy.show_config (threadpoolctl missing)",
            }
        except Exception:  # noqa: BLE001 - a record, never a failure
            info["numpy"] = None
        return info
    pools = threadpool_info()
    blas = [p for p in pools if p.get("user_api") == "blas"]
    mine = [p for p in blas if "numpy" in str(p.get("filepath", ""))] or blas[:1]
    keys = (
        "internal_api",
        "version",
        "architecture",
        "corename",
        "num_threads",
        "threading_layer",
        "filepath",
    )
    info["numpy"] = {k: mine[0].get(k) for k in keys if k in mine[0]} if mine else None
    info["threadpoolctl"] = pools
    return info


def describe_blas(info: dict) -> str:
    np_blas = info.get("numpy") or {}
    kernel = np_blas.get("architecture") or np_blas.get("corename") or "?"
    env = ", ".join(f"{k}={info['env'][k]!r}" for k in OPENBLAS_ENV[:2])
    return (
        f"numpy BLAS: {np_blas.get('internal_api', '?')} {np_blas.get('version', '?')}, "
        f"kernel {kernel}, {np_blas.get('num_threads', '?')} threads; {env}"
    )


def child_json(cmd: list[str], timeout: float, **kwargs: Any) -> dict:
    """Runs ``cmd`` and returns the JSON object on the last line of its output, or
    ``{"error": why}`` when it fails, times out or prints no JSON."""
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["no message"])[-1]}
        return json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    except (IndexError, json.JSONDecodeError) as err:
        return {"error": f"no JSON result: {type(err).__name__}: {err}"}


def compile_s_default_compare(quick: bool = False, timeout: float = 600.0) -> dict:
    """Cold and warm compile seconds of the default ``dnijax compare`` (see the module
    docstring of ``speed.py``): two fresh processes share an empty persistent compilation
    cache; in each, the comparison runs twice and compile time is the first call's time
    minus the second's. The first process compiles (cold, and fills the cache), the second
    loads what it can from the cache (warm). ``stages_s``: the seconds of the costliest
    stages of the programs (tracing, lowering to MLIR, XLA compilation, as jax's
    ``jax_log_compiles`` reports them), where the compile time goes. ``quick``: 2 seeds of
    ``backprop`` only."""
    call = "seeds=2, steps=20, regimes=['backprop']" if quick else "seeds=10, steps=20"
    code = (
        "import json, logging, re, time\n"
        "import jax\n"
        "from dnijax import cli\n"
        "from dnijax.experiments import compare\n"
        "cli.enable_compilation_cache()\n"
        "stages = {}\n"
        "class Stages(logging.Handler):  # jax's own timings of each program's stages\n"
        "    def emit(self, record):\n"
        "        m = re.match(r'Finished (tracing \\+ transforming|jaxpr to MLIR module "
        "conversion|XLA compilation) (?:of )?(?:jit\\()?(\\w+).* in ([0-9.e-]+) sec',\n"
        "                     record.getMessage())\n"
        "        if m:\n"
        "            stage = {'tracing + transforming': 'trace', 'XLA compilation': 'compile'}"
        ".get(m[1], 'lower')\n"
        "            key = f'{m[2]} ({stage})'\n"
        "            stages[key] = stages.get(key, 0.0) + float(m[3])\n"
        "logging.getLogger('jax').addHandler(Stages())\n"
        "jax.config.update('jax_log_compiles', True)\n"
        "t = []\n"
        "for _ in range(2):\n"
        "    s = time.perf_counter()\n"
        f"    compare.run_compare('tuned', {call})\n"
        "    t.append(time.perf_counter() - s)\n"
        "top = dict(sorted(stages.items(), key=lambda kv: -kv[1])[:8])\n"
        "print(json.dumps({'first_s': t[0], 'second_s': t[1], 'stages_s': top}))\n"
    )
    out: dict[str, Any] = {"call": f"run_compare('tuned', {call})"}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, DNIJAX_CACHE=os.path.join(tmp, "cache"))
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        for name in ("cold", "warm"):
            res = child_json([sys.executable, "-c", code], timeout, env=env, cwd=tmp)
            if "error" not in res:
                res["compile_s"] = max(0.0, res["first_s"] - res["second_s"])
            out[name] = res
    return out


def step_flops(widths, batch: int, regime: str) -> float:
    """Matmul FLOPs of one step (paper topology, linear SG modules)."""
    pairs = list(zip(widths[:-1], widths[1:], strict=False))
    fwd = sum(2 * batch * a * b for a, b in pairs)
    if parse_regime(regime)[0] == "backprop":
        return fwd + fwd + (fwd - 2 * batch * pairs[0][0] * pairs[0][1])  # dW and dh
    extra = fwd  # dW of every layer
    for i, (_, n) in enumerate(pairs[:-1]):
        nxt = pairs[i + 1][1]
        extra += 2 * batch * n * n * 2 + 2 * batch * n * nxt  # SG fwd + grad, target vjp
    return fwd + extra


WIDE = (7, 256, 256)  # wide scale: hidden layers, their units, the batch
WIDE_QUICK = (2, 32, 32)  # the same code at --quick's size


def make_config(scale: str, regime: str, steps: int, wide: tuple = WIDE) -> RunConfig:
    """The article-scale or the wide-scale (``wide``: layers, units, batch) run config."""
    if scale == "article":
        return RunConfig(
            regime=regime,
            widths=(2, 10, 28, 1),
            activations="sigmoid",
            reduction="mean",
            lr=0.5,
            sg_lr=0.1,
            init="glorot",
            eta=0.01,
            steps=steps,
            log_every=steps,
        )
    return RunConfig(
        regime=regime,
        widths=(wide[1],) * wide[0] + (10,),
        activations=("relu",) * (wide[0] - 1) + ("identity",),
        loss="xent",
        reduction="mean",
        lr=0.01,
        sg_lr=0.001,
        init="he",
        steps=steps,
        log_every=steps,
    )


def make_data(scale: str, wide: tuple = WIDE):
    rng = np.random.RandomState(0)
    if scale == "article":
        x = rng.randn(500, 2).astype(np.float32)
        return x, (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    x = rng.randn(wide[2], wide[1]).astype(np.float32)
    return x, rng.randint(0, 10, wide[2]).astype(np.int32)


def engine_call(
    cfg: RunConfig, x, labels, n_runs: int, net=None, sg=None, mesh: bool = False
) -> Callable:
    """One whole ``run_grid`` call (a single chunk), waited for; ``mesh``: sharded over
    every device."""
    hyper = engine.stack_hyper(cfg, lr=[cfg.lr] * n_runs)
    keys = engine.run_keys(0, n_runs)

    def call():
        res = engine.run_grid(
            cfg,
            hyper,
            keys,
            (x, labels),
            net=net,
            sg=sg if cfg.uses_sg else None,
            mesh=mesh,
            chunks=1,
        )
        jax.block_until_ready(res.state)

    return call


def engine_memory_mb(cfg: RunConfig, x, labels, n_runs: int) -> float:
    hyper = engine.stack_hyper(cfg, lr=[cfg.lr] * n_runs)
    keys = engine.run_keys(0, n_runs)
    n_records = cfg.steps // cfg.log_every
    return engine.compiled_bytes(cfg, hyper, keys, (x, labels), n_records) / 2**20


def reference_call(cfg: RunConfig, starts: list, x, y, steps: int) -> Callable:
    """``reference.trajectory`` for each start in turn (never with noise)."""

    def call():
        for net, sg in starts:
            reference.trajectory(
                cfg.signal,
                net,
                sg,
                x,
                y,
                steps,
                blocks=cfg.net_spec.blocks,
                loss=cfg.loss,
                reduction=cfg.reduction,
                lr=cfg.lr,
                sg_lr=cfg.sg_lr,
                topology=cfg.topology,
            )

    return call


def grid_peak_memory(n_runs: int, steps: int, timeout: float = 1800.0) -> dict:
    """Peak resident memory (``VmHWM``; ``ru_maxrss`` without ``/proc``) of a fresh process
    that trains an article-scale
    DNI+noise grid of ``n_runs`` runs for ``steps`` steps, a record every 5, through
    ``engine.run_grid`` in its automatic blocks, as ``dnijax sweep --seeds n_runs`` does;
    and the same process's peak before the grid (imports and data), so the grid's share
    shows. Also its wall time and block size."""
    code = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "from speed_measure import make_config, make_data\n"
        "from dnijax import engine\n"
        f"n, steps = {n_runs}, {steps}\n"
        "cfg = make_config('article', 'dni+noise', steps).replace(log_every=5)\n"
        "x, labels = make_data('article')\n"
        "def peak():  # VmHWM: this process's own peak (ru_maxrss can hold the parent's)\n"
        "    with open('/proc/self/status') as f:\n"
        "        hwm = [l for l in f if l.startswith('VmHWM:')]\n"
        "    if hwm:\n"
        "        return int(hwm[0].split()[1]) / 2**20\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20\n"
        "before = peak()\n"
        "t = time.perf_counter()\n"
        "res = engine.run_grid(cfg, engine.stack_hyper(cfg, lr=[cfg.lr] * n),\n"
        "                      engine.run_keys(0, n), (x, labels), block_runs='auto')\n"
        "print(json.dumps({'runs': n, 'steps': steps, 'peak_gib': peak(),\n"
        "                  'peak_before_grid_gib': before, 'seconds': time.perf_counter() - t,\n"
        "                  'records': int(res.history['loss'].shape[1])}))\n"
    )
    return child_json([sys.executable, "-c", code], timeout)


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_thread_probe(
    torch,
    regime: str,
    params,
    sgs,
    x,
    y,
    lr: float,
    sg_lr: float,
    probe_steps: int = 10,
    probe_calls: int = 2,
) -> dict:
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
            best = min(
                _timed(
                    lambda: baselines.torch_runs(regime, params, sgs, x, y, probe_steps, lr, sg_lr)
                )
                for _ in range(probe_calls)
            )
            rates[th] = params[0][0].shape[0] * probe_steps / best
    finally:
        torch.set_num_threads(before)
    return {"threads": max(rates, key=rates.get), "probe_run_steps_per_s": rates}
