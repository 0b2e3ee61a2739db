"""The four regimes of SPEC.md derived by hand in numpy: no autodiff, no JAX.

This module is the project's proof of correctness: tests and ``dnijax validate``
hold the JAX implementation to it. Parameters use the same layout as the JAX
side (a list of ``{"w": (n_in, n_out)[, "b": (n_out,)]}`` dicts per layer; SG
modules a list with ``None`` outside the SG set) but are plain numpy arrays.

Notation (one batch of B rows): ``z_i = h_{i-1} W_i + b_i``, ``h_i = phi_i(z_i)``,
``J = reduce_b l_b`` with ``c = 1/B`` for ``mean`` and ``c = 1`` for ``sum``, so
``dJ/dh_L = c * e`` where ``e_b = dl_b/dh_L`` is the per-example output gradient.

Example:
  >>> import numpy as np
  >>> from dnijax import reference as ref
  >>> rng = np.random.RandomState(0)
  >>> params = [{"w": rng.randn(2, 3)}, {"w": rng.randn(3, 1)}]
  >>> x, y = rng.randn(5, 2), rng.randint(0, 2, (5, 1)).astype(float)
  >>> acts = ("tanh", "sigmoid")
  >>> loss, grads = ref.backprop_grads(params, x, y, acts, "mse", "sum")
  >>> [g["w"].shape for g in grads]
  [(2, 3), (3, 1)]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Layer = dict  # {"w": array, optional "b": array}


# ---------------------------------------------------------------- activations
def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))``, evaluated without overflow for either sign of ``z``."""
    ez = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + ez), ez / (1.0 + ez))


def activate(z: np.ndarray, name: str) -> np.ndarray:
    """``phi(z)`` for ``sigmoid``, ``tanh``, ``relu`` and ``identity``."""
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "identity":
        return z
    raise ValueError(f"unknown activation {name!r}")


def activation_slope(z: np.ndarray, h: np.ndarray, name: str) -> np.ndarray:
    """``phi'(z)``: ``h(1-h)``, ``1-h^2``, ``[z > 0]`` (0 at z = 0) or ``1``."""
    if name == "sigmoid":
        return h * (1.0 - h)
    if name == "tanh":
        return 1.0 - h * h
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "identity":
        return np.ones_like(z)
    raise ValueError(f"unknown activation {name!r}")


def effective_activations(activations: Sequence[str], loss: str) -> tuple[str, ...]:
    """For ``xent`` and ``bce`` the loss reads the logits: the output is linear."""
    acts = tuple(activations)
    return acts[:-1] + ("identity",) if loss in ("xent", "bce") else acts


# ---------------------------------------------------------------- losses
def loss_and_output_grad(out: np.ndarray, y: np.ndarray,
                         loss: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-example loss ``l_b`` and its gradient ``e_b = dl_b/d out_b``.

    * ``mse``:  ``l = 0.5 ||o - y||^2``,                       ``e = o - y``
    * ``xent``: ``l = -sum_k y_k log softmax(o)_k``,            ``e = softmax(o) sum_k y_k - y``
    * ``bce``:  ``l = sum_k log(1 + e^{o_k}) - y_k o_k``,        ``e = sigmoid(o) - y``
    """
    if loss == "mse":
        diff = out - y
        return 0.5 * np.sum(diff * diff, axis=-1), diff
    if loss == "xent":
        shifted = out - out.max(axis=-1, keepdims=True)
        log_norm = np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
        log_p = shifted - log_norm
        return -np.sum(y * log_p, axis=-1), np.exp(log_p) * y.sum(-1, keepdims=True) - y
    if loss == "bce":
        return np.sum(np.logaddexp(0.0, out) - y * out, axis=-1), sigmoid(out) - y
    raise ValueError(f"unknown loss {loss!r}")


def batch_scale(batch: int, reduction: str) -> float:
    """``c`` in ``J = c * sum_b l_b``: ``1/B`` for ``mean``, ``1`` for ``sum``."""
    return 1.0 / batch if reduction == "mean" else 1.0


# ---------------------------------------------------------------- one layer
def layer_forward(layer: Layer, h_in: np.ndarray, act: str) -> tuple[np.ndarray, np.ndarray]:
    """``z = h_in W + b`` and ``h = phi(z)``."""
    z = h_in @ layer["w"]
    if "b" in layer:
        z = z + layer["b"]
    return z, activate(z, act)


def layer_backward(layer: Layer, h_in: np.ndarray, z: np.ndarray, h: np.ndarray, act: str,
                   grad_h: np.ndarray) -> tuple[Layer, np.ndarray]:
    """Given ``G = d(objective)/dh``: ``delta = G * phi'(z)``, ``dW = h_in^T delta``,
    ``db = sum_b delta`` and ``d(objective)/dh_in = delta W^T``."""
    delta = grad_h * activation_slope(z, h, act)
    grads = {"w": h_in.T @ delta}
    if "b" in layer:
        grads["b"] = delta.sum(axis=0)
    return grads, delta @ layer["w"].T


def forward(params: list[Layer], x: np.ndarray,
            acts: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``zs = [z_1..z_L]`` and ``hs = [h_0 = x, h_1..h_L]``."""
    zs, hs = [], [x]
    for layer, act in zip(params, acts):
        z, h = layer_forward(layer, hs[-1], act)
        zs.append(z)
        hs.append(h)
    return zs, hs


# ---------------------------------------------------------------- backprop
def backprop_grads(params: list[Layer], x: np.ndarray, y: np.ndarray, activations: Sequence[str],
                   loss: str, reduction: str) -> tuple[float, list[Layer]]:
    """``J`` and ``dJ/dtheta`` by the chain rule, from ``dJ/dh_L = c e`` down to layer 1."""
    acts = effective_activations(activations, loss)
    zs, hs = forward(params, x, acts)
    c = batch_scale(x.shape[0], reduction)
    per_example, e = loss_and_output_grad(hs[-1], y, loss)
    grads: list[Layer] = [None] * len(params)
    grad_h = c * e
    for i in reversed(range(len(params))):
        grads[i], grad_h = layer_backward(params[i], hs[i], zs[i], hs[i + 1], acts[i], grad_h)
    return c * per_example.sum(), grads


# ---------------------------------------------------------------- SG modules
def sg_set(n_layers: int, topology: str) -> list[bool]:
    """``paper``: layers 1..L-1 carry SG modules; ``seed``: all L layers."""
    if topology == "paper":
        return [True] * (n_layers - 1) + [False]
    if topology == "seed":
        return [True] * n_layers
    raise ValueError(f"unknown topology {topology!r}")


def sg_module_acts(module: list[Layer]) -> list[str]:
    """ReLU hidden layers, then a linear output layer."""
    return ["relu"] * (len(module) - 1) + ["identity"]


def sg_forward(module: list[Layer], h: np.ndarray, cond: np.ndarray | None):
    """``d = M([h, cond])``; also returns the module's ``(zs, hs)`` for its backward pass."""
    a = h if cond is None else np.concatenate([h, cond], axis=-1)
    zs, hs = forward(module, a, sg_module_acts(module))
    return hs[-1], (zs, hs)


def sg_backward(module: list[Layer], cache, grad_d: np.ndarray) -> list[Layer]:
    """``d(objective)/dphi`` from ``d(objective)/dd`` through the module's layers."""
    zs, hs = cache
    acts = sg_module_acts(module)
    grads: list[Layer] = [None] * len(module)
    g = grad_d
    for j in reversed(range(len(module))):
        grads[j], g = layer_backward(module[j], hs[j], zs[j], hs[j + 1], acts[j], g)
    return grads


def dni_grads(params: list[Layer], sgs: list, x: np.ndarray, y: np.ndarray,
              activations: Sequence[str], loss: str, reduction: str, topology: str,
              conditioned: bool) -> tuple[float, list[Layer], list, list[float]]:
    """The DNI signals of one step, written out.

    For layer i in S with synthetic gradient ``d_i = M_i(h_i[, y])`` (per example):
      * layer update: the layer backward with ``G = c d_i`` and its input fixed;
      * target: ``t_L = e`` (seed topology); ``t_i = (d_{i+1} * phi'(z_{i+1})) W_{i+1}^T``
        if i+1 is in S; ``t_{L-1} = (e * phi'(z_L)) W_L^T`` otherwise;
      * SG loss ``c sum_b 0.5 ||d_i - t_i||^2``, whose gradient w.r.t. ``d_i`` is
        ``c (d_i - t_i)``, carried back through the module.
    A layer outside S (the output layer, paper topology) gets the layer backward
    with ``G = c e``, its input fixed.

    Returns:
      ``J``, the network's signals, the SG modules' gradients (``None`` outside S)
      and the SG loss of each module in S.
    """
    acts = effective_activations(activations, loss)
    n = len(params)
    in_s = sg_set(n, topology)
    zs, hs = forward(params, x, acts)
    c = batch_scale(x.shape[0], reduction)
    per_example, e = loss_and_output_grad(hs[-1], y, loss)
    cond = y if conditioned else None
    d, caches = [None] * n, [None] * n
    for i in range(n):
        if in_s[i]:
            d[i], caches[i] = sg_forward(sgs[i], hs[i + 1], cond)

    def through_layer(i: int, grad_out: np.ndarray) -> np.ndarray:
        """``(dh_i/dh_{i-1})^T grad_out`` per example, for layer index i (0-based)."""
        slope = activation_slope(zs[i], hs[i + 1], acts[i])
        return (grad_out * slope) @ params[i]["w"].T

    net_grads, sg_grads, sg_losses = [None] * n, [None] * n, []
    for i in range(n):
        grad_h = c * (d[i] if in_s[i] else e)
        net_grads[i], _ = layer_backward(params[i], hs[i], zs[i], hs[i + 1], acts[i], grad_h)
        if not in_s[i]:
            continue
        if i == n - 1:
            target = e
        else:
            target = through_layer(i + 1, d[i + 1] if in_s[i + 1] else e)
        diff = d[i] - target
        sg_losses.append(c * 0.5 * np.sum(diff * diff))
        sg_grads[i] = sg_backward(sgs[i], caches[i], c * diff)
    return c * per_example.sum(), net_grads, sg_grads, sg_losses


# ---------------------------------------------------------------- noise and SGD
def paper_noise_std(eta: float, gamma: float, t: int) -> float:
    """Neelakantan et al.: ``sigma_t = sqrt(eta / (1 + t)^gamma)`` (eta is a variance)."""
    return float(np.sqrt(eta / (1.0 + t) ** gamma))


def blog_noise_std(eta: float, gamma: float, t: int) -> float:
    """The seed article: ``s_t = eta / (1 + t)^gamma`` (eta is a standard deviation)."""
    return float(eta / (1.0 + t) ** gamma)


def clip_by_global_norm(grads: list, max_norm: float) -> list:
    """Scales every gradient by ``max_norm / ||g||`` when the global norm exceeds it."""
    norm = np.sqrt(sum(np.sum(a * a) for a in _leaves(grads)))
    scale = 1.0 if norm < max_norm else max_norm / norm
    return _map(lambda a: a * scale, grads)


def sgd_update(params: list, grads: list, lr: float, noise: list | None = None,
               mask: Sequence[bool] | None = None) -> list:
    """``theta_i <- theta_i - lr (g_i + n_i)`` for each layer i whose ``mask[i]`` is set."""
    new = []
    for i, (p, g) in enumerate(zip(params, grads)):
        if p is None:
            new.append(None)
            continue
        n_i = noise[i] if noise is not None else _map(np.zeros_like, g)
        on = 1.0 if mask is None or mask[i] else 0.0
        new.append(_map(lambda a, b, m: a - on * lr * (b + m), p, g, n_i))
    return new


def step(regime: str, params: list, sgs: list | None, x: np.ndarray, y: np.ndarray, *,
         activations: Sequence[str], loss: str, reduction: str, lr: float,
         sg_lr: float | None = None, topology: str = "paper", conditioned: bool = False,
         clip: float | None = None, net_noise: list | None = None,
         sg_noise: list | None = None, mask: Sequence[bool] | None = None):
    """One synchronous SGD step of ``regime`` (signals from the current parameters).

    Args:
      regime: ``backprop``, ``dni``, ``backprop+noise`` or ``dni+noise``.
      params, sgs: network and SG parameters (``sgs`` unused without DNI).
      x, y: the batch and its encoded targets.
      activations, loss, reduction, topology, conditioned: as in SPEC.md.
      lr, sg_lr: learning rates (``sg_lr`` defaults to ``lr``).
      clip: global-norm clipping of each gradient tree before the noise.
      net_noise, sg_noise: the noise realisation to add (trees like the params);
        ignored by the regimes without ``+noise``.
      mask: per-layer update flags (``update_prob`` experiments).

    Returns:
      ``(new_params, new_sgs, info)`` with info ``{"loss", "net_grads", "sg_grads",
      "sg_losses"}`` (the gradients before clipping and noise).
    """
    noisy = regime.endswith("+noise")
    if regime.startswith("dni"):
        j, g_net, g_sg, sg_losses = dni_grads(params, sgs, x, y, activations, loss, reduction,
                                              topology, conditioned)
    elif regime.startswith("backprop"):
        (j, g_net), g_sg, sg_losses = backprop_grads(params, x, y, activations, loss,
                                                     reduction), None, []
    else:
        raise ValueError(f"unknown regime {regime!r}")
    info = {"loss": j, "net_grads": g_net, "sg_grads": g_sg, "sg_losses": sg_losses}
    clipped = (lambda g: clip_by_global_norm(g, clip)) if clip is not None else (lambda g: g)
    new_params = sgd_update(params, clipped(g_net), lr, net_noise if noisy else None, mask)
    new_sgs = sgs
    if g_sg is not None:
        new_sgs = sgd_update(sgs, clipped(g_sg), lr if sg_lr is None else sg_lr,
                             sg_noise if noisy else None, mask)
    return new_params, new_sgs, info


def trajectory(regime: str, params: list, sgs: list | None, x: np.ndarray, y: np.ndarray,
               steps: int, *, net_noises: Sequence | None = None,
               sg_noises: Sequence | None = None, masks: Sequence | None = None, **settings):
    """``steps`` calls of :func:`step`; per-step noise and masks are taken from the lists.

    Returns ``(params, sgs, losses)`` with the loss at the start of every step.
    """
    losses = []
    for t in range(steps):
        params, sgs, info = step(
            regime, params, sgs, x, y,
            net_noise=None if net_noises is None else net_noises[t],
            sg_noise=None if sg_noises is None else sg_noises[t],
            mask=None if masks is None else masks[t], **settings)
        losses.append(info["loss"])
    return params, sgs, losses


# ---------------------------------------------------------------- tiny tree helpers
def _leaves(tree) -> list[np.ndarray]:
    if tree is None:
        return []
    if isinstance(tree, dict):
        return [a for k in sorted(tree) for a in _leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [a for t in tree for a in _leaves(t)]
    return [tree]


def _map(fn, tree, *rest):
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: _map(fn, tree[k], *(r[k] for r in rest)) for k in tree}
    if isinstance(tree, (list, tuple)):
        return [_map(fn, t, *(r[i] for r in rest)) for i, t in enumerate(tree)]
    return fn(tree, *rest)
