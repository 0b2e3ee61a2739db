"""Reproducer for the recurrent runs that hung inside the XLA CPU runtime (jaxlib 0.10.2).

Runs ``--runs`` copy-task grids one after another in this one process, as the copy-task
benchmark's cells did before they moved to a process each: LSTM runs of both rules
(``backprop+noise``, ``dni+noise``, noise-free and noisy arms in one grid) over the
truncations of ``--windows``, so the process runs several compiled programs in turn and
then reuses them. A watchdog (``faulthandler``) dumps every thread's stack and exits with
code 3 when one grid takes longer than ``--timeout`` seconds, which names the run that
hung; a finished check prints one line per ``--every`` runs and the slowest run.

    python benchmarks/hang_check.py [--runs 200] [--timeout 120] [--windows 2,3,4,5]

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
    parser.add_argument("--timeout", type=common.positive(float), default=120.0,
                        help="seconds one grid may take before it counts as hung")
    parser.add_argument("--windows", type=common.positive_list, default=(2, 3, 4, 5))
    parser.add_argument("--episodes", type=common.positive(int), default=100)
    parser.add_argument("--hidden", type=common.positive(int), default=16)
    parser.add_argument("--seeds", type=common.positive(int), default=2)
    parser.add_argument("--chunks", type=common.positive(int), default=20)
    parser.add_argument("--every", type=common.positive(int), default=20)
    parser.add_argument("--eigen-threads", choices=("on", "off"), default="on")
    parser.add_argument("--sync", action="store_true", help="no asynchronous CPU dispatch")
    args = parser.parse_args()
    if args.eigen_threads == "off":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false")
    import jax
    import numpy as np

    from dnijax import RunConfig, engine
    if args.sync:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    base = dict(task="copy", core="lstm", hidden=args.hidden, max_length=6, batch_size=16,
                steps=args.episodes, optimizer="adam", lr=1e-2, loss="bce", reduction="mean",
                eta=0.01)
    cells = [(rule, t) for t in args.windows for rule in ("backprop", "dni")]
    print(f"hang check: {args.runs} grids of {2 * args.seeds} copy-task runs "
          f"({args.episodes} episodes, LSTM {args.hidden}) over {len(cells)} programs, "
          f"jax {jax.__version__}, {engine.device_summary()}, watchdog {args.timeout:g} s",
          flush=True)
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
            print(f"  {i + 1:4d} grids done, {time.time() - start:6.0f} s; last: {rule} T={window}"
                  f", solved {res.final['solved'].tolist()}", flush=True)
    slowest = int(np.argmax(times))
    print(f"no hang in {args.runs} grids ({time.time() - start:.0f} s); slowest grid "
          f"{times[slowest]:.1f} s (run {slowest}, the first of its program compiles)")


if __name__ == "__main__":
    faulthandler.enable(file=sys.stderr)
    main()
