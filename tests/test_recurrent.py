"""Recurrent DNI in JAX against the hand-derived numpy reference (dnijax/reference_rnn.py),
in float64: one window's signals, and SGD trajectories over windows with the state carried."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import recurrent
from dnijax import reference_rnn as ref
from dnijax.validate import GRAD_TOL, PARAM_TOL, rel_error


def _problem(loss, seed=0, b=3, t=4, d=2, h=5, k=3):
    rng = np.random.RandomState(seed)
    params = {"wx": rng.randn(d, h) * 0.5, "wh": rng.randn(h, h) * 0.4, "b": rng.randn(h) * 0.1,
              "wo": rng.randn(h, k) * 0.5, "bo": rng.randn(k) * 0.1}
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
    want = ref.window_signals(signal, params, sg, s0, x[:, :t], y[:, :t], loss=loss,
                              reduction=reduction)
    with jax.enable_x64(True):
        as_jax = lambda tree: jax.tree.map(jnp.asarray, tree)  # noqa: E731
        got = recurrent.window_signals(signal, as_jax(params), as_jax(sg), jnp.asarray(s0),
                                       jnp.asarray(x[:, :t]), jnp.asarray(y[:, :t]), loss,
                                       reduction)
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
    want_p, want_sg, want_losses = ref.trajectory(signal, params, sg, x, y, t, loss="mse",
                                                  reduction="mean", lr=lr, sg_lr=sg_lr)
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)
        m = jax.tree.map(jnp.asarray, sg)
        s = jnp.zeros((x.shape[0], params["wh"].shape[0]))
        losses = []
        for w in range(x.shape[1] // t):
            sig = recurrent.window_signals(signal, p, m, s, jnp.asarray(x[:, w * t:(w + 1) * t]),
                                           jnp.asarray(y[:, w * t:(w + 1) * t]), "mse", "mean")
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
    args = (jnp.asarray(s0, jnp.float32), jnp.asarray(x[:, :t], jnp.float32),
            jnp.asarray(y[:, :t], jnp.float32), "bce", "mean")
    bp = recurrent.window_signals("backprop", as_jax(params), None, *args)
    dni = recurrent.window_signals("dni", as_jax(params), recurrent.init_sg(5), *args)
    for a, b in zip(jax.tree.leaves(bp.net_grads), jax.tree.leaves(dni.net_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown recurrent signal rule 'bptt'"):
        recurrent.window_signals("bptt", {}, None, None, None, None, "mse", "mean")
