"""Reproducer for the recurrent runs that hung inside the XLA CPU runtime (jaxlib 0.10.2),
and the check that they no longer do.

The cause (found with ``gdb -p PID -batch -ex "thread apply all bt"`` on a hung run):
``jax.nn.initializers.orthogonal`` takes the QR of a Gaussian matrix, a LAPACK custom call
on the CPU. Batched by ``vmap`` over runs, jaxlib runs the batch's QRs on XLA's intra-op
thread pool (``jax::ParallelBatchMap``) and waits for them (``BlockingCounter::Wait``) on a
thread of that same pool. Both pool threads of a 2-core machine were inside
``lapack_sgeqrf_ffi`` waiting, so the work they waited for could never run: a thread-pool
starvation deadlock, with the main thread in ``block_until_ready`` and the CPU idle. The
LSTM's init takes four QRs side by side (one per gate), which makes it likely; the
feed-forward nets take none. ``--xla_cpu_multi_thread_eigen=false`` does not help.
dnijax now draws orthogonal matrices with plain JAX ops (``dnijax.recurrent.orthogonal``:
the same matrices, to rounding).

``--qr jax`` is the minimal reproducer: a jitted, vmapped orthogonal init of four 64 x 64
blocks (6 runs), called ``--runs`` times; with jax's initializer it hangs within a few
hundred calls here, with ``--qr dnijax`` (ours) it does not.

Without ``--qr``, runs ``--runs`` copy-task grids one after another in this one process,
as the copy-task benchmark's cells did before they moved to a process each (and do again
now): LSTM runs of both rules (``backprop+noise``, ``dni+noise``, noise-free and noisy arms
in one grid) over the truncations of ``--windows``, so the process runs several compiled
programs in turn and then reuses them. A watchdog (``faulthandler``) prints every thread's
Python stack and exits with code 1 when one grid (or call) takes longer than ``--timeout``
seconds; a finished check prints one line per ``--every`` grids and the slowest one.

    python benchmarks/hang_check.py [--runs 200] [--timeout 120] [--windows 2,3,4,5]
    python benchmarks/hang_check.py --qr jax --runs 2000 --timeout 20

The knobs bisect the suspects the hang reports named: ``--eigen-threads off`` sets
``--xla_cpu_multi_thread_eigen=false``, ``--sync`` turns off asynchronous CPU dispatch
(``jax_cpu_enable_async_dispatch``), ``--chunks 1`` makes one host round trip per grid
(no progress callbacks between chunks).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import time

import common


def main() -> None:
    parser = common.make_parser(__doc__, "hang_check")
    parser.add_argument("--runs", type=common.positive(int), default=200)
    parser.add_argument(
        "--timeout",
        type=common.positive(float),
        default=120.0,
        help="seconds one grid may take before it counts as hung",
    )
    parser.add_argument("--windows", type=common.positive_list, default=(2, 3, 4, 5))
    parser.add_argument("--episodes", type=common.positive(int), default=100)
    parser.add_argument("--hidden", type=common.positive(int), default=16)
    parser.add_argument("--seeds", type=common.positive(int), default=2)
    parser.add_argument("--chunks", type=common.positive(int), default=20)
    parser.add_argument(
        "--every",
        type=common.positive(int),
        default=20,
        help="print a line every this many grids (or calls)",
    )
    parser.add_argument("--eigen-threads", choices=("on", "off"), default="on")
    parser.add_argument("--sync", action="store_true", help="no asynchronous CPU dispatch")
    parser.add_argument(
        "--qr",
        choices=("jax", "dnijax"),
        help="the minimal reproducer, with jax's or dnijax's orthogonal init",
    )
    args = parser.parse_args()
    if args.eigen_threads == "off":
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
        )
    import jax
    import numpy as np

    from dnijax import RunConfig, engine

    if args.sync:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    if args.qr:
        return qr_reproducer(args)
    base = dict(
        task="copy",
        core="lstm",
        hidden=args.hidden,
        max_length=6,
        batch_size=16,
        steps=args.episodes,
        optimizer="adam",
        lr=1e-2,
        loss="bce",
        reduction="mean",
        eta=0.01,
    )
    cells = [(rule, t) for t in args.windows for rule in ("backprop", "dni")]
    print(
        f"hang check: {args.runs} grids of {2 * args.seeds} copy-task runs "
        f"({args.episodes} episodes, LSTM {args.hidden}) over {len(cells)} programs, "
        f"jax {jax.__version__}, {engine.device_summary()}, watchdog {args.timeout:g} s",
        flush=True,
    )
    times = []
    start = time.time()
    for i in range(args.runs):
        rule, window = cells[i % len(cells)]
        cfg = RunConfig(regime=rule + "+noise", window=window, **base)
        hyper = engine.stack_hyper(cfg, eta=[0.0] * args.seeds + [0.01] * args.seeds)
        keys = engine.run_keys(np.tile(np.arange(i, i + args.seeds), 2))
        faulthandler.dump_traceback_later(args.timeout, exit=True)
        t0 = time.time()
        res = engine.run_grid(cfg, hyper, keys, None, chunks=args.chunks)
        jax.block_until_ready(res.state)
        faulthandler.cancel_dump_traceback_later()
        times.append(time.time() - t0)
        if (i + 1) % args.every == 0 or i + 1 == args.runs:
            print(
                f"  {i + 1:4d} grids done, {time.time() - start:6.0f} s; last: {rule} T={window}"
                f", solved {res.final['solved'].tolist()}",
                flush=True,
            )
    slowest = int(np.argmax(times))
    print(
        f"no hang in {args.runs} grids ({time.time() - start:.0f} s); slowest grid "
        f"{times[slowest]:.1f} s (run {slowest}, the first of its program compiles)"
    )


def qr_reproducer(args) -> None:
    """A jitted, vmapped orthogonal init of four 64 x 64 blocks over 6 runs, ``--runs``
    calls, each under the watchdog."""
    import jax
    import jax.numpy as jnp

    from dnijax import recurrent

    if args.qr == "jax":
        draw = lambda k: jax.nn.initializers.orthogonal()(k, (64, 64), jnp.float32)  # noqa
    else:
        draw = lambda k: recurrent.orthogonal(k, 64, jnp.float32)  # noqa: E731
    init = jax.jit(jax.vmap(lambda key: [draw(k) for k in jax.random.split(key, 4)]))
    start = time.time()
    for i in range(args.runs):
        faulthandler.dump_traceback_later(args.timeout, exit=True)
        jax.block_until_ready(init(jax.random.split(jax.random.key(i), 6)))
        faulthandler.cancel_dump_traceback_later()
        if (i + 1) % args.every == 0:
            print(f"  {i + 1:5d} calls, {time.time() - start:5.1f} s", flush=True)
    print(
        f"no hang in {args.runs} calls of the {args.qr} orthogonal init "
        f"({time.time() - start:.1f} s)"
    )


if __name__ == "__main__":
    faulthandler.enable(file=sys.stderr)
    main()
