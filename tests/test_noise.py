"""Gradient noise: the schedules, the one-scalar property, and independence across seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dnijax import RunConfig, noise, reference, updates

N_DRAWS = 4000
STEPS = 4


def _noise_sequence(kind, eta, gamma, key, template):
    tx = noise.flat_gradient_noise(kind, eta, gamma, key)  # as the update rules use it
    zeros = jax.tree.map(jnp.zeros_like, template)
    state = tx.init(template)
    out = []
    for _ in range(STEPS):
        n, state = tx.update(zeros, state)
        out.append(n)
    return out


@pytest.mark.parametrize(
    "kind,std_fn", [("paper", reference.paper_noise_std), ("blog", reference.blog_noise_std)]
)
def test_empirical_std_follows_the_schedule(kind, std_fn):
    eta, gamma = 0.3, 0.55
    template = {"w": jnp.zeros((3,)), "b": jnp.zeros(())}
    keys = jax.random.split(jax.random.key(0), N_DRAWS)
    seqs = jax.vmap(lambda k: _noise_sequence(kind, eta, gamma, k, template))(keys)
    for t in range(STEPS):
        draws = np.asarray(seqs[t]["w"][:, 0], np.float64)
        expected = std_fn(eta, gamma, t)
        # the sample std of N draws has relative standard error ~ 1/sqrt(2N): allow 4 of them
        assert abs(draws.std() / expected - 1) < 4 / np.sqrt(2 * N_DRAWS), (t, draws.std())
        assert abs(draws.mean()) < 4 * expected / np.sqrt(N_DRAWS)
    # the schedule decays, so step 0 and step 3 differ by more than sampling error
    decay = reference.paper_noise_std(eta, gamma, 3) / reference.paper_noise_std(eta, gamma, 0)
    assert decay < 0.75


def test_paper_noise_is_optax_add_noise_on_the_raveled_parameters():
    template = {"b": jnp.zeros((2,)), "w": jnp.zeros((5,))}
    ours = _noise_sequence("paper", 0.01, 0.55, jax.random.key(3), template)
    tx = optax.add_noise(0.01, 0.55, jax.random.key(3))
    flat = jnp.zeros((7,))
    n, _ = tx.update(flat, tx.init(flat))
    np.testing.assert_array_equal(jnp.concatenate([ours[0]["b"], ours[0]["w"]]), n)


def test_blog_noise_is_one_scalar_per_step_and_paper_noise_is_not():
    template = [{"w": jnp.zeros((4, 3)), "b": jnp.zeros((3,))}, {"w": jnp.zeros((3, 1))}]
    for n in _noise_sequence("blog", 0.1, 0.55, jax.random.key(1), template):
        values = np.concatenate([np.ravel(a) for a in jax.tree.leaves(n)])
        assert np.all(values == values[0]) and values[0] != 0
    seq = _noise_sequence("blog", 0.1, 0.55, jax.random.key(1), template)
    assert seq[0][0]["b"][0] != seq[1][0]["b"][0]
    paper = _noise_sequence("paper", 0.1, 0.55, jax.random.key(1), template)[0]
    assert len(np.unique(np.asarray(paper[0]["w"]))) == 12


def test_noise_is_built_inside_vmap_so_each_seed_differs():
    template = {"w": jnp.zeros((2,))}

    def first_noise(seed):
        return _noise_sequence("paper", 0.01, 0.55, jax.random.key(seed), template)[0]["w"]

    draws = np.asarray(jax.vmap(first_noise)(jnp.arange(8)))
    assert len(np.unique(draws[:, 0])) == 8


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown noise"):
        noise.gradient_noise("pink", 0.1, 0.55, jax.random.key(0))


def _constant_noise(eta, gamma, key):
    """Adds ``eta`` to every element: a noise without randomness, easy to check."""
    return optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda grads, state, params=None: (jax.tree.map(lambda g: g + eta, grads), state),
    )


def test_a_noise_of_your_own_is_one_registry_entry():
    """A registered noise is accepted by RunConfig and sits in the update chain, after
    the clipping and before the optimiser; afterwards the name is unknown again."""
    noise.register_noise("constant", _constant_noise)
    try:
        cfg = RunConfig(regime="backprop+noise", noise="constant", eta=0.5, clip=1.0)
        rule = updates.update_rule(
            optimizer="sgd", learning_rate=1.0, noise=cfg.noise, eta=cfg.eta, clip=cfg.clip
        )
        grads = {"w": jnp.array([3.0, 4.0])}  # norm 5: clipped to (0.6, 0.8), then + 0.5
        upd, _ = rule.update(grads, rule.init(grads))
        np.testing.assert_allclose(upd["w"], [-1.1, -1.3], rtol=1e-6)
        with pytest.raises(ValueError, match="built in"):
            noise.register_noise("blog", _constant_noise)
    finally:
        noise.unregister_noise("constant")
    with pytest.raises(ValueError, match="unknown noise 'constant'; choose one of paper, blog$"):
        noise.gradient_noise("constant", 0.1, 0.55, jax.random.key(0))
    with pytest.raises(ValueError, match="noise: unknown value 'constant'; choose one of paper"):
        RunConfig(noise="constant")
