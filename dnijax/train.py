"""One run: its state, the jitted step, and ``lax.scan`` over steps with a history.

The compiled program depends only on a run's structure (:class:`~dnijax.config.Program`);
its numbers (learning rates, eta, gamma, update_prob, clip) arrive as a
:class:`~dnijax.config.Hyper` of arrays, so a new value does not recompile and
:mod:`dnijax.engine` can vmap over them. A step is: signals (the program's
signal rule) -> update (the group's update rule, :mod:`dnijax.updates`) -> the
finite guard: a step whose loss or new parameters are not finite is not applied,
the run is frozen there and ``diverged_at`` records the step (``docs/math.md``,
"Divergence"). The driver that runs these programs, one run
(:func:`dnijax.engine.run_one`) or a grid of them, is :mod:`dnijax.engine`.

Example:
  >>> import jax, numpy as np
  >>> from dnijax import RunConfig, train
  >>> x = np.random.RandomState(0).randn(64, 2).astype("float32")
  >>> labels = (x[:, 0] > 0).astype("int32")
  >>> cfg = RunConfig(regime="dni", widths=(2, 8, 1), lr=0.5, steps=200, log_every=50,
  ...                 reduction="mean")
  >>> program, hyper = cfg.program(), cfg.hyper()
  >>> data = train.make_data(cfg, x, labels)
  >>> state = train.init_state(program, hyper, jax.random.key(0))
  >>> state, history = jax.jit(train.run_records, static_argnums=(0, 4))(
  ...     program, hyper, state, data, 4)  # 4 records of 50 steps
  >>> bool(history["loss"][-1] < history["loss"][0])
  True
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dnijax import config as config_lib
from dnijax import nets, signals, synthetic, updates
from dnijax.config import Hyper, Program, RunConfig


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


class UpdateRules(NamedTuple):
    """The update rules of a run's two parameter groups."""

    net: optax.GradientTransformationExtraArgs
    sg: optax.GradientTransformationExtraArgs


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
                 noise_keys: tuple[jax.Array, jax.Array] | None = None) -> UpdateRules:
    """The network's and the SG modules' update rules (:func:`make_update_rules`) of a
    program.

    ``noise_keys`` seed the noise states at ``init``; afterwards the states carry
    their keys, so the rules a step uses need none.
    """
    frozen = None if program.train_hidden else [True] * (program.n_layers - 1) + [False]
    return make_update_rules(
        hyper, optimizer=program.optimizer, noise=program.noise,
        noise_to_sg=program.noise_to_sg, clip=program.clip, noise_keys=noise_keys,
        noise_before_clip=program.noise_before_clip, asynchronous=program.async_updates,
        frozen=frozen)


def make_update_rules(hyper: Any, *, optimizer: str, noise: str | None, noise_to_sg: bool,
                      clip: bool, noise_keys: tuple[jax.Array, jax.Array] | None = None,
                      noise_before_clip: bool = False, asynchronous: bool = False,
                      frozen: Sequence[bool] | None = None) -> UpdateRules:
    """Both groups' rules (:func:`dnijax.updates.update_rule`), for feed-forward and
    recurrent training alike.

    Args:
      hyper: the numbers, with fields ``lr``, ``sg_lr``, ``eta``, ``gamma``, ``clip``
        (a :class:`~dnijax.config.Hyper` or a recurrent run's ``SeqHyper``).
      optimizer: the optimiser of both groups.
      noise: the gradient noise (``None``, ``paper``, ``blog``) of the network's group;
        the SG modules' group gets it only with ``noise_to_sg``.
      clip: whether both groups clip at ``hyper.clip``.
      noise_keys: the keys of the two groups' noise states (network, SG modules).
      noise_before_clip, asynchronous: the order of noise and clipping, and the
        per-layer update mask (both groups).
      frozen: the network's layers that never update (the SG modules' rule has none).
    """
    keys = (None, None) if noise_keys is None else noise_keys

    def rule(lr, group_noise, key, frozen_layers):
        return updates.update_rule(
            optimizer=optimizer, learning_rate=lr, noise=group_noise, eta=hyper.eta,
            gamma=hyper.gamma, noise_key=key, clip=hyper.clip if clip else None,
            noise_before_clip=noise_before_clip, asynchronous=asynchronous,
            frozen=frozen_layers)

    return UpdateRules(rule(hyper.lr, noise, keys[0], frozen),
                       rule(hyper.sg_lr, noise if noise_to_sg else None, keys[1], None))


def init_state(program: Program, hyper: Hyper, key: jax.Array, *,
               net: nets.Params | None = None,
               sg: synthetic.SGParams | None = None) -> TrainState:
    """Initial state of a run. The same ``key`` gives the same network weights in
    every regime, so regimes compared under one key start from identical copies.

    Args:
      program: the run's structure (:meth:`RunConfig.program`).
      hyper: its numbers (:meth:`RunConfig.hyper`).
      key: PRNG key (split into network init, SG init, noise and batch/mask keys).
      net, sg: explicit initial parameters, replacing the drawn ones.
    """
    k_net, k_sg, k_noise_net, k_noise_sg, k_run = run_subkeys(key)
    dtype = program.jnp_dtype
    if net is None:
        net = nets.init_network(k_net, *program.net_init)
    if program.sg is None:
        sg = None
    elif sg is None:
        sg = synthetic.init_sg_modules(k_sg, nets.block_shapes(program.net), program.sg,
                                       program.widths[-1], program.init, program.init_scale,
                                       program.init_shift, dtype)
    rules = update_rules(program, hyper, (k_noise_net, k_noise_sg))
    return TrainState(net, sg, rules.net.init(net), rules.sg.init(sg) if has_params(sg) else (),
                      k_run, jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32))


def run_subkeys(key: jax.Array) -> jax.Array:
    """A run's key split into its network-init, SG-init, two noise and step keys."""
    return jax.random.split(key, 5)


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


def all_finite(tree: Any) -> jax.Array:
    """Whether every element of every leaf of ``tree`` is finite."""
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(tree)], bool))


def compute_signals(program: Program, state: TrainState, x: jax.Array,
                    y: jax.Array) -> signals.Signals:
    """The program's signal rule at ``state`` on the batch ``(x, y)``."""
    rule = signals.RULES[program.signal].fn
    return rule(state.net, state.sg, x, y, program.net, program.sg)


def train_step(program: Program, hyper: Hyper, state: TrainState, data: Data,
               rules: UpdateRules | None = None) -> tuple[TrainState, signals.Signals]:
    """One synchronous step: signals from the current parameters, then one update.

    ``rules`` are the run's :func:`update_rules` (built here if not given).
    """
    rules = update_rules(program, hyper) if rules is None else rules
    key, batch_key, mask_key = step_keys(state.key)
    x, y = data.x, data.y
    if program.batch_size is not None:
        idx = jax.random.permutation(batch_key, x.shape[0])[:program.batch_size]
        x, y = x[idx], y[idx]
    sig = compute_signals(program, state, x, y)
    extra = {}
    if program.async_updates:
        extra["layer_mask"] = layer_mask(mask_key, hyper.update_prob, len(state.net))
    net, sg, net_opt, sg_opt, diverged_at = guarded_update(
        rules, state.net, state.sg, state.net_opt, state.sg_opt, sig, state.diverged_at,
        state.step, extra)
    return TrainState(net, sg, net_opt, sg_opt, key, state.step + 1, diverged_at), sig


def guarded_update(rules: UpdateRules, net: Any, sg: Any, net_opt: Any, sg_opt: Any,
                   sig: Any, diverged_at: jax.Array, step: jax.Array,
                   extra: dict | None = None, active: jax.Array | None = None) -> tuple:
    """Both groups' update rules on the signals ``sig`` (``net_grads``, ``sg_grads``,
    ``loss``), behind the finite guard (``docs/math.md``, "Divergence"): a step whose loss
    or new parameters are not finite is not applied and ``diverged_at`` records ``step``;
    a diverged run stays frozen. With ``active`` (the recurrent windows), an inactive
    step keeps the parameters *and* the optimiser states. Returns the new
    ``(net, sg, net_opt, sg_opt, diverged_at)``."""
    net_upd, new_net_opt = rules.net.update(sig.net_grads, net_opt, net, **(extra or {}))
    new_net = optax.apply_updates(net, net_upd)
    ok = jnp.isfinite(sig.loss) & all_finite(new_net)
    new_sg, new_sg_opt = sg, sg_opt
    if has_params(sg):
        sg_upd, new_sg_opt = rules.sg.update(sig.sg_grads, sg_opt, sg, **(extra or {}))
        new_sg = optax.apply_updates(sg, sg_upd)
        ok = ok & all_finite(new_sg)
    healthy = diverged_at < 0 if active is None else (diverged_at < 0) & active
    live = ok & healthy
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(live, a, b), new, old)  # noqa
    diverged_at = jnp.where(healthy & ~ok, step, diverged_at)
    if active is not None:
        new_net_opt, new_sg_opt = keep(new_net_opt, net_opt), keep(new_sg_opt, sg_opt)
    return keep(new_net, net), keep(new_sg, sg), new_net_opt, new_sg_opt, diverged_at


def evaluate(net_spec: nets.NetSpec, net: nets.Params, data: Data
             ) -> tuple[jax.Array, jax.Array]:
    """Full-data loss and accuracy of a network."""
    out = nets.predict(net, data.x, net_spec)
    loss = nets.reduce_batch(nets.per_example_loss(out, data.y, net_spec.loss),
                             net_spec.reduction)
    return loss, nets.accuracy(out, data.labels, net_spec)


def run_records(program: Program, hyper: Hyper, state: TrainState, data: Data,
                num_records: int, test: Data | None = None, alignment: bool = False
                ) -> tuple[TrainState, dict[str, jax.Array]]:
    """Runs ``num_records * program.log_every`` steps with ``lax.scan``.

    Returns the final state and one history record per ``log_every`` steps, taken
    before those steps: ``loss``/``accuracy`` on the full data, ``sg_loss`` of the
    first of those steps, ``step``, ``diverged`` (whether the run was frozen),
    given ``test`` data ``test_accuracy``, and with ``alignment`` (for rules with SG
    modules) ``sg_alignment``: :func:`dnijax.signals.sg_alignment` on the full data.
    """
    rules = update_rules(program, hyper)

    def steps(carry, _):
        carry, sig = train_step(program, hyper, carry, data, rules)
        return carry, sig.sg_loss

    def record(carry, _):
        loss, acc = evaluate(program.net, carry.net, data)
        rec = {"step": carry.step, "loss": loss, "accuracy": acc,
               "diverged": carry.diverged_at >= 0}
        if test is not None:
            rec["test_accuracy"] = evaluate(program.net, carry.net, test)[1]
        if alignment and program.sg is not None:
            rec["sg_alignment"] = signals.sg_alignment(carry.net, carry.sg, data.x, data.y,
                                                       program.net, program.sg)
        carry, sg_losses = jax.lax.scan(steps, carry, None, length=program.log_every)
        rec["sg_loss"] = sg_losses[0]
        return carry, rec

    return jax.lax.scan(record, state, None, length=num_records)
