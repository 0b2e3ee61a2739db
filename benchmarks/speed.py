"""Speed of dnijax against the numpy reference (and PyTorch, if installed), side by side.

Same work for every method: same runs, same steps, float32, full batch (article
scale) or one fixed batch (wide scale). Prints run-steps per second, ratios to
the numpy reference, compile time apart from run time, memory, and achieved
GFLOP/s (matmul FLOPs counted from the layer shapes) against this machine's
float32 matmul throughput measured in the same run.

    python benchmarks/speed.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dnijax import RunConfig, reference, sweep, train  # noqa: E402
from dnijax.validate import to_numpy  # noqa: E402


def matmul_peak_gflops(n: int = 1024, reps: int = 10) -> float:
    """float32 matmul throughput of this machine through XLA (best of ``reps``)."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = min(_timed(lambda: jax.block_until_ready(f(a))) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


REPEATS = 1  # timed sections run this many times; the best time counts (--repeats)


def _best(fn) -> float:
    """The fastest of ``REPEATS`` runs of ``fn`` (the same work each time)."""
    return min(_timed(fn) for _ in range(REPEATS))


def step_flops(widths, batch: int, regime: str) -> float:
    """Matmul FLOPs of one step (paper topology, linear SG modules)."""
    pairs = list(zip(widths[:-1], widths[1:]))
    fwd = sum(2 * batch * a * b for a, b in pairs)
    if regime.startswith("backprop"):
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


def bench_numpy(cfg: RunConfig, x, labels, n_runs: int, steps: int) -> dict:
    """The reference, one run after another (float32 arrays, as the article ran)."""
    y = np.asarray(train.make_data(cfg, x, labels).y)
    starts = [train.init_state(cfg, jax.random.key(r)) for r in range(n_runs)]
    starts = [(to_numpy(st.net, np.float32), to_numpy(st.sg, np.float32)) for st in starts]

    def work():
        for net, sg in starts:
            reference.trajectory(cfg.regime.replace("+noise", ""), net, sg, x, y, steps,
                                 activations=cfg.activations, loss=cfg.loss,
                                 reduction=cfg.reduction, lr=cfg.lr, sg_lr=cfg.sg_lr,
                                 topology=cfg.topology)

    tracemalloc.start()
    elapsed = _best(work)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"run_steps_per_s": n_runs * steps / elapsed, "peak_mb": peak / 2 ** 20}


def bench_jax_loop(cfg: RunConfig, x, labels, n_runs: int, steps: int) -> dict:
    """A jitted step called from a Python loop, one run after another."""
    program = train.program_of(cfg)
    data = train.make_data(cfg, x, labels)
    step = jax.jit(train.train_step, static_argnums=0)
    hyper = cfg.hyper()
    st = train.init_state(cfg, jax.random.key(0), hyper, program=program)
    compile_s = _timed(lambda: jax.block_until_ready(step(program, hyper, st, data)))

    def work():
        for r in range(n_runs):
            st = train.init_state(cfg, jax.random.key(r), hyper, program=program)
            for _ in range(steps):
                st, _ = step(program, hyper, st, data)
            jax.block_until_ready(st)

    return {"run_steps_per_s": n_runs * steps / _best(work), "compile_s": compile_s}


def bench_engine(cfg: RunConfig, x, labels, n_runs: int) -> dict:
    """The sweep engine: all runs vmapped, steps scanned, one program."""
    hyper = sweep.stack_hyper(cfg, lr=[cfg.lr] * n_runs)
    keys = sweep.run_keys(0, n_runs)
    t = time.perf_counter()
    sweep.run_grid(cfg.replace(steps=cfg.log_every), hyper, keys, (x, labels), mesh=None)
    first = time.perf_counter() - t  # compile + one chunk of log_every steps
    elapsed = _best(lambda: sweep.run_grid(cfg, hyper, keys, (x, labels), mesh=None, chunks=1))
    program = train.program_of(cfg)
    data = train.make_data(cfg, x, labels)
    state = jax.jit(jax.vmap(lambda h, k: train.init_state(cfg, k, h, program=program)))(
        hyper, keys)
    mem = sweep._advance.lower(program, 1, None, hyper, state, data).compile().memory_analysis()
    mem_mb = None if mem is None else (mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                       + mem.output_size_in_bytes) / 2 ** 20
    return {"run_steps_per_s": n_runs * cfg.steps / elapsed, "compile_s": max(0.0, first - (
        elapsed / cfg.steps) * cfg.log_every), "device_mb": mem_mb}


def sweep_memory_gib(n_runs: int) -> float:
    """Compiled memory (arguments + outputs + temporaries) of one chunk of an article-scale
    DNI+noise grid of ``n_runs`` runs, from XLA's memory analysis, plus its history."""
    cfg = make_config("article", "dni+noise", 2000)
    x, labels = make_data("article")
    hyper = sweep.stack_hyper(cfg, lr=[cfg.lr] * n_runs)
    keys = sweep.run_keys(0, n_runs)
    program = train.program_of(cfg)
    state = jax.eval_shape(jax.vmap(lambda h, k: train.init_state(cfg, k, h, program=program)),
                           hyper, keys)
    data = train.make_data(cfg, x, labels)
    mem = sweep._advance.lower(program, 100, None, hyper, state, data).compile().memory_analysis()
    total = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    return total / 2 ** 30


def bench_torch(cfg: RunConfig, x, labels, n_runs: int, steps: int) -> dict | None:
    """PyTorch eager backprop on CPU (DNI is not implemented in torch here)."""
    try:
        import torch
    except ImportError:
        return None
    if not cfg.regime.startswith("backprop"):
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    xt = torch.tensor(x)
    yt = torch.tensor(np.asarray(train.make_data(cfg, x, labels).y))
    acts = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
            "identity": lambda z: z}
    t = time.perf_counter()
    for r in range(n_runs):
        ws = [torch.randn(a, b, requires_grad=True) for a, b in zip(cfg.widths[:-1],
                                                                    cfg.widths[1:])]
        opt = torch.optim.SGD(ws, lr=cfg.lr)
        for _ in range(steps):
            h = xt
            for w, a in zip(ws, cfg.net_spec.activations):
                h = acts[a](h @ w)
            loss = (0.5 * ((h - yt) ** 2).sum(-1)).mean() if cfg.loss == "mse" else \
                torch.nn.functional.cross_entropy(h, yt.argmax(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {"run_steps_per_s": n_runs * steps / (time.perf_counter() - t)}


def run_scale(scale: str, regimes, n_runs: int, steps: int, seq_runs: int, peak: float) -> dict:
    x, labels = make_data(scale)
    out = {}
    for regime in regimes:
        cfg = make_config(scale, regime, steps)
        batch = x.shape[0]
        flops = step_flops(cfg.widths, batch, regime)
        row = {"numpy": bench_numpy(cfg, x, labels, seq_runs, steps),
               "jax_loop": bench_jax_loop(cfg, x, labels, seq_runs, steps),
               "engine": bench_engine(cfg, x, labels, n_runs)}
        torch_row = bench_torch(cfg, x, labels, seq_runs, steps)
        if torch_row:
            row["torch"] = torch_row
        base = row["numpy"]["run_steps_per_s"]
        for name, r in row.items():
            r["vs_numpy"] = r["run_steps_per_s"] / base
            r["gflops"] = r["run_steps_per_s"] * flops / 1e9
            r["fraction_of_matmul_peak"] = r["gflops"] / peak
        row["flops_per_step"] = flops
        out[regime] = row
        print(f"\n{scale} scale, {regime}: {flops / 1e6:.3f} MFLOP per run-step")
        print(f"  {'method':9s} {'run-steps/s':>12s} {'x numpy':>8s} {'GFLOP/s':>8s} "
              f"{'% peak':>7s} {'compile s':>9s} {'memory MB':>9s}")
        for name, r in row.items():
            if not isinstance(r, dict):
                continue
            mem = r.get("peak_mb", r.get("device_mb"))
            print(f"  {name:9s} {r['run_steps_per_s']:12.0f} {r['vs_numpy']:8.2f} "
                  f"{r['gflops']:8.2f} {100 * r['fraction_of_matmul_peak']:6.1f}% "
                  f"{r.get('compile_s', float('nan')):9.2f} "
                  f"{mem if mem is not None else float('nan'):9.1f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (under 2 minutes)")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--runs", type=int, default=None, help="runs of the article-scale grid")
    parser.add_argument("--repeats", type=int, default=None,
                        help="time each method this many times, keep the best (default: 1 "
                             "with --quick, 3 otherwise)")
    args = parser.parse_args()
    global REPEATS
    REPEATS = args.repeats or (1 if args.quick else 3)
    steps = 50 if args.quick else 200
    peak = matmul_peak_gflops()
    print(f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores; float32 matmul "
          f"peak measured: {peak:.1f} GFLOP/s")
    n_article = args.runs or (4 * 32)
    article = run_scale("article", ("backprop", "dni", "backprop+noise", "dni+noise"),
                        n_article, steps, seq_runs=2 if args.quick else 4, peak=peak)
    wide = run_scale("wide", ("backprop", "dni"), 4 if args.quick else 8, steps // 2,
                     seq_runs=1, peak=peak)
    engine = [r["engine"]["vs_numpy"] for r in article.values()]
    bp, dni = wide["backprop"], wide["dni"]
    summary = {
        "matmul_peak_gflops": peak,
        "article_scale": {"speedup_vs_numpy": float(np.min(engine)),
                          "speedup_vs_numpy_per_regime": {k: v["engine"]["vs_numpy"]
                                                          for k, v in article.items()},
                          "runs": n_article, "steps": steps, "details": article},
        "wide_scale": {
            "backprop_fraction_of_matmul_peak": bp["engine"]["fraction_of_matmul_peak"],
            "dni_over_backprop_time": bp["engine"]["run_steps_per_s"]
            / dni["engine"]["run_steps_per_s"],
            "dni_over_backprop_flops": dni["flops_per_step"] / bp["flops_per_step"],
            "details": wide},
    }
    summary["memory_1024_runs_gib"] = sweep_memory_gib(1024)
    print(f"\ncompiled memory of a 1024-run article-scale DNI+noise sweep (100 records of "
          f"{2000 // 100} steps per chunk): {summary['memory_1024_runs_gib']:.3f} GiB")
    print(f"\nsummary: article-scale engine speed-up over numpy (worst regime) "
          f"{summary['article_scale']['speedup_vs_numpy']:.1f}x; wide backprop at "
          f"{100 * summary['wide_scale']['backprop_fraction_of_matmul_peak']:.0f}% of matmul "
          f"peak; DNI/backprop time {summary['wide_scale']['dni_over_backprop_time']:.2f} vs "
          f"FLOP ratio {summary['wide_scale']['dni_over_backprop_flops']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
