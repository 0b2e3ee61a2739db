"""Update rules: one optax ``GradientTransformation`` per parameter group, built once per run.

A group (the network, or its SG modules) is updated by

    chain(clip_by_global_norm?, noise?, optimiser | async_gate(optimiser), freeze?)

(``docs/math.md``, "The update chain"): clipping over the whole group, then the
gradient noise (or the noise first, with ``noise_before_clip``), then the
optimiser. With asynchronous updates the optimiser runs
layer by layer behind :func:`async_gate`, so a layer that sits a step out keeps
its parameters *and* its optimiser state exactly as they were
(``docs/math.md``, "Asynchronous updates"). ``freeze`` zeroes the updates of
chosen layers (the "no backprop" baseline trains the output layer only).
Optimisers are looked up by name in :data:`OPTIMIZERS`; :func:`register_optimizer` adds
one of your own.

This module is a leaf: it takes numbers and flags, not a ``RunConfig``.

Examples:
  >>> import jax.numpy as jnp
  >>> from dnijax import updates
  >>> params = [{"w": jnp.ones(2)}, {"w": jnp.ones(3)}]
  >>> tx = updates.update_rule(optimizer="adam", learning_rate=0.1, asynchronous=True)
  >>> state = tx.init(params)
  >>> new, state = tx.update(params, state, params, layer_mask=jnp.array([False, True]))
  >>> [round(float(u["w"][0]), 4) for u in new]  # layer 1 sat this step out
  [0.0, -0.1]
  >>> [int(adam.count) for adam, _ in state[0].layers]  # ...and its Adam count did not move
  [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dnijax import noise as noise_lib
from dnijax import registry

OptimizerFactory = Callable[[jax.typing.ArrayLike], optax.GradientTransformation]

OPTIMIZERS: dict[str, OptimizerFactory] = {}
"""The optimisers by name: ``factory(learning_rate) -> GradientTransformation``. Add one
with :func:`register_optimizer`; :class:`~dnijax.config.RunConfig` then accepts its name."""


def register_optimizer(name: str, factory: OptimizerFactory) -> None:
    """Adds the optimiser ``name``: ``factory(learning_rate)`` returns its optax transform.

    The learning rate may be a traced array (one compiled program serves every value).

    Examples:
      >>> import optax
      >>> from dnijax import RunConfig, updates
      >>> updates.register_optimizer("nesterov", lambda lr: optax.sgd(lr, 0.9, nesterov=True))
      >>> RunConfig(optimizer="nesterov").optimizer
      'nesterov'
      >>> updates.unregister_optimizer("nesterov")
    """
    registry.add(OPTIMIZERS, BUILTIN_OPTIMIZERS, "optimizer", name, factory)


def unregister_optimizer(name: str) -> None:
    """Removes an optimiser added with :func:`register_optimizer` (built-ins stay)."""
    registry.remove(OPTIMIZERS, BUILTIN_OPTIMIZERS, name)


OPTIMIZERS.update(
    {
        "sgd": optax.sgd,
        "momentum": lambda learning_rate: optax.sgd(learning_rate, momentum=0.9),
        "adam": optax.adam,
        "rmsprop": optax.rmsprop,
    }
)
BUILTIN_OPTIMIZERS = tuple(OPTIMIZERS)


def make_optimizer(name: str, learning_rate: jax.typing.ArrayLike) -> optax.GradientTransformation:
    """An optax optimiser by name (:data:`OPTIMIZERS`): ``sgd``, ``momentum`` (0.9), ``adam``,
    ``rmsprop`` or one added with :func:`register_optimizer`."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate)


class AsyncGateState(NamedTuple):
    """State of :func:`async_gate`: the inner transformation's state of every layer."""

    layers: tuple


def async_gate(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Runs ``inner`` separately on each layer, and only on the layers that update.

    The parameters are a list with one entry per layer (``None`` for a layer
    without parameters in this group). ``update`` takes the keyword argument
    ``layer_mask``, one boolean per layer: a layer whose flag is off gets a zero
    update and keeps its inner state (momentum, Adam moments, step count)
    unchanged, as if the step never reached it.

    Args:
      inner: the per-layer transformation, e.g. ``optax.adam(1e-3)``.

    Returns:
      A :class:`optax.GradientTransformationExtraArgs`.
    """

    def init_fn(params):
        return AsyncGateState(tuple(() if p is None else inner.init(p) for p in params))

    def update_fn(updates, state, params=None, *, layer_mask, **extra_args):
        del extra_args
        new_updates: list[Any] = []
        new_states: list[Any] = []
        for i, (u, s) in enumerate(zip(updates, state.layers, strict=True)):
            if u is None:
                new_updates.append(None)
                new_states.append(s)
                continue
            on = layer_mask[i]
            u_new, s_new = inner.update(u, s, None if params is None else params[i])
            new_updates.append(
                jax.tree.map(lambda a, on=on: jnp.where(on, a, jnp.zeros_like(a)), u_new)
            )
            new_states.append(jax.tree.map(lambda a, b, on=on: jnp.where(on, a, b), s_new, s))
        return new_updates, AsyncGateState(tuple(new_states))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def update_rule(
    *,
    optimizer: str,
    learning_rate: jax.typing.ArrayLike,
    noise: str | None = None,
    eta: jax.typing.ArrayLike = 0.0,
    gamma: jax.typing.ArrayLike = 0.55,
    noise_key: jax.Array | None = None,
    clip: jax.typing.ArrayLike | None = None,
    noise_before_clip: bool = False,
    asynchronous: bool = False,
    frozen: Sequence[bool] | None = None,
    decay_steps: Sequence[int] = (),
    decay: float = 0.1,
) -> optax.GradientTransformationExtraArgs:
    """The update chain of one parameter group.

    Args:
      optimizer: a name of :data:`OPTIMIZERS` (``sgd``, ``momentum``, ``adam``, ``rmsprop``
        or one of your own).
      learning_rate: its learning rate (a number or a traced array).
      noise: ``None`` or a name of :data:`dnijax.noise.NOISES` (``paper``, ``blog``), drawn
        once per step over the whole group raveled into one vector.
      eta: the noise scale (``docs/math.md``, "Gradient noise").
      gamma: the noise schedule's decay exponent.
      noise_key: the noise's PRNG key; it seeds ``init`` only (the noise state then
        carries it), so a rule rebuilt with another key updates identically.
      clip: global-norm clipping threshold before the noise, or ``None``.
      noise_before_clip: put the noise before the clipping instead.
      asynchronous: run the optimiser per layer behind :func:`async_gate`; ``update``
        then needs ``layer_mask``.
      frozen: one flag per layer; flagged layers get zero updates.
      decay_steps: step decay of the learning rate (``docs/math.md``, "Learning-rate
        decay"): the update of 0-based count ``k`` uses ``learning_rate * decay^m``, ``m``
        the number of ``decay_steps`` at most ``k``. The optimiser then gets an optax
        schedule (``optax.piecewise_constant_schedule``), which counts its own updates.
      decay: the factor at each of ``decay_steps``.
    """
    parts: list[optax.GradientTransformation] = []
    if clip is not None:
        parts.append(optax.clip_by_global_norm(clip))
    if noise is not None:
        key = jax.random.key(0) if noise_key is None else noise_key
        parts.insert(
            0 if noise_before_clip else len(parts),
            noise_lib.flat_gradient_noise(noise, eta, gamma, key),
        )
    if decay_steps:
        learning_rate = optax.piecewise_constant_schedule(
            learning_rate, {int(s): decay for s in decay_steps}
        )
    base = make_optimizer(optimizer, learning_rate)
    parts.append(async_gate(base) if asynchronous else base)
    if frozen is not None and any(frozen):
        parts.append(optax.masked(optax.set_to_zero(), list(frozen)))
    return optax.chain(*parts)


def noise_state(opt_state: Any) -> Any:
    """The noise transform's state inside an :func:`update_rule` state (for replaying the
    noise realisation); raises ``ValueError`` if the rule has no noise."""
    for s in jax.tree.leaves(
        opt_state, is_leaf=lambda s: isinstance(s, (noise_lib.BlogNoiseState, optax.AddNoiseState))
    ):
        if isinstance(s, (noise_lib.BlogNoiseState, optax.AddNoiseState)):
            return s
    raise ValueError("no noise transform in this update rule")
