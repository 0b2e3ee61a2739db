"""Gradient noise as optax transforms (``docs/math.md``, "Gradient noise").

* ``paper`` noise (Neelakantan et al. 2015) is :func:`optax.add_noise`:
  ``n ~ N(0, sigma_t^2 I)`` per element with ``sigma_t^2 = eta / (1 + t)^gamma``.
* ``blog`` noise is the seed article's variant, :func:`add_blog_noise`: one
  scalar per step, shared by every element of every parameter,
  ``n_t ~ N(0, s_t^2)`` with ``s_t = eta / (1 + t)^gamma`` (eta a standard deviation).

:mod:`dnijax.updates` puts them in the update chain, after clipping and before
the optimiser, as in the paper. Noises are looked up by name in :data:`NOISES`;
:func:`register_noise` adds one of your own.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import noise
  >>> tx = noise.add_blog_noise(eta=0.1, gamma=0.55, key=jax.random.key(0))
  >>> grads = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
  >>> updates, state = tx.update(grads, tx.init(grads))
  >>> bool(jnp.all(updates["w"] == updates["b"][0]))  # one scalar for every element
  True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dnijax import registry

NoiseFactory = Callable[
    [jax.typing.ArrayLike, jax.typing.ArrayLike, jax.Array], optax.GradientTransformation
]


class BlogNoiseState(NamedTuple):
    """State of :func:`add_blog_noise`: the update count and the PRNG key."""

    count: jax.Array  # type: ignore[assignment]  # a field named like tuple.count, as optax's
    rng_key: jax.Array


def blog_noise_std(
    eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike, count: jax.typing.ArrayLike
) -> jax.Array:
    """Standard deviation ``eta / (1 + t)^gamma`` of the blog noise at update ``t``."""
    return jnp.divide(eta, (1.0 + count) ** gamma)


def paper_noise_std(
    eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike, count: jax.typing.ArrayLike
) -> jax.Array:
    """Standard deviation ``sqrt(eta / (1 + t)^gamma)`` of ``optax.add_noise`` at update ``t``."""
    return jnp.sqrt(eta / (1.0 + count) ** gamma)


def add_blog_noise(
    eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike, key: jax.Array
) -> optax.GradientTransformation:
    """Adds one Gaussian scalar per step to every element of the updates.

    Args:
      eta: standard deviation at the first update.
      gamma: decay exponent: ``s_t = eta / (1 + t)^gamma``.
      key: PRNG key for the noise.

    Returns:
      An :class:`optax.GradientTransformation` with the shape of ``optax.add_noise``.
    """

    def init_fn(params):
        del params
        return BlogNoiseState(count=jnp.zeros([], jnp.int32), rng_key=key)

    def update_fn(updates, state, params=None):
        del params
        rng_key, sample_key = jax.random.split(state.rng_key)
        leaves = jax.tree.leaves(updates)
        dtype = leaves[0].dtype if leaves else jnp.float32
        std = blog_noise_std(eta, gamma, state.count.astype(dtype))
        scalar = std * jax.random.normal(sample_key, (), dtype)
        updates = jax.tree.map(lambda u: u + scalar.astype(u.dtype), updates)
        return updates, BlogNoiseState(optax.safe_increment(state.count), rng_key)

    return optax.GradientTransformation(init_fn, update_fn)


NOISES: dict[str, NoiseFactory] = {
    "paper": optax.add_noise,
    "blog": add_blog_noise,
}
"""The gradient noises by name: ``factory(eta, gamma, key) -> GradientTransformation``.
Add one with :func:`register_noise`; :class:`~dnijax.config.RunConfig` then accepts it."""
BUILTIN_NOISES = tuple(NOISES)


def register_noise(name: str, factory: NoiseFactory) -> None:
    """Adds the gradient noise ``name``: ``factory(eta, gamma, key)`` returns an optax
    transform that adds it to the updates (``eta`` and ``gamma`` may be traced arrays).

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from dnijax import noise
      >>> def constant(eta, gamma, key):  # no randomness: adds eta everywhere
      ...     return optax.GradientTransformation(
      ...         lambda params: optax.EmptyState(),
      ...         lambda updates, state, params=None: (
      ...             jax.tree.map(lambda u: u + eta, updates), state))
      >>> noise.register_noise("constant", constant)
      >>> tx = noise.gradient_noise("constant", 0.5, 0.0, jax.random.key(0))
      >>> tx.update({"w": jnp.zeros(2)}, tx.init(None))[0]["w"].tolist()
      [0.5, 0.5]
      >>> noise.unregister_noise("constant")
    """
    registry.add(NOISES, BUILTIN_NOISES, "noise", name, factory)


def unregister_noise(name: str) -> None:
    """Removes a noise added with :func:`register_noise` (built-ins stay)."""
    registry.remove(NOISES, BUILTIN_NOISES, name)


def gradient_noise(
    kind: str, eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike, key: jax.Array
) -> optax.GradientTransformation:
    """The noise ``kind`` of :data:`NOISES`: ``paper`` -> :func:`optax.add_noise`;
    ``blog`` -> :func:`add_blog_noise`; or one added with :func:`register_noise`."""
    if kind not in NOISES:
        raise ValueError(f"unknown noise {kind!r}; choose one of {', '.join(NOISES)}")
    return NOISES[kind](eta, gamma, key)


def flat_gradient_noise(
    kind: str, eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike, key: jax.Array
) -> optax.GradientTransformation:
    """:func:`gradient_noise` applied to all parameters raveled into one vector
    (``optax.flatten``): the same i.i.d. noise, drawn once per step instead of once per
    leaf, which makes the compiled step much smaller. The update rules use this."""
    return optax.flatten(gradient_noise(kind, eta, gamma, key))
