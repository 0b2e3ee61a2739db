"""The four regimes derived by hand in numpy: no autodiff, no JAX (``docs/math.md``).

This module is the project's proof of correctness for feed-forward networks (MLPs and
any other stack of built-in layers): tests and ``dnijax validate`` hold the JAX
implementation to it. A network is a tuple of blocks
(``dnijax.layers.Block``: one layer with parameters and the parameter-free layers
around it, of any built-in kind); the layer-level derivatives live in
:mod:`dnijax.reference.layers`. Parameters use the same layout as the JAX side (a
list with the dict of each block's weighted layer, ``{"w", optional "b"}``; SG
modules a list with ``None`` outside the SG set) but are plain numpy arrays. The rules
``fa``, ``dfa`` and ``fwdgrad`` live in :mod:`dnijax.reference.rules`; :func:`signals`
and :func:`trajectory` run them too.

Notation (one batch of B rows): block i maps ``h_{i-1}`` to ``h_i = f_i(h_{i-1};
theta_i)`` with ``h_0 = x``; ``J = reduce_b l_b`` with ``c = 1/B`` for ``mean`` and
``c = 1`` for ``sum``, so ``dJ/dh_L = c * e`` where ``e_b = dl_b/dh_L`` is the
per-example output gradient.

Examples:
  >>> import numpy as np
  >>> from dnijax import layers
  >>> from dnijax.reference import mlp as ref
  >>> specs = layers.mlp_specs((2, 3, 1), ("tanh", "sigmoid"), bias=False)
  >>> blocks = layers.group_blocks(specs, [s.kind == "dense" for s in specs])
  >>> rng = np.random.RandomState(0)
  >>> params = [{"w": rng.randn(2, 3)}, {"w": rng.randn(3, 1)}]
  >>> x, y = rng.randn(5, 2), rng.randint(0, 2, (5, 1)).astype(float)
  >>> loss, grads = ref.backprop_grads(params, x, y, blocks, "mse", "sum")
  >>> [g["w"].shape for g in grads]
  [(2, 3), (3, 1)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from dnijax.reference.layers import (
    ACTIVATIONS,
    block_backward,
    block_forward,
    sg_backward,
    sg_forward,
    sigmoid,
)

Params = dict  # one block's weighted layer: {"w": array, optional "b": array}


def effective_blocks(blocks: Sequence[Any], loss: str) -> tuple:
    """For ``xent`` and ``bce`` the loss reads the logits: an activation that ends the
    last block counts as ``identity``."""
    blocks = tuple(blocks)
    last = blocks[-1].layers[-1]
    if loss not in ("xent", "bce") or last.kind not in ACTIVATIONS:
        return blocks
    linear = last._replace(kind="identity", options=())
    return blocks[:-1] + (blocks[-1]._replace(layers=blocks[-1].layers[:-1] + (linear,)),)


# ---------------------------------------------------------------- losses
def mse(out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``l = 0.5 ||o - y||^2``, ``e = o - y``."""
    diff = out - y
    return 0.5 * np.sum(diff * diff, axis=-1), diff


def xent(out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``l = -sum_k y_k log softmax(o)_k``, ``e = softmax(o) sum_k y_k - y``."""
    shifted = out - out.max(axis=-1, keepdims=True)
    log_norm = np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    log_p = shifted - log_norm
    return -np.sum(y * log_p, axis=-1), np.exp(log_p) * y.sum(-1, keepdims=True) - y


def bce(out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``l = sum_k log(1 + e^{o_k}) - y_k o_k``, ``e = sigmoid(o) - y``."""
    return np.sum(np.logaddexp(0.0, out) - y * out, axis=-1), sigmoid(out) - y


LOSSES: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "mse": mse,
    "xent": xent,
    "bce": bce,
}


def loss_and_output_grad(
    out: np.ndarray, y: np.ndarray, loss: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example loss ``l_b`` and its gradient ``e_b = dl_b/d out_b``: the loss ``loss``
    of :data:`LOSSES` (:func:`mse`, :func:`xent`, :func:`bce`)."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}")
    return LOSSES[loss](out, y)


def batch_scale(batch: int, reduction: str) -> float:
    """``c`` in ``J = c * sum_b l_b``: ``1/B`` for ``mean``, ``1`` for ``sum``."""
    return 1.0 / batch if reduction == "mean" else 1.0


# ---------------------------------------------------------------- the network
def forward(
    params: list[Params], x: np.ndarray, blocks: Sequence[Any]
) -> tuple[list[np.ndarray], list]:
    """``hs = [h_0 = x, h_1..h_L]`` (the block outputs) and each block's cache."""
    hs, caches = [x], []
    for p, block in zip(params, blocks, strict=True):
        h, cache = block_forward(p, hs[-1], block)
        hs.append(h)
        caches.append(cache)
    return hs, caches


# ---------------------------------------------------------------- backprop
def backprop_grads(
    params: list[Params],
    x: np.ndarray,
    y: np.ndarray,
    blocks: Sequence[Any],
    loss: str,
    reduction: str,
) -> tuple[float, list[Params]]:
    """``J`` and ``dJ/dtheta`` by the chain rule, from ``dJ/dh_L = c e`` down through
    every block's backward to block 1."""
    hs, caches = forward(params, x, effective_blocks(blocks, loss))
    c = batch_scale(x.shape[0], reduction)
    per_example, e = loss_and_output_grad(hs[-1], y, loss)
    grads: list[Any] = [None] * len(params)  # every entry set below
    grad_h = c * e
    for i in reversed(range(len(params))):
        grads[i], grad_h = block_backward(caches[i], grad_h)
    return c * per_example.sum(), grads


# ---------------------------------------------------------------- DNI
TOPOLOGIES: dict[str, Callable[[int], list[bool]]] = {
    "paper": lambda n_blocks: [True] * (n_blocks - 1) + [False],
    "seed": lambda n_blocks: [True] * n_blocks,
}


def sg_set(n_blocks: int, topology: str) -> list[bool]:
    """``paper``: blocks 1..L-1 carry SG modules; ``seed``: all L blocks."""
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}")
    return TOPOLOGIES[topology](n_blocks)


SG_TARGETS = ("per_example", "batch")


def check_sg_target(sg_target: str) -> str:
    """``sg_target`` if it is one of :data:`SG_TARGETS`, else ``ValueError``."""
    if sg_target not in SG_TARGETS:
        raise ValueError(f"unknown sg_target {sg_target!r}; choose 'per_example' or 'batch'")
    return sg_target


def dni_grads(
    params: list[Params],
    sgs: list,
    x: np.ndarray,
    y: np.ndarray,
    blocks: Sequence[Any],
    loss: str,
    reduction: str,
    topology: str,
    conditioned: bool,
    *,
    sg_target: str = "per_example",
    sg_scale: float = 1.0,
) -> tuple[float, list[Params], list, list[float]]:
    """The DNI signals of one step, written out, block by block.

    ``docs/math.md``, "Synthetic gradients (DNI)" and its "SG target scale
    (``sg_target``)". For block i in S with synthetic gradient ``d_i = M_i(h_i[, y])``
    (per example; inner products and norms over all non-batch axes), and ``s = 1``
    for ``sg_target="per_example"``, ``s = c`` for ``"batch"``:
      * block update: the block's param-VJP with cotangent ``c d_i`` (``per_example``)
        or ``d_i`` (``batch``: a sum over the batch), its input fixed;
      * target: ``t_L = s e`` (seed topology); else the input-VJP of block i+1 applied
        to ``d_{i+1}`` if i+1 is in S, to ``s e`` otherwise;
      * SG loss ``c sum_b 0.5 ||d_i - t_i||^2``, whose gradient w.r.t. ``d_i`` is
        ``c (d_i - t_i)``, carried back through the module.
    A block outside S (the output block, paper topology) gets its param-VJP with
    cotangent ``c e``, its input fixed. Under ``sum`` (``c = 1``) both settings agree.
    With ``sg_scale`` ``a`` (``docs/math.md``, "SG scale") every ``d_i`` above that is
    used as a gradient (a block's cotangent, and so the target it hands down) is
    ``a d_i``; the SG loss compares ``d_i`` itself.

    Block i's VJP is linear in its cotangent ``g_i`` (``d_i`` in S, ``e`` outside), so
    one backward pass with ``g_i`` gives both its update (times ``c`` or ``1``) and
    ``t_{i-1}`` (times ``s`` when ``g_i = e``).

    Args:
      params: network parameters.
      sgs: SG parameters (``sgs[i]`` is ``None`` outside S).
      x: the batch.
      y: its encoded targets.
      blocks: the network's blocks (``dnijax.layers.Block``).
      loss: as in ``docs/math.md``.
      reduction: as in ``docs/math.md``.
      topology: as in ``docs/math.md``.
      conditioned: as in ``docs/math.md``.
      sg_target: ``per_example`` (``d_i`` estimates ``dl_b/dh_i``; the default) or
        ``batch`` (``d_i`` estimates ``dJ/dh_i,b = c dl_b/dh_i``).
      sg_scale: the factor ``a`` on each synthetic gradient used as a gradient.

    Returns:
      ``J``, the network's signals, the SG modules' gradients (``None`` outside S)
      and the SG loss of each module in S.

    Raises:
      ValueError: ``sg_target`` is neither ``per_example`` nor ``batch``.
    """
    batch = check_sg_target(sg_target) == "batch"
    n = len(params)
    in_s = sg_set(n, topology)
    hs, caches = forward(params, x, effective_blocks(blocks, loss))
    c = batch_scale(x.shape[0], reduction)
    per_example, e = loss_and_output_grad(hs[-1], y, loss)
    target_scale = c if batch else 1.0  # s: the scale of the true output gradient's targets
    update_scale = 1.0 if batch else c  # the factor on a block in S's param-VJP of d_i
    cond = y if conditioned else None
    d: list[Any] = [None] * n  # set for the blocks in S
    sg_caches: list[Any] = [None] * n
    for i in range(n):
        if in_s[i]:
            d[i], sg_caches[i] = sg_forward(sgs[i], hs[i + 1], cond)

    net_grads: list[Any] = [None] * n  # every entry set below
    targets: list[Any] = [None] * n
    targets[n - 1] = target_scale * e
    for i in range(n):
        if in_s[i]:
            grads, grad_in = block_backward(caches[i], sg_scale * d[i])
            factor = update_scale
        else:
            grads, grad_in = block_backward(caches[i], e)
            factor, grad_in = c, target_scale * grad_in
        net_grads[i] = {k: factor * v for k, v in grads.items()}
        if i > 0:
            targets[i - 1] = grad_in

    sg_grads: list[Any] = [None] * n
    sg_losses: list[float] = []
    for i in range(n):
        if in_s[i]:
            diff = d[i] - targets[i]
            sg_losses.append(c * 0.5 * np.sum(diff * diff))
            sg_grads[i] = sg_backward(sg_caches[i], c * diff)
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
    norm = np.sqrt(sum(np.sum(a * a) for a in tree_leaves(grads)))
    scale = 1.0 if norm < max_norm else max_norm / norm
    return tree_map(lambda a: a * scale, grads)


# ---------------------------------------------------------------- optimisers, per layer
MOMENTUM = 0.9
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


def decayed_rate(lr: float, k: int, decay_steps: Sequence[int], decay: float) -> float:
    """The learning rate of update ``k`` (0-based) under step decay: ``lr`` times ``decay``
    once for every step of ``decay_steps`` that is at most ``k``."""
    for boundary in sorted(decay_steps):
        if k >= boundary:
            lr = lr * decay
    return lr


def sgd_step(g: Params, state: dict, lr: float) -> tuple[Params, dict]:
    """``step = lr g``; no state."""
    return tree_map(lambda a: lr * a, g), {}


def momentum_step(g: Params, state: dict, lr: float) -> tuple[Params, dict]:
    """``m = g + 0.9 m``, ``step = lr m``."""
    m = tree_map(lambda a, b: a + MOMENTUM * b, g, state["m"])
    return tree_map(lambda a: lr * a, m), {"m": m}


def adam_step(g: Params, state: dict, lr: float) -> tuple[Params, dict]:
    """``k += 1``, ``mu = b1 mu + (1-b1) g``, ``nu = b2 nu + (1-b2) g^2``,
    ``step = lr (mu / (1-b1^k)) / (sqrt(nu / (1-b2^k)) + eps)``."""
    k = state["count"] + 1
    mu = tree_map(lambda a, b: ADAM_B1 * b + (1 - ADAM_B1) * a, g, state["mu"])
    nu = tree_map(lambda a, b: ADAM_B2 * b + (1 - ADAM_B2) * a * a, g, state["nu"])
    c1, c2 = 1 - ADAM_B1**k, 1 - ADAM_B2**k
    step = tree_map(lambda m_, v_: lr * (m_ / c1) / (np.sqrt(v_ / c2) + ADAM_EPS), mu, nu)
    return step, {"mu": mu, "nu": nu, "count": k}


class OptimizerRule(NamedTuple):
    """An optimiser by hand, per layer: ``init(params) -> state`` and
    ``step(grads, state, lr) -> (step, state)`` (the parameters move by ``-step``)."""

    init: Callable[[Params], dict]
    step: Callable[[Params, dict, float], tuple[Params, dict]]


OPTIMIZER_RULES: dict[str, OptimizerRule] = {
    "sgd": OptimizerRule(lambda p: {}, sgd_step),
    "momentum": OptimizerRule(lambda p: {"m": tree_map(np.zeros_like, p)}, momentum_step),
    "adam": OptimizerRule(
        lambda p: {"mu": tree_map(np.zeros_like, p), "nu": tree_map(np.zeros_like, p), "count": 0},
        adam_step,
    ),
}
OPTIMIZERS = tuple(OPTIMIZER_RULES)


def init_optimizer(params: list, optimizer: str) -> list:
    """Per-layer optimiser state (``None`` for a layer without parameters):
    ``sgd``: nothing; ``momentum``: the trace ``m``; ``adam``: ``mu``, ``nu`` and the
    layer's own step count."""
    if optimizer not in OPTIMIZER_RULES:
        raise ValueError(f"unknown optimizer {optimizer!r}; the reference has {OPTIMIZERS}")
    init = OPTIMIZER_RULES[optimizer].init
    return [None if p is None else init(p) for p in params]


def optimizer_step(
    params: list,
    grads: list,
    states: list,
    lr: float,
    optimizer: str,
    mask: Sequence[bool] | None = None,
) -> tuple[list, list]:
    """One update of each layer whose ``mask`` flag is set; the others keep their
    parameters *and* their state (``docs/math.md``, "Asynchronous updates").

    * ``sgd``: ``theta -= lr g``
    * ``momentum``: ``m = g + 0.9 m``, ``theta -= lr m``
    * ``adam``: ``k += 1``, ``mu = b1 mu + (1-b1) g``, ``nu = b2 nu + (1-b2) g^2``,
      ``theta -= lr (mu / (1-b1^k)) / (sqrt(nu / (1-b2^k)) + eps)``
    """
    if optimizer not in OPTIMIZER_RULES:
        raise ValueError(f"unknown optimizer {optimizer!r}; the reference has {OPTIMIZERS}")
    rule = OPTIMIZER_RULES[optimizer]
    new_params, new_states = [], []
    for i, (p, g, st) in enumerate(zip(params, grads, states, strict=True)):
        if p is None or (mask is not None and not mask[i]):
            new_params.append(p)
            new_states.append(st)
            continue
        step, st = rule.step(g, st, lr)
        new_params.append(tree_map(lambda a, b: a - b, p, step))
        new_states.append(st)
    return new_params, new_states


def signals(
    signal: str,
    params: list,
    sgs: list | None,
    x: np.ndarray,
    y: np.ndarray,
    *,
    blocks: Sequence[Any],
    loss: str,
    reduction: str,
    topology: str = "paper",
    conditioned: bool = False,
    feedback: list | None = None,
    direction: list | None = None,
    sg_target: str = "per_example",
    sg_scale: float = 1.0,
) -> dict:
    """The signals of one step of rule ``backprop``, ``dni``, ``fa``, ``dfa`` (with the
    fixed matrices ``feedback``) or ``fwdgrad`` (along ``direction``), the last three from
    :mod:`dnijax.reference.rules`: ``{"loss", "net_grads", "sg_grads", "sg_losses"}``
    (``sg_grads`` is ``None`` and ``sg_losses`` empty for every rule but dni).

    ``sg_target`` (``per_example`` or ``batch``; ``docs/math.md``, "SG target scale
    (``sg_target``)") and ``sg_scale`` (``docs/math.md``, "SG scale") go to
    :func:`dni_grads`; the other rules ignore them, but an ``sg_target`` outside the two
    raises ``ValueError`` for every rule."""
    check_sg_target(sg_target)
    if signal == "dni":
        if sgs is None:
            raise ValueError("dni: give sgs, the SG modules' parameters")
        j, g_net, g_sg, sg_losses = dni_grads(
            params,
            sgs,
            x,
            y,
            blocks,
            loss,
            reduction,
            topology,
            conditioned,
            sg_target=sg_target,
            sg_scale=sg_scale,
        )
    elif signal == "backprop":
        (j, g_net), g_sg, sg_losses = (
            backprop_grads(params, x, y, blocks, loss, reduction),
            None,
            [],
        )
    elif signal in ("fa", "dfa", "fwdgrad"):
        from dnijax.reference import rules  # rules imports this module: import it here

        rule, fixed = {
            "fa": (rules.fa_grads, feedback),
            "dfa": (rules.dfa_grads, feedback),
            "fwdgrad": (rules.fwdgrad_grads, direction),
        }[signal]
        (j, g_net), g_sg, sg_losses = rule(params, fixed, x, y, blocks, loss, reduction), None, []
    else:
        raise ValueError(
            f"unknown signal rule {signal!r}; the reference has backprop, dni, fa, dfa, fwdgrad"
        )
    return {"loss": j, "net_grads": g_net, "sg_grads": g_sg, "sg_losses": sg_losses}


def trajectory(
    signal: str,
    params: list,
    sgs: list | None,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    *,
    blocks: Sequence[Any],
    loss: str,
    reduction: str,
    lr: float,
    sg_lr: float | None = None,
    optimizer: str = "sgd",
    topology: str = "paper",
    conditioned: bool = False,
    clip: float | None = None,
    noise_before_clip: bool = False,
    net_noises: Sequence | None = None,
    sg_noises: Sequence | None = None,
    masks: Sequence | np.ndarray | None = None,
    feedback: list | None = None,
    directions: Sequence | None = None,
    sg_target: str = "per_example",
    sg_scale: float = 1.0,
    lr_decay_steps: Sequence[int] = (),
    lr_decay: float = 0.1,
) -> tuple[list, list | None, list[float]]:
    """``steps`` synchronous steps of rule ``signal`` from ``(params, sgs)``.

    Each step: the signals at the current parameters; for each group (network, SG
    modules) global-norm clipping (``clip``; after the noise with
    ``noise_before_clip``), the step's noise realisation (the
    ``+noise`` regimes: ``net_noises[t]``, ``sg_noises[t]``, trees like the params, or
    ``None`` for none), then the optimiser of each block whose flag in ``masks[t]`` is
    set (``update_prob`` experiments; all blocks without ``masks``).

    Args:
      signal: ``backprop``, ``dni``, ``fa``, ``dfa`` or ``fwdgrad`` (only dni has an SG
        group).
      params: network parameters.
      sgs: SG parameters (read by dni only).
      x: the batch (full batch).
      y: its encoded targets.
      blocks: the network's blocks (``dnijax.layers.Block``), any built-in layer kinds.
      loss: as in ``docs/math.md``.
      reduction: as in ``docs/math.md``.
      topology: as in ``docs/math.md``.
      conditioned: as in ``docs/math.md``.
      lr: the learning rate.
      sg_lr: the SG learning rate (defaults to ``lr``).
      optimizer: ``sgd``,
        ``momentum`` or ``adam`` (per layer, for both groups).
      feedback: fa's or dfa's fixed matrices, the same for the whole run
        (:func:`dnijax.reference.rules.feedback_shapes`).
      directions: fwdgrad's direction of each step, ``directions[t]`` a tree like the
        params.
      sg_target: dni's SG target scale, ``per_example`` (the default) or ``batch``
        (``docs/math.md``, "SG target scale (``sg_target``)"; see :func:`dni_grads`).
      sg_scale: dni's factor on the synthetic gradients used as gradients
        (``docs/math.md``, "SG scale"; see :func:`dni_grads`).
      lr_decay_steps: both learning rates' decay steps (:func:`decayed_rate`; no masks).
      lr_decay: the factor at each of them.

    Returns:
      ``(params, sgs, losses)`` with the loss at the start of every step.

    Raises:
      ValueError: ``sg_target`` is neither ``per_example`` nor ``batch``.
    """
    settings: dict[str, Any] = dict(
        blocks=blocks,
        loss=loss,
        reduction=reduction,
        topology=topology,
        conditioned=conditioned,
        sg_target=sg_target,
        sg_scale=sg_scale,
    )
    net_state = init_optimizer(params, optimizer)
    sg_state = init_optimizer(sgs, optimizer) if signal == "dni" and sgs is not None else None
    losses = []
    for t in range(steps):
        info = signals(
            signal,
            params,
            sgs,
            x,
            y,
            **settings,
            feedback=feedback,
            direction=None if directions is None else directions[t],
        )
        losses.append(info["loss"])
        mask = None if masks is None else masks[t]
        groups: list[tuple[Any, Any, Any, float, Any]] = [
            (
                params,
                info["net_grads"],
                net_state,
                decayed_rate(lr, t, lr_decay_steps, lr_decay),
                None if net_noises is None else net_noises[t],
            )
        ]
        if info["sg_grads"] is not None:
            groups.append(
                (
                    sgs,
                    info["sg_grads"],
                    sg_state,
                    decayed_rate(lr if sg_lr is None else sg_lr, t, lr_decay_steps, lr_decay),
                    None if sg_noises is None else sg_noises[t],
                )
            )
        new = []
        for group, grads, state, rate, noise in groups:
            if clip is not None and not noise_before_clip:
                grads = clip_by_global_norm(grads, clip)
            if noise is not None:
                grads = [
                    None if g is None else tree_map(lambda a, b: a + b, g, n)
                    for g, n in zip(grads, noise, strict=True)
                ]
            if clip is not None and noise_before_clip:
                grads = clip_by_global_norm(grads, clip)
            new.append(optimizer_step(group, grads, state, rate, optimizer, mask))
        (params, net_state), *rest = new
        if rest:
            sgs, sg_state = rest[0]
    return params, sgs, losses


# ---------------------------------------------------------------- tiny tree helpers
def tree_leaves(tree: Any) -> list[np.ndarray]:
    """The arrays of a tree of dicts (keys sorted), lists and tuples; ``None`` holds none."""
    if tree is None:
        return []
    if isinstance(tree, dict):
        return [a for k in sorted(tree) for a in tree_leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [a for t in tree for a in tree_leaves(t)]
    return [tree]


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``fn`` on every array of ``tree`` (and the arrays at the same places of ``rest``);
    lists and tuples come back as lists, ``None`` stays ``None``."""
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: tree_map(fn, tree[k], *(r[k] for r in rest)) for k in tree}
    if isinstance(tree, (list, tuple)):
        return [tree_map(fn, t, *(r[i] for r in rest)) for i, t in enumerate(tree)]
    return fn(tree, *rest)
