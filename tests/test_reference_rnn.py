"""The hand-derived RNN reference (truncated BPTT, DNI) against finite differences,
in float64 numpy only (``dnijax/reference/rnn.py``)."""

import numpy as np
import pytest

from dnijax.reference import batch_scale, loss_and_output_grad, tree_map
from dnijax.reference import rnn as rr

B, D_IN, H, K, T = 3, 2, 4, 2, 3
EPS, TOL = 1e-6, 1e-6
LOSSES = ("mse", "xent", "bce")
REDUCTIONS = ("mean", "sum")


def _params(rng, scale=0.5):
    return {
        "wx": scale * rng.randn(D_IN, H),
        "wh": scale * rng.randn(H, H),
        "b": scale * rng.randn(H),
        "wo": scale * rng.randn(H, K),
        "bo": scale * rng.randn(K),
    }


def _sg(rng, scale=0.5):
    return {"a": scale * rng.randn(H, H), "c": scale * rng.randn(H)}


def _targets(rng, loss, steps):
    if loss == "mse":
        return rng.randn(B, steps, K)
    if loss == "xent":
        return np.eye(K)[rng.randint(0, K, (B, steps))]
    return rng.randint(0, 2, (B, steps, K)).astype(float)


def _data(seed, loss, steps=T):
    rng = np.random.RandomState(seed)
    return (
        _params(rng),
        _sg(rng),
        rng.randn(B, H) * 0.5,
        rng.randn(B, steps, D_IN),
        _targets(rng, loss, steps),
    )


def _per_example(params, s0, x_w, y_w, loss, d_fixed=None):
    """``sum_t l_t,b [+ <s_T,b, D_b>]`` per example, forward only."""
    states, outputs = rr.forward_window(params, s0, x_w)
    per, _ = loss_and_output_grad(outputs, y_w, loss)
    total = per.sum(axis=1)
    if d_fixed is not None:
        total = total + np.sum(states[:, -1] * d_fixed, axis=-1)
    return total


def _fd(fn, tree):
    """Central differences of the scalar ``fn(tree)`` w.r.t. every element of ``tree``."""
    grads = {}
    for key, arr in tree.items():
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus = {k: v.copy() for k, v in tree.items()}
            minus = {k: v.copy() for k, v in tree.items()}
            plus[key][idx] += EPS
            minus[key][idx] -= EPS
            g[idx] = (fn(plus) - fn(minus)) / (2 * EPS)
        grads[key] = g
    return grads


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def _assert_close(got, want):
    for key in want:
        assert _rel(got[key], want[key]) < TOL, (key, got[key], want[key])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_backprop_window_matches_finite_differences(loss, reduction):
    params, _, s0, x_w, y_w = _data(1, loss)
    c = batch_scale(B, reduction)
    out = rr.window_signals("backprop", params, None, s0, x_w, y_w, loss=loss, reduction=reduction)
    lw = lambda p: c * _per_example(p, s0, x_w, y_w, loss).sum()  # noqa: E731
    assert out["loss"] == pytest.approx(lw(params), rel=1e-12)
    _assert_close(out["net_grads"], _fd(lw, params))
    assert out["sg_grads"] is None and out["sg_loss"] is None
    np.testing.assert_allclose(out["s_end"], rr.forward_window(params, s0, x_w)[0][:, -1])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_dni_window_matches_finite_differences(loss, reduction):
    params, sg, s0, x_w, y_w = _data(2, loss)
    c = batch_scale(B, reduction)
    out = rr.window_signals("dni", params, sg, s0, x_w, y_w, loss=loss, reduction=reduction)
    s_end = rr.forward_window(params, s0, x_w)[0][:, -1]
    d_fixed = s_end @ sg["a"] + sg["c"]  # M(s_T) at the unperturbed params, then constant

    net_obj = lambda p: c * _per_example(p, s0, x_w, y_w, loss, d_fixed).sum()  # noqa: E731
    _assert_close(out["net_grads"], _fd(net_obj, params))

    # The target: per example, d/ds_0 of sum_t l_t,b + <s_T,b, D_b> (no factor c).
    target = np.zeros((B, H))
    for idx in np.ndindex(B, H):
        plus, minus = s0.copy(), s0.copy()
        plus[idx] += EPS
        minus[idx] -= EPS
        target[idx] = (
            _per_example(params, plus, x_w, y_w, loss, d_fixed)[idx[0]]
            - _per_example(params, minus, x_w, y_w, loss, d_fixed)[idx[0]]
        ) / (2 * EPS)

    def sg_obj(module):
        diff = s0 @ module["a"] + module["c"] - target
        return c * 0.5 * np.sum(diff * diff)

    assert out["sg_loss"] == pytest.approx(sg_obj(sg), rel=1e-7)
    _assert_close(out["sg_grads"], _fd(sg_obj, sg))
    # t_0,b depends on example b alone: read it off a one-example batch, where
    # dJ_SG/dC = c_1 (M(s_0,b) - t_0,b).
    c_one = batch_scale(1, reduction)
    for b in range(B):
        one = rr.window_signals(
            "dni",
            params,
            sg,
            s0[b : b + 1],
            x_w[b : b + 1],
            y_w[b : b + 1],
            loss=loss,
            reduction=reduction,
        )
        t_b = s0[b] @ sg["a"] + sg["c"] - one["sg_grads"]["c"] / c_one
        assert _rel(t_b, target[b]) < TOL, (b, t_b, target[b])


@pytest.mark.parametrize("loss", LOSSES)
def test_zero_sg_module_gives_backprop(loss):
    params, _, s0, x_w, y_w = _data(3, loss)
    zero = {"a": np.zeros((H, H)), "c": np.zeros(H)}
    dni = rr.window_signals("dni", params, zero, s0, x_w, y_w, loss=loss, reduction="mean")
    bp = rr.window_signals("backprop", params, None, s0, x_w, y_w, loss=loss, reduction="mean")
    for key in params:
        np.testing.assert_allclose(dni["net_grads"][key], bp["net_grads"][key], rtol=1e-14)
    assert dni["loss"] == bp["loss"]


def _bit_task(seed, steps):
    """Predict the previous input bit (0 at the first step): needs the state."""
    rng = np.random.RandomState(seed)
    bits = rng.randint(0, 2, (8, steps)).astype(float)
    x = np.stack([bits, 1.0 - bits], axis=-1)
    prev = np.concatenate([np.zeros((8, 1)), bits[:, :-1]], axis=1)
    return x, np.stack([prev, 1.0 - prev], axis=-1)


def test_trajectory_backprop_learns():
    x, y = _bit_task(0, 40 * T)  # 40 windows, one step each
    params = _params(np.random.RandomState(4), scale=0.3)
    _, _, losses = rr.trajectory(
        "backprop", params, None, x, y, T, loss="xent", reduction="mean", lr=0.05, optimizer="adam"
    )
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


def test_trajectory_state_is_carried_and_noise_enters():
    rng = np.random.RandomState(5)
    params, sg = _params(rng), _sg(rng)
    x, y = rng.randn(B, 2 * T, D_IN), rng.randn(B, 2 * T, K)
    kw = {"loss": "mse", "reduction": "mean"}
    s_end = rr.window_signals("backprop", params, None, np.zeros((B, H)), x[:, :T], y[:, :T], **kw)[
        "s_end"
    ]
    x2 = x.copy()
    x2[:, 0] += 1.0
    s_end2 = rr.window_signals(
        "backprop", params, None, np.zeros((B, H)), x2[:, :T], y[:, :T], **kw
    )["s_end"]
    for signal in ("backprop", "dni"):
        second = rr.window_signals(signal, params, sg, s_end, x[:, T:], y[:, T:], **kw)
        second2 = rr.window_signals(signal, params, sg, s_end2, x[:, T:], y[:, T:], **kw)
        assert not np.allclose(second["net_grads"]["wh"], second2["net_grads"]["wh"])
        # trajectory with lr = 0: the second window's loss sees the first window's inputs
        _, _, losses = rr.trajectory(signal, params, sg, x, y, T, lr=0.0, **kw)
        _, _, losses2 = rr.trajectory(signal, params, sg, x2, y, T, lr=0.0, **kw)
        assert losses[1] == pytest.approx(second["loss"], rel=1e-12)
        assert losses2[1] == pytest.approx(second2["loss"], rel=1e-12)
        assert losses[1] != losses2[1]

    zeros_net = [tree_map(np.zeros_like, params)] * 2
    zeros_sg = [tree_map(np.zeros_like, sg)] * 2
    args = ("dni", params, sg, x, y, T)
    kw.update(lr=0.1, optimizer="momentum", clip=1.0)
    base = rr.trajectory(*args, **kw)
    same = rr.trajectory(*args, net_noises=zeros_net, sg_noises=zeros_sg, **kw)
    for key in params:
        np.testing.assert_array_equal(base[0][key], same[0][key])
    for key in sg:
        np.testing.assert_array_equal(base[1][key], same[1][key])
    noisy_net = [tree_map(lambda a: np.full_like(a, 0.01), params), None]
    noisy_sg = [None, tree_map(lambda a: np.full_like(a, 0.01), sg)]
    moved = rr.trajectory(*args, net_noises=noisy_net, sg_noises=noisy_sg, **kw)
    assert not np.allclose(base[0]["wx"], moved[0]["wx"])
    assert not np.allclose(base[1]["a"], moved[1]["a"])
    # SGD by hand: the noise is added to the (clipped) signal before the learning rate.
    one = rr.trajectory(
        "backprop",
        params,
        None,
        x[:, :T],
        y[:, :T],
        T,
        lr=0.1,
        net_noises=[noisy_net[0]],
        loss="mse",
        reduction="mean",
    )
    g = rr.window_signals(
        "backprop", params, None, np.zeros((B, H)), x[:, :T], y[:, :T], loss="mse", reduction="mean"
    )["net_grads"]
    for key in params:
        np.testing.assert_allclose(one[0][key], params[key] - 0.1 * (g[key] + 0.01), rtol=1e-14)


def test_trajectory_rejects_ragged_windows():
    rng = np.random.RandomState(6)
    with pytest.raises(ValueError):
        rr.trajectory(
            "backprop",
            _params(rng),
            None,
            rng.randn(B, 5, D_IN),
            rng.randn(B, 5, K),
            3,
            loss="mse",
            reduction="mean",
            lr=0.1,
        )


def test_reference_rnn_imports_no_jax():
    """numpy, typing helpers and the (numpy-only) feed-forward reference: nothing else
    (every module of the reference: ``test_reference_layers.py``)."""
    import ast
    import inspect

    allowed = {"__future__", "typing", "collections.abc", "numpy", "dnijax.reference.mlp"}
    found = set()
    for node in ast.walk(ast.parse(inspect.getsource(rr))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    assert found <= allowed, found - allowed
    assert not ({"jax", "optax", "torch"} & {n.split(".")[0] for n in found})
