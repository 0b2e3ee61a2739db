import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import RunConfig, nets, signals


def test_init_shapes_bias_and_normal_statistics():
    spec = nets.mlp_spec(
        (3, 400, 300, 2),
        ("tanh",) * 3,
        "mse",
        "sum",
        init="normal",
        init_scale=0.2,
        init_shift=-0.1,
    )
    params = nets.init_network(jax.random.key(0), spec)
    assert [p["w"].shape for p in params] == [(3, 400), (400, 300), (300, 2)]
    assert all(p["b"].shape == (p["w"].shape[1],) and not p["b"].any() for p in params)
    w = np.asarray(params[1]["w"])
    assert abs(w.mean() + 0.1) < 0.003 and abs(w.std() - 0.2) < 0.003
    no_bias = nets.init_network(
        jax.random.key(0), nets.mlp_spec((3, 4), ("tanh",), "mse", "sum", init="he", bias=False)
    )
    assert set(no_bias[0]) == {"w"}


@pytest.mark.parametrize("init", ["zeros", "glorot", "he"])
def test_other_inits(init):
    spec = nets.mlp_spec((200, 300), ("tanh",), "mse", "sum", init=init)
    w = np.asarray(nets.init_network(jax.random.key(1), spec)[0]["w"])
    expected_std = {"zeros": 0.0, "glorot": np.sqrt(2 / 500), "he": np.sqrt(2 / 200)}[init]
    assert abs(w.std() - expected_std) < 0.1 * expected_std + 1e-12


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="unknown init"):
        nets.init_network(
            jax.random.key(0), nets.mlp_spec((2, 2), ("tanh",), "mse", "sum", init="orthogonal")
        )


def test_forward_matches_a_hand_computation():
    params = [
        {"w": jnp.array([[1.0, -1.0]]), "b": jnp.array([0.5, 0.0])},
        {"w": jnp.array([[2.0], [1.0]])},
    ]
    spec = nets.mlp_spec((1, 2, 1), ("relu", "identity"), "mse", "sum")
    hs = nets.forward(params, jnp.array([[1.0], [-2.0]]), spec)
    # row 1: z1 = (1.5, -1) -> (1.5, 0) -> 3; row 2: z1 = (-1.5, 2) -> (0, 2) -> 2
    np.testing.assert_allclose(hs[-1], [[3.0], [2.0]])


def test_losses_and_reductions():
    out = jnp.array([[0.0, 1.0], [2.0, 0.0]])
    y = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(nets.per_example_loss(out, y, "mse"), [0.0, 0.5])
    xent = nets.per_example_loss(out, y, "xent")
    np.testing.assert_allclose(xent, [np.log(1 + np.e**-1), np.log(1 + np.e**-2)], rtol=1e-6)
    bce = nets.per_example_loss(jnp.array([[0.0]]), jnp.array([[1.0]]), "bce")
    np.testing.assert_allclose(bce, [np.log(2.0)], rtol=1e-6)
    assert nets.reduce_batch(jnp.array([1.0, 3.0]), "mean") == 2.0
    assert nets.reduce_batch(jnp.array([1.0, 3.0]), "sum") == 4.0


def test_logit_losses_make_the_output_linear():
    def output_activation(loss):
        return nets.mlp_spec((2, 3, 2), ("tanh", "sigmoid"), loss, "mean").blocks[-1].layers[-1]

    assert output_activation("xent").kind == "identity"
    assert output_activation("mse").kind == "sigmoid"


def test_accuracy_and_target_encoding():
    spec = nets.mlp_spec((2, 1), ("sigmoid",), "mse", "sum")
    assert nets.accuracy(jnp.array([[0.9], [0.2], [0.6]]), jnp.array([1, 0, 0]), spec) == 2 / 3
    multi = nets.mlp_spec((2, 2), ("identity",), "xent", "sum")
    assert nets.accuracy(jnp.array([[0.1, 2.0], [3.0, 0.0]]), jnp.array([1, 0]), multi) == 1.0
    np.testing.assert_array_equal(nets.encode_targets(jnp.array([1, 0]), 1), [[1.0], [0.0]])
    np.testing.assert_array_equal(nets.encode_targets(jnp.array([2]), 3), [[0.0, 0.0, 1.0]])


def test_a_loss_of_your_own_is_one_registry_entry():
    """A registered loss is accepted by RunConfig, read on the output as it is (after the
    last activation) and differentiated by the signal rules; afterwards it is unknown."""
    l1 = lambda out, y: jnp.sum(jnp.abs(out - y), axis=-1)  # noqa: E731
    nets.register_loss("l1", l1)
    try:
        cfg = RunConfig(loss="l1", widths=(2, 4, 1))
        spec = cfg.net_spec
        assert spec.blocks[-1].layers[-1].kind == "sigmoid"  # not made linear
        params = nets.init_network(jax.random.key(0), spec)
        x, y = jnp.ones((3, 2)), jnp.zeros((3, 1))
        out = nets.predict(params, x, spec)
        np.testing.assert_allclose(nets.batch_loss(params, x, y, spec), jnp.sum(out))
        sig = signals.backprop_signals(params, None, x, y, spec)
        np.testing.assert_allclose(sig.loss, jnp.sum(out))
        assert RunConfig(task="copy", loss="l1").loss == "l1"
        with pytest.raises(ValueError, match="built in"):
            nets.register_loss("mse", l1)
    finally:
        nets.unregister_loss("l1")
    with pytest.raises(ValueError, match="unknown loss 'l1'; choose one of mse, xent, bce$"):
        nets.per_example_loss(jnp.ones((2, 1)), jnp.zeros((2, 1)), "l1")
    with pytest.raises(ValueError, match="loss: unknown value 'l1'; choose one of mse"):
        RunConfig(loss="l1")
