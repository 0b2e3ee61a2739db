"""Feed-forward networks as pure functions over a parameter pytree.

A network of L layers is a list of L dicts ``{"w": (n_in, n_out)[, "b": (n_out,)]}``;
layer i computes ``z_i = h_{i-1} @ w_i (+ b_i)`` and ``h_i = phi_i(z_i)``. The
structure that is not an array (activations, loss, reduction) lives in a
hashable :class:`NetSpec`, so it can be a static argument of ``jax.jit``.

See ``docs/math.md``, "Networks".

Example:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import nets
  >>> spec = nets.NetSpec(("tanh", "sigmoid"), "mse", "mean")
  >>> params = nets.init_network(jax.random.key(0), (2, 4, 1), "glorot")
  >>> nets.predict(params, jnp.ones((3, 2)), spec).shape
  (3, 1)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

Params = list[dict[str, jax.Array]]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda z: z,
}
LOSSES = ("mse", "xent", "bce")
REDUCTIONS = ("mean", "sum")
INITS = ("normal", "zeros", "glorot", "he")


class NetSpec(NamedTuple):
    """What a network computes, apart from its parameters.

    Attributes:
      activations: one name per layer, from ``ACTIVATIONS``. For ``xent`` and
        ``bce`` the output activation is ignored (the loss reads the logits), so
        use :func:`make_net_spec` to normalise it to ``identity``.
      loss: ``mse`` (0.5 * squared error), ``xent`` (softmax cross-entropy) or
        ``bce`` (sigmoid binary cross-entropy).
      reduction: ``mean`` or ``sum`` over the batch.
    """

    activations: tuple[str, ...]
    loss: str
    reduction: str


def make_net_spec(activations: Sequence[str], loss: str, reduction: str) -> NetSpec:
    """Builds a :class:`NetSpec`, making the output linear for logit losses."""
    acts = tuple(activations)
    if loss in ("xent", "bce"):
        acts = acts[:-1] + ("identity",)
    return NetSpec(acts, loss, reduction)


def init_layer(key: jax.Array, n_in: int, n_out: int, init: str = "normal",
               scale: float = 0.2, shift: float = -0.1, bias: bool = True,
               dtype: Any = jnp.float32) -> dict[str, jax.Array]:
    """Initialises one dense layer.

    Args:
      key: PRNG key.
      n_in, n_out: fan-in and fan-out.
      init: ``normal`` (``scale * N(0, 1) + shift``, the article's scheme),
        ``zeros``, ``glorot`` (Glorot normal) or ``he`` (He normal).
      scale, shift: parameters of ``normal``.
      bias: whether the layer has a bias (initialised to zero).
      dtype: parameter dtype.
    """
    shape = (n_in, n_out)
    if init == "normal":
        w = scale * jax.random.normal(key, shape, dtype) + shift
    elif init == "zeros":
        w = jnp.zeros(shape, dtype)
    elif init == "glorot":
        w = jax.nn.initializers.glorot_normal()(key, shape, dtype)
    elif init == "he":
        w = jax.nn.initializers.he_normal()(key, shape, dtype)
    else:
        raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
    layer = {"w": w}
    if bias:
        layer["b"] = jnp.zeros((n_out,), dtype)
    return layer


def init_network(key: jax.Array, widths: Sequence[int], init: str = "normal",
                 scale: float = 0.2, shift: float = -0.1, bias: bool = True,
                 dtype: Any = jnp.float32) -> Params:
    """Initialises a network with layer widths ``widths = (n_0, n_1, ..., n_L)``."""
    keys = jax.random.split(key, len(widths) - 1)
    return [init_layer(k, a, b, init, scale, shift, bias, dtype)
            for k, a, b in zip(keys, widths[:-1], widths[1:])]


def apply_layer(layer: dict[str, jax.Array], h: jax.Array,
                activation: str) -> tuple[jax.Array, jax.Array]:
    """Returns ``(z, phi(z))`` for one layer applied to a batch ``h``."""
    z = h @ layer["w"]
    if "b" in layer:
        z = z + layer["b"]
    return z, ACTIVATIONS[activation](z)


def forward(params: Params, x: jax.Array, spec: NetSpec) -> list[jax.Array]:
    """Returns the activations ``[h_0 = x, h_1, ..., h_L]``."""
    hs = [x]
    for layer, act in zip(params, spec.activations):
        hs.append(apply_layer(layer, hs[-1], act)[1])
    return hs


def predict(params: Params, x: jax.Array, spec: NetSpec) -> jax.Array:
    """The network's output ``h_L`` (the logits for ``xent`` and ``bce``)."""
    return forward(params, x, spec)[-1]


def per_example_loss(out: jax.Array, y: jax.Array, loss: str) -> jax.Array:
    """Per-example loss ``l_b`` of output ``out`` (B, K) against targets ``y`` (B, K)."""
    if loss == "mse":
        return 0.5 * jnp.sum((out - y) ** 2, axis=-1)
    if loss == "xent":
        return -jnp.sum(y * jax.nn.log_softmax(out, axis=-1), axis=-1)
    if loss == "bce":
        return jnp.sum(jax.nn.softplus(out) - y * out, axis=-1)
    raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")


def reduce_batch(values: jax.Array, reduction: str) -> jax.Array:
    """``mean`` or ``sum`` over the leading (batch) axis."""
    return jnp.mean(values, axis=0) if reduction == "mean" else jnp.sum(values, axis=0)


def batch_loss(params: Params, x: jax.Array, y: jax.Array, spec: NetSpec) -> jax.Array:
    """The batch loss ``J = reduce_b l_b``."""
    return reduce_batch(per_example_loss(predict(params, x, spec), y, spec.loss),
                        spec.reduction)


def predicted_labels(out: jax.Array, spec: NetSpec) -> jax.Array:
    """Class predictions: argmax for several outputs, a threshold for one."""
    if out.shape[-1] > 1:
        return jnp.argmax(out, axis=-1)
    threshold = 0.0 if spec.loss == "bce" else 0.5
    return (out[:, 0] > threshold).astype(jnp.int32)


def accuracy(out: jax.Array, labels: jax.Array, spec: NetSpec) -> jax.Array:
    """Fraction of rows whose predicted class equals ``labels``."""
    return jnp.mean(predicted_labels(out, spec) == labels)


def encode_targets(labels: jax.Array, n_out: int, dtype: Any = jnp.float32) -> jax.Array:
    """Targets for the loss: a 0/1 column for one output, one-hot otherwise."""
    if n_out == 1:
        return labels.astype(dtype)[..., None]
    return jax.nn.one_hot(labels, n_out, dtype=dtype)
