"""Gradient noise as optax transforms (``docs/math.md``, "Gradient noise").

* ``paper`` noise (Neelakantan et al. 2015) is :func:`optax.add_noise`:
  ``n ~ N(0, sigma_t^2 I)`` per element with ``sigma_t^2 = eta / (1 + t)^gamma``.
* ``blog`` noise is the seed article's variant, :func:`add_blog_noise`: one
  scalar per step, shared by every element of every parameter,
  ``n_t ~ N(0, s_t^2)`` with ``s_t = eta / (1 + t)^gamma`` (eta a standard deviation).

:mod:`dnijax.updates` puts them in the update chain, after clipping and before
the optimiser, as in the paper.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import noise
  >>> tx = noise.add_blog_noise(eta=0.1, gamma=0.55, key=jax.random.key(0))
  >>> grads = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
  >>> updates, state = tx.update(grads, tx.init(grads))
  >>> bool(jnp.all(updates["w"] == updates["b"][0]))  # one scalar for every element
  True
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

NOISES = ("paper", "blog")


class BlogNoiseState(NamedTuple):
    """State of :func:`add_blog_noise`: the update count and the PRNG key."""

    count: jax.Array
    rng_key: jax.Array


def blog_noise_std(eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike,
                   count: jax.typing.ArrayLike) -> jax.Array:
    """Standard deviation ``eta / (1 + t)^gamma`` of the blog noise at update ``t``."""
    return eta / (1.0 + count) ** gamma


def paper_noise_std(eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike,
                    count: jax.typing.ArrayLike) -> jax.Array:
    """Standard deviation ``sqrt(eta / (1 + t)^gamma)`` of ``optax.add_noise`` at update ``t``."""
    return jnp.sqrt(eta / (1.0 + count) ** gamma)


def add_blog_noise(eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike,
                   key: jax.Array) -> optax.GradientTransformation:
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


def gradient_noise(kind: str, eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike,
                   key: jax.Array) -> optax.GradientTransformation:
    """``paper`` -> :func:`optax.add_noise`; ``blog`` -> :func:`add_blog_noise`."""
    if kind == "paper":
        return optax.add_noise(eta, gamma, key)
    if kind == "blog":
        return add_blog_noise(eta, gamma, key)
    raise ValueError(f"unknown noise {kind!r}; choose one of {NOISES}")


def flat_gradient_noise(kind: str, eta: jax.typing.ArrayLike, gamma: jax.typing.ArrayLike,
                        key: jax.Array) -> optax.GradientTransformation:
    """:func:`gradient_noise` applied to all parameters raveled into one vector
    (``optax.flatten``): the same i.i.d. noise, drawn once per step instead of once per
    leaf, which makes the compiled step much smaller. The update rules use this."""
    return optax.flatten(gradient_noise(kind, eta, gamma, key))
