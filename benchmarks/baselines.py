"""Baselines for the speed benchmark, written the way a skilled user of each tool would.

Three ways to train many independent runs of the article's problem (a small
sigmoid MLP with biases, ``mse`` loss reduced by the batch mean, full batch,
plain SGD) under the four regimes ``backprop``, ``dni``, ``backprop+noise`` and
``dni+noise``:

* :func:`numpy_train` / :func:`numpy_runs`: a tight numpy loop, one run after
  another, each step vectorised over the batch, explicit formulas, in-place
  parameter updates (as the 2018 blog's script is written).
* :func:`torch_runs`: PyTorch on CPU, the runs batched along a leading axis and
  stepped with ``torch.baddbmm`` under ``torch.no_grad()``, backward written by
  hand for both backprop and DNI (torch is imported lazily: this module imports
  without it).
* :func:`make_jax_lean` / :func:`jax_lean_runs`: a minimal jitted
  ``vmap(scan)`` in JAX: the engine's ceiling without its checks, history,
  optax or (for the noise-free regimes) RNG.

DNI uses the paper topology: layers ``1..L-1`` carry a linear synthetic-gradient
module ``d_i = h_i A_i + c_i``; the output layer ``L`` learns from the true
gradient. Every signal of a step comes from the parameters at the start of the
step (synchronous updates); see ``dnijax.reference.dni_grads``. Writing
``c = 1/B`` and ``delta_i = c d_i * h_i (1 - h_i)`` (``delta_L = c e * h_L (1 - h_L)``,
``e = h_L - y``), the SG target of layer ``i`` is ``t_i = delta_{i+1} W_{i+1}^T / c``,
so the gradient of the SG loss w.r.t. ``d_i`` is
``G_i = c (d_i - t_i) = c d_i - delta_{i+1} W_{i+1}^T``: all three baselines use
that form.

The ``+noise`` regimes add ``sigma_t n`` with ``n ~ N(0, 1)`` elementwise and
``sigma_t^2 = eta / (1 + t)^0.55`` (``t`` = step index from 0) to every network
and SG gradient, after the gradient and before the learning rate:
``theta <- theta - lr (g + sigma_t n)``.

Layouts (the same for all three methods, arrays of each library):

* one run: ``params = [(W_1, b_1), ..., (W_L, b_L)]`` with ``W_i`` of shape
  ``(n_{i-1}, n_i)`` and ``b_i`` of shape ``(n_i,)``; ``sgs = [(A_1, c_1), ...,
  (A_{L-1}, c_{L-1})]`` with ``A_i`` of shape ``(n_i, n_i)`` and ``c_i`` of shape
  ``(n_i,)`` (no entry for the output layer).
* many runs ("stacked"): the same lists with a leading run axis on every array,
  ``W_i`` of shape ``(R, n_{i-1}, n_i)``, ``b_i`` of shape ``(R, n_i)``, etc.
* ``x`` of shape ``(B, n_0)`` and ``y`` of shape ``(B, n_L)`` (a 0/1 target
  column for the article), shared by all runs.

Example:
  >>> import numpy as np
  >>> params, sgs = init_runs(2, (2, 3, 1), seed=0)
  >>> x = np.ones((4, 2), np.float32); y = np.ones((4, 1), np.float32)
  >>> p, s = numpy_runs("dni", params, sgs, x, y, steps=3, lr=0.5, sg_lr=0.1)
  >>> [w.shape for w, _ in p], [a.shape for a, _ in s]
  ([(2, 2, 3), (2, 3, 1)], [(2, 3, 3)])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dnijax.config import REGIMES, parse_regime

NOISE_GAMMA = 0.55

Pairs = list[tuple[Any, Any]]  # [(W, b), ...] or [(A, c), ...], of any array type


# ---------------------------------------------------------------- shared helpers
def _split_regime(regime: str) -> tuple[bool, bool]:
    """``(is_dni, is_noisy)`` for one of :data:`REGIMES`."""
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {REGIMES}")
    rule, noisy = parse_regime(regime)
    return rule == "dni", noisy


def noise_stds(eta: float, steps: int) -> np.ndarray:
    """``sigma_t = sqrt(eta / (1 + t)^0.55)`` for ``t = 0..steps-1`` (float64)."""
    t = np.arange(steps, dtype=np.float64)
    return np.sqrt(eta / (1.0 + t) ** NOISE_GAMMA)


def init_runs(
    n_runs: int,
    widths: Sequence[int],
    seed: int = 0,
    *,
    dtype: Any = np.float32,
    sg_init_std: float = 0.0,
) -> tuple[Pairs, Pairs]:
    """Identical starting points for every baseline: stacked numpy arrays.

    Run ``r`` draws from ``np.random.default_rng((seed, r))``, so its start does
    not depend on ``n_runs``. Weights are Glorot normal as in
    ``jax.nn.initializers.glorot_normal``: a normal truncated at two standard
    deviations, rescaled to variance ``2 / (n_in + n_out)``. Biases are zero; the
    SG modules are zero unless ``sg_init_std`` is set (then normal with that
    standard deviation, for tests that must exercise the SG path from step 0).

    Args:
      n_runs: number of independent runs ``R``.
      widths: layer widths ``(n_0, ..., n_L)``, e.g. ``(2, 10, 28, 1)``.
      seed: base seed.
      dtype: array dtype (float32 for the benchmark, float64 for tight tests).
      sg_init_std: standard deviation of the SG modules' initial weights and biases.

    Returns:
      ``(stacked_params, stacked_sgs)`` in the stacked layout of the module docstring.
    """
    pairs = list(zip(widths[:-1], widths[1:], strict=False))
    ws = [np.empty((n_runs, a, b)) for a, b in pairs]
    sg_a = [np.zeros((n_runs, b, b)) for _, b in pairs[:-1]]
    sg_c = [np.zeros((n_runs, b)) for _, b in pairs[:-1]]
    for r in range(n_runs):
        rng = np.random.default_rng((seed, r))
        for w, (a, b) in zip(ws, pairs, strict=False):
            z = rng.standard_normal((a, b))
            while np.any(bad := np.abs(z) > 2.0):  # truncate at 2 std by resampling
                z[bad] = rng.standard_normal(int(bad.sum()))
            w[r] = z * np.sqrt(2.0 / (a + b)) / 0.87962566103423978
        if sg_init_std:
            for a_i, c_i in zip(sg_a, sg_c, strict=False):
                a_i[r] = sg_init_std * rng.standard_normal(a_i.shape[1:])
                c_i[r] = sg_init_std * rng.standard_normal(c_i.shape[1:])
    params = [
        (w.astype(dtype), np.zeros((n_runs, b), dtype))
        for w, (_, b) in zip(ws, pairs, strict=False)
    ]
    sgs = [(a.astype(dtype), c.astype(dtype)) for a, c in zip(sg_a, sg_c, strict=False)]
    return params, sgs


def run_of(stacked: Pairs, r: int) -> Pairs:
    """Run ``r`` of a stacked list of pairs (views, not copies)."""
    return [(p[r], q[r]) for p, q in stacked]


def to_reference(params: Pairs, sgs: Pairs | None) -> tuple[list[dict], list | None]:
    """One run's ``(params, sgs)`` in ``dnijax.reference``'s layout.

    Returns ``[{"w", "b"}, ...]`` and, for DNI, ``[[{"w": A, "b": c}], ..., None]``
    (one single-layer module per layer in S, ``None`` for the output layer).
    """
    net = [{"w": np.asarray(w), "b": np.asarray(b)} for w, b in params]
    if sgs is None:
        return net, None
    return net, [[{"w": np.asarray(a), "b": np.asarray(c)}] for a, c in sgs] + [None]


# ---------------------------------------------------------------- numpy
def numpy_train(
    regime: str,
    params: Pairs,
    sgs: Pairs | None,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    lr: float,
    sg_lr: float,
    eta: float = 0.01,
    rng: np.random.Generator | None = None,
) -> tuple[Pairs, Pairs | None]:
    """One run of ``steps`` full-batch SGD steps in plain numpy.

    The loop a numpy user writes: forward pass, explicit backward formulas,
    parameters updated in place (on copies of the inputs) with Python scalars, so
    float32 inputs stay float32 throughout.

    Args:
      regime: one of :data:`REGIMES`.
      params: ``[(W_i, b_i), ...]`` for layers ``1..L`` (one run, not stacked).
      sgs: ``[(A_i, c_i), ...]`` for layers ``1..L-1``; ignored (may be ``None``)
        for the backprop regimes.
      x, y: inputs ``(B, n_0)`` and targets ``(B, n_L)``.
      steps: number of SGD steps.
      lr, sg_lr: learning rates of the network and of the SG modules.
      eta: noise variance at ``t = 0`` (``+noise`` regimes only).
      rng: the noise source (``+noise`` regimes only; default
        ``np.random.default_rng(0)``). Each step draws one
        ``rng.standard_normal(shape, dtype)`` per parameter array, in the order
        the loop updates them: from the output layer down, for each layer its
        ``W``, ``b`` and then (DNI) the module below it, ``A``, ``c``.

    Returns:
      ``(params, sgs)`` after training, new arrays in the same layout (``sgs`` is
      returned as given for the backprop regimes).
    """
    dni, noisy = _split_regime(regime)
    n = len(params)
    ws = [np.array(w) for w, _ in params]
    bs = [np.array(b) for _, b in params]
    if dni:
        sa = [np.array(a) for a, _ in sgs]
        sc = [np.array(c) for _, c in sgs]
    dtype = ws[0].dtype
    x, y = np.asarray(x, dtype), np.asarray(y, dtype)
    c = 1.0 / x.shape[0]
    stds = noise_stds(eta, steps).tolist()
    if noisy and rng is None:
        rng = np.random.default_rng(0)
    draw = rng.standard_normal if noisy else None
    hs = [x] + [None] * n
    with np.errstate(over="ignore"):  # exp(-z) -> inf gives sigmoid 0, as wanted
        for t in range(steps):
            s = stds[t]
            for i in range(n):
                hs[i + 1] = 1.0 / (1.0 + np.exp(-(hs[i] @ ws[i] + bs[i])))
            out = hs[n]
            delta = (c * (out - y)) * (out * (1.0 - out))  # dJ/dz_L
            for i in range(n - 1, -1, -1):
                w, h = ws[i], hs[i]  # layer i (0-based) and its input, layer i - 1's output
                d_w = h.T @ delta
                d_b = delta.sum(0)
                if i > 0:
                    if dni:
                        d = h @ sa[i - 1] + sc[i - 1]  # synthetic gradient of layer i - 1
                        g = c * d - delta @ w.T  # c (d - t): the SG loss gradient
                        d_a = h.T @ g
                        d_c = g.sum(0)
                        delta_next = (c * d) * (h * (1.0 - h))
                    else:
                        delta_next = (delta @ w.T) * (h * (1.0 - h))
                if noisy:
                    d_w += s * draw(w.shape, dtype=dtype)
                    d_b += s * draw(d_b.shape, dtype=dtype)
                w -= lr * d_w
                bs[i] -= lr * d_b
                if i > 0:
                    if dni:
                        if noisy:
                            d_a += s * draw(d_a.shape, dtype=dtype)
                            d_c += s * draw(d_c.shape, dtype=dtype)
                        sa[i - 1] -= sg_lr * d_a
                        sc[i - 1] -= sg_lr * d_c
                    delta = delta_next
    new_params = list(zip(ws, bs, strict=False))
    return new_params, (list(zip(sa, sc, strict=False)) if dni else sgs)


def numpy_runs(
    regime: str,
    stacked_params: Pairs,
    stacked_sgs: Pairs | None,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    lr: float,
    sg_lr: float,
    eta: float = 0.01,
    seed: int = 0,
) -> tuple[Pairs, Pairs | None]:
    """:func:`numpy_train` for each run of a stack, one after another.

    One ``np.random.default_rng(seed)`` feeds the noise of all runs in turn.

    Returns:
      the trained runs, stacked again (``stacked_sgs`` as given for backprop).
    """
    dni, _ = _split_regime(regime)
    rng = np.random.default_rng(seed)
    outs = []
    for r in range(stacked_params[0][0].shape[0]):
        outs.append(
            numpy_train(
                regime,
                run_of(stacked_params, r),
                run_of(stacked_sgs, r) if dni else None,
                x,
                y,
                steps,
                lr,
                sg_lr,
                eta,
                rng,
            )
        )
    params = [
        (np.stack([o[0][i][0] for o in outs]), np.stack([o[0][i][1] for o in outs]))
        for i in range(len(stacked_params))
    ]
    if not dni:
        return params, stacked_sgs
    sgs = [
        (np.stack([o[1][i][0] for o in outs]), np.stack([o[1][i][1] for o in outs]))
        for i in range(len(stacked_sgs))
    ]
    return params, sgs


# ---------------------------------------------------------------- PyTorch
def torch_runs(
    regime: str,
    stacked_params: Pairs,
    stacked_sgs: Pairs | None,
    x: Any,
    y: Any,
    steps: int,
    lr: float,
    sg_lr: float,
    eta: float = 0.01,
    seed: int = 0,
) -> tuple[Pairs, Pairs | None]:
    """All runs at once in PyTorch on CPU: a leading run axis and ``torch.baddbmm``.

    Parameters are stacked ``(R, n_in, n_out)`` tensors (biases kept as
    ``(R, 1, n_out)`` inside); every matmul is one batched ``bmm``/``baddbmm``
    over the runs, under ``torch.no_grad()``, with the backward written by hand
    for backprop and DNI alike, and the updates fused in place
    (``W.baddbmm_(h^T, delta, alpha=-lr)``, ``h (1 - h)`` as one ``addcmul``).
    Kept because it was the fastest variant measured (torch 2.13.0+cpu, 2 CPU
    threads, article scale: 500 examples, 2-10-28-1, float32; best of 5, run-steps/s):

    =========================================  ===========  ============
    variant                                     16 runs      128 runs
    =========================================  ===========  ============
    DNI, ``baddbmm`` by hand (this function)    9.6k         15.3k
    DNI, ``torch.func.vmap`` of a per-run step  7.1k         8.9k
    backprop, ``baddbmm`` by hand (this)        27k          26k
    backprop, batched forward + autograd        18k          24k
    backprop, ``vmap(torch.func.grad(loss))``   9.9k         23k
    =========================================  ===========  ============

    (the machine was shared, so these are rough; ``vmap`` pays a per-op batching
    overhead that matters on matrices this small). Beware: with the default two
    threads on a 2-core machine that other processes also load, single timings of
    this function fell at times to under 1k run-steps/s (the intra-op threads wait
    for a descheduled peer), while one thread gave a steady ~15k (backprop) and
    ~7.5k (DNI) at 16 runs: take the best of several repeats.

    Float32 if given float32 (the benchmark); float64 inputs stay float64.
    ``torch.set_num_threads`` is left as it is. Warm-up is the caller's job.

    Args:
      regime: one of :data:`REGIMES`.
      stacked_params, stacked_sgs: stacked layout (numpy arrays or tensors;
        copied, never modified). ``stacked_sgs`` may be ``None`` for backprop.
      x, y: ``(B, n_0)`` inputs and ``(B, n_L)`` targets, shared by the runs.
      steps, lr, sg_lr, eta: as in :func:`numpy_train`.
      seed: seeds the ``torch.Generator`` of the noise (``+noise`` only); each
        step draws one ``torch.randn`` per stacked parameter array.

    Returns:
      ``(params, sgs)`` as stacked torch tensors (biases ``(R, n_out)`` again);
      ``stacked_sgs`` as given for the backprop regimes.
    """
    import torch

    dni, noisy = _split_regime(regime)
    w0 = stacked_params[0][0]
    dtype = w0.dtype if torch.is_tensor(w0) else torch.tensor(np.asarray(w0)[:0]).dtype

    def tensor(a):
        """A fresh tensor of ``dtype`` holding ``a`` (numpy array or tensor)."""
        if torch.is_tensor(a):
            return a.detach().to(dtype=dtype, copy=True)
        return torch.tensor(np.asarray(a), dtype=dtype)

    with torch.no_grad():
        ws = [tensor(w) for w, _ in stacked_params]
        bs = [tensor(b).unsqueeze(1) for _, b in stacked_params]
        if dni:
            sa = [tensor(a) for a, _ in stacked_sgs]
            sc = [tensor(c_).unsqueeze(1) for _, c_ in stacked_sgs]
        n_runs, n = ws[0].shape[0], len(ws)
        xt, yt = tensor(x), tensor(y)
        xr = xt.expand(n_runs, *xt.shape).contiguous()
        c = 1.0 / xt.shape[0]
        stds = noise_stds(eta, steps).tolist()
        gen = torch.Generator().manual_seed(seed) if noisy else None
        hs = [xr] + [None] * n
        hts = [xr.transpose(1, 2)] + [None] * n

        def slope(h):
            """``h (1 - h)`` as ``h - h * h``, in one pass."""
            return torch.addcmul(h, h, h, value=-1.0)

        def noise_like(p):
            return torch.randn(p.shape, generator=gen, dtype=dtype)

        for t in range(steps):
            s = stds[t]
            for i in range(n):
                h = torch.baddbmm(bs[i], hs[i], ws[i]).sigmoid_()
                hs[i + 1], hts[i + 1] = h, h.transpose(1, 2)
            out = hs[n]
            delta = (out - yt).mul_(c).mul_(slope(out))  # dJ/dz_L
            for i in range(n - 1, -1, -1):
                w = ws[i]
                if i > 0:
                    h = hs[i]
                    if dni:
                        d = torch.baddbmm(sc[i - 1], h, sa[i - 1])
                        g = torch.baddbmm(d, delta, w.transpose(1, 2), beta=c, alpha=-1.0)
                        delta_next = d.mul_(c).mul_(slope(h))
                    else:
                        delta_next = torch.bmm(delta, w.transpose(1, 2)).mul_(slope(h))
                w.baddbmm_(hts[i], delta, alpha=-lr)
                bs[i].sub_(delta.sum(1, keepdim=True), alpha=lr)
                if noisy:
                    w.sub_(noise_like(w), alpha=lr * s)
                    bs[i].sub_(noise_like(bs[i]), alpha=lr * s)
                if i > 0:
                    if dni:
                        sa[i - 1].baddbmm_(hts[i], g, alpha=-sg_lr)
                        sc[i - 1].sub_(g.sum(1, keepdim=True), alpha=sg_lr)
                        if noisy:
                            sa[i - 1].sub_(noise_like(sa[i - 1]), alpha=sg_lr * s)
                            sc[i - 1].sub_(noise_like(sc[i - 1]), alpha=sg_lr * s)
                    delta = delta_next
        params = [(w, b.squeeze(1)) for w, b in zip(ws, bs, strict=False)]
        sgs = [(a, c_.squeeze(1)) for a, c_ in zip(sa, sc, strict=False)] if dni else stacked_sgs
    return params, sgs


# ---------------------------------------------------------------- JAX
def _jax_backprop_grads(params, x, y):
    """``dJ/dtheta`` of one run by ``jax.grad`` (mean 0.5 squared error)."""

    def loss(p):
        h = x
        for w, b in p:
            h = jax.nn.sigmoid(h @ w + b)
        return 0.5 * jnp.mean(jnp.sum((h - y) ** 2, axis=-1))

    return jax.grad(loss)(params), None


def _jax_dni_grads(params, sgs, x, y):
    """The DNI signals of one run by the explicit formulas of the module docstring."""
    n = len(params)
    c = 1.0 / x.shape[0]
    hs = [x]
    for w, b in params:
        hs.append(jax.nn.sigmoid(hs[-1] @ w + b))
    out = hs[n]
    delta = c * (out - y) * (out * (1.0 - out))
    g_net, g_sg = [None] * n, [None] * (n - 1)
    for i in range(n - 1, -1, -1):
        w = params[i][0]
        g_net[i] = (hs[i].T @ delta, delta.sum(0))
        if i > 0:
            h = hs[i]
            a, cc = sgs[i - 1]
            d = h @ a + cc
            g = c * d - delta @ w.T
            g_sg[i - 1] = (h.T @ g, g.sum(0))
            delta = c * d * (h * (1.0 - h))
    return g_net, g_sg


@functools.cache
def make_jax_lean(regime: str, steps: int, lr: float, sg_lr: float, eta: float = 0.01) -> Callable:
    """A jitted ``vmap(scan)`` training loop for one regime (cached per argument set).

    Pure ``jnp``: no finite checks, no optax, no history; backprop by
    ``jax.grad``, DNI by the explicit formulas. The noise-free regimes use no
    RNG. For ``+noise``, each run splits its key into one key per step, and each
    step's key into one key per parameter array.

    Args:
      regime: one of :data:`REGIMES`.
      steps, lr, sg_lr, eta: baked into the program.

    Returns:
      ``fn(stacked_params, stacked_sgs, x, y, key) -> (params, sgs)``, jitted
      (the first call at given shapes compiles: call it once to warm up, then
      time it; block on the result with ``jax.block_until_ready``).
      ``stacked_params`` / ``stacked_sgs`` as lists or tuples of pairs in the
      stacked layout (``stacked_sgs`` may be ``None`` for backprop), ``key`` a
      ``jax.random.key`` (ignored without noise). Outputs are tuples of pairs.
    """
    dni, noisy = _split_regime(regime)

    def one_run(params, sgs, x, y, key):
        ts = jnp.arange(steps)

        def step(carry, inp):
            p, s = carry
            t, k = inp
            if dni:
                g_net, g_sg = _jax_dni_grads(p, s, x, y)
            else:
                g_net, g_sg = _jax_backprop_grads(p, x, y)
            if noisy:
                std = jnp.sqrt(eta / (1.0 + t) ** NOISE_GAMMA)
                leaves, tree = jax.tree_util.tree_flatten((g_net, g_sg))
                keys = jax.random.split(k, len(leaves))
                leaves = [
                    g + std * jax.random.normal(kk, g.shape, g.dtype)
                    for g, kk in zip(leaves, keys, strict=False)
                ]
                g_net, g_sg = jax.tree_util.tree_unflatten(tree, leaves)
            p = tuple(
                (w - lr * gw, b - lr * gb) for (w, b), (gw, gb) in zip(p, g_net, strict=False)
            )
            if dni:
                s = tuple(
                    (a - sg_lr * ga, cc - sg_lr * gc)
                    for (a, cc), (ga, gc) in zip(s, g_sg, strict=False)
                )
            return (p, s), None

        keys = jax.random.split(key, steps) if noisy else ts
        (params, sgs), _ = jax.lax.scan(step, (params, sgs), (ts, keys))
        return params, sgs

    batched = jax.vmap(one_run, in_axes=(0, 0, None, None, 0))

    @jax.jit
    def run(stacked_params, stacked_sgs, x, y, key):
        params = tuple(tuple(pair) for pair in stacked_params)
        sgs = tuple(tuple(pair) for pair in stacked_sgs) if dni else None
        n_runs = params[0][0].shape[0]
        run_keys = jax.random.split(key, n_runs) if noisy else jnp.zeros(n_runs)
        return batched(params, sgs, x, y, run_keys)

    return run


def jax_lean_runs(
    regime: str,
    stacked_params: Pairs,
    stacked_sgs: Pairs | None,
    x: Any,
    y: Any,
    steps: int,
    lr: float,
    sg_lr: float,
    eta: float = 0.01,
    seed: int = 0,
) -> tuple[Pairs, Pairs | None]:
    """:func:`make_jax_lean`'s program run once and waited for.

    The first call at given shapes includes the compilation; to time the run
    alone, call this once first (or use :func:`make_jax_lean` directly).

    Returns:
      ``(params, sgs)`` as tuples of pairs of stacked jax arrays (``sgs`` is
      ``stacked_sgs`` as given for the backprop regimes).
    """
    dni, _ = _split_regime(regime)
    fn = make_jax_lean(regime, steps, float(lr), float(sg_lr), float(eta))
    params, sgs = fn(stacked_params, stacked_sgs if dni else None, x, y, jax.random.key(seed))
    jax.block_until_ready((params, sgs))
    return params, (sgs if dni else stacked_sgs)
