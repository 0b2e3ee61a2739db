"""One run: state, the jitted step, and ``lax.scan`` over steps with a history.

The compiled program depends only on a run's structure (:class:`Program`); its
numbers (learning rates, eta, gamma, update_prob) arrive as a :class:`Hyper` of
arrays, so a new value does not recompile and :mod:`dnijax.sweep` can vmap over
them. A step whose loss or new parameters are not finite is not applied: the
run is frozen there and ``diverged_at`` records the step.

Example:
  >>> import jax, numpy as np
  >>> from dnijax import RunConfig, train
  >>> x = np.random.RandomState(0).randn(64, 2).astype("float32")
  >>> labels = (x[:, 0] > 0).astype("int32")
  >>> cfg = RunConfig(regime="dni", widths=(2, 8, 1), lr=0.5, steps=200, reduction="mean")
  >>> state, history = train.train(cfg, x, labels, jax.random.key(0))
  >>> bool(history["loss"][-1] < history["loss"][0])
  True
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dnijax import config as config_lib
from dnijax import nets, noise, regimes, synthetic
from dnijax.config import Hyper, RunConfig


class Program(NamedTuple):
    """The static structure of a run: everything that changes the compiled code."""

    net: nets.NetSpec
    sg: synthetic.SGSpec | None
    noise: str | None
    optimizer: str
    clip: bool
    batch_size: int | None
    async_updates: bool
    log_every: int
    train_hidden: bool = True


class Data(NamedTuple):
    """Training data on device: inputs, encoded targets and integer labels."""

    x: jax.Array
    y: jax.Array
    labels: jax.Array


class TrainState(NamedTuple):
    """Everything that changes during a run."""

    net: nets.Params
    sg: synthetic.SGParams | None
    net_opt: optax.OptState
    sg_opt: optax.OptState
    key: jax.Array
    step: jax.Array
    diverged_at: jax.Array


def program_of(config: RunConfig, *, noise_kind: str | None | bool = False) -> Program:
    """The :class:`Program` of a config (``noise_kind`` overrides its noise if given)."""
    kind = (config.noise if config.has_noise else None) if noise_kind is False else noise_kind
    return Program(config.net_spec, config.sg_spec if config.is_dni else None, kind,
                   config.optimizer, config.clip is not None, config.batch_size,
                   config.update_prob < 1, config.log_every, config.train_hidden)


def make_data(config: RunConfig, x: Any, labels: Any, per_run: bool = False) -> Data:
    """Checks ``x`` and ``labels`` against ``config`` and puts them on device.

    With ``per_run``, ``x`` (R, N, d) and ``labels`` (R, N) hold one data set per run.
    """
    x = np.asarray(x)
    labels = np.asarray(labels)
    for xr, lr in (zip(x, labels) if per_run else [(x, labels)]):
        config_lib.check_data(config, xr, lr)
    labels = jnp.asarray(labels.astype(np.int32))
    return Data(jnp.asarray(x, config.jnp_dtype),
                nets.encode_targets(labels, config.widths[-1], config.jnp_dtype), labels)


def update_rules(program: Program, hyper: Hyper,
                 keys: tuple[jax.Array, jax.Array] | None = None
                 ) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """The network's and the SG modules' update rules (noise keys matter at init only)."""
    if keys is None:
        keys = (jax.random.key(0), jax.random.key(0))

    def rule(lr, key):
        return noise.update_rule(noise.optimizer(program.optimizer, lr), noise=program.noise,
                                 eta=hyper.eta, gamma=hyper.gamma, key=key,
                                 clip=hyper.clip if program.clip else None)

    return rule(hyper.lr, keys[0]), rule(hyper.sg_lr, keys[1])


def init_state(config: RunConfig, key: jax.Array, hyper: Hyper | None = None, *,
               program: Program | None = None, net: nets.Params | None = None,
               sg: synthetic.SGParams | None = None) -> TrainState:
    """Initial state of a run. The same ``key`` gives the same network weights in
    every regime, so regimes compared under one key start from identical copies.

    Args:
      config: the run.
      key: PRNG key (split into network init, SG init, noise and batch/mask keys).
      hyper: numeric hyperparameters (default: ``config.hyper()``).
      program: the structure (default: ``program_of(config)``).
      net, sg: explicit initial parameters, replacing the drawn ones.
    """
    hyper = config.hyper() if hyper is None else hyper
    program = program_of(config) if program is None else program
    k_net, k_sg, k_noise_net, k_noise_sg, k_run = jax.random.split(key, 5)
    dtype = config.jnp_dtype
    if net is None:
        net = nets.init_network(k_net, config.widths, config.init, config.init_scale,
                                config.init_shift, config.bias, dtype)
    if program.sg is not None and sg is None:
        sg = synthetic.init_sg_modules(k_sg, config.widths, program.sg, config.widths[-1],
                                       config.init, config.init_scale, config.init_shift,
                                       dtype)
    if program.sg is None:
        sg = None
    net_tx, sg_tx = update_rules(program, hyper, (k_noise_net, k_noise_sg))
    return TrainState(net, sg, net_tx.init(net), sg_tx.init(sg) if has_params(sg) else (),
                      k_run, jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32))


def has_params(tree: Any) -> bool:
    """Whether a parameter tree holds any array (a depth-1 paper-topology net has no SG)."""
    return tree is not None and len(jax.tree.leaves(tree)) > 0


def step_keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Splits a run's key into (next key, minibatch key, update-mask key)."""
    next_key, batch_key, mask_key = jax.random.split(key, 3)
    return next_key, batch_key, mask_key


def layer_mask(mask_key: jax.Array, update_prob: jax.Array, n_layers: int) -> jax.Array:
    """Independent Bernoulli(update_prob) flags, one per layer: who updates this step."""
    return jax.random.bernoulli(mask_key, update_prob, (n_layers,))


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(tree)], bool))


def _mask_layers(updates: list, mask: jax.Array) -> list:
    return [None if u is None else jax.tree.map(lambda a: a * mask[i].astype(a.dtype), u)
            for i, u in enumerate(updates)]


def signals(program: Program, state: TrainState, x: jax.Array,
            y: jax.Array) -> regimes.Signals:
    """The regime's signals at ``state`` on the batch ``(x, y)``."""
    if program.sg is None:
        return regimes.backprop_signals(state.net, x, y, program.net)
    return regimes.dni_signals(state.net, state.sg, x, y, program.net, program.sg)


def train_step(program: Program, hyper: Hyper, state: TrainState,
               data: Data) -> tuple[TrainState, regimes.Signals]:
    """One synchronous step: signals from the current parameters, then one update."""
    key, batch_key, mask_key = step_keys(state.key)
    x, y = data.x, data.y
    if program.batch_size is not None:
        idx = jax.random.permutation(batch_key, x.shape[0])[:program.batch_size]
        x, y = x[idx], y[idx]
    sig = signals(program, state, x, y)
    net_tx, sg_tx = update_rules(program, hyper)
    net_upd, net_opt = net_tx.update(sig.net_grads, state.net_opt, state.net)
    sg_upd, sg_opt = (sg_tx.update(sig.sg_grads, state.sg_opt, state.sg)
                      if has_params(state.sg) else (None, state.sg_opt))
    if program.async_updates:
        mask = layer_mask(mask_key, hyper.update_prob, len(state.net))
        net_upd = _mask_layers(net_upd, mask)
        sg_upd = _mask_layers(sg_upd, mask) if sg_upd is not None else None
    if not program.train_hidden:  # only the output layer learns
        net_upd = [jax.tree.map(jnp.zeros_like, u) for u in net_upd[:-1]] + net_upd[-1:]
    new_net = optax.apply_updates(state.net, net_upd)
    new_sg = optax.apply_updates(state.sg, sg_upd) if sg_upd is not None else state.sg
    ok = jnp.isfinite(sig.loss) & _all_finite(new_net)
    if sg_upd is not None:
        ok = ok & _all_finite(new_sg)
    live = ok & (state.diverged_at < 0)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(live, a, b), new, old)  # noqa
    diverged_at = jnp.where((state.diverged_at < 0) & ~ok, state.step, state.diverged_at)
    new_state = TrainState(keep(new_net, state.net), keep(new_sg, state.sg), net_opt, sg_opt,
                           key, state.step + 1, diverged_at)
    return new_state, sig


def evaluate(program: Program, net: nets.Params, data: Data) -> tuple[jax.Array, jax.Array]:
    """Full-data loss and accuracy of a network."""
    out = nets.predict(net, data.x, program.net)
    loss = nets.reduce_batch(nets.per_example_loss(out, data.y, program.net.loss),
                             program.net.reduction)
    return loss, nets.accuracy(out, data.labels, program.net)


def run_records(program: Program, hyper: Hyper, state: TrainState, data: Data,
                num_records: int, test: Data | None = None
                ) -> tuple[TrainState, dict[str, jax.Array]]:
    """Runs ``num_records * program.log_every`` steps with ``lax.scan``.

    Returns the final state and one history record per ``log_every`` steps, taken
    before those steps: ``loss``/``accuracy`` on the full data, ``sg_loss`` of the
    first of those steps, ``step``, ``diverged`` (whether the run was frozen) and,
    given ``test`` data, ``test_accuracy``.
    """

    def steps(carry, _):
        carry, sig = train_step(program, hyper, carry, data)
        return carry, sig.sg_loss

    def record(carry, _):
        loss, acc = evaluate(program, carry.net, data)
        rec = {"step": carry.step, "loss": loss, "accuracy": acc,
               "diverged": carry.diverged_at >= 0}
        if test is not None:
            rec["test_accuracy"] = evaluate(program, carry.net, test)[1]
        carry, sg_losses = jax.lax.scan(steps, carry, None, length=program.log_every)
        rec["sg_loss"] = sg_losses[0]
        return carry, rec

    return jax.lax.scan(record, state, None, length=num_records)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _run_records_jit(program, hyper, state, data, num_records):
    return run_records(program, hyper, state, data, num_records)


@functools.partial(jax.jit, static_argnums=(0,))
def _final_jit(program, state, data):
    return evaluate(program, state.net, data)


def train(config: RunConfig, x: Any, labels: Any, key: jax.Array, *,
          net: nets.Params | None = None, sg: synthetic.SGParams | None = None
          ) -> tuple[TrainState, dict[str, np.ndarray]]:
    """Trains one run of ``config`` on ``(x, labels)``.

    Args:
      config: the run.
      x: inputs (N, widths[0]); labels: integer classes (N,).
      key: PRNG key.
      net, sg: optional initial parameters.

    Returns:
      The final :class:`TrainState` and a history of numpy arrays with records at
      steps ``0, log_every, ..., steps`` (``sg_loss`` has no record at ``steps``).
    """
    data = make_data(config, x, labels)
    program = program_of(config)
    state = init_state(config, key, program=program, net=net, sg=sg)
    state, hist = _run_records_jit(program, config.hyper(), state, data,
                                   config.steps // config.log_every)
    loss, acc = _final_jit(program, state, data)
    history = {k: np.asarray(v) for k, v in hist.items()}
    history["step"] = np.append(history["step"], int(state.step))
    history["loss"] = np.append(history["loss"], np.asarray(loss))
    history["accuracy"] = np.append(history["accuracy"], np.asarray(acc))
    history["diverged"] = np.append(history["diverged"], bool(state.diverged_at >= 0))
    return state, history
