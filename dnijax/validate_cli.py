"""``dnijax validate``: the JAX implementation beside the numpy reference, as a table.

For each regime, topology and conditioning, on random data: the largest relative
error of every gradient after step 1, and of every parameter after N steps, in
float64 (held to SPEC.md's tolerances) and in float32 (reported only, so users
see the precision of their runs). Exit code 0 only if every float64 row passes.
"""

from __future__ import annotations

import itertools

import jax

from dnijax import validate
from dnijax.config import REGIMES, RunConfig

HIDDEN_ACTS = ("tanh", "sigmoid", "relu")


def cases(depth: int, width: int, steps: int, dtype: str):
    """(regime, topology, conditioned, config) for every row of the table."""
    widths = (3,) + (width,) * (depth - 1) + (2,)
    acts = tuple(HIDDEN_ACTS[i % 3] for i in range(depth - 1)) + ("identity",)
    for regime in REGIMES:
        dni = regime.startswith("dni")
        variants = itertools.product(("paper", "seed"), (False, True)) if dni else [
            ("-", False)]
        for topology, conditioned in variants:
            yield regime, topology, conditioned, RunConfig(
                regime=regime, widths=widths, activations=acts, loss="xent", reduction="mean",
                init="glorot", lr=0.05, sg_lr=0.02, eta=0.01, noise="paper",
                topology="paper" if topology == "-" else topology, conditioned=conditioned,
                sg_init="network", dtype=dtype, steps=steps)


def run(depth: int, width: int, steps: int, seed: int) -> int:
    """Prints the table; returns 0 if every float64 row is within tolerance, else 1."""
    print(f"dnijax validate: depth {depth}, width {width}, {steps} SGD steps, seed {seed}; "
          f"tolerances: gradients {validate.GRAD_TOL:g}, parameters {validate.PARAM_TOL:g} "
          "(float64)\n")
    header = (f"{'regime':15s} {'topology':8s} {'cond':5s} {'f64 grad':>9s} {'f64 params':>10s}"
              f" {'f32 grad':>9s} {'f32 params':>10s}  verdict")
    print(header)
    print("-" * len(header))
    failures = 0
    for regime, topology, cond, cfg64 in cases(depth, width, steps, "float64"):
        x, labels = validate.random_data(cfg64, 16, seed)
        with jax.enable_x64(True):
            e64 = validate.compare(cfg64, x, labels, jax.random.key(seed))
        e32 = validate.compare(cfg64.replace(dtype="float32"), x, labels, jax.random.key(seed))
        ok = e64["grad"] <= validate.GRAD_TOL and e64["params"] <= validate.PARAM_TOL
        failures += not ok
        print(f"{regime:15s} {topology:8s} {'yes' if cond else 'no':5s} {e64['grad']:9.1e} "
              f"{e64['params']:10.1e} {e32['grad']:9.1e} {e32['params']:10.1e}  "
              f"{'ok' if ok else 'FAIL'}")
    print(f"\n{'all rows within tolerance' if not failures else f'{failures} row(s) FAILED'}")
    return 0 if not failures else 1
