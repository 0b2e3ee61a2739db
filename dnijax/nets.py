"""Feed-forward networks as pure functions over a parameter pytree.

A network is a sequence of L blocks (:mod:`dnijax.layers`): block i maps
``h_{i-1}`` to ``h_i`` with its own parameters, a dict such as ``{"w", "b"}``;
the network's parameters are the list of the L dicts. An MLP's block i is a
dense layer and its activation, ``h_i = phi_i(h_{i-1} @ w_i (+ b_i))``. The
structure that is not an array (blocks, loss, reduction, input shape) lives in
a hashable :class:`NetSpec`, so it can be a static argument of ``jax.jit``.

See ``docs/math.md``, "Networks" and "Layers and blocks".

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import nets
  >>> spec = nets.mlp_spec((2, 4, 1), ("tanh", "sigmoid"), "mse", "mean", init="glorot")
  >>> params = nets.init_network(jax.random.key(0), spec)
  >>> nets.predict(params, jnp.ones((3, 2)), spec).shape
  (3, 1)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dnijax import layers, registry

Params = list[dict[str, jax.Array]]

ACTIVATIONS = layers.ACTIVATIONS
REDUCTIONS = ("mean", "sum")
INITS = layers.INITS
LOGIT_LOSSES = ("xent", "bce")  # the built-in losses that read the output as logits

Loss = Callable[[jax.Array, jax.Array], jax.Array]


def mse(out: jax.Array, y: jax.Array) -> jax.Array:
    """``0.5 ||out - y||^2`` per example."""
    return 0.5 * jnp.sum((out - y) ** 2, axis=-1)


def xent(out: jax.Array, y: jax.Array) -> jax.Array:
    """Softmax cross-entropy ``-sum_k y_k log softmax(out)_k`` per example."""
    return -jnp.sum(y * jax.nn.log_softmax(out, axis=-1), axis=-1)


def bce(out: jax.Array, y: jax.Array) -> jax.Array:
    """Sigmoid binary cross-entropy ``sum_k log(1 + e^{out_k}) - y_k out_k`` per example."""
    return jnp.sum(jax.nn.softplus(out) - y * out, axis=-1)


LOSSES: dict[str, Loss] = {"mse": mse, "xent": xent, "bce": bce}
"""The losses by name: ``loss(out, y) -> (B,)``, one number per example. Add one with
:func:`register_loss`; :class:`~dnijax.config.RunConfig` then accepts its name."""
BUILTIN_LOSSES = tuple(LOSSES)


def register_loss(name: str, fn: Loss) -> None:
    """Adds the loss ``name``: ``fn(out, y)`` gives the per-example loss ``l_b`` of the
    network's output ``out`` (B, K) against the encoded targets ``y`` (B, K), shape (B,).

    The output is read as it is, after the last layer's activation (only the built-in
    ``xent`` and ``bce`` read logits). Every signal rule differentiates ``fn`` with JAX; the
    numpy reference (``dnijax validate``) knows the built-in losses only.

    Examples:
      >>> import jax.numpy as jnp
      >>> from dnijax import RunConfig, nets
      >>> nets.register_loss("l1", lambda out, y: jnp.sum(jnp.abs(out - y), axis=-1))
      >>> cfg = RunConfig(loss="l1", widths=(2, 3, 1))
      >>> nets.per_example_loss(jnp.ones((2, 1)), jnp.zeros((2, 1)), cfg.loss).tolist()
      [1.0, 1.0]
      >>> nets.unregister_loss("l1")
    """
    registry.add(LOSSES, BUILTIN_LOSSES, "loss", name, fn)


def unregister_loss(name: str) -> None:
    """Removes a loss added with :func:`register_loss` (built-ins stay)."""
    registry.remove(LOSSES, BUILTIN_LOSSES, name)


class NetSpec(NamedTuple):
    """What a network computes, apart from its parameters.

    Attributes:
      blocks: the network's blocks (:func:`dnijax.layers.group_blocks`). For ``xent``
        and ``bce`` a trailing activation is ignored (the loss reads the logits), so
        use :func:`make_net_spec` to normalise it to ``identity``.
      loss: a name of :data:`LOSSES`: ``mse`` (0.5 * squared error), ``xent`` (softmax
        cross-entropy), ``bce`` (sigmoid binary cross-entropy) or one of your own.
      reduction: ``mean`` or ``sum`` over the batch.
      in_shape: the shape of one example (the data's rows are vectors: ``(n_0,)``).
    """

    blocks: tuple[layers.Block, ...]
    loss: str
    reduction: str
    in_shape: tuple[int, ...]


@functools.lru_cache(maxsize=256)
def _cached_spec(specs: tuple, in_shape: tuple, loss: str, reduction: str) -> NetSpec:
    weighted = [has for _, has in layers.trace_shapes(specs, in_shape)]
    return NetSpec(layers.group_blocks(specs, weighted), loss, reduction, in_shape)


def make_net_spec(
    layer_specs: Sequence[layers.LayerSpec], in_shape: Sequence[int], loss: str, reduction: str
) -> NetSpec:
    """Builds a :class:`NetSpec` from a layer list, making the output linear for logit
    losses (a trailing activation becomes ``identity``)."""
    specs = tuple(layer_specs)
    if loss in LOGIT_LOSSES and specs and specs[-1].kind in layers.ACTIVATIONS:
        specs = specs[:-1] + (layers.spec("identity"),)
    return _cached_spec(specs, tuple(int(n) for n in in_shape), loss, reduction)


def mlp_spec(
    widths: Sequence[int],
    activations: Sequence[str],
    loss: str,
    reduction: str,
    **weight_options: Any,
) -> NetSpec:
    """The :class:`NetSpec` of an MLP of widths ``(n_0, ..., n_L)`` (the short form)."""
    return make_net_spec(
        layers.mlp_specs(widths, activations, **weight_options), (widths[0],), loss, reduction
    )


@functools.lru_cache(maxsize=256)
def block_shapes(spec: NetSpec) -> tuple[tuple[int, ...], ...]:
    """The per-example output shape of each block (nothing is drawn)."""
    shape, out = spec.in_shape, []
    for block in spec.blocks:
        shape = layers.trace_shapes(block.layers, shape)[-1][0]
        out.append(shape)
    return tuple(out)


def init_network(key: jax.Array, spec: NetSpec, dtype: Any = jnp.float32) -> Params:
    """Initialises a network: one key per block, drawn by the block's weighted layer."""
    keys = jax.random.split(key, len(spec.blocks))
    params, shape = [], spec.in_shape
    for k, block in zip(keys, spec.blocks, strict=True):
        shape, p = layers.init_block(k, block, shape, dtype)
        params.append(p)
    return params


def forward(params: Params, x: jax.Array, spec: NetSpec) -> list[jax.Array]:
    """Returns the block outputs ``[h_0 = x, h_1, ..., h_L]``."""
    hs = [x]
    for p, block in zip(params, spec.blocks, strict=True):
        hs.append(layers.apply_block(p, hs[-1], block))
    return hs


def predict(params: Params, x: jax.Array, spec: NetSpec) -> jax.Array:
    """The network's output ``h_L`` (the logits for ``xent`` and ``bce``)."""
    return forward(params, x, spec)[-1]


def per_example_sum(values: jax.Array) -> jax.Array:
    """The sum over every axis but the first (the batch): one number per example."""
    return jnp.sum(values, axis=tuple(range(1, values.ndim)))


def per_example_loss(out: jax.Array, y: jax.Array, loss: str) -> jax.Array:
    """Per-example loss ``l_b`` of output ``out`` (B, K) against targets ``y`` (B, K): the
    loss ``loss`` of :data:`LOSSES`."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[loss](out, y)


def reduce_batch(values: jax.Array, reduction: str) -> jax.Array:
    """``mean`` or ``sum`` over the leading (batch) axis."""
    return jnp.mean(values, axis=0) if reduction == "mean" else jnp.sum(values, axis=0)


def batch_loss(params: Params, x: jax.Array, y: jax.Array, spec: NetSpec) -> jax.Array:
    """The batch loss ``J = reduce_b l_b``."""
    return reduce_batch(per_example_loss(predict(params, x, spec), y, spec.loss), spec.reduction)


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
