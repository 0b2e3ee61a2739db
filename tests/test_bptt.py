"""The recurrent kind on the one engine: windows, the curriculum, the update rules, the
config's recurrent checks."""

import jax
import numpy as np
import pytest

from dnijax import RunConfig, bptt, engine

SMALL = dict(
    task="copy",
    core="rnn",
    hidden=6,
    window=2,
    max_length=4,
    batch_size=4,
    steps=6,
    log_every=3,
    loss="bce",
    reduction="mean",
    optimizer="adam",
    lr=1e-3,
)


def _run(cfg, n=2, seed=0, **values):
    return engine.run_grid(
        cfg,
        engine.stack_hyper(cfg, **values) if values else engine.stack_hyper(cfg, lr=[cfg.lr] * n),
        engine.run_keys(seed, n),
        None,
    )


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(regime="sign"), "regime"),
        (dict(regime="dni", core="gru"), "core"),
        (dict(window=0), "window"),
        (dict(start_length=5, max_length=4), "start_length"),
        (dict(task="sort"), "task"),
        (dict(steps=10, log_every=3), "log_every"),
        (dict(threshold=0.0), "threshold"),
        (dict(update_prob=0.5, regime="dni"), "update_prob"),
        (dict(conditioned=True, regime="dni"), "conditioned"),
        (dict(conditioned=True), "conditioned"),  # refused under backprop too: a comparison's
        (dict(init="glorot"), "init"),  # DNI arms must not fail halfway
        (dict(activations="tanh"), "activations"),
        (dict(max_repeats=3), "max_repeats"),
        (dict(layers=[{"kind": "dense", "features": 3}]), "layers"),
    ],
)
def test_bad_settings_get_one_line_errors(fields, message):
    with pytest.raises(ValueError, match=message) as err:
        RunConfig(**{**SMALL, **fields})
    assert "\n" not in str(err.value)


def test_sequence_settings_without_a_task_and_engine_options_without_data_are_refused():
    with pytest.raises(ValueError, match="hidden: 3 is a sequence task's setting"):
        RunConfig(hidden=3)
    cfg = RunConfig(**SMALL)
    with pytest.raises(ValueError, match="alignment"):
        engine.run_grid(cfg, engine.stack_hyper(cfg), engine.run_keys(0, 1), None, alignment=True)
    from dnijax.experiments import presets

    with pytest.raises(ValueError, match="task is chosen with --task"):
        presets.preset_config("tuned", overrides={"task": "copy"})


def test_a_sequence_task_sets_its_widths_and_refuses_data():
    cfg = RunConfig(**{**SMALL, "batch_size": None})
    assert cfg.widths == (9, 6, 8) and cfg.batch_size == 16
    assert cfg.program().kind == "recurrent"
    with pytest.raises(ValueError, match="makes its own sequences"):
        engine.run_grid(
            cfg,
            engine.stack_hyper(cfg),
            engine.run_keys(0, 1),
            (np.zeros((4, 9)), np.zeros(4, int)),
        )


def test_only_the_windows_of_the_sequence_update():
    # length 1 (3 steps: pattern, delimiter, answer) padded to 10 steps = 5 windows of 2:
    # windows 0 and 1 hold the sequence, 2..4 are padding and must change nothing
    cfg = RunConfig(regime="dni", **{**SMALL, "threshold": 1e-9})
    res = _run(cfg)
    assert res.history["length"].tolist() == [[1, 1, 1]] * 2  # never solved
    np.testing.assert_array_equal(res.state.step, [6] * 2)  # episodes
    updates = [leaf for leaf in jax.tree.leaves(res.state.net_opt) if leaf.dtype == np.int32]
    np.testing.assert_array_equal(updates[0], [2 * 6] * 2)  # Adam's count: 2 windows each


@pytest.mark.parametrize("regime", ["backprop", "dni+noise"])
def test_the_curriculum_lengthens_solved_sequences(regime):
    cfg = RunConfig(regime=regime, **{**SMALL, "threshold": 1e9})  # everything passes
    res = _run(cfg)
    assert res.history["length"].tolist() == [[1, 4, 4]] * 2  # 1 -> 4 in 3 episodes
    assert res.final["solved"].tolist() == [4, 4] and (res.diverged_at == -1).all()


def test_runs_are_reproducible_and_learning_lowers_the_error():
    # length 2 (5 steps) in one window of 6: learnable by the window's own gradient
    cfg = RunConfig(
        regime="dni",
        task="copy",
        core="lstm",
        hidden=16,
        window=6,
        max_length=2,
        start_length=2,
        batch_size=16,
        steps=120,
        log_every=40,
        lr=1e-2,
        optimizer="adam",
        loss="bce",
        reduction="mean",
    )
    a, b = _run(cfg), _run(cfg)
    np.testing.assert_array_equal(a.history["error_bits"], b.history["error_bits"])
    err = a.history["error_bits"]
    assert (err[:, -1] < 0.8 * err[:, 0]).all(), err


def test_a_divergent_run_is_frozen_and_recorded():
    cfg = RunConfig(regime="backprop", **{**SMALL, "optimizer": "sgd", "threshold": 1e-9})
    res = _run(cfg, lr=[0.1, 3e38])
    assert res.diverged_at[0] == -1 and 0 <= res.diverged_at[1] < cfg.steps  # an episode
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(res.state.net))


def test_blocks_give_the_same_runs():
    cfg = RunConfig(regime="dni", **{**SMALL, "threshold": 1e-9})  # the windows test's program
    whole = _run(cfg)
    blocked = engine.run_grid(
        cfg, engine.stack_hyper(cfg, lr=[cfg.lr] * 2), engine.run_keys(0, 2), None, block_runs=1
    )
    np.testing.assert_allclose(
        whole.history["error_bits"], blocked.history["error_bits"], rtol=1e-5
    )
    assert whole.final["solved"].tolist() == blocked.final["solved"].tolist()


def test_a_rule_without_a_recurrent_form_is_refused_and_one_with_trains(blobs):
    """A rule registered once trains an MLP; without a recurrent form it refuses an RNN in
    one line, and with one (here: backprop's) it trains it."""
    import jax.numpy as jnp

    from dnijax import recurrent, signals

    def sign_signals(net, sg, x, y, spec, sg_spec):
        sig = signals.backprop_signals(net, sg, x, y, spec)
        return sig._replace(net_grads=jax.tree.map(jnp.sign, sig.net_grads))

    def sign_window(net, sg, window, spec):
        sig = recurrent.backprop_window(net, sg, window, spec)
        return sig._replace(net_grads=jax.tree.map(jnp.sign, sig.net_grads))

    signals.register("sign", sign_signals)
    signals.register("signrnn", sign_signals, recurrent=sign_window)
    try:
        mlp = RunConfig(
            regime="sign",
            widths=(2, 8, 1),
            lr=0.01,
            steps=50,
            activations=("tanh", "sigmoid"),
            init="glorot",
            reduction="mean",
        )
        _, hist = engine.run_one(mlp, *blobs, jax.random.key(0))
        assert hist["loss"][-1] < hist["loss"][0]
        with pytest.raises(ValueError, match="rule 'sign' has no recurrent form") as err:
            RunConfig(regime="sign", **SMALL)
        assert "\n" not in str(err.value)
        cfg = RunConfig(regime="signrnn+noise", **{**SMALL, "steps": 30, "log_every": 10})
        res = _run(cfg)
        assert (res.diverged_at == -1).all()
        assert not np.allclose(
            jax.tree.leaves(res.state.net)[0][0], jax.tree.leaves(res.state.net)[0][1]
        )  # two seeds, two nets
    finally:
        signals.unregister("sign")
        signals.unregister("signrnn")


@pytest.mark.parametrize("row", [2, 5, 7, 8, 9])  # backprop+noise; dni+noise, momentum, clip;
# dni with Adam, the SG regressing onto the gradient of the batch loss (sg_target "batch");
# dni with the injected synthetic gradient scaled by 0.1 (sg_scale); Adam with step decay
def test_training_windows_match_the_numpy_reference(row):
    """``dnijax validate --arch rnn``: the library's window loop (update rules, noise)
    against ``reference.rnn.trajectory`` in float64, from the same start and noise."""
    from dnijax import validate

    *_, cfg = list(validate.rnn_cases("float64"))[row]
    x, y = validate.random_sequences(cfg, 6, 4, seed=row)
    with jax.enable_x64(True):
        errors = validate.compare_rnn(cfg, x, y, jax.random.key(row))
    assert not errors["diverged"]
    assert errors["grad"] <= validate.GRAD_TOL and errors["params"] <= validate.PARAM_TOL, errors


def test_a_core_of_your_own_trains_on_the_copy_task():
    """A registered core (here a GRU-like gated core) is a RunConfig's core like rnn and lstm:
    both rules train it on the engine; afterwards the name is unknown again."""
    import jax.numpy as jnp

    from dnijax import recurrent

    def init(key, n_in, n, dtype):
        kx, kh = jax.random.split(key)
        return {
            "wx": jax.nn.initializers.glorot_normal()(kx, (n_in, 2 * n), dtype),
            "wh": 0.5 * jax.random.normal(kh, (n, 2 * n), dtype),
            "b": jnp.zeros((2 * n,), dtype),
        }

    def step(params, s, x_t):
        gate, cand = jnp.split(x_t @ params["wx"] + s @ params["wh"] + params["b"], 2, -1)
        z = jax.nn.sigmoid(gate)
        s = (1 - z) * s + z * jnp.tanh(cand)
        return s, s

    recurrent.register_core(
        "gated", recurrent.Core(init, lambda b, n, dtype: jnp.zeros((b, n), dtype), step)
    )
    try:
        for regime in ("backprop", "dni+noise"):
            cfg = RunConfig(regime=regime, **{**SMALL, "core": "gated"})
            res = _run(cfg)
            assert (res.diverged_at == -1).all()
            assert np.isfinite(res.history["error_bits"]).all()
            start = bptt.init_network(cfg.program().net_init, engine.run_keys(0, 2)[0])
            moved = np.abs(np.asarray(res.state.net["wh"][0]) - np.asarray(start["wh"]))
            assert moved.max() > 1e-4  # the core's own weights learnt
    finally:
        recurrent.unregister_core("gated")
    with pytest.raises(ValueError, match="core: unknown value 'gated'"):
        RunConfig(**{**SMALL, "core": "gated"})


def test_a_stream_carries_the_core_state_into_the_next_episode():
    """``carry_state``: two calls of the window loop, the second starting from the first's
    last state, are the reference's one trajectory over both sequences back to back
    (float64); from zeros instead, the second call is not."""
    from dnijax import reference, validate

    cfg = RunConfig(regime="dni", dtype="float64", **validate.RNN_BASE, carry_state=True)
    x, y = validate.random_sequences(cfg, 4, 4, seed=3)  # two episodes of two windows
    half = x.shape[1] // 2
    with jax.enable_x64(True):
        program, hyper = cfg.program(), cfg.hyper()
        state = bptt.init_state(program, hyper, jax.random.key(3))
        net0, sg0 = validate.to_numpy(state.net), validate.to_numpy(state.sg)
        run = jax.jit(bptt.train_windows, static_argnums=0)
        mid, first, s_mid = run(program, hyper, state, x[:, :half], y[:, :half])
        end, second, _ = run(program, hyper, mid, x[:, half:], y[:, half:], s0=s_mid)
        afresh, _, _ = run(program, hyper, mid, x[:, half:], y[:, half:])
    want_net, want_sg, want_losses = reference.rnn.trajectory(
        "dni", net0, sg0, x, y, cfg.window, loss="bce", reduction="mean", lr=0.1, sg_lr=0.05
    )
    assert validate.rel_error(end.net, want_net) <= validate.PARAM_TOL
    assert validate.rel_error(end.sg, want_sg) <= validate.PARAM_TOL
    np.testing.assert_allclose(np.concatenate([first, second]), want_losses, rtol=1e-10)
    assert validate.rel_error(afresh.net, want_net) > 1e-6  # the carry is what matches


def test_inactive_windows_keep_the_core_state():
    from dnijax import validate

    cfg = RunConfig(regime="backprop", **validate.RNN_BASE)
    x, y = (np.ones((4, 2 * cfg.window, n), np.float32) for n in (cfg.widths[0], cfg.widths[-1]))
    program, hyper = cfg.program(), cfg.hyper()
    state = bptt.init_state(program, hyper, jax.random.key(0))
    _, _, s_one = bptt.train_windows(program, hyper, state, x[:, : cfg.window], y[:, : cfg.window])
    _, losses, s_two = bptt.train_windows(
        program, hyper, state, x, y, active=np.array([True, False])
    )
    assert float(losses[1]) == 0.0 and np.abs(np.asarray(s_one)).sum() > 0
    np.testing.assert_array_equal(np.asarray(s_two), np.asarray(s_one))


def test_carry_state_changes_episodes_after_the_first_only():
    cfg = RunConfig(regime="dni", **{**SMALL, "steps": 2, "log_every": 1})
    runs = [
        _run(cfg.replace(carry_state=c, steps=n, log_every=n))
        for c in (False, True)
        for n in (1, 2)
    ]
    one_afresh, two_afresh, one_carried, two_carried = runs
    leaves = lambda r: [np.asarray(v) for v in jax.tree.leaves(r.state.net)]  # noqa: E731
    for a, b in zip(leaves(one_afresh), leaves(one_carried), strict=True):
        np.testing.assert_array_equal(a, b)  # the first episode starts from zeros either way
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(leaves(two_afresh), leaves(two_carried), strict=True)
    )
    carried = jax.tree.leaves(two_carried.state.task_state.core_state)[0]
    assert np.abs(np.asarray(carried)).sum() > 0
