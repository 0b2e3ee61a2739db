"""Signal rules: backprop is jax.grad, DNI signals never leak across layers, new rules plug in."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import RunConfig, engine, nets, signals, synthetic

WIDTHS = (3, 5, 4, 6, 2)
NET_SPEC = nets.mlp_spec(
    WIDTHS, ("tanh", "sigmoid", "relu", "sigmoid"), "mse", "mean", init="glorot"
)


def _setup(topology, init="network", conditioned=False, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    sg_spec = synthetic.SGSpec(topology, conditioned, (), init)
    net = nets.init_network(k1, NET_SPEC)
    sgs = synthetic.init_sg_modules(
        k2, nets.block_shapes(NET_SPEC), sg_spec, WIDTHS[-1], net_init="glorot"
    )
    x = jax.random.normal(k3, (8, WIDTHS[0]))
    y = jax.nn.one_hot(jnp.arange(8) % 2, 2)
    return net, sgs, x, y, sg_spec


def test_backprop_signals_are_the_gradient_of_the_batch_loss():
    net, _, x, y, _ = _setup("paper")
    sig = signals.backprop_signals(net, None, x, y, NET_SPEC)
    expected = jax.grad(nets.batch_loss)(net, x, y, NET_SPEC)
    for a, b in zip(jax.tree.leaves(sig.net_grads), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(sig.loss, nets.batch_loss(net, x, y, NET_SPEC), rtol=1e-6)


@pytest.mark.parametrize("topology", ["paper", "seed"])
def test_zero_init_sg_gives_zero_updates_to_the_layers_it_drives(topology):
    net, sgs, x, y, sg_spec = _setup(topology, init="zero")
    sig = signals.dni_signals(net, sgs, x, y, NET_SPEC, sg_spec)
    in_s = synthetic.sg_layers(len(net), topology)
    for i, g in enumerate(sig.net_grads):
        norm = sum(float(jnp.abs(a).sum()) for a in jax.tree.leaves(g))
        assert (norm == 0.0) == in_s[i], (i, norm)
    # the module nearest the output learns on step one (its target is a true gradient);
    # the lower ones regress on the upper modules' zero estimates, so they do not yet
    last = max(i for i, s in enumerate(in_s) if s)
    assert float(jnp.abs(sig.sg_grads[last][0]["w"]).sum()) > 0
    assert float(jnp.abs(sig.sg_grads[0][0]["w"]).sum()) == 0


def test_paper_topology_output_layer_gets_the_true_gradient():
    net, sgs, x, y, sg_spec = _setup("paper")
    dni = signals.dni_signals(net, sgs, x, y, NET_SPEC, sg_spec)
    bp = signals.backprop_signals(net, None, x, y, NET_SPEC)
    for k in ("w", "b"):
        np.testing.assert_allclose(dni.net_grads[-1][k], bp.net_grads[-1][k], rtol=1e-6)
    assert not np.allclose(dni.net_grads[0]["w"], bp.net_grads[0]["w"])


def _perturb(tree, key):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [a + jax.random.normal(k, a.shape) for a, k in zip(leaves, keys, strict=True)]
    )


@pytest.mark.parametrize("topology,conditioned", [("paper", False), ("seed", True)])
def test_no_signal_leaks_across_layer_boundaries(topology, conditioned):
    """Layer i's signals depend on layers <= i+1 (and SG modules i, i+1) only."""
    net, sgs, x, y, sg_spec = _setup(topology, conditioned=conditioned)
    base = signals.dni_signals(net, sgs, x, y, NET_SPEC, sg_spec)
    n = len(net)
    for i in range(n - 2):
        net2, sgs2 = list(net), list(sgs)
        for j in range(i + 2, n):  # change everything above layer i+1
            net2[j] = _perturb(net[j], jax.random.key(10 + j))
            sgs2[j] = None if sgs[j] is None else _perturb(sgs[j], jax.random.key(20 + j))
        moved = signals.dni_signals(net2, sgs2, x, y, NET_SPEC, sg_spec)
        for a, b in zip(
            jax.tree.leaves(base.net_grads[i]), jax.tree.leaves(moved.net_grads[i]), strict=True
        ):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(base.sg_grads[i]), jax.tree.leaves(moved.sg_grads[i]), strict=True
        ):
            np.testing.assert_array_equal(a, b)
        # ... while layer i+1 does drive them (the check can fail)
        net3 = list(net)
        net3[i + 1] = _perturb(net[i + 1], jax.random.key(99))
        moved = signals.dni_signals(net3, sgs, x, y, NET_SPEC, sg_spec)
        assert not np.allclose(base.sg_grads[i][0]["w"], moved.sg_grads[i][0]["w"])


def test_lower_layers_do_not_change_an_upper_layers_update_except_through_its_input():
    """Changing layer 1 changes layer 3's input; holding h_2 fixed, nothing else moves it."""
    net, sgs, x, y, sg_spec = _setup("seed")
    base = signals.dni_signals(net, sgs, x, y, NET_SPEC, sg_spec)
    sgs2 = list(sgs)
    sgs2[0] = _perturb(sgs[0], jax.random.key(5))  # SG module of layer 1 only
    moved = signals.dni_signals(net, sgs2, x, y, NET_SPEC, sg_spec)
    for i in range(1, len(net)):
        for a, b in zip(
            jax.tree.leaves(base.net_grads[i]), jax.tree.leaves(moved.net_grads[i]), strict=True
        ):
            np.testing.assert_array_equal(a, b)


def test_a_new_signal_rule_is_one_function_and_a_registry_entry(blobs):
    """A toy rule (the sign of the backprop gradient) trains under both of its regimes."""
    from dnijax import RunConfig, config, engine

    def sign_signals(net, sg, x, y, spec, sg_spec):
        sig = signals.backprop_signals(net, sg, x, y, spec)
        return sig._replace(net_grads=jax.tree.map(jnp.sign, sig.net_grads))

    signals.register("sign", sign_signals)
    try:
        assert {"sign", "sign+noise"} <= set(config.regime_names())
        for regime in ("sign", "sign+noise"):
            cfg = RunConfig(
                regime=regime,
                widths=(2, 8, 1),
                lr=0.01,
                steps=100,
                eta=1e-4,
                activations=("tanh", "sigmoid"),
                init="glorot",
                reduction="mean",
            )
            _, hist = engine.run_one(cfg, *blobs, jax.random.key(0))
            assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    finally:
        signals.unregister("sign")
    with pytest.raises(ValueError, match="regime: unknown value 'sign'"):
        RunConfig(regime="sign")


@pytest.mark.parametrize("topology", ["paper", "seed"])
def test_the_sg_scale_multiplies_each_synthetic_gradient_used_as_a_gradient(topology):
    """``docs/math.md``, "SG scale": with scale a, every block in S is driven by a d_i (its
    update is a times the unscaled one), a bootstrapped target is a times larger, and the
    true gradients (the output block's update and target) do not change."""
    net, sgs, x, y, sg_spec = _setup(topology)
    one = signals.dni_signals(net, sgs, x, y, NET_SPEC, sg_spec)
    tenth = signals.dni_signals(net, sgs, x, y, NET_SPEC, sg_spec._replace(scale=0.1))
    in_s = synthetic.sg_layers(len(net), topology)
    for i, inside in enumerate(in_s):
        for k in ("w", "b"):
            want = (0.1 if inside else 1.0) * one.net_grads[i][k]
            np.testing.assert_allclose(tenth.net_grads[i][k], want, rtol=1e-5, atol=1e-7)
    # the SG losses: the module on the last hidden block (paper) or the output (seed)
    # regresses onto a true gradient, the others onto scaled bootstrapped targets
    np.testing.assert_allclose(tenth.sg_loss[-1], one.sg_loss[-1], rtol=1e-6)
    assert not np.allclose(tenth.sg_loss[0], one.sg_loss[0], rtol=1e-3)


def test_rule_names_are_checked():
    with pytest.raises(ValueError, match="not a valid name"):
        signals.register("dni+aux", signals.dni_signals)


def test_the_batch_sg_target_equals_per_example_where_the_derivation_says(blobs):
    """``docs/math.md``, "SG target scale": under ``sum`` the two targets are one; under
    ``mean`` with SGD and zero-initialised linear modules, the modules' weights stay exactly
    1/B of the per-example ones and the network trains identically (B = 128, a power of
    two, so the scaling is exact); with Adam they part."""
    base = dict(
        regime="dni",
        widths=(2, 6, 6, 1),
        activations=("tanh", "tanh", "sigmoid"),
        init="glorot",
        lr=0.3,
        sg_lr=0.1,
        steps=30,
        log_every=10,
    )

    def run(**fields):
        cfg = RunConfig(**{**base, **fields})
        return engine.run_grid(
            cfg, engine.stack_hyper(cfg), engine.run_keys(0, 1), blobs, mesh=None
        )

    for reduction in ("sum", "mean"):
        a, b = run(reduction=reduction), run(reduction=reduction, sg_target="batch")
        np.testing.assert_allclose(b.history["loss"], a.history["loss"], rtol=1e-6)
        scale = 1.0 if reduction == "sum" else 1.0 / 128
        for pa, pb in zip(jax.tree.leaves(a.state.sg), jax.tree.leaves(b.state.sg), strict=True):
            np.testing.assert_allclose(pb, scale * pa, rtol=1e-5, atol=1e-9)
    a = run(reduction="mean", optimizer="adam", lr=0.01, sg_lr=0.01)
    b = run(reduction="mean", optimizer="adam", lr=0.01, sg_lr=0.01, sg_target="batch")
    assert np.abs(b.history["loss"] - a.history["loss"]).max() > 1e-3
