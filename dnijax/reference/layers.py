"""Every built-in layer kind, its blocks and the SG modules, derived by hand in numpy.

The layer-level half of the numpy reference (``docs/math.md``, "Layers by hand:
convolution and pooling"): no autodiff, no JAX. Each kind has a forward
``(spec, params, h) -> (out, cache)`` and a backward ``(cache, grad_out) ->
(param_grads, grad_in)``, where ``grad_out = d(objective)/d out`` and the backward
returns ``d(objective)/d params`` (``{}`` for a layer without parameters) and
``d(objective)/d h``. A layer is described by a ``dnijax.layers.LayerSpec`` (read
through ``spec.kind`` and ``spec.get``) and a block by a ``dnijax.layers.Block``;
this module only reads those tuples and imports nothing of ``dnijax``. Each kind is
one :class:`KindRule` (its forward and backward) in :data:`KIND_RULES`, each activation
one :class:`ActivationRule` in :data:`ACTIVATION_RULES`.

Shapes carry the batch on the leading axis: ``dense`` acts on the last axis,
``conv2d`` and the pools on NHWC images, with HWIO kernels.

Examples:
  >>> import numpy as np
  >>> from dnijax.reference import layers as rl
  >>> rng = np.random.RandomState(0)
  >>> conv = {"w": rng.randn(3, 3, 2, 4), "b": np.zeros(4)}
  >>> out, cache = rl.conv2d_forward(conv, rng.randn(5, 7, 7, 2), stride=2)
  >>> out.shape
  (5, 4, 4, 4)
  >>> grads, grad_in = rl.conv2d_backward(cache, np.ones_like(out))
  >>> grads["w"].shape, grad_in.shape
  ((3, 3, 2, 4), (5, 7, 7, 2))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

Params = dict  # one weighted layer: {"w": array, optional "b": array}
Cache = Any  # whatever a backward needs from its forward


# ---------------------------------------------------------------- activations
def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))``, evaluated without overflow for either sign of ``z``."""
    ez = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + ez), ez / (1.0 + ez))


class ActivationRule(NamedTuple):
    """An activation by hand: ``fn(z) = phi(z)`` and ``slope(z, h) = phi'(z)`` (with
    ``h = phi(z)``)."""

    fn: Callable[[np.ndarray], np.ndarray]
    slope: Callable[[np.ndarray, np.ndarray], np.ndarray]


ACTIVATION_RULES: dict[str, ActivationRule] = {
    "sigmoid": ActivationRule(sigmoid, lambda z, h: h * (1.0 - h)),
    "tanh": ActivationRule(np.tanh, lambda z, h: 1.0 - h * h),
    "relu": ActivationRule(lambda z: np.maximum(z, 0.0), lambda z, h: (z > 0).astype(z.dtype)),
    "identity": ActivationRule(lambda z: z, lambda z, h: np.ones_like(z)),
}
ACTIVATIONS = tuple(ACTIVATION_RULES)


def _activation_rule(name: str) -> ActivationRule:
    if name not in ACTIVATION_RULES:
        raise ValueError(f"unknown activation {name!r}")
    return ACTIVATION_RULES[name]


def activate(z: np.ndarray, name: str) -> np.ndarray:
    """``phi(z)`` for ``sigmoid``, ``tanh``, ``relu`` and ``identity``."""
    return _activation_rule(name).fn(z)


def activation_slope(z: np.ndarray, h: np.ndarray, name: str) -> np.ndarray:
    """``phi'(z)``: ``h(1-h)``, ``1-h^2``, ``[z > 0]`` (0 at z = 0) or ``1``."""
    return _activation_rule(name).slope(z, h)


def activation_forward(name: str, z: np.ndarray) -> tuple[np.ndarray, Cache]:
    """``h = phi(z)`` elementwise."""
    h = activate(z, name)
    return h, (name, z, h)


def activation_backward(cache: Cache, grad_out: np.ndarray) -> tuple[dict, np.ndarray]:
    """``d/dz = G * phi'(z)`` (``docs/math.md``, "Synthetic gradients (DNI)", the
    hand-derived backward formulas)."""
    name, z, h = cache
    return {}, grad_out * activation_slope(z, h, name)


# ---------------------------------------------------------------- dense
def dense_forward(params: Params, h: np.ndarray) -> tuple[np.ndarray, Cache]:
    """``z = h W (+ b)`` on the last axis of ``h``."""
    z = h @ params["w"]
    if "b" in params:
        z = z + params["b"]
    return z, (params, h)


def dense_backward(cache: Cache, grad_out: np.ndarray) -> tuple[Params, np.ndarray]:
    """With ``delta = d/dz`` (rows: every position but the last axis):
    ``dW = h^T delta``, ``db = sum_rows delta``, ``d/dh = delta W^T``."""
    params, h = cache
    n_in, n_out = params["w"].shape
    delta = grad_out.reshape(-1, n_out)
    grads = {"w": h.reshape(-1, n_in).T @ delta}
    if "b" in params:
        grads["b"] = delta.sum(axis=0)
    return grads, grad_out @ params["w"].T


# ---------------------------------------------------------------- conv2d by im2col
def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """XLA's SAME rule on one axis: ``(out, pad_low, pad_high)`` with
    ``out = ceil(size / stride)``, ``pad_total = max((out - 1) stride + kernel - size, 0)``,
    ``pad_low = pad_total // 2`` (the odd unit goes high)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _window_slices(di: int, dj: int, out_h: int, out_w: int, stride: int) -> tuple[slice, ...]:
    """The rows/columns ``i s + di`` (``i < out_h``) and ``j s + dj`` of a padded image."""
    return (
        slice(None),
        slice(di, di + stride * (out_h - 1) + 1, stride),
        slice(dj, dj + stride * (out_w - 1) + 1, stride),
        slice(None),
    )


def im2col(
    h: np.ndarray,
    kernel: tuple[int, int],
    stride: int,
    padding: tuple[tuple[int, int], tuple[int, int]],
) -> np.ndarray:
    """The patch tensor ``P[b, i, j, di, dj, c] = pad(h)[b, i s + di, j s + dj, c]``
    (``docs/math.md``, "Layers by hand: convolution and pooling").

    Args:
      h: a batch of NHWC images.
      kernel: the window's ``(height, width)``.
      stride: the step ``s`` between windows, on both axes.
      padding: ``((low, high), (low, high))`` zeros for height and width.

    Returns:
      ``P`` of shape ``(B, Ho, Wo, kh, kw, C)``, the output grid as large as the padded
      image allows: ``Ho = (H + low + high - kh) // s + 1``.
    """
    kh, kw = kernel
    hp = np.pad(h, ((0, 0), padding[0], padding[1], (0, 0)))
    out_h = (hp.shape[1] - kh) // stride + 1
    out_w = (hp.shape[2] - kw) // stride + 1
    patches = np.empty((h.shape[0], out_h, out_w, kh, kw, h.shape[3]), h.dtype)
    for di in range(kh):
        for dj in range(kw):
            patches[:, :, :, di, dj, :] = hp[_window_slices(di, dj, out_h, out_w, stride)]
    return patches


def col2im(
    grad_patches: np.ndarray,
    in_shape: tuple[int, ...],
    stride: int,
    padding: tuple[tuple[int, int], tuple[int, int]],
) -> np.ndarray:
    """The transpose of :func:`im2col`.

    Every patch entry's gradient is added back onto the padded pixel it was copied
    from, so overlapping windows add up; then the padding is cut off:
    ``d/dh[b, y, x, c] = sum over (i, di) with i s + di = y + low, (j, dj) alike, of
    dP[b, i, j, di, dj, c]``.

    Args:
      grad_patches: ``dP``, of the shape :func:`im2col` returned.
      in_shape: the shape of the unpadded input ``h``.
      stride: as given to :func:`im2col`.
      padding: as given to :func:`im2col`.

    Returns:
      ``d/dh``, of shape ``in_shape``.
    """
    _, out_h, out_w, kh, kw, _ = grad_patches.shape
    b, height, width, c = in_shape
    (top, bottom), (left, right) = padding
    grad = np.zeros((b, height + top + bottom, width + left + right, c), grad_patches.dtype)
    for di in range(kh):
        for dj in range(kw):
            grad[_window_slices(di, dj, out_h, out_w, stride)] += grad_patches[:, :, :, di, dj, :]
    return grad[:, top : top + height, left : left + width, :]


def conv2d_forward(params: Params, h: np.ndarray, stride: int = 1) -> tuple[np.ndarray, Cache]:
    """A 2-D cross-correlation (no kernel flip), SAME padding (:func:`same_padding`).

    ``out[b, i, j, o] = sum_{di, dj, c} P[b, i, j, di, dj, c] W[di, dj, c, o] (+ b_o)``:
    the im2col patches as a ``(B Ho Wo, k k C)`` matrix times the kernel reshaped to
    ``(k k C, O)`` (``docs/math.md``, "Layers by hand: convolution and pooling").

    Args:
      params: ``{"w": (kh, kw, C, O)`` (HWIO), optional ``"b": (O,)}``.
      h: a batch of NHWC images.
      stride: the step between windows, on both axes.

    Returns:
      ``(out, cache)``, ``out`` of shape ``(B, ceil(H / s), ceil(W / s), O)``.
    """
    w = params["w"]
    kh, kw, c_in, c_out = w.shape
    _, pad_h, pad_hh = same_padding(h.shape[1], kh, stride)
    _, pad_w, pad_wh = same_padding(h.shape[2], kw, stride)
    padding = ((pad_h, pad_hh), (pad_w, pad_wh))
    patches = im2col(h, (kh, kw), stride, padding)
    out = patches.reshape(-1, kh * kw * c_in) @ w.reshape(-1, c_out)
    out = out.reshape(patches.shape[:3] + (c_out,))
    if "b" in params:
        out = out + params["b"]
    return out, (params, patches, h.shape, stride, padding)


def conv2d_backward(cache: Cache, grad_out: np.ndarray) -> tuple[Params, np.ndarray]:
    """The three gradients of :func:`conv2d_forward`.

    With ``delta = d/d out`` as a ``(B Ho Wo, O)`` matrix and ``P`` the patch matrix:
    ``dW = P^T delta``, ``db = sum_rows delta``, ``dP = delta W^T``, and ``d/dh`` is
    ``dP`` put back by :func:`col2im` (``docs/math.md``, "Layers by hand: convolution
    and pooling").

    Args:
      cache: from :func:`conv2d_forward`.
      grad_out: ``d(objective)/d out``.

    Returns:
      ``({"w": dW[, "b": db]}, d(objective)/dh)``.
    """
    params, patches, in_shape, stride, padding = cache
    w = params["w"]
    c_out = w.shape[-1]
    delta = grad_out.reshape(-1, c_out)
    grads = {"w": (patches.reshape(delta.shape[0], -1).T @ delta).reshape(w.shape)}
    if "b" in params:
        grads["b"] = delta.sum(axis=0)
    grad_patches = (delta @ w.reshape(-1, c_out).T).reshape(patches.shape)
    return grads, col2im(grad_patches, in_shape, stride, padding)


# ---------------------------------------------------------------- pooling
def pool_forward(
    h: np.ndarray, reducer: str, window: int, stride: int | None = None
) -> tuple[np.ndarray, Cache]:
    """Max or mean over each ``window x window`` patch, per channel, VALID padding.

    Args:
      h: a batch of NHWC images.
      reducer: ``max`` or ``avg``.
      window: the patch size ``w``.
      stride: the step ``s`` between patches (default ``window``).

    Returns:
      ``(out, cache)``, ``out`` of shape ``(B, (H - w) // s + 1, (W - w) // s + 1, C)``.
    """
    stride = window if stride is None else stride
    patches = im2col(h, (window, window), stride, ((0, 0), (0, 0)))
    flat = patches.reshape(patches.shape[:3] + (window * window, h.shape[3]))
    if reducer == "max":
        first = np.argmax(flat, axis=3)  # the first maximum in row-major (di, dj) order
        out = np.take_along_axis(flat, first[:, :, :, None, :], axis=3)[:, :, :, 0, :]
        return out, ("max", first, patches.shape, h.shape, stride)
    if reducer == "avg":
        return flat.mean(axis=3), ("avg", None, patches.shape, h.shape, stride)
    raise ValueError(f"unknown pool {reducer!r}")


def pool_backward(cache: Cache, grad_out: np.ndarray) -> tuple[dict, np.ndarray]:
    """The input gradient of :func:`pool_forward` (``docs/math.md``, "Layers by hand:
    convolution and pooling").

    ``avg``: each pixel of a window gets ``G / w^2``. ``max``: the window's whole ``G``
    goes to its first maximal pixel in row-major ``(di, dj)`` order (JAX's rule for
    ties), the others get 0. Windows that overlap add up (:func:`col2im`).

    Args:
      cache: from :func:`pool_forward`.
      grad_out: ``G = d(objective)/d out``.

    Returns:
      ``({}, d(objective)/dh)``.
    """
    reducer, first, patch_shape, in_shape, stride = cache
    b, out_h, out_w, kh, kw, c = patch_shape
    if reducer == "max":
        picked = np.arange(kh * kw)[None, None, None, :, None] == first[:, :, :, None, :]
        grad_flat = picked * grad_out[:, :, :, None, :]
    else:
        grad_flat = np.broadcast_to(
            grad_out[:, :, :, None, :] / (kh * kw), (b, out_h, out_w, kh * kw, c)
        )
    grad_patches = grad_flat.reshape(patch_shape)
    return {}, col2im(grad_patches, in_shape, stride, ((0, 0), (0, 0)))


# ---------------------------------------------------------------- any layer, a block
class KindRule(NamedTuple):
    """A built-in layer kind by hand: ``forward(spec, params, h) -> (out, cache)`` and
    ``backward(cache, grad_out) -> (param_grads, grad_in)``."""

    forward: Callable[[Any, Params, np.ndarray], tuple[np.ndarray, Cache]]
    backward: Callable[[Cache, np.ndarray], tuple[dict, np.ndarray]]


def _conv2d_rule_forward(spec: Any, params: Params, h: np.ndarray) -> tuple[np.ndarray, Cache]:
    kernel = spec.get("kernel", 3)
    if params["w"].shape[:2] != (kernel, kernel):
        raise ValueError(f"conv2d: kernel {kernel} but weights of shape {params['w'].shape}")
    return conv2d_forward(params, h, spec.get("stride", 1))


def _pool_rule_forward(spec: Any, params: Params, h: np.ndarray) -> tuple[np.ndarray, Cache]:
    window = spec.get("window", 2)
    return pool_forward(h, spec.kind[:3], window, spec.get("stride", window))


def _reshape_rule_forward(spec: Any, params: Params, h: np.ndarray) -> tuple[np.ndarray, Cache]:
    return h.reshape((h.shape[0],) + tuple(spec.get("shape"))), h.shape


def _move_back(cache: Cache, grad_out: np.ndarray) -> tuple[dict, np.ndarray]:
    """``flatten`` and ``reshape`` only move entries: their backward reshapes ``G`` back."""
    return {}, grad_out.reshape(cache)


# The rules call this module's functions by name when they run, so a test that replaces
# one of them (a deliberately wrong backward) reaches every layer that uses it.
KIND_RULES: dict[str, KindRule] = {
    "dense": KindRule(
        lambda spec, params, h: dense_forward(params, h), lambda cache, g: dense_backward(cache, g)
    ),
    "conv2d": KindRule(
        lambda spec, params, h: _conv2d_rule_forward(spec, params, h),
        lambda cache, g: conv2d_backward(cache, g),
    ),
    "max_pool": KindRule(
        lambda spec, params, h: _pool_rule_forward(spec, params, h),
        lambda cache, g: pool_backward(cache, g),
    ),
    "avg_pool": KindRule(
        lambda spec, params, h: _pool_rule_forward(spec, params, h),
        lambda cache, g: pool_backward(cache, g),
    ),
    "flatten": KindRule(
        lambda spec, params, h: (h.reshape(h.shape[0], -1), h.shape),
        lambda cache, g: _move_back(cache, g),
    ),
    "reshape": KindRule(
        lambda spec, params, h: _reshape_rule_forward(spec, params, h),
        lambda cache, g: _move_back(cache, g),
    ),
    **{
        name: KindRule(
            lambda spec, params, h: activation_forward(spec.kind, h),
            lambda cache, g: activation_backward(cache, g),
        )
        for name in ACTIVATIONS
    },
}
BUILTIN_KINDS = tuple(KIND_RULES)


def layer_forward(spec: Any, params: Params, h: np.ndarray) -> tuple[np.ndarray, Cache]:
    """The forward of one built-in layer on a batch (its :class:`KindRule`).

    Args:
      spec: a ``dnijax.layers.LayerSpec`` of a built-in kind (options read with
        ``spec.get``, defaults as in ``dnijax.layers``).
      params: the layer's parameters, ``{}`` for a parameter-free kind.
      h: the batch, leading axis B.

    Returns:
      ``(out, cache)`` for :func:`layer_backward`.

    Raises:
      ValueError: for a kind registered by the user (its derivative is unknown here),
        or a conv kernel that does not match its weights.
    """
    kind = spec.kind
    if kind not in KIND_RULES:
        raise ValueError(
            f"layer kind {kind!r}: the reference derives built-in kinds only "
            f"({', '.join(BUILTIN_KINDS)})"
        )
    out, cache = KIND_RULES[kind].forward(spec, params, h)
    return out, (kind, cache)


def layer_backward(cache: Cache, grad_out: np.ndarray) -> tuple[dict, np.ndarray]:
    """The backward of one layer: ``(d/d params, d/dh)`` given ``G = d/d out``.

    ``flatten`` and ``reshape`` only move entries, so their backward reshapes ``G``
    back; the others are the ``*_backward`` functions of this module.

    Args:
      cache: from :func:`layer_forward`.
      grad_out: ``G``, of the shape of the layer's output.

    Returns:
      ``(param_grads, grad_in)``, ``param_grads`` ``{}`` for a parameter-free layer.
    """
    kind, inner = cache
    return KIND_RULES[kind].backward(inner, grad_out)


def block_forward(params: Params, h: np.ndarray, block: Any) -> tuple[np.ndarray, Cache]:
    """A block on a batch: its layers in order, the weighted one with ``params``.

    Args:
      params: the dict of the block's weighted layer.
      h: the block's input batch ``h_{i-1}``.
      block: a ``dnijax.layers.Block`` (``layers``, ``weighted``).

    Returns:
      ``(h_i, cache)`` for :func:`block_backward`.
    """
    caches = []
    for j, spec in enumerate(block.layers):
        h, cache = layer_forward(spec, params if j == block.weighted else {}, h)
        caches.append(cache)
    return h, (block.weighted, caches)


def block_backward(cache: Cache, grad_out: np.ndarray) -> tuple[Params, np.ndarray]:
    """The chain rule through a block's layers, last to first.

    Given the cotangent ``g`` at the block's output, returns the param-VJP
    ``(dh_i/dtheta_i)^T g`` and the input-VJP ``(dh_i/dh_{i-1})^T g``, both linear in
    ``g`` (``docs/math.md``, "Layers by hand: convolution and pooling", "DNI on blocks").

    Args:
      cache: from :func:`block_forward`.
      grad_out: ``g``, of the shape of the block's output.

    Returns:
      ``(param_grads, grad_in)``.
    """
    weighted, caches = cache
    grads: Params = {}
    g = grad_out
    for j in reversed(range(len(caches))):
        layer_grads, g = layer_backward(caches[j], g)
        if j == weighted:
            grads = layer_grads
    return grads, g


# ---------------------------------------------------------------- SG modules
def sg_input(h: np.ndarray, cond: np.ndarray | None) -> np.ndarray:
    """The module's input: ``h``, or with ``cond`` (B, K) appended on the last axis,
    repeated over every other non-batch position (label channels on an image)."""
    if cond is None:
        return h
    cond = cond.reshape((cond.shape[0],) + (1,) * (h.ndim - 2) + (cond.shape[-1],))
    return np.concatenate([h, np.broadcast_to(cond, h.shape[:-1] + cond.shape[-1:])], axis=-1)


def sg_forward(
    module: Sequence[Params], h: np.ndarray, cond: np.ndarray | None
) -> tuple[np.ndarray, Cache]:
    """A synthetic gradient ``d = M([h, cond])`` (``docs/math.md``, "Synthetic gradients
    (DNI)", and "Layers by hand: convolution and pooling" for conv modules).

    Args:
      module: its layers' dicts: dense (2-D ``w``) for a vector block output, SAME,
        stride-1 convolutions (4-D ``w``, kernel from its shape) for an image one;
        ReLU after every layer but the last.
      h: the block output ``h_i``.
      cond: the encoded targets ``(B, K)`` (cDNI), or ``None``; see :func:`sg_input`.

    Returns:
      ``(d, cache)``, ``d`` of the shape of ``h``.
    """
    a = sg_input(h, cond)
    caches = []
    for j, layer in enumerate(module):
        if layer["w"].ndim == 4:
            a, cache = conv2d_forward(layer, a, stride=1)
            cache = ("conv2d", cache)
        else:
            a, cache = dense_forward(layer, a)
            cache = ("dense", cache)
        caches.append(cache)
        if j < len(module) - 1:
            a, cache = activation_forward("relu", a)
            caches.append(("relu", cache))
    return a, caches


def sg_backward(cache: Cache, grad_d: np.ndarray) -> list[Params]:
    """The module's parameter gradients, by the chain rule from ``d(objective)/dd``.

    Args:
      cache: from :func:`sg_forward`.
      grad_d: ``d(objective)/dd``, e.g. ``c (d - t)`` for the SG loss.

    Returns:
      one gradient dict per module layer (the gradient reaching the module's input is
      not needed and dropped).
    """
    grads: list[Params] = []
    g = grad_d
    for kind, inner in reversed(cache):
        layer_grads, g = layer_backward((kind, inner), g)
        if kind != "relu":
            grads.append(layer_grads)
    return grads[::-1]
