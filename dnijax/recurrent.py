"""Recurrent nets: cores (tanh RNN, LSTM) as small bundles of pure functions, and the
signals of one truncated-BPTT window, plain or with a synthetic gradient at the window's
end (``docs/math.md``, "Recurrent nets: truncated BPTT with synthetic gradients").

A :class:`Core` is ``(init, initial_state, step)`` (stax/optax style); ``CORES`` holds
(:func:`register_core` adds your own)

* ``rnn``: ``s_t = tanh(x_t W_x + s_{t-1} W_h + b)``, state ``s`` (an array), ``h_t = s_t``
  (Glorot-normal ``W_x``, orthogonal ``W_h``: :func:`orthogonal`);
* ``lstm``: ``z = x_t W_x + h_{t-1} W_h + b`` split into gates ``i, f, g, o`` (in that
  order, each ``H`` wide), ``c_t = sig(f) c_{t-1} + sig(i) tanh(g)``,
  ``h_t = sig(o) tanh(c_t)``; state the tuple ``(h, c)``.

Every core shares one flat parameter dict with a linear readout ``o_t = h_t W_o + b_o``
(keys ``wo``, ``bo``; :func:`init_network`). A window of ``T`` steps starts from a
constant incoming state ``s_0`` (a pytree: the previous window's last state; gradients
stop at window boundaries) and runs the core under ``lax.scan``;
``L_w = sum_t reduce_b l_t``. Where the rules below need the state as a vector they
use :func:`flatten_state`, the concatenation of its leaves (``[h, c]`` for the LSTM).
The signals, like the feed-forward rules (:mod:`dnijax.signals`), come from one scalar
of stop_gradient-isolated terms and a single ``jax.grad``:

* ``backprop`` (truncated BPTT): ``L_w``;
* ``dni``: ``L_w + reduce_b <s_T, sg(M(s_T))>`` for the network, where a linear SG
  module ``M(s) = s A + C`` on the flattened state predicts the gradient of all later
  losses with respect to the window's whole last state; plus the SG loss
  ``reduce_b 0.5 ||M(s_0) - sg(t_0)||^2`` whose target ``t_0`` is the per-example
  gradient, with respect to the whole incoming state, of the window's losses plus
  ``<s_T, M(s_T)>`` (the next window's prediction bootstrapped back through this window).

A signal rule's *recurrent form* (:func:`backprop_window`, :func:`dni_window`; registered
with the rule in :mod:`dnijax.signals`) computes these signals. ``dnijax/reference/rnn.py``
derives the same signals by hand in numpy for the ``rnn`` core; the tests hold this module
to it in float64 and the LSTM to an unrolled loop differentiated by ``jax.grad``. The
training loop over windows (update rules, finite guard, the copy tasks' length curriculum)
is :mod:`dnijax.bptt`, the recurrent network kind of the one engine (:mod:`dnijax.kinds`,
:mod:`dnijax.engine`).

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import recurrent
  >>> params = recurrent.init_network(jax.random.key(0), "lstm", 2, 4, 1)
  >>> sg_params = recurrent.init_sg(recurrent.state_size("lstm", 4))
  >>> s0 = recurrent.get_core("lstm").initial_state(3, 4, jnp.float32)
  >>> x, y = jnp.ones((3, 5, 2)), jnp.zeros((3, 5, 1))
  >>> spec = recurrent.WindowSpec(recurrent.get_core("lstm"), "mse", "mean")
  >>> s = recurrent.dni_window(params, sg_params, recurrent.Window(s0, x, y), spec)
  >>> [leaf.shape for leaf in s.s_end], s.sg_target.shape
  ([(3, 4), (3, 4)], (3, 8))
  >>> float(jnp.abs(s.sg_grads["a"]).max())  # s_0 = 0: only C learns
  0.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dnijax import copy_task, nets, registry

sg = jax.lax.stop_gradient
State = Any  # a pytree of (B, .) arrays: an array for rnn, (h, c) for lstm


class Core(NamedTuple):
    """A recurrent core as pure functions.

    Attributes:
      init: ``(key, n_in, n_hidden, dtype) -> params`` (a dict; not ``wo``, ``bo``).
      initial_state: ``(batch, n_hidden, dtype) -> state`` (zeros).
      step: ``(params, state, x_t) -> (state, h_t)``; ``params`` may hold other keys.
    """

    init: Callable[[jax.Array, int, int, Any], dict]
    initial_state: Callable[[int, int, Any], State]
    step: Callable[[dict, State, jax.Array], tuple[State, jax.Array]]


class SequenceSpec(NamedTuple):
    """The static part of a recurrent run on a sequence task (hashable: a field of
    :class:`~dnijax.config.Program`). Built by :meth:`dnijax.config.RunConfig.program`.

    Attributes:
      task, max_repeats: the task (:data:`dnijax.copy_task.TASKS`) and its largest repeat
        count.
      core, hidden: the recurrent core (a name in :data:`CORES`) and its width.
      window: the truncation ``T`` (steps per window, one update per window).
      max_length, start_length, threshold: the length curriculum (``docs/math.md``,
        "Recurrent nets").
      batch_size: sequences per episode.
      carry_state: whether each batch lane's state carries over from episode to episode
        (a stream) instead of starting at zero.
    """

    task: str
    max_repeats: int
    core: str
    hidden: int
    window: int
    max_length: int
    start_length: int
    threshold: float
    batch_size: int
    carry_state: bool = False

    @property
    def steps(self) -> int:
        """Time steps of an episode: the longest sequence, rounded up to whole windows."""
        longest = copy_task.max_steps(self.task, self.max_length, self.max_repeats)
        return -(-longest // self.window) * self.window

    @property
    def n_in(self) -> int:
        return copy_task.n_inputs(self.task)

    @property
    def n_out(self) -> int:
        return copy_task.n_outputs(self.task)


class WindowSignals(NamedTuple):
    """The signals of one window: gradients, the window loss ``L_w``, the SG loss, the
    window's last state (the next window's ``s_0``) and the SG target ``t_0`` (``(B, S)``,
    flattened like :func:`flatten_state`; ``None`` for backprop)."""

    net_grads: dict
    sg_grads: dict | None
    loss: jax.Array
    sg_loss: jax.Array
    s_end: State
    sg_target: jax.Array | None = None


def orthogonal(key: jax.Array, n: int, dtype: Any = jnp.float32) -> jax.Array:
    """A random orthogonal ``n x n`` matrix: the Q of a Gaussian matrix's QR decomposition
    with a positive diagonal R, which is what ``jax.nn.initializers.orthogonal()`` returns
    for the same key (equal to rounding), computed by classical Gram-Schmidt applied twice
    per column ("twice is enough": orthogonal to working precision) in plain JAX ops.

    Why not ``jax.nn.initializers.orthogonal``: on the CPU its QR is a LAPACK custom call
    that, batched by ``vmap`` over runs, runs the batch on XLA's intra-op thread pool and
    waits for it from a pool thread (``jax::ParallelBatchMap``, jaxlib 0.10.2). When every
    pool thread waits so (two threads on a 2-core machine; the LSTM's four gate blocks run
    side by side), the program deadlocks with the CPU idle: the recurrent runs' hang
    (``benchmarks/hang_check.py --qr`` reproduces it in a few seconds).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from dnijax import recurrent
      >>> q = recurrent.orthogonal(jax.random.key(0), 4)
      >>> bool(jnp.abs(q.T @ q - jnp.eye(4)).max() < 1e-6)
      True
    """
    a = jax.random.normal(key, (n, n), dtype)

    def column(q, j):
        v, earlier = a[:, j], (jnp.arange(n) < j).astype(dtype)
        for _ in range(2):
            v = v - q @ ((q.T @ v) * earlier)
        return q.at[:, j].set(v / jnp.linalg.norm(v)), None

    return jax.lax.scan(column, jnp.zeros((n, n), dtype), jnp.arange(n))[0]


def _rnn_init(key: jax.Array, n_in: int, n_hidden: int, dtype: Any) -> dict:
    kx, kh = jax.random.split(key)
    return {
        "wx": jax.nn.initializers.glorot_normal()(kx, (n_in, n_hidden), dtype),
        "wh": orthogonal(kh, n_hidden, dtype),
        "b": jnp.zeros((n_hidden,), dtype),
    }


def _rnn_step(params: dict, s: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
    s = jnp.tanh(x_t @ params["wx"] + s @ params["wh"] + params["b"])
    return s, s


def _lstm_init(key: jax.Array, n_in: int, n_hidden: int, dtype: Any) -> dict:
    """Glorot-normal ``wx`` (n_in, 4H); ``wh`` (H, 4H) an orthogonal H x H block per
    gate (:func:`orthogonal`); ``b`` zero but for the forget gate's 1."""
    kx, *kh = jax.random.split(key, 5)
    b = jnp.zeros((4, n_hidden), dtype).at[1].set(1.0).reshape(-1)
    return {
        "wx": jax.nn.initializers.glorot_normal()(kx, (n_in, 4 * n_hidden), dtype),
        "wh": jnp.concatenate([orthogonal(k, n_hidden, dtype) for k in kh], axis=1),
        "b": b,
    }


def _lstm_step(
    params: dict, state: tuple[jax.Array, jax.Array], x_t: jax.Array
) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    h, c = state
    i, f, g, o = jnp.split(x_t @ params["wx"] + h @ params["wh"] + params["b"], 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


CORES = {
    "rnn": Core(_rnn_init, lambda b, n, dtype: jnp.zeros((b, n), dtype), _rnn_step),
    "lstm": Core(
        _lstm_init,
        lambda b, n, dtype: (jnp.zeros((b, n), dtype), jnp.zeros((b, n), dtype)),
        _lstm_step,
    ),
}


BUILTIN_CORES = tuple(CORES)


def register_core(name: str, core: Core) -> None:
    """Adds a recurrent core under ``name`` (``RunConfig(task=..., core=name)`` then trains
    it, with every rule that has a recurrent form). Its state may be any pytree of
    ``(B, .)`` arrays; the SG module sees it flattened (:func:`flatten_state`).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from dnijax import recurrent
      >>> def step(params, s, x_t):  # a tanh RNN without its recurrent weights
      ...     s = jnp.tanh(x_t @ params["wx"] + params["b"])
      ...     return s, s
      >>> def init(key, n_in, n, dtype):
      ...     return {"wx": jax.random.normal(key, (n_in, n), dtype), "b": jnp.zeros(n, dtype)}
      >>> recurrent.register_core("memoryless", recurrent.Core(
      ...     init, lambda b, n, dtype: jnp.zeros((b, n), dtype), step))
      >>> recurrent.state_size("memoryless", 4)
      4
      >>> recurrent.unregister_core("memoryless")
    """
    if not isinstance(core, Core):
        raise ValueError(
            f"recurrent core {name!r}: give a recurrent.Core, got {type(core).__name__}"
        )
    registry.add(CORES, BUILTIN_CORES, "recurrent core", name, core)


def unregister_core(name: str) -> None:
    """Removes a core added with :func:`register_core`."""
    registry.remove(CORES, BUILTIN_CORES, name)


def get_core(core: str | Core) -> Core:
    """The core named ``core`` in ``CORES`` (a :class:`Core` passes through)."""
    if isinstance(core, Core):
        return core
    if core not in CORES:
        raise ValueError(f"unknown recurrent core {core!r}; choose one of {tuple(CORES)}")
    return CORES[core]


def init_network(
    key: jax.Array, core: str | Core, n_in: int, n_hidden: int, n_out: int, dtype: Any = jnp.float32
) -> dict[str, jax.Array]:
    """The core's parameters plus the readout: Glorot-normal ``wo``, zero ``bo``."""
    kc, ko = jax.random.split(key)
    params = get_core(core).init(kc, n_in, n_hidden, dtype)
    if {"wo", "bo"} & set(params):
        raise ValueError("a core's parameters may not use the readout's keys 'wo', 'bo'")
    return {
        **params,
        "wo": jax.nn.initializers.glorot_normal()(ko, (n_hidden, n_out), dtype),
        "bo": jnp.zeros((n_out,), dtype),
    }


def flatten_state(state: State) -> jax.Array:
    """The state's leaves concatenated along the last axis: ``(B, S)``."""
    leaves = jax.tree.leaves(state)
    return leaves[0] if len(leaves) == 1 else jnp.concatenate(leaves, axis=-1)


def state_size(core: str | Core, n_hidden: int) -> int:
    """``S``, the width of :func:`flatten_state` for ``core`` (``H`` for rnn, ``2H`` lstm)."""
    shapes = jax.eval_shape(lambda: get_core(core).initial_state(1, n_hidden, jnp.float32))
    return sum(leaf.shape[-1] for leaf in jax.tree.leaves(shapes))


def init_sg(size: int, dtype: Any = jnp.float32) -> dict[str, jax.Array]:
    """A zero-initialised linear SG module ``M(s) = s A + C`` on a flattened state of
    width ``size`` (:func:`state_size`); the first prediction is 0."""
    return {"a": jnp.zeros((size, size), dtype), "c": jnp.zeros((size,), dtype)}


def apply_sg(module: dict, s: jax.Array) -> jax.Array:
    """``M(s) = s A + C``, one row per example of a flattened state ``(B, S)``."""
    return s @ module["a"] + module["c"]


def forward_window(
    params: dict, s0: State, x_w: jax.Array, core: str | Core = "rnn"
) -> tuple[State, jax.Array]:
    """The window's last state ``s_T`` and outputs ``(B, T, K)``, by ``lax.scan``.

    Args:
      params: the network dict (core parameters, ``wo``, ``bo``).
      s0: the incoming state (the pytree of ``core.initial_state``).
      x_w: the window's inputs ``(B, T, d)``.
      core: a name in ``CORES`` or a :class:`Core`.
    """
    step_core = get_core(core).step

    def step(s, x_t):
        s, h = step_core(params, s, x_t)
        return s, h @ params["wo"] + params["bo"]

    s_end, outs = jax.lax.scan(step, s0, jnp.swapaxes(x_w, 0, 1))
    return s_end, jnp.swapaxes(outs, 0, 1)


class Window(NamedTuple):
    """One truncated-BPTT window's batch: the incoming state ``s0`` (held constant), inputs
    ``x`` (B, T, d), targets ``y`` (B, T, K) and the optional ``mask`` (B, T) weighting the
    per-step losses (0 where a step has no target, as in the copy tasks)."""

    s0: State
    x: jax.Array
    y: jax.Array
    mask: jax.Array | None = None


class WindowSpec(NamedTuple):
    """What a window's signals depend on besides parameters and data: the core, the loss
    name, the batch reduction, what the SG module regresses onto (``per_example`` or
    ``batch``; ``docs/math.md``, "SG target scale") and the factor ``sg_scale`` on the
    synthetic gradient injected at the window's end (``docs/math.md``, "SG scale")."""

    core: Core
    loss: str
    reduction: str
    sg_target: str = "per_example"
    sg_scale: float = 1.0


def _losses(params: dict, s0: State, window: Window, spec: WindowSpec) -> tuple[jax.Array, State]:
    """Per-example summed window losses ``sum_t m_t,b l_t,b`` from ``s0``, and ``s_T``."""
    s_end, outs = forward_window(params, s0, window.x, spec.core)
    per_step = nets.per_example_loss(outs, window.y, spec.loss)
    if window.mask is not None:
        per_step = per_step * window.mask
    return jnp.sum(per_step, axis=1), s_end


def backprop_window(
    params: dict, sg_params: Any, window: Window, spec: WindowSpec
) -> WindowSignals:
    """The recurrent form of rule ``backprop``: plain truncated BPTT, ``grad L_w`` with the
    incoming state held constant (see the module docstring). ``sg_params`` is unused."""
    s0 = jax.tree.map(sg, window.s0)

    def objective(theta):
        per_example, s_end = _losses(theta, s0, window, spec)
        return nets.reduce_batch(per_example, spec.reduction), s_end

    (window_loss, s_end), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return WindowSignals(
        grads,
        None,
        sg(window_loss),
        jnp.zeros((), window_loss.dtype),
        jax.tree.map(sg, s_end),
        None,
    )


def dni_window(params: dict, sg_params: dict, window: Window, spec: WindowSpec) -> WindowSignals:
    """The recurrent form of rule ``dni``: a synthetic gradient at the window's end, and the
    SG module trained on the bootstrapped target at its start (see the module docstring)."""
    reduce = lambda v: nets.reduce_batch(v, spec.reduction)  # noqa: E731
    s0 = jax.tree.map(sg, window.s0)
    batch = spec.sg_target == "batch"  # d_end estimates dJ/ds_T: the injected term is summed
    scale = 1.0 / window.x.shape[0] if batch and spec.reduction == "mean" else 1.0
    inject = (lambda v: jnp.sum(v, axis=0)) if batch else reduce

    def objective(theta, phi):
        per_example, s_end = _losses(theta, s0, window, spec)
        window_loss = reduce(per_example)
        flat_end = flatten_state(s_end)
        d_end = sg(spec.sg_scale * apply_sg(phi, sg(flat_end)))
        net_term = window_loss + inject(jnp.sum(flat_end * d_end, axis=-1))

        def future(s_in):  # per example: c sum_t l_t,b + <s_T,b, d_end,b>, params frozen
            l_b, s_t = _losses(jax.tree.map(sg, theta), s_in, window, spec)
            return scale * jnp.sum(l_b) + jnp.sum(flatten_state(s_t) * d_end)

        target = sg(flatten_state(jax.grad(future)(s0)))
        sg_loss = reduce(0.5 * jnp.sum((apply_sg(phi, flatten_state(s0)) - target) ** 2, axis=-1))
        return net_term + sg_loss, (window_loss, sg_loss, s_end, target)

    (net_grads, sg_grads), (window_loss, sg_loss, s_end, target) = jax.grad(
        objective, argnums=(0, 1), has_aux=True
    )(params, sg_params)
    return WindowSignals(
        net_grads, sg_grads, sg(window_loss), sg(sg_loss), jax.tree.map(sg, s_end), target
    )
