"""Training runs: every regime learns, divergence freezes a run, results are deterministic."""

import jax
import numpy as np
import pytest

from dnijax import RunConfig, engine, train

TOY = dict(
    widths=(2, 16, 16, 1),
    activations=("tanh", "tanh", "sigmoid"),
    init="glorot",
    reduction="mean",
    steps=400,
    lr=1.0,
    sg_lr=0.1,
    eta=0.001,
)


@pytest.mark.parametrize("regime", ["backprop", "dni", "backprop+noise", "dni+noise"])
def test_every_regime_reduces_the_loss_of_a_three_layer_net(regime, blobs):
    x, labels = blobs
    state, hist = engine.run_one(RunConfig(regime=regime, **TOY), x, labels, jax.random.key(0))
    # the mse of a sigmoid output starts near 0.125 (predictions ~0.5)
    assert hist["loss"][0] > 0.1
    assert hist["loss"][-1] < 0.5 * hist["loss"][0], hist["loss"][::20]
    assert hist["accuracy"][-1] > 0.9
    assert int(state.diverged_at) == -1


def test_history_layout(blobs):
    x, labels = blobs
    cfg = RunConfig(regime="dni", topology="seed", **{**TOY, "steps": 40}, log_every=10)
    state, hist = engine.run_one(cfg, x, labels, jax.random.key(0))
    np.testing.assert_array_equal(hist["step"], [0, 10, 20, 30, 40])
    assert hist["sg_loss"].shape == (4, 3) and hist["loss"].shape == (5,)
    assert int(state.step) == 40


def test_a_diverging_run_is_frozen_and_records_the_step(blobs):
    x, labels = blobs
    cfg = RunConfig(
        regime="dni",
        widths=(2, 16, 16, 1),
        lr=1e4,
        sg_lr=1e4,
        steps=50,
        log_every=1,
        init="glorot",
        reduction="sum",
        activations="relu",
        loss="mse",
    )
    state, hist = engine.run_one(cfg, x, labels, jax.random.key(0))
    step = int(state.diverged_at)
    assert 0 <= step < 50
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(state.net))
    # frozen: the parameters no longer change after the divergence
    assert np.all(hist["loss"][step + 1 :] == hist["loss"][step + 1])
    assert hist["diverged"][step + 1] and not hist["diverged"][step]


def test_same_config_and_key_give_bit_identical_results(blobs):
    x, labels = blobs
    cfg = RunConfig(regime="dni+noise", **{**TOY, "steps": 50}, batch_size=32)
    a = engine.run_one(cfg, x, labels, jax.random.key(7))
    b = engine.run_one(cfg, x, labels, jax.random.key(7))
    c = engine.run_one(cfg, x, labels, jax.random.key(8))
    for u, v in zip(jax.tree.leaves(a[0].net), jax.tree.leaves(b[0].net), strict=True):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a[1]["loss"], b[1]["loss"])
    assert not np.array_equal(a[1]["loss"], c[1]["loss"])


def test_regimes_share_initial_weights_under_one_key():
    cfgs = [RunConfig(regime=r, **TOY) for r in ("backprop", "dni+noise")]
    states = [train.init_state(c.program(), c.hyper(), jax.random.key(3)) for c in cfgs]
    for u, v in zip(jax.tree.leaves(states[0].net), jax.tree.leaves(states[1].net), strict=True):
        np.testing.assert_array_equal(u, v)


def test_asynchronous_updates_skip_layers(blobs):
    x, labels = blobs
    cfg = RunConfig(regime="dni", update_prob=0.2, **{**TOY, "steps": 10}, log_every=10)
    data = train.make_data(cfg, x, labels)
    program = cfg.program()
    state = train.init_state(program, cfg.hyper(), jax.random.key(0))
    skipped = 0
    for _ in range(10):
        new, _ = train.train_step(program, cfg.hyper(), state, data)
        skipped += sum(
            bool(np.array_equal(a["w"], b["w"])) for a, b in zip(state.net, new.net, strict=True)
        )
        state = new
    assert 10 <= skipped < 30  # about 80% of 30 layer-steps stand still


def test_log_every_must_divide_steps(blobs):
    with pytest.raises(ValueError, match="log_every: 7 does not divide steps 40"):
        engine.run_one(RunConfig(steps=40, log_every=7), *blobs, jax.random.key(0))


def test_output_only_training_freezes_the_hidden_layers(blobs):
    x, labels = blobs
    cfg = RunConfig(train_hidden=False, **{**TOY, "steps": 50}, log_every=50)
    start = train.init_state(cfg.program(), cfg.hyper(), jax.random.key(0))
    state, hist = engine.run_one(cfg, x, labels, jax.random.key(0))
    for a, b in zip(jax.tree.leaves(start.net[:-1]), jax.tree.leaves(state.net[:-1]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(start.net[-1]["w"], state.net[-1]["w"])
    assert hist["loss"][-1] < hist["loss"][0]


def test_an_update_that_overflows_the_parameters_freezes_the_run_at_that_step(blobs):
    """The loss at the start of step 0 is finite, but lr * grad overflows float32: the guard
    must catch it on the parameters, not wait for the next step's loss."""
    x, labels = blobs
    cfg = RunConfig(
        regime="backprop",
        widths=(2, 4, 1),
        lr=1e38,
        steps=3,
        log_every=1,
        init="glorot",
        reduction="sum",
    )
    start = train.init_state(cfg.program(), cfg.hyper(), jax.random.key(0))
    state, hist = engine.run_one(cfg, x, labels, jax.random.key(0))
    assert np.isfinite(hist["loss"][0])
    assert int(state.diverged_at) == 0
    for a, b in zip(jax.tree.leaves(start.net), jax.tree.leaves(state.net), strict=True):
        np.testing.assert_array_equal(a, b)
