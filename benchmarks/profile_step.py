"""Where the engine's time goes at article scale: an ablation from the lean loop to the engine.

Backprop on the article-scale task (500 x 2-10-28-1 sigmoid, full batch, float32, SGD),
128 runs vmapped, steps scanned. Each row adds one piece of what the engine does to
the row above, so the differences estimate each piece's cost:

1. lean: ``jax.grad`` of the batch loss and ``p - lr g`` (``baselines.make_jax_lean``);
2. + RNG: the run key split into three every step, as the engine's step does;
3. + finite guard: the loss and the new parameters checked, the update kept only if
   all are finite (``jnp.where`` over every leaf);
4. + optax: the update through an ``optax.chain`` with state (the engine's update rule);
5. + history: the full-data loss and accuracy recorded every ``log_every`` steps;
6. the engine itself (``dnijax.engine.run_grid``): all of the above, and the rest
   (its signal-rule dispatch, the state it carries).

Every variant is warmed up outside the timing; the best of ``--repeats`` counts.

    python benchmarks/profile_step.py [--quick] [--repeats N] [--runs N] [--steps N]
"""

from __future__ import annotations

import time

import baselines
import common
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dnijax import RunConfig, engine, nets, options, train, updates
from dnijax.report import markdown_table

WIDTHS = (2, 10, 28, 1)
SPEC = nets.mlp_spec(WIDTHS, ("sigmoid",) * 3, "mse", "mean")


def variant(steps: int, lr: float, rng: bool, guard: bool, use_optax: bool, log_every: int):
    """A jitted ``vmap(scan)`` backprop loop with the chosen pieces switched on."""
    tx = updates.update_rule(optimizer="sgd", learning_rate=lr)

    def one_run(params, key, x, y, labels):
        def step(carry, _):
            p, opt, k = carry
            if rng:
                k, _, _ = jax.random.split(k, 3)
            loss, g = jax.value_and_grad(nets.batch_loss)(p, x, y, SPEC)
            if use_optax:
                u, opt = tx.update(g, opt, p)
                new = optax.apply_updates(p, u)
            else:
                new = jax.tree.map(lambda a, b: a - lr * b, p, g)
            if guard:
                ok = jnp.isfinite(loss) & train.all_finite(new)
                new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, p)
            return (new, opt, k), None

        def record(carry, _):
            out = nets.predict(carry[0], x, SPEC)
            rec = (
                nets.reduce_batch(nets.per_example_loss(out, y, "mse"), "mean"),
                nets.accuracy(out, labels, SPEC),
            )
            carry, _ = jax.lax.scan(step, carry, None, length=log_every)
            return carry, rec

        carry = (params, tx.init(params), key)
        if log_every:
            carry, hist = jax.lax.scan(record, carry, None, length=steps // log_every)
        else:
            carry, hist = jax.lax.scan(step, carry, None, length=steps)
        return carry[0], hist

    return jax.jit(jax.vmap(one_run, in_axes=(0, 0, None, None, None)))


def best_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # warm-up (compiles), outside the timing
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def ablation(n_runs: int, steps: int, repeats: int) -> list[list[str]]:
    """The table's rows: each variant's run-steps/s, µs per run-step, and its time against
    the row above's."""
    log_every = steps // 10
    lr = 0.5
    rng = np.random.RandomState(0)
    x = rng.randn(500, 2).astype(np.float32)
    labels = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    y = jnp.asarray(labels[:, None], jnp.float32)
    stacked, _ = baselines.init_runs(n_runs, WIDTHS, seed=0)
    params = [{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in stacked]
    keys = engine.run_keys(0, n_runs)
    lean = baselines.make_jax_lean("backprop", steps, lr, lr)
    rows = [("lean: jax.grad and p - lr g", lambda: lean(stacked, None, x, y, keys[0]))]
    pieces = [
        ("+ RNG: the run key split every step", dict(rng=True)),
        ("+ finite guard", dict(guard=True)),
        ("+ optax update chain", dict(use_optax=True)),
        (f"+ history every {log_every} steps", dict(log_every=log_every)),
    ]
    on = dict(rng=False, guard=False, use_optax=False, log_every=0)
    for label, change in pieces:
        on = {**on, **change}
        fn = variant(steps, lr, **on)
        rows.append((label, lambda fn=fn: fn(params, keys, x, y, jnp.asarray(labels))))
    cfg = RunConfig(
        regime="backprop",
        widths=WIDTHS,
        activations="sigmoid",
        reduction="mean",
        lr=lr,
        init="glorot",
        steps=steps,
        log_every=log_every,
    )
    hyper = engine.stack_hyper(cfg, lr=[lr] * n_runs)
    net = [{"w": np.asarray(w), "b": np.asarray(b)} for w, b in stacked]
    rows.append(
        (
            "the engine (dnijax.engine.run_grid)",
            lambda: engine.run_grid(
                cfg, hyper, keys, (x, labels), net=net, mesh=None, chunks=1
            ).final["loss"],
        )
    )
    table, previous = [], None
    for label, fn in rows:
        rate = n_runs * steps / best_time(fn, repeats)
        share = "" if previous is None else f"{100 * (previous / rate - 1):+.0f}%"
        table.append([label, f"{rate:,.0f}", f"{1e6 / rate:.1f}", share])
        previous = rate
    return table


HEADER = ["step", "run-steps/s", "µs per run-step", "time vs row above"]


def main() -> None:
    parser = options.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 runs, 50 steps (smoke test)")
    parser.add_argument("--repeats", type=common.positive(int), default=3)
    parser.add_argument("--runs", type=common.positive(int))
    parser.add_argument("--steps", type=common.positive(int))
    args = parser.parse_args()
    n_runs = args.runs or (16 if args.quick else 128)
    steps = args.steps or (50 if args.quick else 200)
    table = ablation(n_runs, steps, args.repeats)
    print(
        f"article-scale backprop, {n_runs} runs x {steps} steps, best of {args.repeats}, "
        f"{jax.devices()[0].device_kind} ({len(jax.devices())} device(s))\n"
    )
    print(markdown_table(HEADER, table))


if __name__ == "__main__":
    main()
