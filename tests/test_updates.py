"""Update rules: clip -> noise -> optimiser -> freeze, and the asynchronous gate that leaves a
skipped layer exactly as it was, optimiser state included."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dnijax import RunConfig, engine, train, updates


def test_update_rule_clips_then_adds_noise_then_steps():
    grads = {"w": jnp.array([30.0, 40.0])}  # global norm 50
    rule = updates.update_rule(
        optimizer="sgd",
        learning_rate=0.1,
        noise="blog",
        eta=0.0,
        noise_key=jax.random.key(0),
        clip=5.0,
    )
    upd, _ = rule.update(grads, rule.init(grads))
    np.testing.assert_allclose(upd["w"], [-0.3, -0.4], rtol=1e-6)  # eta 0: clip and sgd only
    noisy = updates.update_rule(
        optimizer="sgd", learning_rate=1.0, noise="paper", eta=1.0, noise_key=jax.random.key(0)
    )
    upd, _ = noisy.update(grads, noisy.init(grads))
    assert not np.allclose(upd["w"], [-30.0, -40.0])


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer"):
        updates.make_optimizer("lbfgs", 0.1)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "rmsprop"])
def test_the_gate_with_every_layer_on_is_the_plain_optimiser(name):
    params = [{"w": jnp.arange(3.0)}, {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}]
    grads = jax.tree.map(lambda a: 0.1 * a + 1.0, params)
    plain = updates.update_rule(optimizer=name, learning_rate=0.01)
    gated = updates.update_rule(optimizer=name, learning_rate=0.01, asynchronous=True)
    s_plain, s_gated = plain.init(params), gated.init(params)
    for _ in range(3):
        u_plain, s_plain = plain.update(grads, s_plain, params)
        u_gated, s_gated = gated.update(grads, s_gated, params, layer_mask=jnp.array([1, 1]))
        for a, b in zip(jax.tree.leaves(u_plain), jax.tree.leaves(u_gated), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_skipped_layer_keeps_its_adam_moments_and_step_count():
    params = [{"w": jnp.ones(2)}, {"w": jnp.ones(2)}]
    grads = [{"w": jnp.full(2, 0.5)}, {"w": jnp.full(2, -2.0)}]
    tx = updates.update_rule(optimizer="adam", learning_rate=0.1, asynchronous=True)
    state = tx.init(params)
    # layer 0 updates on steps 0 and 2; layer 1 only on step 2
    for mask in ([1, 0], [0, 0], [1, 1]):
        upd, state = tx.update(grads, state, params, layer_mask=jnp.array(mask, bool))
    (adam0, _), (adam1, _) = state[0].layers
    assert int(adam0.count) == 2 and int(adam1.count) == 1
    # layer 1's single Adam step is a first step: its update is -lr * sign(g) (bias-corrected)
    np.testing.assert_allclose(upd[1]["w"], [0.1, 0.1], rtol=1e-5)
    np.testing.assert_allclose(adam1.mu["w"], 0.1 * -2.0, rtol=1e-6)


def test_update_prob_near_zero_leaves_a_dni_net_and_its_adam_state_untouched(blobs):
    x, labels = blobs
    cfg = RunConfig(
        regime="dni",
        widths=(2, 8, 8, 1),
        optimizer="adam",
        lr=0.01,
        update_prob=1e-6,
        steps=5,
        log_every=5,
        activations="tanh",
        init="glorot",
        reduction="mean",
    )
    program, hyper = cfg.program(), cfg.hyper()
    start = train.init_state(program, hyper, jax.random.key(0))
    data = train.make_data(cfg, x, labels)
    state = start
    for _ in range(5):
        state, sig = train.train_step(program, hyper, state, data)
    assert float(jnp.abs(sig.net_grads[-1]["w"]).max()) > 0  # there was something to apply

    def float_leaves(tree):
        return [a for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)]

    for before, after in (
        (start.net, state.net),
        (start.sg, state.sg),
        (start.net_opt, state.net_opt),
        (start.sg_opt, state.sg_opt),
    ):
        for a, b in zip(float_leaves(before), float_leaves(after), strict=True):
            np.testing.assert_array_equal(a, b)
    counts = [a for a in jax.tree.leaves(state.net_opt) if a.dtype == jnp.int32]
    assert counts and all(int(c) == 0 for c in counts)  # no layer's Adam step count moved
    assert int(state.step) == 5


def test_the_old_mask_after_the_update_would_have_moved_the_moments(blobs):
    """The same run without the gate (a mask applied after the optimiser) does change the
    Adam moments of layers that did not update: the test above can fail."""
    x, labels = blobs
    cfg = RunConfig(
        regime="dni",
        widths=(2, 8, 8, 1),
        optimizer="adam",
        lr=0.01,
        steps=1,
        activations="tanh",
        init="glorot",
        reduction="mean",
    )
    program, hyper = cfg.program(), cfg.hyper()
    state = train.init_state(program, hyper, jax.random.key(0))
    data = train.make_data(cfg, x, labels)
    sig = train.compute_signals(program, state, data.x, data.y)
    tx = train.update_rules(program, hyper).net
    _, moved = tx.update(sig.net_grads, state.net_opt, state.net)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(state.net_opt), jax.tree.leaves(moved), strict=True)
    )


def test_freeze_zeroes_the_hidden_layers_after_the_optimiser():
    params = [{"w": jnp.ones(2)}, {"w": jnp.ones(2)}]
    tx = updates.update_rule(optimizer="sgd", learning_rate=1.0, frozen=[True, False])
    upd, _ = tx.update(params, tx.init(params), params)
    np.testing.assert_array_equal(upd[0]["w"], [0.0, 0.0])
    np.testing.assert_array_equal(upd[1]["w"], [-1.0, -1.0])


@pytest.mark.parametrize("noise_to,sg_noisy", [("all", True), ("network", False)])
def test_noise_to_chooses_whether_the_sg_modules_get_noise(noise_to, sg_noisy):
    cfg = RunConfig(regime="dni+noise", widths=(2, 4, 1), noise_to=noise_to)
    rules = train.update_rules(cfg.program(), cfg.hyper())
    sg = [[{"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}], None]
    zeros = jax.tree.map(jnp.zeros_like, sg)
    upd, _ = rules.sg.update(zeros, rules.sg.init(sg), sg)
    assert bool(jnp.all(upd[0][0]["w"] != 0)) == sg_noisy


def test_noise_before_clip_puts_the_noise_first():
    grads = {"w": jnp.array([30.0, 40.0])}
    after = updates.update_rule(
        optimizer="sgd",
        learning_rate=1.0,
        noise="blog",
        eta=100.0,
        noise_key=jax.random.key(0),
        clip=5.0,
    )
    before = updates.update_rule(
        optimizer="sgd",
        learning_rate=1.0,
        noise="blog",
        eta=100.0,
        noise_key=jax.random.key(0),
        clip=5.0,
        noise_before_clip=True,
    )
    u_after, _ = after.update(grads, after.init(grads))
    u_before, _ = before.update(grads, before.init(grads))
    assert float(jnp.linalg.norm(u_before["w"])) <= 5.0 + 1e-4  # clipped last
    assert float(jnp.linalg.norm(u_after["w"])) > 5.0  # noise of std 100 added after the clip


def test_an_optimizer_of_your_own_is_one_registry_entry(blobs):
    """A registered optimiser is the optax transform it names, in the update rules, in a
    RunConfig and in a recurrent run's config; afterwards the name is unknown again."""
    nesterov = lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True)  # noqa: E731
    updates.register_optimizer("nesterov", nesterov)
    try:
        params, grads = {"w": jnp.arange(3.0)}, {"w": jnp.array([1.0, -2.0, 0.5])}
        ours = updates.update_rule(optimizer="nesterov", learning_rate=0.1)
        theirs = nesterov(0.1)
        s_ours, s_theirs = ours.init(params), theirs.init(params)
        for _ in range(3):
            u, s_ours = ours.update(grads, s_ours, params)
            v, s_theirs = theirs.update(grads, s_theirs, params)
            np.testing.assert_array_equal(u["w"], v["w"])
        cfg = RunConfig(
            regime="dni",
            optimizer="nesterov",
            widths=(2, 8, 1),
            lr=0.1,
            steps=100,
            reduction="mean",
            activations=("tanh", "sigmoid"),
            init="glorot",
        )
        _, hist = engine.run_one(cfg, *blobs, jax.random.key(0))
        assert hist["loss"][-1] < hist["loss"][0]
        assert RunConfig(task="copy", optimizer="nesterov").optimizer == "nesterov"
        with pytest.raises(ValueError, match="built in"):
            updates.register_optimizer("adam", optax.adam)
    finally:
        updates.unregister_optimizer("nesterov")
    known = "choose one of sgd, momentum, adam, rmsprop$"
    with pytest.raises(ValueError, match=f"unknown optimizer 'nesterov'; {known}"):
        updates.make_optimizer("nesterov", 0.1)
    with pytest.raises(ValueError, match=f"optimizer: unknown value 'nesterov'; {known}"):
        RunConfig(optimizer="nesterov")
    updates.unregister_optimizer("sgd")  # built-ins stay
    assert "sgd" in updates.OPTIMIZERS


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_step_decay_divides_the_learning_rate_from_each_decay_step_on(optimizer):
    """Updates 0 and 1 at the full rate, 2 and 3 at a tenth, 4 on at a hundredth: the
    0-based update count k is decayed once for every decay step <= k."""
    grads = {"w": jnp.array([1.0, -2.0])}
    plain = updates.update_rule(optimizer=optimizer, learning_rate=0.5)
    decayed = updates.update_rule(
        optimizer=optimizer, learning_rate=0.5, decay_steps=(2, 4), decay=0.1
    )
    s_plain, s_decayed = plain.init(grads), decayed.init(grads)
    for k in range(6):
        u_plain, s_plain = plain.update(grads, s_plain)
        u_decayed, s_decayed = decayed.update(grads, s_decayed)
        factor = 0.1 ** sum(k >= b for b in (2, 4))
        np.testing.assert_allclose(u_decayed["w"], factor * u_plain["w"], rtol=1e-6)


def test_step_decay_is_refused_with_asynchronous_updates():
    with pytest.raises(ValueError, match="lr_decay_steps: with update_prob < 1"):
        RunConfig(regime="dni", update_prob=0.5, lr_decay_steps=(10,))
    with pytest.raises(ValueError, match="must increase strictly"):
        RunConfig(lr_decay_steps=(10, 10))
    with pytest.raises(ValueError, match="lr_decay: 0 must be > 0"):
        RunConfig(lr_decay_steps=(10,), lr_decay=0)
