"""Recurrent nets: a tanh RNN core as an ``(init, apply)`` pair, and the signals of one
truncated-BPTT window, plain or with a synthetic gradient at the window's end
(``docs/math.md``, "Recurrent nets: truncated BPTT with synthetic gradients").

A window of ``T`` steps starts from a constant incoming state ``s_0`` (the previous
window's last state: gradients stop at window boundaries) and runs the core
``s_t = tanh(x_t W_x + s_{t-1} W_h + b)`` with the readout ``o_t = s_t W_o + b_o``
under ``lax.scan``; ``L_w = sum_t reduce_b l_t``. The signals, like the feed-forward
rules (:mod:`dnijax.signals`), come from one scalar of stop_gradient-isolated terms
and a single ``jax.grad``:

* ``backprop`` (truncated BPTT): ``L_w``;
* ``dni``: ``L_w + reduce_b <s_T, sg(M(s_T))>`` for the network, where a linear SG
  module ``M(s) = s A + C`` predicts the gradient of all later losses with respect to
  the window's last state; plus the SG loss ``reduce_b 0.5 ||M(s_0) - sg(t_0)||^2``
  whose target ``t_0`` is the per-example gradient, with respect to the incoming
  state, of the window's losses plus ``<s_T, M(s_T)>`` (the next window's prediction
  bootstrapped back through this window).

``dnijax/reference_rnn.py`` derives the same signals by hand in numpy; the tests hold
this module to it in float64. The training loop over windows is not wired into the
engine yet.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import recurrent
  >>> params = recurrent.init_rnn(jax.random.key(0), 2, 4, 1)
  >>> sg = recurrent.init_sg(4)
  >>> x, y = jnp.ones((3, 5, 2)), jnp.zeros((3, 5, 1))
  >>> s = recurrent.window_signals("dni", params, sg, jnp.zeros((3, 4)), x, y, "mse", "mean")
  >>> s.s_end.shape, float(jnp.abs(s.sg_grads["a"]).max())  # s_0 = 0: only C learns
  ((3, 4), 0.0)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dnijax import nets

sg = jax.lax.stop_gradient
SIGNALS = ("backprop", "dni")


class WindowSignals(NamedTuple):
    """The signals of one window: gradients, the window loss ``L_w``, the SG loss, and
    the window's last state (the next window's ``s_0``)."""

    net_grads: dict
    sg_grads: dict | None
    loss: jax.Array
    sg_loss: jax.Array
    s_end: jax.Array


def init_rnn(key: jax.Array, n_in: int, n_hidden: int, n_out: int,
             dtype: Any = jnp.float32) -> dict[str, jax.Array]:
    """A tanh RNN with a linear readout: Glorot-normal ``wx``, ``wo``; an orthogonal
    ``wh``; zero biases."""
    kx, kh, ko = jax.random.split(key, 3)
    glorot = jax.nn.initializers.glorot_normal()
    return {"wx": glorot(kx, (n_in, n_hidden), dtype),
            "wh": jax.nn.initializers.orthogonal()(kh, (n_hidden, n_hidden), dtype),
            "b": jnp.zeros((n_hidden,), dtype),
            "wo": glorot(ko, (n_hidden, n_out), dtype), "bo": jnp.zeros((n_out,), dtype)}


def rnn_step(params: dict, s: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One step of the core and the readout: ``(s_t, o_t)``."""
    s = jnp.tanh(x_t @ params["wx"] + s @ params["wh"] + params["b"])
    return s, s @ params["wo"] + params["bo"]


def init_sg(n_hidden: int, dtype: Any = jnp.float32) -> dict[str, jax.Array]:
    """A zero-initialised linear SG module ``M(s) = s A + C`` (the first prediction is 0)."""
    return {"a": jnp.zeros((n_hidden, n_hidden), dtype), "c": jnp.zeros((n_hidden,), dtype)}


def apply_sg(module: dict, s: jax.Array) -> jax.Array:
    """``M(s) = s A + C``, one row per example."""
    return s @ module["a"] + module["c"]


def forward_window(params: dict, s0: jax.Array, x_w: jax.Array
                   ) -> tuple[jax.Array, jax.Array]:
    """The window's last state ``s_T`` and outputs ``(B, T, K)``, by ``lax.scan``."""
    def step(s, x_t):
        return rnn_step(params, s, x_t)

    s_end, outs = jax.lax.scan(step, s0, jnp.swapaxes(x_w, 0, 1))
    return s_end, jnp.swapaxes(outs, 0, 1)


def _losses(params: dict, s0: jax.Array, x_w: jax.Array, y_w: jax.Array,
            loss: str) -> tuple[jax.Array, jax.Array]:
    """Per-example summed window losses ``sum_t l_t,b`` and ``s_T``."""
    s_end, outs = forward_window(params, s0, x_w)
    return jnp.sum(nets.per_example_loss(outs, y_w, loss), axis=1), s_end


def window_signals(signal: str, params: dict, sg_params: dict | None, s0: jax.Array,
                   x_w: jax.Array, y_w: jax.Array, loss: str,
                   reduction: str) -> WindowSignals:
    """The signals of one window (see the module docstring) from the parameters at the
    start of the step; ``s0`` is held constant."""
    if signal not in SIGNALS:
        raise ValueError(f"unknown recurrent signal rule {signal!r}; choose one of {SIGNALS}")
    reduce = lambda v: nets.reduce_batch(v, reduction)  # noqa: E731
    s0 = sg(s0)

    def objective(theta, phi):
        per_example, s_end = _losses(theta, s0, x_w, y_w, loss)
        window_loss = reduce(per_example)
        if signal == "backprop":
            return window_loss, (window_loss, jnp.zeros((), s_end.dtype), s_end)
        d_end = sg(apply_sg(phi, sg(s_end)))
        net_term = window_loss + reduce(jnp.sum(s_end * d_end, axis=-1))

        def future(s_in):  # per example: sum_t l_t,b + <s_T,b, d_end,b>, params frozen
            l_b, s_t = _losses(jax.tree.map(sg, theta), s_in, x_w, y_w, loss)
            return jnp.sum(l_b) + jnp.sum(s_t * d_end)

        target = sg(jax.grad(future)(s0))
        sg_loss = reduce(0.5 * jnp.sum((apply_sg(phi, s0) - target) ** 2, axis=-1))
        return net_term + sg_loss, (window_loss, sg_loss, s_end)

    argnums = (0, 1) if signal == "dni" else 0
    grads, (window_loss, sg_loss, s_end) = jax.grad(objective, argnums=argnums,
                                                    has_aux=True)(params, sg_params)
    net_grads, sg_grads = grads if signal == "dni" else (grads, None)
    return WindowSignals(net_grads, sg_grads, sg(window_loss), sg(sg_loss), sg(s_end))
