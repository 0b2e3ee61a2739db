"""Feedback alignment, direct feedback alignment and forward gradients, by hand in numpy.

The reference for the signal rules ``fa``, ``dfa`` and ``fwdgrad`` (``docs/math.md``,
"Other signal rules: feedback alignment, direct feedback alignment, forward
gradients"): no autodiff, no JAX. Networks, parameters and notation are those of
:mod:`dnijax.reference.mlp`, whose forward pass, losses and backprop this module reuses
(looked up there when they run, so a test that patches one reaches these rules too); the
layer derivatives come from :mod:`dnijax.reference.layers`.

A block is ``post_i(phi_i(op_i(h_{i-1}; theta_i)))``: its weighted layer ``op_i`` and
the parameter-free layers after it (block 1 may also have some before it). For ``fa``
and ``dfa`` the rule gives block i < L a signal ``e_i`` in place of ``dJ/dh_i`` (with
the batch factor ``c`` in it) and the block's update is its param-VJP with cotangent
``e_i``, its input held fixed; the output block L gets its param-VJP with cotangent
``c e``, as in backprop. The rules' fixed matrices (``feedback``) and ``fwdgrad``'s
directions are inputs here: the reference draws no random numbers.

Examples:
  >>> import numpy as np
  >>> from dnijax import layers
  >>> from dnijax.reference import mlp, rules
  >>> specs = layers.mlp_specs((3, 5, 4, 2), ("tanh", "tanh", "sigmoid"))
  >>> blocks = layers.group_blocks(specs, [s.kind == "dense" for s in specs])
  >>> rng = np.random.RandomState(0)
  >>> params = [{"w": rng.randn(m, n), "b": rng.randn(n)} for m, n in ((3, 5), (5, 4), (4, 2))]
  >>> x, y = rng.randn(6, 3), rng.rand(6, 2)
  >>> rules.feedback_shapes("fa", params, x, blocks)
  [None, (5, 4), (4, 2)]
  >>> rules.feedback_shapes("dfa", params, x, blocks)
  [(2, 5), (2, 4), None]
  >>> true = [None] + [p["w"] for p in params[1:]]  # B_i = W_i: backprop exactly
  >>> j, grads = rules.fa_grads(params, true, x, y, blocks, "mse", "mean")
  >>> _, bp = mlp.backprop_grads(params, x, y, blocks, "mse", "mean")
  >>> float(max(np.abs(a - b).max() for a, b in zip(mlp.tree_leaves(grads), mlp.tree_leaves(bp))))
  0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dnijax.reference import layers as rl
from dnijax.reference import mlp

Params = dict  # one block's weighted layer: {"w": array, optional "b": array}
RULES = ("fa", "dfa", "fwdgrad")


# ---------------------------------------------------------------- pieces of a block
def _weighted_output(params: Params, h: np.ndarray, block: Any) -> np.ndarray:
    """``z = op(pre(h); params)``: a block run up to and including its weighted layer."""
    for j, spec in enumerate(block.layers[: block.weighted + 1]):
        h, _ = rl.layer_forward(spec, params if j == block.weighted else {}, h)
    return h


def _after_weighted_backward(cache: Any, grad_out: np.ndarray) -> np.ndarray:
    """The VJP of ``post o phi`` at the forward values of ``cache`` (from
    :func:`dnijax.reference.layers.block_forward`): ``grad_out = d/dh_i`` to ``d/dz_i``."""
    weighted, caches = cache
    g = grad_out
    for j in reversed(range(weighted + 1, len(caches))):
        _, g = rl.layer_backward(caches[j], g)
    return g


def _fixed_weight_backward(block: Any, w: np.ndarray, h: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The input-VJP of ``op(pre(h); {"w": w})`` (no bias) applied to ``u = d/dz``: the
    weighted layer's own backward with ``w`` in place of its weight, then the backward
    of any parameter-free layers before it. Dense: ``u w^T``; conv: the transposed
    convolution with kernel ``w``."""
    caches = []
    for j, spec in enumerate(block.layers[: block.weighted + 1]):
        h, cache = rl.layer_forward(spec, {"w": w} if j == block.weighted else {}, h)
        caches.append(cache)
    g = u
    for cache in reversed(caches):
        _, g = rl.layer_backward(cache, g)
    return g


def _check_feedback(rule: str, feedback: Sequence | None, expected: list) -> Sequence:
    """``ValueError`` unless ``feedback`` has one array of the expected shape per block
    (the entries where ``expected`` is ``None`` are not read); returns ``feedback``."""
    if feedback is None or len(feedback) != len(expected):
        raise ValueError(
            f"{rule}: give feedback, a list of {len(expected)} entries, "
            f"one per block (shapes {expected})"
        )
    for i, (fb, shape) in enumerate(zip(feedback, expected, strict=True)):
        if shape is not None and (fb is None or np.shape(fb) != shape):
            raise ValueError(
                f"{rule}: feedback[{i}] has shape "
                f"{None if fb is None else np.shape(fb)}, expected {shape}"
            )
    return feedback


def _updates(caches: list, signals: list[np.ndarray]) -> list[Params]:
    """Each block's param-VJP with its cotangent (its input held fixed)."""
    return [rl.block_backward(cache, g)[0] for cache, g in zip(caches, signals, strict=True)]


# ---------------------------------------------------------------- the fixed matrices
def feedback_shapes(
    rule: str, params: list[Params], x: np.ndarray, blocks: Sequence[Any]
) -> list[tuple | None]:
    """The shapes of the fixed matrices of rule ``rule``, one entry per block.

    * ``fa``: ``B_i`` of ``W_i``'s shape for blocks i >= 2 (a dense ``(n_in, n_out)``
      matrix or an HWIO kernel), ``None`` for block 1;
    * ``dfa``: ``D_i`` of shape ``(n_out, size(h_i))`` for blocks i < L, with ``n_out``
      the size of one example's ``z_L`` (the output block's weighted layer output) and
      ``size(h_i)`` that of one example's ``h_i``; ``None`` for the output block;
    * ``fwdgrad``: none (its direction is drawn every step), ``None`` everywhere.

    Args:
      rule: ``fa``, ``dfa`` or ``fwdgrad``.
      params: the network's parameters (only ``W_i``'s shapes, and for ``dfa`` one
        forward pass, are used).
      x: a batch (for ``dfa``, its first row fixes the block output shapes).
      blocks: the network's blocks (``dnijax.layers.Block``).

    Returns:
      a list of shape tuples and ``None``, one per block.

    Raises:
      ValueError: for another rule.
    """
    n = len(params)
    if rule == "fa":
        return [None] + [tuple(np.shape(p["w"])) for p in params[1:]]
    if rule == "dfa":
        hs, _ = mlp.forward(params, x[:1], blocks)
        n_out = _weighted_output(params[-1], hs[-2], blocks[-1]).size
        return [(n_out, h.size) for h in hs[1:-1]] + [None]
    if rule == "fwdgrad":
        return [None] * n
    raise ValueError(f"unknown signal rule {rule!r}; fixed matrices exist for {', '.join(RULES)}")


# ---------------------------------------------------------------- the rules
def fa_grads(
    params: list[Params],
    feedback: Sequence | None,
    x: np.ndarray,
    y: np.ndarray,
    blocks: Sequence[Any],
    loss: str,
    reduction: str,
) -> tuple[float, list[Params]]:
    """Rule ``fa``, feedback alignment (Lillicrap et al. 2016), one step.

    ``e_L = c e = dJ/dh_L``; for i < L, ``u_{i+1}`` is the VJP of ``post_{i+1} o
    phi_{i+1}`` at the true forward values applied to ``e_{i+1}``, and ``e_i`` the
    input-VJP of ``op_{i+1}(. ; B_{i+1})`` (no bias) applied to ``u_{i+1}``: for dense
    ``e_i = u_{i+1} B_{i+1}^T`` (``docs/math.md``, "Other signal rules: feedback
    alignment, direct feedback alignment, forward gradients"). With ``B_i = W_i`` this
    is backprop.

    Args:
      params: the network's parameters.
      feedback: one entry per block: ``feedback[0]`` is not read (``None``),
        ``feedback[i]`` (0-based, i >= 1) is ``B`` for block i+1, of ``W``'s shape.
      x: the batch.
      y: its encoded targets.
      blocks: the network's blocks (``dnijax.layers.Block``).
      loss: as in ``docs/math.md``, "Networks".
      reduction: as in ``docs/math.md``, "Networks".

    Returns:
      ``(J, grads)``: the batch loss at ``params`` and one gradient dict per block.

    Raises:
      ValueError: when ``feedback`` has the wrong length or a matrix the wrong shape.
    """
    n = len(params)
    feedback = _check_feedback("fa", feedback, feedback_shapes("fa", params, x, blocks))
    blocks = mlp.effective_blocks(blocks, loss)
    hs, caches = mlp.forward(params, x, blocks)
    c = mlp.batch_scale(x.shape[0], reduction)
    per_example, e = mlp.loss_and_output_grad(hs[-1], y, loss)
    signals: list[Any] = [None] * n  # every entry set below
    signals[n - 1] = c * e
    for i in reversed(range(n - 1)):  # block i+2 (1-based) sends its signal to block i+1
        u = _after_weighted_backward(caches[i + 1], signals[i + 1])
        signals[i] = _fixed_weight_backward(blocks[i + 1], feedback[i + 1], hs[i + 1], u)
    return c * per_example.sum(), _updates(caches, signals)


def dfa_grads(
    params: list[Params],
    feedback: Sequence | None,
    x: np.ndarray,
    y: np.ndarray,
    blocks: Sequence[Any],
    loss: str,
    reduction: str,
) -> tuple[float, list[Params]]:
    """Rule ``dfa``, direct feedback alignment (Nokland 2016), one step.

    ``delta = dJ/dz_L``, the backward of ``c e`` through the output block's layers
    after its weighted layer (a ``sigmoid`` under ``mse``; nothing for ``xent`` and
    ``bce``, which read the logits), and ``e_i = reshape(delta D_i, shape of h_i)``
    (row-major) for every block i < L (``docs/math.md``, "Other signal rules: feedback
    alignment, direct feedback alignment, forward gradients").

    Args:
      params: the network's parameters.
      feedback: one entry per block: ``feedback[i]`` (0-based, i < L-1) is ``D`` for
        block i+1, of shape ``(n_out, size(h_{i+1}))``; ``feedback[L-1]`` is not read
        (``None``).
      x: the batch.
      y: its encoded targets.
      blocks: the network's blocks (``dnijax.layers.Block``).
      loss: as in ``docs/math.md``, "Networks".
      reduction: as in ``docs/math.md``, "Networks".

    Returns:
      ``(J, grads)``: the batch loss at ``params`` and one gradient dict per block.

    Raises:
      ValueError: when ``feedback`` has the wrong length or a matrix the wrong shape.
    """
    n = len(params)
    feedback = _check_feedback("dfa", feedback, feedback_shapes("dfa", params, x, blocks))
    hs, caches = mlp.forward(params, x, mlp.effective_blocks(blocks, loss))
    c = mlp.batch_scale(x.shape[0], reduction)
    per_example, e = mlp.loss_and_output_grad(hs[-1], y, loss)
    delta = _after_weighted_backward(caches[-1], c * e).reshape(x.shape[0], -1)
    signals = [(delta @ feedback[i]).reshape(hs[i + 1].shape) for i in range(n - 1)]
    return c * per_example.sum(), _updates(caches, signals + [c * e])


def fwdgrad_grads(
    params: list[Params],
    direction: list[Params] | None,
    x: np.ndarray,
    y: np.ndarray,
    blocks: Sequence[Any],
    loss: str,
    reduction: str,
) -> tuple[float, list[Params]]:
    """Rule ``fwdgrad``, forward gradient (Baydin et al. 2022), one step.

    ``g = (grad J . v) v``, with ``grad J . v`` the sum over every leaf of the
    elementwise product of the true gradient (:func:`dnijax.reference.mlp.backprop_grads`)
    and ``v``; every block, the output block included (``docs/math.md``, "Other signal
    rules: feedback alignment, direct feedback alignment, forward gradients").

    Args:
      params: the network's parameters.
      direction: ``v``, a tree like ``params`` (dicts with the same keys and shapes).
      x: the batch.
      y: its encoded targets.
      blocks: the network's blocks (``dnijax.layers.Block``).
      loss: as in ``docs/math.md``, "Networks".
      reduction: as in ``docs/math.md``, "Networks".

    Returns:
      ``(J, grads)``: the batch loss at ``params`` and ``(grad J . v) v`` as one dict
      per block.

    Raises:
      ValueError: when ``direction`` is missing or not shaped like ``params``.
    """
    if direction is None or [np.shape(a) for a in mlp.tree_leaves(direction)] != [
        np.shape(a) for a in mlp.tree_leaves(params)
    ]:
        raise ValueError("fwdgrad: give a direction, a tree like the parameters")
    j, grads = mlp.backprop_grads(params, x, y, blocks, loss, reduction)
    slope = sum(
        np.sum(g * v)
        for g, v in zip(mlp.tree_leaves(grads), mlp.tree_leaves(direction), strict=True)
    )
    return j, mlp.tree_map(lambda v: slope * v, direction)
