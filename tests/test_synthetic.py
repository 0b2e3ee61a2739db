import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import RunConfig, nets, synthetic


def test_sg_sets_of_the_two_topologies():
    assert synthetic.sg_layers(3, "paper") == (True, True, False)
    assert synthetic.sg_layers(3, "seed") == (True, True, True)
    with pytest.raises(ValueError, match="topology"):
        synthetic.sg_layers(3, "full")


def test_module_shapes_conditioning_and_zero_init():
    spec = synthetic.SGSpec("seed", conditioned=True, hidden=(7, 5), init="zero")
    mods = synthetic.init_sg_modules(jax.random.key(0), [(4,), (3,)], spec, cond_dim=3)
    assert [layer["w"].shape for layer in mods[0]] == [(7, 7), (7, 5), (5, 4)]
    assert [layer["w"].shape for layer in mods[1]] == [(6, 7), (7, 5), (5, 3)]
    assert not mods[0][-1]["w"].any() and mods[0][0]["w"].any()
    d = synthetic.apply_sg(mods[0], jnp.ones((9, 4)), jnp.ones((9, 3)))
    assert d.shape == (9, 4) and not d.any()


def test_network_init_module_is_the_article_linear_map():
    spec = synthetic.SGSpec("seed", init="network", bias=False)
    mods = synthetic.init_sg_modules(jax.random.key(0), [(4,), (1,)], spec, cond_dim=1)
    h = jax.random.normal(jax.random.key(1), (5, 4))
    np.testing.assert_allclose(synthetic.apply_sg(mods[0], h), h @ mods[0][0]["w"], rtol=1e-6)
    assert mods[1][0]["w"].shape == (1, 1)


def test_conv_modules_take_label_channels_and_keep_the_shape():
    spec = synthetic.SGSpec("seed", conditioned=True, hidden=(6,), init="zero", kernel=3)
    mods = synthetic.init_sg_modules(jax.random.key(0), [(5, 4, 2), (3,)], spec, cond_dim=3)
    assert [layer["w"].shape for layer in mods[0]] == [(3, 3, 5, 6), (3, 3, 6, 2)]
    h, y = jnp.ones((2, 5, 4, 2)), jax.nn.one_hot(jnp.array([0, 2]), 3)
    assert synthetic.apply_sg(mods[0], h, y).shape == (2, 5, 4, 2)
    # with a non-zero last layer, the label channels change the output
    mods[0][-1]["w"] = jnp.ones_like(mods[0][-1]["w"])
    d = synthetic.apply_sg(mods[0], h, y)
    assert not np.allclose(d[0], d[1])
    with pytest.raises(ValueError, match="shape"):
        synthetic.init_sg_module(jax.random.key(0), (4, 2), 3, spec)


def test_a_topology_of_your_own_is_one_registry_entry():
    """A registered topology sets S for RunConfig and the SG modules; one that leaves a
    layer other than the output without a module is refused when the config is built."""
    synthetic.register_topology(
        "seed-if-deep", lambda n: [True] * n if n >= 3 else [True] * (n - 1) + [False]
    )
    synthetic.register_topology("skip-first", lambda n: [False] + [True] * (n - 1))
    try:
        assert synthetic.sg_layers(3, "seed-if-deep") == (True, True, True)
        assert synthetic.sg_layers(2, "seed-if-deep") == (True, False)
        cfg = RunConfig(regime="dni", topology="seed-if-deep", widths=(2, 4, 4, 1))
        sgs = synthetic.init_sg_modules(
            jax.random.key(0), nets.block_shapes(cfg.net_spec), cfg.sg_spec, 1
        )
        assert [m is None for m in sgs] == [False, False, False]
        with pytest.raises(
            ValueError,
            match="topology: 'skip-first' gives layer 1 of 3 no SG module; only the output layer",
        ) as err:
            RunConfig(regime="dni", topology="skip-first", widths=(2, 4, 4, 1))
        assert "\n" not in str(err.value)
        with pytest.raises(ValueError, match="built in"):
            synthetic.register_topology("paper", lambda n: [True] * n)
    finally:
        synthetic.unregister_topology("seed-if-deep")
        synthetic.unregister_topology("skip-first")
    with pytest.raises(
        ValueError, match="unknown topology 'seed-if-deep'; choose one of paper, seed$"
    ):
        synthetic.sg_layers(3, "seed-if-deep")
    with pytest.raises(ValueError, match="topology: unknown value 'seed-if-deep'"):
        RunConfig(topology="seed-if-deep")
