"""The feed-forward network kind: a run's state, its step and its evaluation.

The compiled program depends only on a run's structure (:class:`~dnijax.config.Program`);
its numbers (learning rates, eta, gamma, update_prob, clip) arrive as a
:class:`~dnijax.config.Hyper` of arrays, so a new value does not recompile and
:mod:`dnijax.engine` can vmap over them. A step is: signals (the program's
signal rule) -> update (the group's update rule, :mod:`dnijax.updates`) -> the
finite guard: a step whose loss or new parameters are not finite is not applied,
the run is frozen there and ``diverged_at`` records the step (``docs/math.md``,
"Divergence"). These functions are the ``feedforward`` :class:`~dnijax.kinds.Kind`;
:func:`dnijax.kinds.run_records` scans them with a history, and :mod:`dnijax.engine`
runs one run (:func:`dnijax.engine.run_one`) or a grid of them. The state, the update
rules and the finite guard are shared with the recurrent kind (:mod:`dnijax.bptt`).

Examples:
  >>> import jax, numpy as np
  >>> from dnijax import RunConfig, kinds, train
  >>> x = np.random.RandomState(0).randn(64, 2).astype("float32")
  >>> labels = (x[:, 0] > 0).astype("int32")
  >>> cfg = RunConfig(regime="dni", widths=(2, 8, 1), lr=0.5, steps=200, log_every=50,
  ...                 reduction="mean")
  >>> program, hyper = cfg.program(), cfg.hyper()
  >>> data = train.make_data(cfg, x, labels)
  >>> state = train.init_state(program, hyper, jax.random.key(0))
  >>> state, history = jax.jit(kinds.run_records, static_argnums=(0, 4))(
  ...     program, hyper, state, data, 4)  # 4 records of 50 steps
  >>> bool(history["loss"][-1] < history["loss"][0])
  True
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dnijax import config as config_lib
from dnijax import layers, nets, signals, synthetic, updates
from dnijax.config import Hyper, Program, RunConfig


class Data(NamedTuple):
    """Training data on device: inputs, encoded targets and integer labels."""

    x: jax.Array
    y: jax.Array
    labels: jax.Array


class TrainState(NamedTuple):
    """Everything that changes during a run, of every network kind.

    Attributes:
      net, sg: the network's and the SG modules' parameters (``sg`` ``None`` without).
      net_opt, sg_opt: their update rules' states.
      key: the run's PRNG key; step: the steps done (recurrent: episodes), the unit of
        ``diverged_at``;
      diverged_at: the step the run diverged at, -1 if it did not.
      task_state: what the task keeps between steps (the copy tasks' curriculum,
        :class:`dnijax.bptt.Curriculum`; ``()`` for data sets).
      feedback: the signal rule's fixed matrices (``fa``, ``dfa``:
        :attr:`dnijax.signals.SignalRule.init_feedback`), drawn at init, never updated;
        ``()`` for rules without.
    """

    net: Any
    sg: Any
    net_opt: optax.OptState
    sg_opt: optax.OptState
    key: jax.Array
    step: jax.Array
    diverged_at: jax.Array
    task_state: Any = ()
    feedback: Any = ()


class UpdateRules(NamedTuple):
    """The update rules of a run's two parameter groups."""

    net: optax.GradientTransformationExtraArgs
    sg: optax.GradientTransformationExtraArgs


def data_for(config: RunConfig, data: Any, per_run: bool = False) -> Data:
    """The kind's ``make_data``: :func:`make_data` of the engine's ``(x, labels)``."""
    if data is None:
        raise ValueError("data: a feed-forward run needs (x, labels)")
    x, labels = data
    return make_data(config, x, labels, per_run=per_run)


def make_data(config: RunConfig, x: Any, labels: Any, per_run: bool = False) -> Data:
    """Checks ``x`` and ``labels`` against ``config`` and puts them on device.

    With ``per_run``, ``x`` (R, N, d) and ``labels`` (R, N) hold one data set per run.
    """
    x = np.asarray(x)
    labels = np.asarray(labels)
    for xr, lr in zip(x, labels, strict=True) if per_run else [(x, labels)]:
        config_lib.check_data(config, xr, lr)
    labels = jnp.asarray(labels.astype(np.int32))
    return Data(
        jnp.asarray(x, config.jnp_dtype),
        nets.encode_targets(labels, config.widths[-1], config.jnp_dtype),
        labels,
    )


def update_rules(
    program: Program, hyper: Hyper, noise_keys: tuple[jax.Array, jax.Array] | None = None
) -> UpdateRules:
    """The network's and the SG modules' update rules (:func:`dnijax.updates.update_rule`)
    of a program, for every network kind: the program's optimiser for both groups; its
    gradient noise for the network's group, and for the SG modules' only with
    ``program.noise_to_sg``; clipping at ``hyper.clip`` when ``program.clip``; the order of
    noise and clipping and the per-layer update mask of both groups; the frozen hidden
    layers (``train_hidden=False``) of the network's group.

    ``noise_keys`` seed the two groups' noise states (network, SG modules) at ``init``;
    afterwards the states carry their keys, so the rules a step uses need none.
    """
    frozen = None if program.train_hidden else [True] * (program.n_layers - 1) + [False]
    keys = (None, None) if noise_keys is None else noise_keys

    def rule(lr, group_noise, key, frozen_layers):
        return updates.update_rule(
            optimizer=program.optimizer,
            learning_rate=lr,
            noise=group_noise,
            eta=hyper.eta,
            gamma=hyper.gamma,
            noise_key=key,
            clip=hyper.clip if program.clip else None,
            noise_before_clip=program.noise_before_clip,
            asynchronous=program.async_updates,
            frozen=frozen_layers,
            decay_steps=program.lr_decay_steps,
            decay=program.lr_decay,
        )

    return UpdateRules(
        rule(hyper.lr, program.noise, keys[0], frozen),
        rule(hyper.sg_lr, program.noise if program.noise_to_sg else None, keys[1], None),
    )


def init_state(
    program: Program,
    hyper: Hyper,
    key: jax.Array,
    *,
    net: nets.Params | None = None,
    sg: synthetic.SGParams | None = None,
) -> TrainState:
    """Initial state of a run. The same ``key`` gives the same network weights in
    every regime, so regimes compared under one key start from identical copies.

    Args:
      program: the run's structure (:meth:`RunConfig.program`).
      hyper: its numbers (:meth:`RunConfig.hyper`).
      key: PRNG key (split into network init, SG init, noise and batch/mask keys).
      net: explicit initial network parameters, replacing the drawn ones.
      sg: explicit initial SG-module parameters, replacing the drawn ones.
    """
    if net is None:
        net = init_network(program.net_init, key)
    if program.sg is None:
        sg = None
    elif sg is None:
        sg = synthetic.init_sg_modules(
            run_subkeys(key)[1],
            nets.block_shapes(program.net),
            program.sg,
            program.widths[-1],
            net_init=program.init,
            scale=program.init_scale,
            shift=program.init_shift,
            dtype=program.jnp_dtype,
        )
    init_feedback = signals.RULES[program.signal].init_feedback
    fixed = (
        ()
        if init_feedback is None
        else init_feedback(
            jax.random.fold_in(run_subkeys(key)[1], 1), program.net, program.jnp_dtype
        )
    )
    return start_state(program, hyper, key, net, sg, feedback=fixed)


def start_state(
    program: Program,
    hyper: Hyper,
    key: jax.Array,
    net: Any,
    sg: Any,
    task_state: Any = (),
    feedback: Any = (),
) -> TrainState:
    """A run's state before its first step, for every kind: the given parameters, their
    update rules' states (the noise seeded from ``key``), the run's step key, step 0, not
    diverged, the task's ``task_state`` and the rule's fixed ``feedback`` matrices."""
    _, _, k_noise_net, k_noise_sg, k_run = run_subkeys(key)
    rules = update_rules(program, hyper, (k_noise_net, k_noise_sg))
    return TrainState(
        net,
        sg,
        rules.net.init(net),
        rules.sg.init(sg) if has_params(sg) else (),
        k_run,
        jnp.zeros((), jnp.int32),
        jnp.full((), -1, jnp.int32),
        task_state,
        feedback,
    )


def init_network(net_init: tuple, key: jax.Array) -> nets.Params:
    """The network a run's ``key`` draws (:attr:`dnijax.config.Program.net_init`)."""
    return nets.init_network(run_subkeys(key)[0], *net_init)


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


def direction_key(mask_key: jax.Array) -> jax.Array:
    """The key a stochastic rule (``fwdgrad``) gets in a step, from the step's mask key."""
    return jax.random.fold_in(mask_key, 1)


def compute_signals(
    program: Program, state: TrainState, x: jax.Array, y: jax.Array, key: jax.Array | None = None
) -> signals.Signals:
    """The program's signal rule at ``state`` on the batch ``(x, y)``; ``key`` goes to a
    stochastic rule (default: the key of the step ``state`` is about to take)."""
    rule = signals.RULES[program.signal]
    extra: dict[str, Any] = {}
    if rule.init_feedback is not None:
        extra["feedback"] = state.feedback
    if rule.stochastic:
        extra["key"] = direction_key(step_keys(state.key)[2]) if key is None else key
    return rule.fn(state.net, state.sg, x, y, program.net, program.sg, **extra)


def train_step(
    program: Program, hyper: Hyper, state: TrainState, data: Data, rules: UpdateRules | None = None
) -> tuple[TrainState, signals.Signals]:
    """One synchronous step: signals from the current parameters, then one update.

    ``rules`` are the run's :func:`update_rules` (built here if not given).
    """
    rules = update_rules(program, hyper) if rules is None else rules
    key, batch_key, mask_key = step_keys(state.key)
    x, y = data.x, data.y
    if program.batch_size is not None:
        idx = jax.random.permutation(batch_key, x.shape[0])[: program.batch_size]
        x, y = x[idx], y[idx]
    sig = compute_signals(program, state, x, y, direction_key(mask_key))
    extra = {}
    if program.async_updates:
        extra["layer_mask"] = layer_mask(mask_key, hyper.update_prob, len(state.net))
    state = guarded_update(rules, state, sig, extra)
    return state._replace(key=key, step=state.step + 1), sig


def guarded_update(
    rules: UpdateRules,
    state: TrainState,
    sig: Any,
    extra: dict | None = None,
    active: jax.Array | None = None,
) -> TrainState:
    """Both groups' update rules on the signals ``sig`` (``net_grads``, ``sg_grads``,
    ``loss``), behind the finite guard (``docs/math.md``, "Divergence"): a step whose loss
    or new parameters are not finite is not applied and ``diverged_at`` records
    ``state.step``; a diverged run stays frozen. ``extra`` goes to the rules' ``update``
    (the asynchronous ``layer_mask``). With ``active`` (the recurrent windows), an inactive
    step keeps the parameters *and* the optimiser states. Returns the state with new
    ``net``, ``sg``, ``net_opt``, ``sg_opt`` and ``diverged_at`` (``key`` and ``step`` are
    the caller's)."""
    net, sg, net_opt, sg_opt = state.net, state.sg, state.net_opt, state.sg_opt
    net_upd, new_net_opt = rules.net.update(sig.net_grads, net_opt, net, **(extra or {}))
    new_net = optax.apply_updates(net, net_upd)
    ok = jnp.isfinite(sig.loss) & all_finite(new_net)
    new_sg, new_sg_opt = sg, sg_opt
    if has_params(sg):
        sg_upd, new_sg_opt = rules.sg.update(sig.sg_grads, sg_opt, sg, **(extra or {}))
        new_sg = optax.apply_updates(sg, sg_upd)
        ok = ok & all_finite(new_sg)
    healthy = state.diverged_at < 0 if active is None else (state.diverged_at < 0) & active
    live = ok & healthy
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(live, a, b), new, old)  # noqa
    if active is not None:
        new_net_opt, new_sg_opt = keep(new_net_opt, net_opt), keep(new_sg_opt, sg_opt)
    return state._replace(
        net=keep(new_net, net),
        sg=keep(new_sg, sg),
        net_opt=new_net_opt,
        sg_opt=new_sg_opt,
        diverged_at=jnp.where(healthy & ~ok, state.step, state.diverged_at),
    )


def step(
    program: Program, hyper: Hyper, state: TrainState, data: Data, rules: UpdateRules
) -> tuple[TrainState, dict[str, jax.Array]]:
    """The kind's step: :func:`train_step`, with the step's SG losses as its metrics."""
    state, sig = train_step(program, hyper, state, data, rules)
    return state, {"sg_loss": sig.sg_loss}


def summarize_steps(metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """A record's ``sg_loss``: the first of its steps'."""
    return {"sg_loss": metrics["sg_loss"][0]}


def eval_spec(program: Program) -> nets.NetSpec:
    """What :func:`evaluate_state` depends on: the network spec, shared by every regime."""
    return program.net


def evaluate(net_spec: nets.NetSpec, net: nets.Params, data: Data) -> tuple[jax.Array, jax.Array]:
    """Full-data loss and accuracy of a network."""
    out = nets.predict(net, data.x, net_spec)
    loss = nets.reduce_batch(nets.per_example_loss(out, data.y, net_spec.loss), net_spec.reduction)
    return loss, nets.accuracy(out, data.labels, net_spec)


def evaluate_state(
    net_spec: nets.NetSpec, net: nets.Params, task_state: Any, data: Data
) -> dict[str, jax.Array]:
    """The kind's evaluation: ``loss`` and ``accuracy`` on the full ``data``."""
    loss, acc = evaluate(net_spec, net, data)
    return {"loss": loss, "accuracy": acc}


def alignment(program: Program, state: TrainState, data: Data) -> dict[str, jax.Array]:
    """The kind's alignment diagnostics on the full data: ``grad_alignment``
    (:func:`grad_alignment`, every rule) and, with SG modules, ``sg_alignment``
    (:func:`dnijax.signals.sg_alignment`)."""
    out = {"grad_alignment": grad_alignment(program, state, data.x, data.y)}
    if program.sg is not None:
        out["sg_alignment"] = signals.sg_alignment(
            state.net, state.sg, data.x, data.y, program.net, program.sg
        )
    return out


def grad_alignment(program: Program, state: TrainState, x: jax.Array, y: jax.Array) -> jax.Array:
    """For every layer, the cosine between the signal the program's rule gives its
    parameters (weights and bias as one vector, before noise and the optimiser) and the
    true gradient ``grad_theta_i J`` on ``(x, y)``; shape ``(L,)``. 1 for backprop; a zero
    signal or gradient counts as cosine 0 (``docs/math.md``, "Gradient alignment")."""
    rule = compute_signals(program, state, x, y).net_grads
    true = signals.backprop_signals(state.net, None, x, y, program.net).net_grads
    cosines = []
    for a, b in zip(rule, true, strict=True):
        va = jnp.concatenate([v.ravel() for v in jax.tree.leaves(a)])
        vb = jnp.concatenate([v.ravel() for v in jax.tree.leaves(b)])
        norms = jnp.linalg.norm(va) * jnp.linalg.norm(vb)
        cosines.append(jnp.where(norms > 0, va @ vb / jnp.where(norms > 0, norms, 1), 0))
    return jnp.clip(jnp.stack(cosines), -1, 1)  # float round-off can pass 1


def bytes_per_run(config: RunConfig, n_rows: int, per_run_rows: int = 0) -> int:
    """A generous estimate of the device memory one run of a block needs: the training
    step's activations (a minibatch, or the ``n_rows`` rows of full-batch training) forward
    and backward, three times over with SG modules; the records' evaluations on the
    ``n_rows`` rows; the parameters with optimiser state; and ``per_run_rows`` rows of the
    run's own data."""
    item = 8 if config.dtype == "float64" else 4
    widths = config.widths
    sg_factor = 3 if config.uses_sg else 1
    spec = config.net_spec
    weights = jax.eval_shape(lambda k: nets.init_network(k, spec), jax.random.key(0))
    units, shape = 0, spec.in_shape  # the outputs of the layers with weights
    for block in spec.blocks:
        traced = layers.trace_shapes(block.layers, shape)
        units += math.prod(traced[block.weighted][0])
        shape = traced[-1][0]
    train_rows = min(n_rows, config.batch_size or n_rows)
    activations = (2 * train_rows * sg_factor + n_rows) * units * item  # ~2x XLA's analysis
    params = (
        sum(math.prod(p["w"].shape) + p["w"].shape[-1] for p in weights if "w" in p)
        * item
        * 4
        * sg_factor
    )  # a bias counted for every layer
    data = per_run_rows * (widths[0] + widths[-1] + 1) * item
    return activations + params + data
