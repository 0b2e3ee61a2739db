"""The four regimes derived by hand in numpy: no autodiff, no JAX (``docs/math.md``).

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


# ---------------------------------------------------------------- optimisers, per layer
OPTIMIZERS = ("sgd", "momentum", "adam")
MOMENTUM = 0.9
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


def init_optimizer(params: list, optimizer: str) -> list:
    """Per-layer optimiser state (``None`` for a layer without parameters):
    ``sgd``: nothing; ``momentum``: the trace ``m``; ``adam``: ``mu``, ``nu`` and the
    layer's own step count."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; the reference has {OPTIMIZERS}")
    states = []
    for p in params:
        zeros = _map(np.zeros_like, p)
        states.append(None if p is None else {
            "sgd": {}, "momentum": {"m": zeros},
            "adam": {"mu": zeros, "nu": _map(np.zeros_like, p), "count": 0}}[optimizer])
    return states


def optimizer_step(params: list, grads: list, states: list, lr: float, optimizer: str,
                   mask: Sequence[bool] | None = None) -> tuple[list, list]:
    """One update of each layer whose ``mask`` flag is set; the others keep their
    parameters *and* their state (``docs/math.md``, "Asynchronous updates").

    * ``sgd``: ``theta -= lr g``
    * ``momentum``: ``m = g + 0.9 m``, ``theta -= lr m``
    * ``adam``: ``k += 1``, ``mu = b1 mu + (1-b1) g``, ``nu = b2 nu + (1-b2) g^2``,
      ``theta -= lr (mu / (1-b1^k)) / (sqrt(nu / (1-b2^k)) + eps)``
    """
    new_params, new_states = [], []
    for i, (p, g, st) in enumerate(zip(params, grads, states)):
        if p is None or (mask is not None and not mask[i]):
            new_params.append(p)
            new_states.append(st)
            continue
        if optimizer == "sgd":
            step, st = _map(lambda a: lr * a, g), {}
        elif optimizer == "momentum":
            m = _map(lambda a, b: a + MOMENTUM * b, g, st["m"])
            step, st = _map(lambda a: lr * a, m), {"m": m}
        else:
            k = st["count"] + 1
            mu = _map(lambda a, b: ADAM_B1 * b + (1 - ADAM_B1) * a, g, st["mu"])
            nu = _map(lambda a, b: ADAM_B2 * b + (1 - ADAM_B2) * a * a, g, st["nu"])
            c1, c2 = 1 - ADAM_B1 ** k, 1 - ADAM_B2 ** k
            step = _map(lambda m_, v_: lr * (m_ / c1) / (np.sqrt(v_ / c2) + ADAM_EPS), mu, nu)
            st = {"mu": mu, "nu": nu, "count": k}
        new_params.append(_map(lambda a, b: a - b, p, step))
        new_states.append(st)
    return new_params, new_states


def signals(signal: str, params: list, sgs: list | None, x: np.ndarray, y: np.ndarray, *,
            activations: Sequence[str], loss: str, reduction: str, topology: str = "paper",
            conditioned: bool = False) -> dict:
    """The signals of one step of rule ``backprop`` or ``dni``: ``{"loss", "net_grads",
    "sg_grads", "sg_losses"}`` (``sg_grads`` is ``None`` for backprop)."""
    if signal == "dni":
        j, g_net, g_sg, sg_losses = dni_grads(params, sgs, x, y, activations, loss, reduction,
                                              topology, conditioned)
    elif signal == "backprop":
        (j, g_net), g_sg, sg_losses = backprop_grads(params, x, y, activations, loss,
                                                     reduction), None, []
    else:
        raise ValueError(f"unknown signal rule {signal!r}; the reference has backprop, dni")
    return {"loss": j, "net_grads": g_net, "sg_grads": g_sg, "sg_losses": sg_losses}


def trajectory(signal: str, params: list, sgs: list | None, x: np.ndarray, y: np.ndarray,
               steps: int, *, activations: Sequence[str], loss: str, reduction: str,
               lr: float, sg_lr: float | None = None, optimizer: str = "sgd",
               topology: str = "paper", conditioned: bool = False, clip: float | None = None,
               noise_before_clip: bool = False, net_noises: Sequence | None = None,
               sg_noises: Sequence | None = None,
               masks: Sequence | None = None) -> tuple[list, list | None, list[float]]:
    """``steps`` synchronous steps of rule ``signal`` from ``(params, sgs)``.

    Each step: the signals at the current parameters; for each group (network, SG
    modules) global-norm clipping (``clip``; after the noise with
    ``noise_before_clip``), the step's noise realisation (the
    ``+noise`` regimes: ``net_noises[t]``, ``sg_noises[t]``, trees like the params, or
    ``None`` for none), then the optimiser of each layer whose flag in ``masks[t]`` is
    set (``update_prob`` experiments; all layers without ``masks``).

    Args:
      signal: ``backprop`` or ``dni``.
      params, sgs: network and SG parameters (``sgs`` unused by backprop).
      x, y: the batch and its encoded targets (full batch).
      activations, loss, reduction, topology, conditioned: as in ``docs/math.md``.
      lr, sg_lr: learning rates (``sg_lr`` defaults to ``lr``); optimizer: ``sgd``,
        ``momentum`` or ``adam`` (per layer, for both groups).

    Returns:
      ``(params, sgs, losses)`` with the loss at the start of every step.
    """
    settings = dict(activations=activations, loss=loss, reduction=reduction,
                    topology=topology, conditioned=conditioned)
    net_state = init_optimizer(params, optimizer)
    sg_state = init_optimizer(sgs, optimizer) if signal == "dni" else None
    losses = []
    for t in range(steps):
        info = signals(signal, params, sgs, x, y, **settings)
        losses.append(info["loss"])
        mask = None if masks is None else masks[t]
        groups = [(params, info["net_grads"], net_state, lr,
                   None if net_noises is None else net_noises[t])]
        if info["sg_grads"] is not None:
            groups.append((sgs, info["sg_grads"], sg_state, lr if sg_lr is None else sg_lr,
                           None if sg_noises is None else sg_noises[t]))
        new = []
        for group, grads, state, rate, noise in groups:
            if clip is not None and not noise_before_clip:
                grads = clip_by_global_norm(grads, clip)
            if noise is not None:
                grads = [None if g is None else _map(lambda a, b: a + b, g, n)
                         for g, n in zip(grads, noise)]
            if clip is not None and noise_before_clip:
                grads = clip_by_global_norm(grads, clip)
            new.append(optimizer_step(group, grads, state, rate, optimizer, mask))
        (params, net_state), *rest = new
        if rest:
            sgs, sg_state = rest[0]
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
