"""Holds the JAX implementation to the hand-derived numpy reference (``dnijax validate``).

This is the one library module that imports the package :mod:`dnijax.reference`
(besides the tests): it runs both on the same data, initial parameters, noise
realisation and update masks, and reports relative errors. The JAX side draws
the noise and the masks; the reference adds the same numbers (``docs/math.md``,
"Numerical agreement"). :func:`run_table` prints the table of ``dnijax validate``:
for each regime, topology and conditioning, on random data, the largest relative
error of every gradient after step 1 and of every parameter after N steps, in
float64 (held to the tolerances) and in float32 (reported only, so users see
the precision of their runs).

Relative error of two trees: the largest, over leaves, of
``||a - b||_F / ||b||_F`` (0 when both are exactly zero).

Examples:
  >>> import jax
  >>> from dnijax import RunConfig, validate
  >>> with jax.enable_x64(True):
  ...     cfg = RunConfig(regime="dni", widths=(3, 6, 6, 1), lr=0.1, dtype="float64",
  ...                     activations=("tanh", "relu", "sigmoid"), steps=5, reduction="mean")
  ...     errors = validate.compare(cfg, *validate.random_data(cfg, 8, 0), jax.random.key(0))
  >>> errors["grad"] < 1e-9 and errors["params"] < 1e-7
  True
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dnijax import bptt, copy_task, engine, feedback, noise, reference, signals, train, updates
from dnijax.config import REGIMES, Program, RunConfig

RULE_FAMILY = ("fa", "dfa", "fwdgrad")  # the rules beyond the article's, one row each

GRAD_TOL = 1e-9
PARAM_TOL = 1e-7


def to_numpy(tree: Any, dtype: Any = np.float64) -> Any:
    """A JAX tree as numpy arrays of ``dtype`` (``None`` entries kept)."""
    return jax.tree.map(lambda a: np.asarray(a, dtype), tree)


def rel_error(a: Any, b: Any) -> float:
    """``max over leaves ||a - b|| / ||b||`` (``b`` is the reference)."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        num, den = np.linalg.norm(x - y), np.linalg.norm(y)
        worst = max(worst, 0.0 if num == 0 else (float(num / den) if den > 0 else np.inf))
    return float(worst)


def random_data(config: RunConfig, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs and uniformly drawn labels that fit ``config``."""
    rng = np.random.RandomState(seed)
    n_classes = 2 if config.widths[-1] == 1 else config.widths[-1]
    return rng.randn(batch, config.widths[0]), rng.randint(0, n_classes, batch)


def reference_settings(config: RunConfig) -> dict[str, Any]:
    """The settings of :func:`reference.signals` for a config."""
    return dict(
        blocks=config.net_spec.blocks,
        loss=config.loss,
        reduction=config.reduction,
        topology=config.topology,
        conditioned=config.conditioned,
        sg_target=config.sg_target,
        sg_scale=config.sg_scale,
    )


def _noise_sequence(kind: str | None, eta, gamma, opt_state, params, steps: int):
    """The noise an update rule adds at each of ``steps`` steps (replayed from the noise
    state inside ``opt_state``), or ``None`` without noise."""
    if kind is None or not train.has_params(params):
        return None
    tx = noise.flat_gradient_noise(kind, eta, gamma, jax.random.key(0))  # the state has the key
    zeros = jax.tree.map(jnp.zeros_like, params)
    return jax.lax.scan(
        lambda s, _: tx.update(zeros, s)[::-1], updates.noise_state(opt_state), None, length=steps
    )[1]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _realised(program: Program, hyper, state: train.TrainState, template, steps: int):
    """Per-step noise added to the network's and SG modules' gradients, and update masks."""

    def noise_seq(opt_state, params, noisy):
        return _noise_sequence(
            program.noise if noisy else None, hyper.eta, hyper.gamma, opt_state, params, steps
        )

    def mask_step(key, _):
        key, _, mask_key = train.step_keys(key)
        return key, (
            train.layer_mask(mask_key, hyper.update_prob, len(template)),
            feedback.direction(train.direction_key(mask_key), template),
        )

    masks, directions = jax.lax.scan(mask_step, state.key, None, length=steps)[1]
    noisy = program.noise is not None
    return (
        noise_seq(state.net_opt, state.net, noisy),
        noise_seq(state.sg_opt, state.sg, noisy and program.noise_to_sg),
        masks,
        directions,
    )


def _per_step(tree: Any, steps: int) -> list | None:
    if tree is None:
        return None
    return [jax.tree.map(lambda a, t=t: a[t], tree) for t in range(steps)]


def compare(
    config: RunConfig, x: np.ndarray, labels: np.ndarray, key: jax.Array, steps: int | None = None
) -> dict[str, float]:
    """Runs JAX and the reference side by side from the same start.

    Args:
      config: the run; full batches, optimiser ``sgd``, ``momentum`` or ``adam``. Its
        dtype is the JAX side's; the reference always computes in float64.
      x: the inputs.
      labels: their integer classes.
      key: PRNG key for initial parameters, noise and masks.
      steps: trajectory length (default ``config.steps``).

    Returns:
      ``{"grad": ..., "params": ..., "loss": ..., "diverged": ...}``: relative errors
      of every gradient of the first step, of all parameters after ``steps`` steps,
      and of the first loss.
    """
    if config.optimizer not in reference.OPTIMIZERS or config.batch_size is not None:
        raise ValueError(
            f"validate: the reference implements full-batch {', '.join(reference.OPTIMIZERS)} only"
        )
    steps = config.steps if steps is None else steps
    config = config.replace(steps=steps, log_every=steps)
    data = train.make_data(config, x, labels)
    program, hyper = config.program(), config.hyper()
    state = train.init_state(program, hyper, key)

    sig = jax.jit(train.compute_signals, static_argnums=0)(program, state, data.x, data.y)
    x64, y64 = np.asarray(data.x, np.float64), np.asarray(data.y, np.float64)
    net0, sg0 = to_numpy(state.net), to_numpy(state.sg)
    net_noise, sg_noise, masks, directions = _realised(program, hyper, state, state.net, steps)
    rule = signals.RULES[config.signal]
    fixed = to_numpy(state.feedback) if rule.init_feedback is not None else None
    directions = _per_step(to_numpy(directions), steps) if rule.stochastic else None
    settings = reference_settings(config)
    info = reference.signals(
        config.signal,
        net0,
        sg0,
        x64,
        y64,
        feedback=fixed,
        direction=directions[0] if directions else None,
        **settings,
    )
    grad_err = rel_error(sig.net_grads, info["net_grads"])
    if config.uses_sg:
        grad_err = max(grad_err, rel_error(sig.sg_grads, info["sg_grads"]))

    final, hist = engine.run_one(config, x, labels, key)
    ref_net, ref_sg, ref_losses = reference.trajectory(
        config.signal,
        net0,
        sg0,
        x64,
        y64,
        steps,
        lr=config.lr,
        sg_lr=config.sg_lr,
        lr_decay_steps=config.lr_decay_steps,
        lr_decay=config.lr_decay,
        optimizer=config.optimizer,
        clip=config.clip,
        noise_before_clip=config.noise_before_clip,
        net_noises=_per_step(to_numpy(net_noise), steps),
        sg_noises=_per_step(to_numpy(sg_noise), steps),
        masks=np.asarray(masks) if program.async_updates else None,
        feedback=fixed,
        directions=directions,
        **settings,
    )
    param_err = rel_error(final.net, ref_net)
    if config.uses_sg:
        param_err = max(param_err, rel_error(final.sg, ref_sg))
    loss_err = rel_error(np.asarray(hist["loss"][:1]), np.asarray(ref_losses[:1]))
    return {
        "grad": grad_err,
        "params": param_err,
        "loss": loss_err,
        "diverged": bool(final.diverged_at >= 0),
    }


HIDDEN_ACTS = ("tanh", "sigmoid", "relu")


def cases(depth: int, width: int, steps: int, dtype: str):
    """(regime, topology, conditioned, update, config) for every row of the table: every
    regime, topology and conditioning with SGD, then asynchronous Adam and momentum, and
    noise to the network only."""
    widths = (3,) + (width,) * (depth - 1) + (2,)
    acts = tuple(HIDDEN_ACTS[i % 3] for i in range(depth - 1)) + ("identity",)
    base: dict[str, Any] = dict(
        widths=widths,
        activations=acts,
        loss="xent",
        reduction="mean",
        init="glorot",
        lr=0.05,
        sg_lr=0.02,
        eta=0.01,
        noise="paper",
        sg_init="network",
        dtype=dtype,
        steps=steps,
    )
    for regime in REGIMES:
        uses_sg = RunConfig(regime=regime).uses_sg
        variants = (
            itertools.product(("paper", "seed"), (False, True)) if uses_sg else [("-", False)]
        )
        for topology, conditioned in variants:
            yield (
                regime,
                topology,
                conditioned,
                "sgd",
                RunConfig(
                    regime=regime,
                    topology="paper" if topology == "-" else topology,
                    conditioned=conditioned,
                    **base,
                ),
            )
    extra: list[tuple[str, str, dict[str, Any]]] = [
        ("dni", "adam p=0.5", dict(optimizer="adam", lr=0.01, sg_lr=0.005, update_prob=0.5)),
        ("dni+noise", "momentum p=0.5", dict(optimizer="momentum", update_prob=0.5)),
        ("dni+noise", "sgd, noise net", dict(noise_to="network")),
        ("dni", "adam, sg batch", dict(optimizer="adam", lr=0.01, sg_lr=0.005, sg_target="batch")),
    ]
    for regime, label, fields in extra:
        yield (
            regime,
            "paper",
            True,
            label,
            RunConfig(regime=regime, conditioned=True, **{**base, **fields}),
        )
    yield from family_cases(base, "sgd")
    family_extra: list[tuple[str, str, dict[str, Any]]] = [
        ("fa+noise", "momentum p=0.5", dict(optimizer="momentum", update_prob=0.5)),
        ("dfa", "adam, sum", dict(optimizer="adam", lr=0.01, reduction="sum")),
        ("fwdgrad+noise", "adam, clip 1", dict(optimizer="adam", lr=0.01, clip=1.0)),
    ]
    for regime, label, fields in family_extra:
        yield regime, "-", False, label, RunConfig(regime=regime, **{**base, **fields})


def family_cases(base: dict, label: str):
    """The rows of :data:`RULE_FAMILY`, without and with noise, on ``base``."""
    for rule in RULE_FAMILY:
        for regime in (rule, rule + "+noise"):
            yield regime, "-", False, label, RunConfig(regime=regime, **base)


def _conv(*items: tuple) -> tuple[dict, ...]:
    return tuple({"kind": kind, **options} for kind, options in items)


# Two small conv nets on 16 inputs seen as 4x4x1 images. With pooling, the blocks output
# an image (2, 2, 3), a vector (4,) and the logits; without, an image (4, 4, 3), a vector
# (8,) (a strided conv, then flatten) and the logits.
CONV_NETS = {
    "pool": _conv(
        ("reshape", {"shape": [4, 4, 1]}),
        ("conv2d", {"features": 3, "kernel": 3}),
        ("tanh", {}),
        ("max_pool", {"window": 2}),
        ("conv2d", {"features": 4, "kernel": 2}),
        ("relu", {}),
        ("avg_pool", {"window": 2}),
        ("flatten", {}),
        ("dense", {"features": 3}),
    ),
    "no pool": _conv(
        ("reshape", {"shape": [4, 4, 1]}),
        ("conv2d", {"features": 3, "kernel": 3}),
        ("sigmoid", {}),
        ("conv2d", {"features": 2, "kernel": 2, "stride": 2}),
        ("relu", {}),
        ("flatten", {}),
        ("dense", {"features": 3}),
    ),
}


def conv_cases(steps: int, dtype: str):
    """(regime, topology, conditioned, net, config) for ``dnijax validate --arch conv``:
    every regime, topology and conditioning on both :data:`CONV_NETS`, then asynchronous
    Adam with noise on the network only."""
    base: dict[str, Any] = dict(
        widths=(16,),
        loss="xent",
        reduction="mean",
        init="glorot",
        lr=0.01,
        sg_lr=0.01,
        eta=0.01,
        noise="paper",
        sg_init="network",
        sg_kernel=3,
        dtype=dtype,
        steps=steps,
    )
    for net, layer_list in CONV_NETS.items():
        for regime in REGIMES:
            uses_sg = RunConfig(regime=regime).uses_sg
            variants = (
                itertools.product(("paper", "seed"), (False, True)) if uses_sg else [("-", False)]
            )
            for topology, conditioned in variants:
                yield (
                    regime,
                    topology,
                    conditioned,
                    net,
                    RunConfig(
                        regime=regime,
                        topology="paper" if topology == "-" else topology,
                        conditioned=conditioned,
                        layers=layer_list,
                        **base,
                    ),
                )
    yield (
        "dni+noise",
        "seed",
        True,
        "pool, adam p=0.5",
        RunConfig(
            regime="dni+noise",
            topology="seed",
            conditioned=True,
            layers=CONV_NETS["pool"],
            optimizer="adam",
            update_prob=0.5,
            noise_to="network",
            **base,
        ),
    )
    yield (
        "dni",
        "paper",
        False,
        "pool, sg batch",
        RunConfig(
            regime="dni", layers=CONV_NETS["pool"], optimizer="adam", sg_target="batch", **base
        ),
    )
    for net, layer_list in CONV_NETS.items():
        yield from family_cases(dict(base, layers=layer_list), net)


RNN_BASE: dict[str, Any] = dict(
    task="copy",
    core="rnn",
    hidden=5,
    window=3,
    max_length=4,
    lr=0.1,
    sg_lr=0.05,
    eta=0.01,
    optimizer="sgd",
    loss="bce",
    reduction="mean",
)


def rnn_cases(dtype: str):
    """(regime, "-", False, update, config) for ``dnijax validate --arch rnn``: truncated
    BPTT and DNI on a tanh RNN, without and with noise, then Adam, and momentum with
    clipping and noise on the network only."""
    for regime in REGIMES:
        yield regime, "-", False, "sgd", RunConfig(regime=regime, dtype=dtype, **RNN_BASE)
    extra: list[tuple[str, str, dict[str, Any]]] = [
        ("dni", "adam", dict(optimizer="adam", lr=0.01, sg_lr=0.005)),
        ("dni+noise", "momentum, clip 1", dict(optimizer="momentum", clip=1.0, noise_to="network")),
        ("dni", "sgd, mse", dict(loss="mse")),
        ("dni", "adam, sg batch", dict(optimizer="adam", lr=0.01, sg_lr=0.005, sg_target="batch")),
        ("dni", "sgd, sg x0.1", dict(sg_scale=0.1)),
        ("dni", "adam, lr decay", dict(optimizer="adam", lr=0.01, lr_decay_steps=(1, 3))),
    ]
    for regime, label, fields in extra:
        yield (
            regime,
            "-",
            False,
            label,
            RunConfig(regime=regime, dtype=dtype, **{**RNN_BASE, **fields}),
        )


def random_sequences(
    config: RunConfig, batch: int, windows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs and random 0/1 targets: ``windows`` windows of ``config.window``."""
    if config.task is None:
        raise ValueError("random_sequences: give a sequence task's config (task set)")
    rng = np.random.RandomState(seed)
    steps = windows * config.window
    return (
        rng.randn(batch, steps, copy_task.n_inputs(config.task)),
        rng.randint(0, 2, (batch, steps, copy_task.n_outputs(config.task))).astype(float),
    )


def compare_rnn(
    config: RunConfig, x: np.ndarray, y: np.ndarray, key: jax.Array
) -> dict[str, float]:
    """Runs :func:`dnijax.bptt.train_windows` and ``reference.rnn.trajectory`` over the
    windows of ``(x, y)`` from the same start and noise; relative errors as in
    :func:`compare` (the first window's gradients, then the parameters at the end)."""
    dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
    program, hyper = config.program(), config.hyper()
    state = bptt.init_state(program, hyper, key)
    xj, yj = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
    s0 = jnp.zeros((x.shape[0], config.hidden), dtype)
    t, windows = config.window, x.shape[1] // config.window
    sig = signals.window_signals(
        config.signal,
        state.net,
        state.sg,
        s0,
        xj[:, :t],
        yj[:, :t],
        config.loss,
        "mean",
        core="rnn",
        sg_target=config.sg_target,
        sg_scale=config.sg_scale,
    )
    net0, sg0 = to_numpy(state.net), to_numpy(state.sg)
    x64, y64 = np.asarray(xj, np.float64), np.asarray(yj, np.float64)
    want = reference.rnn.window_signals(
        config.signal,
        net0,
        sg0,
        np.zeros(s0.shape),
        x64[:, :t],
        y64[:, :t],
        loss=config.loss,
        reduction="mean",
        sg_target=config.sg_target,
        sg_scale=config.sg_scale,
    )
    grad_err = rel_error(sig.net_grads, want["net_grads"])
    if config.signal == "dni":
        grad_err = max(grad_err, rel_error(sig.sg_grads, want["sg_grads"]))
    kind = config.noise if config.regime.endswith("+noise") else None
    net_noise = _noise_sequence(kind, hyper.eta, hyper.gamma, state.net_opt, state.net, windows)
    sg_noise = _noise_sequence(
        kind if config.noise_to == "all" else None,
        hyper.eta,
        hyper.gamma,
        state.sg_opt,
        state.sg,
        windows,
    )
    final, losses, _ = jax.jit(bptt.train_windows, static_argnums=0)(program, hyper, state, xj, yj)
    ref_net, ref_sg, ref_losses = reference.rnn.trajectory(
        config.signal,
        net0,
        sg0,
        x64,
        y64,
        t,
        loss=config.loss,
        reduction="mean",
        lr=config.lr,
        sg_lr=config.sg_lr,
        lr_decay_steps=config.lr_decay_steps,
        lr_decay=config.lr_decay,
        optimizer=config.optimizer,
        clip=config.clip,
        net_noises=_per_step(to_numpy(net_noise), windows),
        sg_noises=_per_step(to_numpy(sg_noise), windows),
        sg_target=config.sg_target,
        sg_scale=config.sg_scale,
    )
    param_err = rel_error(final.net, ref_net)
    if config.signal == "dni":
        param_err = max(param_err, rel_error(final.sg, ref_sg))
    return {
        "grad": grad_err,
        "params": param_err,
        "loss": rel_error(np.asarray(losses[:1]), np.asarray(ref_losses[:1])),
        "diverged": bool(final.diverged_at >= 0),
    }


def _print_row(regime: str, topology: str, cond: bool, update: str, e64: dict, e32: dict) -> bool:
    """Prints one row of the table; returns whether the float64 row failed."""
    ok = e64["grad"] <= GRAD_TOL and e64["params"] <= PARAM_TOL
    print(
        f"{regime:15s} {topology:8s} {'yes' if cond else 'no':5s} {update:16s} "
        f"{e64['grad']:9.1e} {e64['params']:10.1e} {e32['grad']:9.1e} "
        f"{e32['params']:10.1e}  {'ok' if ok else 'FAIL'}",
        flush=True,
    )
    return not ok


def run_table(depth: int, width: int, steps: int, seed: int, arch: str = "mlp") -> int:
    """Prints the table of ``arch`` (``mlp``: :func:`cases`; ``conv``: :func:`conv_cases`);
    returns 0 if every float64 row is within tolerance, else 1."""
    shape = {
        "mlp": f"depth {depth}, width {width}",
        "conv": "the conv nets",
        "rnn": "a tanh RNN of 5 units, windows of 3",
    }[arch]
    steps = max(1, steps // RNN_BASE["window"]) * RNN_BASE["window"] if arch == "rnn" else steps
    started = time.time()
    print(
        f"dnijax validate --arch {arch}: {shape}, {steps} steps, seed {seed}; "
        f"tolerances: gradients {GRAD_TOL:g}, parameters {PARAM_TOL:g} (float64)"
    )
    print(
        "Each row compiles its own programs and prints when it is done; the first run takes "
        "about two minutes on 2 cores, reruns load the programs from the compilation "
        "cache.\n",
        flush=True,
    )
    column = "network" if arch == "conv" else "update"
    header = (
        f"{'regime':15s} {'topology':8s} {'cond':5s} {column:16s} {'f64 grad':>9s} "
        f"{'f64 params':>10s} {'f32 grad':>9s} {'f32 params':>10s}  verdict"
    )
    print(header)
    print("-" * len(header))
    failures = 0
    rows = {
        "mlp": lambda: cases(depth, width, steps, "float64"),
        "conv": lambda: conv_cases(steps, "float64"),
        "rnn": lambda: rnn_cases("float64"),
    }[arch]()
    for regime, topology, cond, update, cfg64 in rows:
        if arch == "rnn":
            x, y = random_sequences(cfg64, 8, steps // cfg64.window, seed)
            with jax.enable_x64(True):
                e64 = compare_rnn(cfg64, x, y, jax.random.key(seed))
            e32 = compare_rnn(cfg64.replace(dtype="float32"), x, y, jax.random.key(seed))
            failures += _print_row(regime, topology, cond, update, e64, e32)
            continue
        x, labels = random_data(cfg64, 16, seed)
        with jax.enable_x64(True):
            e64 = compare(cfg64, x, labels, jax.random.key(seed))
        e32 = compare(cfg64.replace(dtype="float32"), x, labels, jax.random.key(seed))
        failures += _print_row(regime, topology, cond, update, e64, e32)
    verdict = "all rows within tolerance" if not failures else f"{failures} row(s) FAILED"
    print(f"\n{verdict} ({time.time() - started:.0f} s)")
    return 0 if not failures else 1
