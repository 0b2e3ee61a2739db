"""Truncated BPTT with and without synthetic gradients for a tanh RNN, by hand in numpy.

The recurrent counterpart of ``dnijax/reference/mlp.py``: no autodiff, no JAX. Every
derivative below is written out; the losses, the batch scale and the optimisers
are the feed-forward reference's own (``docs/math.md``).

Model. One parameter dict ``params = {"wx": (d, H), "wh": (H, H), "b": (H,),
"wo": (H, K), "bo": (K,)}``; per step ``t`` of a window::

    s_t = tanh(x_t W_x + s_{t-1} W_h + b)        (core)
    o_t = s_t W_o + b_o                          (linear readout)
    l_t,b = loss(o_t,b, y_t,b)                   (mse on o; xent, bce on o as logits)

with ``reduce_b v_b = c sum_b v_b`` (``c = 1/B`` for ``mean``, ``1`` for ``sum``).

Windows. A sequence ``x (B, T_total, d)``, ``y (B, T_total, K)`` is split into
consecutive windows of ``T`` steps. The state flows on from window to window, but
each window treats its incoming state ``s_0`` as a constant: no gradient crosses a
window boundary. The window loss is ``L_w = sum_{t=1..T} reduce_b l_t,b``.

Signals of one window (all from the parameters at the start of the step):

* ``backprop``: ``g_theta = grad_theta L_w``, BPTT inside the window only.
* ``dni``: a linear SG module ``sg = {"a": (H, H), "c": (H,)}``, ``M(s) = s A + C``
  (``A = sg["a"]``, ``C = sg["c"]``; not to be confused with the batch scale ``c``),
  predicts the per-example gradient of the future losses w.r.t. a window's final
  state. With ``D = M(s_T)`` held constant the network follows
  ``g_theta = grad_theta [L_w + reduce_b <s_T, sg(D)>]``: BPTT where ``c D`` joins
  ``c dl_T/ds_T`` at ``s_T``. The module regresses, at the window's *incoming*
  state, onto the bootstrapped per-example target (no factor ``c``: like the
  feed-forward modules it estimates a per-example gradient)::

      t_0,b = d/ds_0,b [ sum_t l_t,b + <s_T,b, D_b> ]
      J_SG  = reduce_b 0.5 ||M(s_0) - sg(t_0)||^2
      dJ_SG/dA = s_0^T [c (M(s_0) - t_0)],   dJ_SG/dC = sum_b c (M(s_0) - t_0)

  The first window starts from ``s_0 = 0``, so there ``dJ_SG/dA = 0`` and only
  ``C`` learns; the formulas are applied unchanged.

  That is ``sg_target="per_example"`` (the default). With ``sg_target="batch"``
  (``docs/math.md``, "SG target scale (``sg_target``)") ``D`` estimates
  ``dJ/ds_T,b``, the gradient of the batch loss: the network follows
  ``grad_theta [L_w + sum_b <s_T, sg(D)>]`` (``D`` joins ``c dl_T/ds_T`` unscaled) and
  the target is ``t_0,b = d/ds_0,b [c sum_t l_t,b + <s_T,b, D_b>]``; ``J_SG`` and its
  gradients keep the form above. Under ``sum`` the two settings agree.

Hand backward (per example, no ``c``; ``r_T`` is ``0`` for backprop, ``D`` for dni;
under ``sg_target="batch"`` it runs with ``c e_t`` for ``e_t`` and ``1`` for ``c``)::

    g_t     = e_t W_o^T + r_t                  e_t = dl_t/do_t
    delta_t = g_t * (1 - s_t^2)
    r_{t-1} = delta_t W_h^T                    (so r_0 = t_0 for dni)
    dW_o = sum_t s_t^T (c e_t)    db_o = sum_{t,b} c e_t
    dW_x = sum_t x_t^T (c delta_t)  dW_h = sum_t s_{t-1}^T (c delta_t)  db = sum_{t,b} c delta_t

One training step is one window, synchronous as in ``reference.mlp.trajectory``: the
signals, then per group (network, SG module) optional global-norm clipping, the
given noise realisation, and the optimiser (``sgd``, ``momentum``, ``adam``; one
state per group). The window's final state, computed with the pre-update
parameters, is the next window's ``s_0``. There are no asynchronous update masks.

Examples:
  >>> import numpy as np
  >>> from dnijax.reference import rnn as rr
  >>> rng = np.random.RandomState(0)
  >>> params = {"wx": rng.randn(2, 4), "wh": rng.randn(4, 4), "b": np.zeros(4),
  ...           "wo": rng.randn(4, 1), "bo": np.zeros(1)}
  >>> x, y = rng.randn(3, 6, 2), rng.randn(3, 6, 1)
  >>> out = rr.window_signals("backprop", params, None, np.zeros((3, 4)), x[:, :3], y[:, :3],
  ...                         loss="mse", reduction="mean")
  >>> sorted(out), out["net_grads"]["wh"].shape
  (['loss', 'net_grads', 's_end', 'sg_grads', 'sg_loss'], (4, 4))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dnijax.reference.mlp import (
    batch_scale,
    check_sg_target,
    clip_by_global_norm,
    decayed_rate,
    init_optimizer,
    loss_and_output_grad,
    optimizer_step,
    tree_map,
)

SIGNALS = ("backprop", "dni")


def forward_window(params: dict, s0: np.ndarray, x_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs the core and readout over one window.

    Args:
      params: the network dict (``wx``, ``wh``, ``b``, ``wo``, ``bo``).
      s0: the incoming state, ``(B, H)``.
      x_w: the window's inputs, ``(B, T, d)``.

    Returns:
      ``states`` ``(B, T + 1, H)`` with ``states[:, 0] = s0`` and ``states[:, t] = s_t``,
      and ``outputs`` ``(B, T, K)`` with ``outputs[:, t - 1] = o_t``.
    """
    states, outputs = [s0], []
    for t in range(x_w.shape[1]):
        s = np.tanh(x_w[:, t] @ params["wx"] + states[-1] @ params["wh"] + params["b"])
        states.append(s)
        outputs.append(s @ params["wo"] + params["bo"])
    return np.stack(states, axis=1), np.stack(outputs, axis=1)


def sg_forward(sg: dict, s: np.ndarray) -> np.ndarray:
    """``M(s) = s A + C``, per example."""
    return s @ sg["a"] + sg["c"]


def window_backward(
    params: dict, states: np.ndarray, x_w: np.ndarray, e: np.ndarray, r_end: np.ndarray, c: float
) -> tuple[dict, np.ndarray]:
    """BPTT through one window with ``r_end`` arriving at ``s_T`` (per example).

    Args:
      params: the network dict.
      states: ``(B, T + 1, H)`` from ``forward_window``.
      x_w: the window's inputs ``(B, T, d)``.
      e: per-example output gradients ``dl_t,b/do_t,b``, ``(B, T, K)``.
      r_end: the per-example gradient arriving at ``s_T`` from beyond the window.
      c: the batch scale applied to the parameter gradients.

    Returns:
      The parameter gradients (scaled by ``c``) and the per-example gradient
      ``r_0`` at the incoming state (not scaled).
    """
    grads = tree_map(np.zeros_like, params)
    r = r_end
    for t in reversed(range(x_w.shape[1])):
        s_t, s_prev, e_t = states[:, t + 1], states[:, t], e[:, t]
        grads["wo"] += s_t.T @ (c * e_t)
        grads["bo"] += (c * e_t).sum(axis=0)
        delta = (e_t @ params["wo"].T + r) * (1.0 - s_t * s_t)
        grads["wx"] += x_w[:, t].T @ (c * delta)
        grads["wh"] += s_prev.T @ (c * delta)
        grads["b"] += (c * delta).sum(axis=0)
        r = delta @ params["wh"].T
    return grads, r


def window_signals(
    signal: str,
    params: dict,
    sg: dict | None,
    s0: np.ndarray,
    x_w: np.ndarray,
    y_w: np.ndarray,
    *,
    loss: str,
    reduction: str,
    sg_target: str = "per_example",
    sg_scale: float = 1.0,
) -> dict:
    """The signals of one window for rule ``backprop`` or ``dni``.

    ``docs/math.md``, "Recurrent nets: truncated BPTT with synthetic gradients" and
    "SG target scale (``sg_target``)"; the formulas are in the module docstring.

    Args:
      signal: ``backprop`` or ``dni``.
      params: the network dict; sg: the SG module dict (unused by backprop).
      s0: the incoming state ``(B, H)``, a constant.
      x_w: the window's inputs ``(B, T, d)``.
      y_w: the window's targets ``(B, T, K)``.
      loss: ``mse``, ``xent`` or ``bce``; reduction: ``mean`` or ``sum``.
      sg_target: dni's target scale: ``per_example`` (the default; ``D`` estimates the
        per-example gradient at ``s_T``) or ``batch`` (``D`` estimates ``dJ/ds_T``, ``c``
        times it). Backprop ignores it.
      sg_scale: dni's factor ``a`` on the injected synthetic gradient: ``D = a M(s_T)``
        wherever ``D`` appears above (``docs/math.md``, "SG scale"); the module still
        regresses ``M(s_0)`` itself onto ``t_0``.

    Returns:
      ``{"loss": L_w, "net_grads", "sg_grads", "sg_loss", "s_end": s_T}``;
      ``sg_grads`` and ``sg_loss`` are ``None`` for backprop.

    Raises:
      ValueError: an unknown ``signal``, or ``sg_target`` neither ``per_example`` nor
        ``batch``.
    """
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal rule {signal!r}; the RNN reference has {SIGNALS}")
    batch = check_sg_target(sg_target) == "batch" and signal == "dni"
    states, outputs = forward_window(params, s0, x_w)
    c = batch_scale(x_w.shape[0], reduction)
    per_example, e = loss_and_output_grad(outputs, y_w, loss)  # (B, T), (B, T, K)
    s_end = states[:, -1]
    d_start = None  # the SG module's output at s0 (dni only)
    if signal == "dni":
        if sg is None:
            raise ValueError("dni: give sg, the SG module's parameters")
        d_end, d_start = sg_scale * sg_forward(sg, s_end), sg_forward(sg, s0)
    else:
        d_end = np.zeros_like(s_end)
    if batch:  # run on the batch loss's scale: c e_t and d_end as they are, no further c
        net_grads, target = window_backward(params, states, x_w, c * e, d_end, 1.0)
    else:
        net_grads, target = window_backward(params, states, x_w, e, d_end, c)
    out = {
        "loss": float(c * per_example.sum()),
        "net_grads": net_grads,
        "sg_grads": None,
        "sg_loss": None,
        "s_end": s_end,
    }
    if d_start is not None:
        diff = d_start - target
        out["sg_loss"] = float(c * 0.5 * np.sum(diff * diff))
        out["sg_grads"] = {"a": s0.T @ (c * diff), "c": (c * diff).sum(axis=0)}
    return out


def _add(grads: dict, noise: dict | None) -> dict:
    return grads if noise is None else tree_map(lambda g, n: g + n, grads, noise)


def trajectory(
    signal: str,
    params: dict,
    sg: dict | None,
    x: np.ndarray,
    y: np.ndarray,
    window: int,
    *,
    loss: str,
    reduction: str,
    lr: float,
    sg_lr: float | None = None,
    optimizer: str = "sgd",
    clip: float | None = None,
    net_noises: Sequence | None = None,
    sg_noises: Sequence | None = None,
    sg_target: str = "per_example",
    sg_scale: float = 1.0,
    lr_decay_steps: Sequence[int] = (),
    lr_decay: float = 0.1,
) -> tuple[dict, dict | None, list[float]]:
    """One synchronous step per window of rule ``signal`` over the whole sequence.

    Each step ``k`` (window ``k``): the signals at the current parameters from the
    carried state (zeros for ``k = 0``); then per group (network; SG module for dni)
    global-norm clipping (``clip``), the noise realisation ``net_noises[k]`` /
    ``sg_noises[k]`` (a tree like the group's parameters, or ``None``), and the
    optimiser. The next window starts from this window's ``s_T``.

    Args:
      signal: ``backprop`` or ``dni``.
      params: network parameters.
      sg: SG parameters (unused by backprop).
      x: ``(B, T_total, d)`` inputs.
      y: ``(B, T_total, K)`` targets.
      window: ``T``, the window length; ``T_total`` must be a multiple of it.
      loss: as in ``window_signals``.
      reduction: as in ``window_signals``.
      lr: the learning rate.
      sg_lr: the SG learning rate (defaults to ``lr``).
      optimizer: ``sgd``,
        ``momentum`` or ``adam`` (one state per group).
      clip: global-norm bound per group, or ``None``.
      net_noises: one noise tree (or ``None``) per window, or ``None``.
      sg_noises: the same for the SG module.
      sg_target: dni's SG target scale, ``per_example`` (the default) or ``batch``, as
        in ``window_signals`` (``docs/math.md``, "SG target scale (``sg_target``)").
      sg_scale: dni's factor on the injected synthetic gradient, as in ``window_signals``.
      lr_decay_steps: both learning rates' decay steps, counted in windows (updates), as in
        ``reference.mlp.decayed_rate``; lr_decay: the factor at each.

    Returns:
      ``(params, sg, losses)`` with ``L_w`` of every window at the start of its step.

    Raises:
      ValueError: an unknown ``signal`` or ``sg_target``, or a sequence length that is
        not a multiple of ``window``.
    """
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal rule {signal!r}; the RNN reference has {SIGNALS}")
    check_sg_target(sg_target)
    total = x.shape[1]
    if window <= 0 or total % window:
        raise ValueError(f"sequence length {total} is not a multiple of window {window}")
    dni = signal == "dni"
    (net_state,) = init_optimizer([params], optimizer)
    sg_state = init_optimizer([sg], optimizer)[0] if dni else None
    state = np.zeros((x.shape[0], params["wh"].shape[0]), dtype=np.result_type(x, params["wh"]))
    losses = []
    for k in range(total // window):
        net_rate = decayed_rate(lr, k, lr_decay_steps, lr_decay)
        sg_rate = decayed_rate(lr if sg_lr is None else sg_lr, k, lr_decay_steps, lr_decay)
        span = slice(k * window, (k + 1) * window)
        info = window_signals(
            signal,
            params,
            sg,
            state,
            x[:, span],
            y[:, span],
            loss=loss,
            reduction=reduction,
            sg_target=sg_target,
            sg_scale=sg_scale,
        )
        losses.append(info["loss"])
        state = info["s_end"]
        groups: list[tuple[str, Any, Any, Any, float, Sequence | None]] = [
            ("net", params, info["net_grads"], net_state, net_rate, net_noises)
        ]
        if dni:
            groups.append(("sg", sg, info["sg_grads"], sg_state, sg_rate, sg_noises))
        for name, group, grads, opt_state, rate, noises in groups:
            if clip is not None:
                grads = clip_by_global_norm(grads, clip)
            grads = _add(grads, None if noises is None else noises[k])
            (new,), (new_state,) = optimizer_step([group], [grads], [opt_state], rate, optimizer)
            if name == "net":
                params, net_state = new, new_state
            else:
                sg, sg_state = new, new_state
    return params, sg, losses
