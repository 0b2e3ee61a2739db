"""A layer of your own for dnijax: layer normalisation as an ``(init, apply)`` pair.

Use it from Python with ``dnijax.layers.register("layer_norm", layer_norm)``, or from a
config file as ``{"kind": "docs/examples/my_layers.py:layer_norm"}``.
"""

import jax.numpy as jnp

from dnijax import layers


def layer_norm(eps: float = 1e-5) -> layers.Layer:
    """Normalises each example's features to mean 0 and variance 1, then scales and
    shifts them with learned ``gain`` and ``shift`` vectors."""

    def init(key, shape, dtype):
        return shape, {"gain": jnp.ones(shape, dtype), "shift": jnp.zeros(shape, dtype)}

    def apply(params, h):
        mean = h.mean(-1, keepdims=True)
        var = h.var(-1, keepdims=True)
        return params["gain"] * (h - mean) / jnp.sqrt(var + eps) + params["shift"]

    return layers.Layer(init, apply)
