"""Signal rules without SG modules and without the backward pass of backprop: ``fa``,
``dfa`` and ``fwdgrad`` (``docs/math.md``, "Other signal rules").

Each function here returns ``(grads, loss, output)`` of one step; :mod:`dnijax.signals`
registers them as the rules ``fa``, ``dfa`` and ``fwdgrad``.

* ``fa``, feedback alignment (Lillicrap et al. 2016): the error travels down the
  network as in backprop, but through a fixed random matrix ``B_i`` of each weight's
  shape in place of the weight.
* ``dfa``, direct feedback alignment (Nokland 2016): each hidden block receives the
  output error ``dJ/dz_L`` through its own fixed random matrix ``D_i``.
* ``fwdgrad``, forward gradient (Baydin et al. 2022): one ``jax.jvp`` of the loss along a
  random direction ``v`` per step; the signal ``(grad J . v) v`` is unbiased.

For ``fa`` and ``dfa`` the rule gives block i < L a signal ``e_i`` in place of
``dJ/dh_i``, and the block learns from it as a DNI block learns from its synthetic
gradient: the gradient w.r.t. ``theta_i`` of ``sum_b <h_i(theta_i; sg(h_{i-1})),
sg(e_i)>``. The output block learns from the true loss with its input held constant.
One scalar of stop_gradient-isolated terms and one ``jax.grad`` give every signal.

The fixed matrices are the rule's *feedback*: :func:`init_fa` and :func:`init_dfa` draw
them once per run (from the run's key, with the network's own initialiser), the
training state keeps them (:attr:`dnijax.train.TrainState.feedback`) and nothing updates
them. ``fwdgrad`` draws its direction from the step's key (:func:`direction`).

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import feedback, nets
  >>> spec = nets.mlp_spec((2, 5, 5, 1), ("tanh", "tanh", "sigmoid"), "mse", "mean",
  ...                      init="glorot")
  >>> params = nets.init_network(jax.random.key(0), spec)
  >>> fb = feedback.init_fa(jax.random.key(1), spec, jnp.float32)
  >>> [None if b is None else b.shape for b in fb]  # B_i of W_i's shape, none for block 1
  [None, (5, 5), (5, 1)]
  >>> x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
  >>> grads, loss, out = feedback.fa(params, x, y, spec, fb)
  >>> [g["w"].shape for g in grads]
  [(2, 5), (5, 5), (5, 1)]
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from dnijax import layers, nets

sg = jax.lax.stop_gradient
Feedback = list  # one entry per block: an array, or None where the block has none


def _weighted_part(params: dict, h: jax.Array, block: layers.Block) -> jax.Array:
    """A block up to and including its weighted layer: ``z = op(pre(h); params)``."""
    for j, layer in enumerate(block.layers[: block.weighted + 1]):
        h = layers.build(layer).apply(params if j == block.weighted else {}, h)
    return h


def _after_weighted(z: jax.Array, block: layers.Block) -> jax.Array:
    """The parameter-free layers after a block's weighted layer: ``post(phi(z))``."""
    for layer in block.layers[block.weighted + 1 :]:
        z = layers.build(layer).apply({}, z)
    return z


def _block_inputs(spec: nets.NetSpec) -> list[tuple[int, ...]]:
    """The per-example input shape of every block."""
    return [spec.in_shape] + list(nets.block_shapes(spec)[:-1])


def init_fa(key: jax.Array, spec: nets.NetSpec, dtype: Any) -> Feedback:
    """Rule ``fa``'s fixed matrices: ``B_i`` for blocks i >= 2, drawn like ``W_i`` by the
    block's own weighted layer (its init scheme, scale and shift); ``None`` for block 1."""
    keys = jax.random.split(key, len(spec.blocks))
    out: Feedback = [None]
    for k, block, shape in zip(keys[1:], spec.blocks[1:], _block_inputs(spec)[1:], strict=True):
        out.append(layers.init_block(k, block, shape, dtype)[1]["w"])
    return out


def _output_size(spec: nets.NetSpec) -> int:
    last = spec.blocks[-1]
    traced = layers.trace_shapes(last.layers, _block_inputs(spec)[-1])
    return math.prod(traced[last.weighted][0])


def init_dfa(key: jax.Array, spec: nets.NetSpec, dtype: Any) -> Feedback:
    """Rule ``dfa``'s fixed matrices: ``D_i`` of shape ``(n_out, size(h_i))`` for blocks
    i < L (``n_out`` the size of the output block's pre-activation ``z_L``), each drawn
    with the output layer's init scheme, scale and shift as a dense weight of that
    shape; ``None`` for the output block."""
    n_out = _output_size(spec)
    last = spec.blocks[-1].layers[spec.blocks[-1].weighted]
    options = {k: v for k, v in last.options if k in layers.WEIGHT_OPTIONS and k != "bias"}
    keys = jax.random.split(key, len(spec.blocks))
    out: Feedback = []
    for k, shape in zip(keys[:-1], nets.block_shapes(spec)[:-1], strict=True):
        dense = layers.build(layers.spec("dense", features=math.prod(shape), **options))
        out.append(dense.init(k, (n_out,), dtype)[1]["w"])
    return out + [None]


Step = tuple[nets.Params, jax.Array, jax.Array]  # (signals per block, J, h_L)


def _block_updates(
    theta: nets.Params, x: jax.Array, y: jax.Array, spec: nets.NetSpec, signal_of: Any
) -> Step:
    """Every block's signal from one scalar: blocks i < L get ``sum_b <h_i, sg(e_i)>``
    with ``[e_1, ..., e_{L-1}] = signal_of(hs, theta)`` (``hs`` the block outputs under
    stop_gradient, ``theta`` the parameters), the output block the true loss with its input
    held constant."""

    def objective(params):
        hs = [x]
        for p, block in zip(params, spec.blocks, strict=True):
            hs.append(layers.apply_block(p, sg(hs[-1]), block))
        loss = nets.reduce_batch(nets.per_example_loss(hs[-1], y, spec.loss), spec.reduction)
        total = loss
        for i, e in enumerate(signal_of([sg(h) for h in hs], params)):
            total = total + jnp.sum(hs[i + 1] * sg(e))
        return total, (loss, hs[-1])

    grads, (loss, out) = jax.grad(objective, has_aux=True)(theta)
    return grads, sg(loss), out


def _output_loss(spec: nets.NetSpec, y: jax.Array):
    return lambda out: nets.reduce_batch(nets.per_example_loss(out, y, spec.loss), spec.reduction)


def fa(
    params: nets.Params, x: jax.Array, y: jax.Array, spec: nets.NetSpec, feedback: Feedback
) -> Step:
    """Rule ``fa``: ``e_L = dJ/dh_L``; for i < L, ``u_{i+1}`` is the VJP of block i+1's
    layers after its weight at the true pre-activation applied to ``e_{i+1}``, and
    ``e_i`` the VJP of the weighted layer with weight ``B_{i+1}`` (no bias) applied to
    ``u_{i+1}`` (``docs/math.md``, "Other signal rules")."""
    blocks = spec.blocks

    def signal_of(hs, theta):
        frozen = jax.tree.map(sg, theta)
        e = jax.grad(_output_loss(spec, y))(hs[-1])
        out = []
        for j in reversed(range(1, len(blocks))):  # block j sends e to block j - 1
            block = blocks[j]
            _, post_vjp = jax.vjp(
                lambda h, block=block: _after_weighted(h, block),
                _weighted_part(frozen[j], hs[j], block),
            )
            u = post_vjp(e)[0]
            _, op_vjp = jax.vjp(
                lambda h, w=feedback[j], block=block: _weighted_part({"w": w}, h, block), hs[j]
            )
            e = op_vjp(u)[0]
            out.append(e)
        return out[::-1]

    return _block_updates(params, x, y, spec, signal_of)


def dfa(
    params: nets.Params, x: jax.Array, y: jax.Array, spec: nets.NetSpec, feedback: Feedback
) -> Step:
    """Rule ``dfa``: ``delta = dJ/dz_L`` (the output block's pre-activation) and
    ``e_i = reshape(delta D_i, shape of h_i)`` for every block i < L (``docs/math.md``,
    "Other signal rules")."""
    last = spec.blocks[-1]

    def signal_of(hs, theta):
        frozen = jax.tree.map(sg, theta)
        z = _weighted_part(frozen[-1], hs[-2], last)
        delta = jax.grad(lambda v: _output_loss(spec, y)(_after_weighted(v, last)))(z)
        delta = delta.reshape(delta.shape[0], -1)
        return [(delta @ d).reshape(h.shape) for d, h in zip(feedback[:-1], hs[1:-1], strict=True)]

    return _block_updates(params, x, y, spec, signal_of)


def direction(key: jax.Array, params: Any) -> Any:
    """Rule ``fwdgrad``'s direction ``v ~ N(0, I)``: a tree like ``params``, one key per
    leaf split from ``key``."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        tree, [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
    )


def fwdgrad(
    params: nets.Params, x: jax.Array, y: jax.Array, spec: nets.NetSpec, key: jax.Array
) -> Step:
    """Rule ``fwdgrad``: ``g = (grad J . v) v`` with ``v = direction(key, params)``, the
    directional derivative from one forward-mode ``jax.jvp`` (``docs/math.md``, "Other
    signal rules"). Every block, the output block included, uses it."""
    v = direction(key, params)

    def objective(p):
        out = nets.predict(p, x, spec)
        return _output_loss(spec, y)(out), out

    loss, slope, out = jax.jvp(objective, (params,), (v,), has_aux=True)
    return jax.tree.map(lambda a: slope * a, v), loss, out
