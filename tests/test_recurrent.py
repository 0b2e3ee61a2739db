"""Recurrent DNI in JAX against the hand-derived numpy reference (dnijax/reference/rnn.py),
in float64: one window's signals, and SGD trajectories over windows with the state carried."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import recurrent, signals
from dnijax.reference import rnn as ref
from dnijax.validate import GRAD_TOL, PARAM_TOL, rel_error


def _problem(loss, seed=0, b=3, t=4, d=2, h=5, k=3):
    rng = np.random.RandomState(seed)
    params = {
        "wx": rng.randn(d, h) * 0.5,
        "wh": rng.randn(h, h) * 0.4,
        "b": rng.randn(h) * 0.1,
        "wo": rng.randn(h, k) * 0.5,
        "bo": rng.randn(k) * 0.1,
    }
    sg = {"a": rng.randn(h, h) * 0.3, "c": rng.randn(h) * 0.1}
    x = rng.randn(b, 3 * t, d)
    if loss == "xent":
        y = np.eye(k)[rng.randint(0, k, (b, 3 * t))]
    else:
        y = rng.randint(0, 2, (b, 3 * t, k)).astype(float)
    return params, sg, x, y, rng.randn(b, h) * 0.5, t


@pytest.mark.parametrize("signal", ["backprop", "dni"])
@pytest.mark.parametrize("loss,reduction", [("mse", "mean"), ("xent", "sum"), ("bce", "mean")])
def test_one_windows_signals_match_the_reference(signal, loss, reduction):
    params, sg, x, y, s0, t = _problem(loss)
    want = ref.window_signals(
        signal, params, sg, s0, x[:, :t], y[:, :t], loss=loss, reduction=reduction
    )
    with jax.enable_x64(True):
        as_jax = lambda tree: jax.tree.map(jnp.asarray, tree)  # noqa: E731
        got = signals.window_signals(
            signal,
            as_jax(params),
            as_jax(sg),
            jnp.asarray(s0),
            jnp.asarray(x[:, :t]),
            jnp.asarray(y[:, :t]),
            loss,
            reduction,
        )
        assert got.net_grads["wh"].dtype == jnp.float64
    assert rel_error(got.net_grads, want["net_grads"]) <= GRAD_TOL
    assert abs(float(got.loss) - want["loss"]) <= GRAD_TOL * abs(want["loss"])
    np.testing.assert_allclose(got.s_end, want["s_end"], rtol=1e-12)
    if signal == "dni":
        assert rel_error(got.sg_grads, want["sg_grads"]) <= GRAD_TOL
        assert abs(float(got.sg_loss) - want["sg_loss"]) <= GRAD_TOL * abs(want["sg_loss"])


@pytest.mark.parametrize("signal", ["backprop", "dni"])
def test_sgd_trajectories_over_windows_match_the_reference(signal):
    """Three windows, the state carried from window to window, SGD on net and SG module."""
    params, sg, x, y, _, t = _problem("mse", seed=1)
    lr, sg_lr = 0.05, 0.02
    want_p, want_sg, want_losses = ref.trajectory(
        signal, params, sg, x, y, t, loss="mse", reduction="mean", lr=lr, sg_lr=sg_lr
    )
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)
        m = jax.tree.map(jnp.asarray, sg)
        s = jnp.zeros((x.shape[0], params["wh"].shape[0]))
        losses = []
        for w in range(x.shape[1] // t):
            sig = signals.window_signals(
                signal,
                p,
                m,
                s,
                jnp.asarray(x[:, w * t : (w + 1) * t]),
                jnp.asarray(y[:, w * t : (w + 1) * t]),
                "mse",
                "mean",
            )
            p = jax.tree.map(lambda a, g: a - lr * g, p, sig.net_grads)
            if signal == "dni":
                m = jax.tree.map(lambda a, g: a - sg_lr * g, m, sig.sg_grads)
            s = sig.s_end
            losses.append(float(sig.loss))
    assert rel_error(p, want_p) <= PARAM_TOL
    if signal == "dni":
        assert rel_error(m, want_sg) <= PARAM_TOL
    np.testing.assert_allclose(losses, want_losses, rtol=1e-10)


def test_a_zero_sg_module_gives_backprops_network_signals():
    params, _, x, y, s0, t = _problem("bce", seed=2)
    as_jax = lambda tree: jax.tree.map(jnp.asarray, tree)  # noqa: E731
    args = (
        jnp.asarray(s0, jnp.float32),
        jnp.asarray(x[:, :t], jnp.float32),
        jnp.asarray(y[:, :t], jnp.float32),
        "bce",
        "mean",
    )
    bp = signals.window_signals("backprop", as_jax(params), None, *args)
    dni = signals.window_signals("dni", as_jax(params), recurrent.init_sg(5), *args)
    for a, b in zip(jax.tree.leaves(bp.net_grads), jax.tree.leaves(dni.net_grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown recurrent signal rule 'bptt'"):
        signals.window_signals("bptt", {}, None, None, None, None, "mse", "mean")


# --- the LSTM core, against a plainly unrolled python loop differentiated by jax.grad ---


def _lstm_problem(seed=0, b=3, t=4, d=2, h=3, k=2):
    rng = np.random.RandomState(seed)
    params = {
        "wx": rng.randn(d, 4 * h) * 0.5,
        "wh": rng.randn(h, 4 * h) * 0.4,
        "b": rng.randn(4 * h) * 0.3,
        "wo": rng.randn(h, k) * 0.5,
        "bo": rng.randn(k) * 0.1,
    }
    sg = {"a": rng.randn(2 * h, 2 * h) * 0.3, "c": rng.randn(2 * h) * 0.1}
    s0 = (rng.randn(b, h) * 0.5, rng.randn(b, h) * 0.5)
    return params, sg, s0, rng.randn(b, 2 * t, d), rng.randn(b, 2 * t, k), t


def _unrolled(params, h, c, x):
    """Gate order i, f, g, o; written out step by step, no lax.scan, no recurrent.py."""
    n, sig = h.shape[1], jax.nn.sigmoid
    outs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ params["wx"] + h @ params["wh"] + params["b"]
        i, f, g, o = z[:, :n], z[:, n : 2 * n], z[:, 2 * n : 3 * n], z[:, 3 * n :]
        c = sig(f) * c + sig(i) * jnp.tanh(g)
        h = sig(o) * jnp.tanh(c)
        outs.append(h @ params["wo"] + params["bo"])
    return h, c, outs


def _step_losses(outs, y):  # per step and example, mse
    return [0.5 * jnp.sum((o - y[:, t]) ** 2, axis=-1) for t, o in enumerate(outs)]


def _as_jax(tree):
    return jax.tree.map(jnp.asarray, tree)


def test_lstm_backprop_window_is_grad_of_the_unrolled_loop():
    params, _, s0, x, y, t = _lstm_problem()
    with jax.enable_x64(True):
        p, s0, x, y = _as_jax(params), _as_jax(s0), jnp.asarray(x[:, :t]), jnp.asarray(y[:, :t])

        def window_loss(theta):
            return sum(jnp.mean(loss) for loss in _step_losses(_unrolled(theta, *s0, x)[2], y))

        got = signals.window_signals("backprop", p, None, s0, x, y, "mse", "mean", core="lstm")
        want = jax.grad(window_loss)(p)
        h_end, c_end, _ = _unrolled(p, *s0, x)
        want_loss = float(window_loss(p))
        assert got.net_grads["wh"].dtype == jnp.float64
        assert got.sg_target is None
    assert rel_error(got.net_grads, want) <= GRAD_TOL
    np.testing.assert_allclose(float(got.loss), want_loss, rtol=1e-12)
    np.testing.assert_allclose(got.s_end[0], h_end, rtol=1e-12)
    np.testing.assert_allclose(got.s_end[1], c_end, rtol=1e-12)


def test_lstm_dni_with_a_zero_sg_module_gives_backprops_network_signals():
    params, _, s0, x, y, t = _lstm_problem(seed=1)
    with jax.enable_x64(True):
        args = (_as_jax(s0), jnp.asarray(x[:, :t]), jnp.asarray(y[:, :t]), "mse", "sum")
        bp = signals.window_signals("backprop", _as_jax(params), None, *args, core="lstm")
        dni = signals.window_signals(
            "dni", _as_jax(params), recurrent.init_sg(6, jnp.float64), *args, core="lstm"
        )
    assert rel_error(dni.net_grads, bp.net_grads) <= GRAD_TOL
    assert float(dni.loss) == float(bp.loss)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_lstm_dni_signals_and_target_by_an_independent_route(scale):
    """t_0 = d/d(h_0, c_0) [sum_t l_t,b + <[h_T, c_T], D>] per example with D = a M([h_T,
    c_T]) (a: the SG scale); the network follows L_w + mean_b <s_T, D>; the SG module
    regresses M([h_0, c_0]) itself onto t_0."""
    params, sg, s0, x, y, t = _lstm_problem(seed=2)
    with jax.enable_x64(True):
        p, m, s0 = _as_jax(params), _as_jax(sg), _as_jax(s0)
        x, y = jnp.asarray(x[:, :t]), jnp.asarray(y[:, :t])
        h_end, c_end, _ = _unrolled(p, *s0, x)
        d_end = scale * (jnp.concatenate([h_end, c_end], axis=1) @ m["a"] + m["c"])  # constant

        def with_future(theta, h0, c0, scale):
            h, c, outs = _unrolled(theta, h0, c0, x)
            per_example = sum(_step_losses(outs, y)) + jnp.sum(
                jnp.concatenate([h, c], axis=1) * d_end, axis=1
            )
            return scale * jnp.sum(per_example)

        dh0, dc0 = jax.grad(with_future, argnums=(1, 2))(p, *s0, 1.0)
        target = jnp.concatenate([dh0, dc0], axis=1)
        want_net = jax.grad(with_future)(p, *s0, 1.0 / x.shape[0])
        flat0 = jnp.concatenate(s0, axis=1)
        diff = flat0 @ m["a"] + m["c"] - target
        want_sg = {"a": flat0.T @ diff / 3, "c": diff.sum(axis=0) / 3}
        want_sg_loss = 0.5 * float(jnp.sum(diff**2)) / 3
        got = signals.window_signals(
            "dni", p, m, s0, x, y, "mse", "mean", core="lstm", sg_scale=scale
        )
    assert got.sg_target.shape == (3, 6) and got.sg_target.dtype == jnp.float64
    np.testing.assert_allclose(got.sg_target, target, rtol=1e-10, atol=1e-12)
    assert rel_error(got.net_grads, want_net) <= GRAD_TOL
    assert rel_error(got.sg_grads, want_sg) <= GRAD_TOL
    np.testing.assert_allclose(float(got.sg_loss), want_sg_loss, rtol=1e-10)


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_state_carried_across_windows_equals_one_long_pass(core):
    params = recurrent.init_network(jax.random.key(3), core, 2, 4, 3)
    x = jax.random.normal(jax.random.key(4), (3, 10, 2))
    y = jax.random.normal(jax.random.key(5), (3, 10, 3))
    s0 = jax.tree.map(lambda a: a + 0.3, recurrent.get_core(core).initial_state(3, 4, x.dtype))
    s_long, outs_long = recurrent.forward_window(params, s0, x, core)
    s_mid, outs_a = recurrent.forward_window(params, s0, x[:, :6], core)
    s_end, outs_b = recurrent.forward_window(params, s_mid, x[:, 6:], core)
    np.testing.assert_allclose(
        jnp.concatenate([outs_a, outs_b], axis=1), outs_long, rtol=1e-5, atol=1e-6
    )
    for a, b in zip(jax.tree.leaves(s_end), jax.tree.leaves(s_long), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    sig = signals.window_signals(
        "dni",
        params,
        recurrent.init_sg(recurrent.state_size(core, 4)),
        s0,
        x[:, :6],
        y[:, :6],
        "mse",
        "mean",
        core=core,
    )
    for a, b in zip(jax.tree.leaves(sig.s_end), jax.tree.leaves(s_mid), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_initialisation_of_the_cores():
    rnn = recurrent.init_network(jax.random.key(0), "rnn", 2, 4, 3)
    lstm = recurrent.init_network(jax.random.key(0), "lstm", 2, 4, 3)
    assert {k: v.shape for k, v in rnn.items()} == {
        "wx": (2, 4),
        "wh": (4, 4),
        "b": (4,),
        "wo": (4, 3),
        "bo": (3,),
    }
    assert {k: v.shape for k, v in lstm.items()} == {
        "wx": (2, 16),
        "wh": (4, 16),
        "b": (16,),
        "wo": (4, 3),
        "bo": (3,),
    }
    np.testing.assert_allclose(rnn["wh"].T @ rnn["wh"], np.eye(4), atol=1e-5)
    for g in range(4):  # each gate's H x H recurrent block is orthogonal
        block = lstm["wh"][:, 4 * g : 4 * (g + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(4), atol=1e-5)
    np.testing.assert_array_equal(lstm["b"], np.repeat([0.0, 1.0, 0.0, 0.0], 4))
    assert recurrent.state_size("rnn", 4) == 4 and recurrent.state_size("lstm", 4) == 8
    assert recurrent.get_core(recurrent.CORES["lstm"]) is recurrent.CORES["lstm"]


def test_unknown_core_is_refused():
    with pytest.raises(ValueError, match="unknown recurrent core 'gru'"):
        recurrent.get_core("gru")
    with pytest.raises(ValueError, match="unknown recurrent core 'gru'"):
        recurrent.init_network(jax.random.key(0), "gru", 2, 4, 1)
    with pytest.raises(ValueError, match="unknown recurrent core 'gru'"):
        signals.window_signals("dni", {}, None, None, None, None, "mse", "mean", core="gru")


def test_orthogonal_init_is_jaxs_without_a_lapack_call():
    """``recurrent.orthogonal`` returns jax.nn.initializers.orthogonal's matrix (to rounding)
    from plain JAX ops: no LAPACK custom call, whose batched form deadlocked recurrent runs
    on the CPU (benchmarks/hang_check.py)."""
    with jax.enable_x64(True):
        key = jax.random.key(3)
        ours = recurrent.orthogonal(key, 16, jnp.float64)
        theirs = jax.nn.initializers.orthogonal()(key, (16, 16), jnp.float64)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-13)
    q = recurrent.orthogonal(jax.random.key(1), 64)
    assert q.dtype == jnp.float32
    np.testing.assert_allclose(q.T @ q, np.eye(64), atol=2e-6)
    hlo = (
        jax.jit(jax.vmap(lambda k: recurrent.orthogonal(k, 8)))
        .lower(jax.random.split(jax.random.key(0), 3))
        .as_text()
    )
    assert "custom_call" not in hlo
