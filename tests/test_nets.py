import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import nets


def test_init_shapes_bias_and_normal_statistics():
    params = nets.init_network(jax.random.key(0), (3, 400, 300, 2), "normal", 0.2, -0.1)
    assert [p["w"].shape for p in params] == [(3, 400), (400, 300), (300, 2)]
    assert all(p["b"].shape == (p["w"].shape[1],) and not p["b"].any() for p in params)
    w = np.asarray(params[1]["w"])
    assert abs(w.mean() + 0.1) < 0.003 and abs(w.std() - 0.2) < 0.003
    no_bias = nets.init_network(jax.random.key(0), (3, 4), "he", bias=False)
    assert set(no_bias[0]) == {"w"}


@pytest.mark.parametrize("init", ["zeros", "glorot", "he"])
def test_other_inits(init):
    w = np.asarray(nets.init_network(jax.random.key(1), (200, 300), init)[0]["w"])
    expected_std = {"zeros": 0.0, "glorot": np.sqrt(2 / 500), "he": np.sqrt(2 / 200)}[init]
    assert abs(w.std() - expected_std) < 0.1 * expected_std + 1e-12


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="unknown init"):
        nets.init_layer(jax.random.key(0), 2, 2, "orthogonal")


def test_forward_matches_a_hand_computation():
    params = [{"w": jnp.array([[1.0, -1.0]]), "b": jnp.array([0.5, 0.0])},
              {"w": jnp.array([[2.0], [1.0]])}]
    spec = nets.make_net_spec(("relu", "identity"), "mse", "sum")
    hs = nets.forward(params, jnp.array([[1.0], [-2.0]]), spec)
    # row 1: z1 = (1.5, -1) -> (1.5, 0) -> 3; row 2: z1 = (-1.5, 2) -> (0, 2) -> 2
    np.testing.assert_allclose(hs[-1], [[3.0], [2.0]])


def test_losses_and_reductions():
    out = jnp.array([[0.0, 1.0], [2.0, 0.0]])
    y = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(nets.per_example_loss(out, y, "mse"), [0.0, 0.5])
    xent = nets.per_example_loss(out, y, "xent")
    np.testing.assert_allclose(xent, [np.log(1 + np.e ** -1), np.log(1 + np.e ** -2)], rtol=1e-6)
    bce = nets.per_example_loss(jnp.array([[0.0]]), jnp.array([[1.0]]), "bce")
    np.testing.assert_allclose(bce, [np.log(2.0)], rtol=1e-6)
    assert nets.reduce_batch(jnp.array([1.0, 3.0]), "mean") == 2.0
    assert nets.reduce_batch(jnp.array([1.0, 3.0]), "sum") == 4.0


def test_logit_losses_make_the_output_linear():
    assert nets.make_net_spec(("tanh", "sigmoid"), "xent", "mean").activations == (
        "tanh", "identity")
    assert nets.make_net_spec(("tanh", "sigmoid"), "mse", "mean").activations == (
        "tanh", "sigmoid")


def test_accuracy_and_target_encoding():
    spec = nets.make_net_spec(("sigmoid",), "mse", "sum")
    assert nets.accuracy(jnp.array([[0.9], [0.2], [0.6]]), jnp.array([1, 0, 0]), spec) == 2 / 3
    multi = nets.make_net_spec(("identity",), "xent", "sum")
    assert nets.accuracy(jnp.array([[0.1, 2.0], [3.0, 0.0]]), jnp.array([1, 0]), multi) == 1.0
    np.testing.assert_array_equal(nets.encode_targets(jnp.array([1, 0]), 1), [[1.0], [0.0]])
    np.testing.assert_array_equal(nets.encode_targets(jnp.array([2]), 3), [[0.0, 0.0, 1.0]])
