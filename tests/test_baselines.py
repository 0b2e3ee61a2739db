"""The speed benchmark's baselines (benchmarks/baselines.py) compute the regimes exactly.

The numpy loop is held to ``dnijax.reference``; the lean JAX loop and the batched
PyTorch loop are held to the numpy loop. Tiny sizes and float64 where possible.
"""

import importlib.util
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from dnijax import nets, reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "benchmarks", "baselines.py")
_spec = importlib.util.spec_from_file_location("baselines", PATH)
bl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bl)

WIDTHS = (2, 5, 4, 1)
LR, SG_LR = 0.5, 0.1
STEPS = 20
SETTINGS = dict(
    blocks=nets.mlp_spec(WIDTHS, ("sigmoid",) * 3, "mse", "mean").blocks,
    loss="mse",
    reduction="mean",
    lr=LR,
    sg_lr=SG_LR,
    topology="paper",
)


def _data(dtype=np.float64, batch=16):
    rng = np.random.RandomState(1)
    x = rng.randn(batch, 2)
    y = (x[:, :1] * x[:, 1:] > 0).astype(float)
    return x.astype(dtype), y.astype(dtype)


def _starts(n_runs=3, dtype=np.float64):
    return bl.init_runs(n_runs, WIDTHS, seed=7, dtype=dtype, sg_init_std=0.3)


def _assert_pairs_close(got, want, rtol, atol):
    assert len(got) == len(want)
    for (a, b), (c, d) in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=rtol, atol=atol)
        np.testing.assert_allclose(np.asarray(b), np.asarray(d), rtol=rtol, atol=atol)


def _ref_pairs(net, sgs):
    pairs = [(layer["w"], layer["b"]) for layer in net]
    return pairs, None if sgs is None else [(m[0]["w"], m[0]["b"]) for m in sgs if m is not None]


# ---------------------------------------------------------------- init
def test_init_runs_layout_and_independence():
    params, sgs = bl.init_runs(4, (2, 10, 28, 1), seed=3)
    assert [w.shape for w, _ in params] == [(4, 2, 10), (4, 10, 28), (4, 28, 1)]
    assert [b.shape for _, b in params] == [(4, 10), (4, 28), (4, 1)]
    assert [(a.shape, c.shape) for a, c in sgs] == [((4, 10, 10), (4, 10)), ((4, 28, 28), (4, 28))]
    assert all(w.dtype == np.float32 for w, _ in params)
    assert all(not b.any() for _, b in params) and all(not a.any() and not c.any() for a, c in sgs)
    assert not np.allclose(params[1][0][0], params[1][0][1])  # runs differ
    # run r does not depend on how many runs were drawn
    fewer, _ = bl.init_runs(2, (2, 10, 28, 1), seed=3)
    np.testing.assert_array_equal(fewer[1][0][1], params[1][0][1])
    # Glorot normal: variance 2 / (n_in + n_out), within sampling error
    big, _ = bl.init_runs(1, (300, 300), seed=0)
    assert abs(big[0][0].std() - np.sqrt(2 / 600)) < 0.03 * np.sqrt(2 / 600)
    assert np.abs(big[0][0]).max() <= 2 * np.sqrt(2 / 600) / 0.8796 + 1e-6


def test_module_imports_without_torch():
    code = (
        "import sys, importlib.util; sys.modules['torch'] = None; "
        f"s = importlib.util.spec_from_file_location('baselines', {PATH!r}); "
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); print(m.REGIMES)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


# ---------------------------------------------------------------- numpy vs reference
@pytest.mark.parametrize("regime", ["backprop", "dni"])
def test_numpy_matches_reference(regime):
    x, y = _data()
    params, sgs = _starts(1)
    p0, s0 = bl.run_of(params, 0), bl.run_of(sgs, 0)
    got_p, got_s = bl.numpy_train(
        regime, p0, s0 if regime == "dni" else None, x, y, STEPS, LR, SG_LR
    )
    ref_net, ref_sgs = bl.to_reference(p0, s0 if regime == "dni" else None)
    ref_net, ref_sgs, _ = reference.trajectory(regime, ref_net, ref_sgs, x, y, STEPS, **SETTINGS)
    want_p, want_s = _ref_pairs(ref_net, ref_sgs)
    _assert_pairs_close(got_p, want_p, rtol=0, atol=1e-10)
    assert not np.allclose(got_p[0][0], p0[0][0])  # it did train
    if regime == "dni":
        _assert_pairs_close(got_s, want_s, rtol=0, atol=1e-10)
        assert not np.allclose(got_s[0][0], s0[0][0])
    # the inputs are left alone
    np.testing.assert_array_equal(p0[0][0], params[0][0][0])


@pytest.mark.parametrize("regime", ["backprop+noise", "dni+noise"])
def test_numpy_noise_matches_reference_with_the_same_draws(regime):
    """The documented draw order, replayed into the reference, gives the same run."""
    x, y = _data()
    params, sgs = _starts(1)
    p0, s0 = bl.run_of(params, 0), bl.run_of(sgs, 0)
    dni, steps, eta = regime.startswith("dni"), 4, 0.05
    got_p, got_s = bl.numpy_train(
        regime, p0, s0, x, y, steps, LR, SG_LR, eta, np.random.default_rng(5)
    )
    rng, stds = np.random.default_rng(5), bl.noise_stds(eta, steps)
    n = len(p0)
    net_noises, sg_noises = [], []
    for t in range(steps):
        net = [None] * n
        sg = [None] * n
        for i in range(n - 1, -1, -1):
            w, b = p0[i]
            net[i] = {
                "w": stds[t] * rng.standard_normal(w.shape),
                "b": stds[t] * rng.standard_normal(b.shape),
            }
            if i > 0 and dni:
                a, c = s0[i - 1]
                sg[i - 1] = [
                    {
                        "w": stds[t] * rng.standard_normal(a.shape),
                        "b": stds[t] * rng.standard_normal(c.shape),
                    }
                ]
        net_noises.append(net)
        sg_noises.append(sg)
    ref_net, ref_sgs = bl.to_reference(p0, s0 if dni else None)
    ref_net, ref_sgs, _ = reference.trajectory(
        regime.replace("+noise", ""),
        ref_net,
        ref_sgs,
        x,
        y,
        steps,
        net_noises=net_noises,
        sg_noises=sg_noises,
        **SETTINGS,
    )
    want_p, want_s = _ref_pairs(ref_net, ref_sgs)
    _assert_pairs_close(got_p, want_p, rtol=0, atol=1e-10)
    if dni:
        _assert_pairs_close(got_s, want_s, rtol=0, atol=1e-10)


def test_numpy_float32_stays_float32():
    x, y = _data(np.float64)  # float64 data must not promote a float32 run
    params, sgs = _starts(1, np.float32)
    p, s = bl.numpy_train(
        "dni+noise",
        bl.run_of(params, 0),
        bl.run_of(sgs, 0),
        x,
        y,
        3,
        LR,
        SG_LR,
        rng=np.random.default_rng(0),
    )
    assert all(w.dtype == np.float32 and b.dtype == np.float32 for w, b in p + s)


# ---------------------------------------------------------------- numpy runs
def test_numpy_runs_is_numpy_train_per_run():
    x, y = _data()
    params, sgs = _starts(2)
    got_p, got_s = bl.numpy_runs("dni", params, sgs, x, y, 5, LR, SG_LR)
    for r in range(2):
        p, s = bl.numpy_train("dni", bl.run_of(params, r), bl.run_of(sgs, r), x, y, 5, LR, SG_LR)
        _assert_pairs_close(bl.run_of(got_p, r), p, rtol=0, atol=0)
        _assert_pairs_close(bl.run_of(got_s, r), s, rtol=0, atol=0)


# ---------------------------------------------------------------- other methods vs numpy
def _check_noise_free_against_numpy(runs, regime, dtype, rtol, atol):
    x, y = _data(dtype)
    params, sgs = _starts(3, dtype)
    want_p, want_s = bl.numpy_runs(regime, params, sgs, x, y, STEPS, LR, SG_LR)
    got_p, got_s = runs(regime, params, sgs, x, y, STEPS, LR, SG_LR, 0.01, 0)
    _assert_pairs_close(got_p, want_p, rtol, atol)
    if regime == "dni":
        _assert_pairs_close(got_s, want_s, rtol, atol)
    for w, _ in got_p:
        assert np.asarray(w).dtype == dtype


def _check_noise(runs, regime, dtype, atol):
    x, y = _data(dtype)
    params, sgs = _starts(2, dtype)
    clean_p, clean_s = runs(regime.replace("+noise", ""), params, sgs, x, y, 5, LR, SG_LR, 0.01, 0)
    zero_p, zero_s = runs(regime, params, sgs, x, y, 5, LR, SG_LR, 0.0, 0)
    noisy_p, noisy_s = runs(regime, params, sgs, x, y, 5, LR, SG_LR, 0.01, 0)
    _assert_pairs_close(zero_p, clean_p, 0, atol)
    for (a, b), (c, d) in zip(noisy_p, clean_p, strict=True):
        assert not np.allclose(np.asarray(a), np.asarray(c), atol=1e-4)
        assert not np.allclose(np.asarray(b), np.asarray(d), atol=1e-4)
    if regime.startswith("dni"):
        _assert_pairs_close(zero_s, clean_s, 0, atol)
        for (a, b), (c, d) in zip(noisy_s, clean_s, strict=True):
            assert not np.allclose(np.asarray(a), np.asarray(c), atol=1e-4)
            assert not np.allclose(np.asarray(b), np.asarray(d), atol=1e-4)
    other_p, _ = runs(regime, params, sgs, x, y, 5, LR, SG_LR, 0.01, 1)
    assert not np.allclose(np.asarray(other_p[0][0]), np.asarray(noisy_p[0][0]), atol=1e-4)


@pytest.mark.parametrize("regime", ["backprop+noise", "dni+noise"])
def test_numpy_noise(regime):
    _check_noise(bl.numpy_runs, regime, np.float64, atol=0)


@pytest.mark.parametrize("regime", ["backprop", "dni"])
def test_jax_lean_matches_numpy_x64(regime):
    with jax.enable_x64(True):
        _check_noise_free_against_numpy(bl.jax_lean_runs, regime, np.float64, 0, 1e-10)


@pytest.mark.parametrize("regime", ["backprop", "dni"])
def test_jax_lean_matches_numpy_float32(regime):
    _check_noise_free_against_numpy(bl.jax_lean_runs, regime, np.float32, 1e-4, 1e-5)


@pytest.mark.parametrize("regime", ["backprop+noise", "dni+noise"])
def test_jax_lean_noise(regime):
    with jax.enable_x64(True):
        _check_noise(bl.jax_lean_runs, regime, np.float64, atol=1e-12)


def test_jax_lean_is_cached():
    assert bl.make_jax_lean("dni", 3, 0.5, 0.1, 0.01) is bl.make_jax_lean("dni", 3, 0.5, 0.1, 0.01)


def _torch_runs(*args):
    pytest.importorskip("torch", reason="PyTorch is optional: pip install -e '.[torch]'")
    return bl.torch_runs(*args)


@pytest.mark.parametrize("regime", ["backprop", "dni"])
def test_torch_matches_numpy_float64(regime):
    _check_noise_free_against_numpy(_torch_runs, regime, np.float64, 0, 1e-10)


@pytest.mark.parametrize("regime", ["backprop", "dni"])
def test_torch_matches_numpy_float32(regime):
    _check_noise_free_against_numpy(_torch_runs, regime, np.float32, 1e-4, 1e-5)


@pytest.mark.parametrize("regime", ["backprop+noise", "dni+noise"])
def test_torch_noise(regime):
    _check_noise(_torch_runs, regime, np.float64, atol=0)


def test_unknown_regime():
    with pytest.raises(ValueError, match="unknown regime"):
        bl.numpy_train("sgd", [], None, np.zeros((1, 1)), np.zeros((1, 1)), 1, 0.1, 0.1)
