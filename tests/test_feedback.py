"""The rules fa, dfa and fwdgrad: float64 agreement with the hand-derived numpy reference
(signals and 100-step trajectories, dense and conv, with and without pooling, mean and
sum), fwdgrad's unbiasedness at the rate its variance predicts, the fixed matrices, and
what they refuse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import RunConfig, engine, feedback, nets, reference, signals, train, validate

DENSE = dict(
    widths=(3, 6, 5, 2),
    activations=("tanh", "relu", "identity"),
    loss="xent",
    init="glorot",
    lr=0.05,
    eta=0.01,
    noise="paper",
    dtype="float64",
)
CONV = dict(
    widths=(16,), loss="xent", init="glorot", lr=0.02, eta=0.01, noise="paper", dtype="float64"
)

# (rule, network, reduction): each rule on a dense net and a conv net, each with mean and
# sum; the conv nets with pooling and without take turns (``dnijax validate --arch conv``
# runs every rule on both, and the fa test below runs fa's signals on the pooled one).
CASES = [
    ("fa", "dense", "mean"),
    ("fa", "no pool", "sum"),
    ("dfa", "dense", "sum"),
    ("dfa", "pool", "mean"),
    ("fwdgrad", "dense", "mean"),
    ("fwdgrad", "pool", "sum"),
]


def _config(rule: str, net: str, reduction: str, **fields) -> RunConfig:
    if net == "dense":
        return RunConfig(regime=rule, reduction=reduction, **{**DENSE, **fields})
    return RunConfig(
        regime=rule, reduction=reduction, layers=validate.CONV_NETS[net], **{**CONV, **fields}
    )


@pytest.mark.parametrize("rule,net,reduction", CASES)
def test_signals_and_100_step_trajectories_equal_the_numpy_reference(rule, net, reduction):
    cfg = _config(rule + "+noise", net, reduction, steps=100)
    x, labels = validate.random_data(cfg, 12, 1)
    with jax.enable_x64(True):
        errors = validate.compare(cfg, x, labels, jax.random.key(3))
    assert not errors["diverged"]
    assert errors["grad"] < 1e-10, errors
    assert errors["params"] < 1e-8, errors


def _signals64(cfg: RunConfig, x, labels, key):
    program, hyper = cfg.program(), cfg.hyper()
    state = train.init_state(program, hyper, key)
    data = train.make_data(cfg, x, labels)
    return state, data, train.compute_signals(program, state, data.x, data.y)


def test_fa_with_the_true_weights_as_feedback_is_backprop():
    """B_i = W_i turns feedback alignment into the chain rule: the reference and JAX
    both give backprop's gradients then (a check that fails if either ignores B)."""
    with jax.enable_x64(True):
        for net in ("dense", "pool"):
            cfg = _config("fa", net, "mean")
            x, labels = validate.random_data(cfg, 8, 0)
            state, data, _ = _signals64(cfg, x, labels, jax.random.key(0))
            state = state._replace(feedback=[None] + [p["w"] for p in state.net[1:]])
            program = cfg.program()
            got = train.compute_signals(program, state, data.x, data.y).net_grads
            want = signals.backprop_signals(state.net, None, data.x, data.y, program.net).net_grads
            assert validate.rel_error(got, want) < 1e-12
            _, ref = reference.backprop_grads(
                validate.to_numpy(state.net),
                np.asarray(data.x),
                np.asarray(data.y),
                cfg.net_spec.blocks,
                cfg.loss,
                cfg.reduction,
            )
            ref_fa = reference.fa_grads(
                validate.to_numpy(state.net),
                validate.to_numpy(state.feedback),
                np.asarray(data.x),
                np.asarray(data.y),
                cfg.net_spec.blocks,
                cfg.loss,
                cfg.reduction,
            )[1]
            assert validate.rel_error(ref_fa, ref) < 1e-12


def test_fwdgrad_is_unbiased_at_the_rate_its_variance_predicts():
    """For v ~ N(0, I) in P dimensions, E[(g.v) v] = g and E||(g.v) v - g||^2 =
    (P + 1) ||g||^2, so the mean of n directions has mean squared error (P + 1) ||g||^2 / n.
    Over 400 means of n = 64 directions (fixed keys), the observed error is held to that
    rate within 15%, and the mean of all 25,600 directions to the true gradient."""
    with jax.enable_x64(True):
        cfg = _config("fwdgrad", "dense", "mean")
        x, labels = validate.random_data(cfg, 8, 0)
        state, data, _ = _signals64(cfg, x, labels, jax.random.key(0))
        spec = cfg.net_spec
        flat = lambda tree: jnp.concatenate([a.ravel() for a in jax.tree.leaves(tree)])  # noqa
        true = flat(signals.backprop_signals(state.net, None, data.x, data.y, spec).net_grads)

        def estimate(key):
            return flat(feedback.fwdgrad(state.net, data.x, data.y, spec, key)[0])

        reps, n = 400, 64
        keys = jax.random.split(jax.random.key(7), reps * n)
        g = jax.jit(jax.vmap(estimate))(keys).reshape(reps, n, -1)
        p = true.size
        predicted = (p + 1) * float(true @ true) / n
        observed = float(jnp.mean(jnp.sum((g.mean(axis=1) - true) ** 2, axis=-1)))
        assert abs(observed / predicted - 1) < 0.15, (observed, predicted)
        overall = g.reshape(-1, p).mean(axis=0)
        # the grand mean's error is (P + 1) ||g||^2 / 25,600 in expectation: 5x that is far
        assert float(jnp.sum((overall - true) ** 2)) < 5 * predicted / reps


def test_the_fixed_matrices_are_drawn_per_seed_kept_and_never_trained(blobs):
    cfg = RunConfig(
        regime="dfa+noise",
        widths=(2, 6, 6, 1),
        activations=("tanh", "tanh", "sigmoid"),
        init="glorot",
        lr=0.3,
        steps=30,
        log_every=10,
    )
    keys = engine.run_keys(0, 3)
    res = engine.run_grid(cfg, engine.stack_hyper(cfg, lr=[0.3] * 3), keys, blobs, mesh=None)
    start = jax.vmap(lambda k: train.init_state(cfg.program(), cfg.hyper(), k))(keys)
    for got, want in zip(
        jax.tree.leaves(res.state.feedback), jax.tree.leaves(start.feedback), strict=True
    ):
        np.testing.assert_array_equal(got, want)  # never updated
        assert not np.allclose(got[0], got[1])  # each seed its own
    shapes = [None if d is None else d.shape[1:] for d in res.state.feedback]
    assert shapes == [(1, 6), (1, 6), None]  # D_i: (n_out, size(h_i))
    again = engine.run_grid(
        cfg, engine.stack_hyper(cfg, lr=[0.3] * 3), keys, blobs, mesh=None, block_runs=1
    )  # blocks of one run: the same runs
    np.testing.assert_array_equal(again.history["loss"], res.history["loss"])


def test_every_rule_trains_with_async_updates_and_a_diverging_run_is_recorded(blobs):
    for rule in ("fa", "dfa", "fwdgrad"):
        cfg = RunConfig(
            regime=rule,
            widths=(2, 8, 1),
            activations=("relu", "identity"),
            loss="mse",
            init="glorot",
            lr=0.05,
            steps=60,
            log_every=20,
            update_prob=0.5,
            reduction="mean",
        )
        res = engine.run_grid(
            cfg, engine.stack_hyper(cfg, lr=[0.05, 1e3]), engine.run_keys(0, 2), blobs, mesh=None
        )
        assert (
            res.diverged_at[0] == -1
            and res.history["loss"][0, -1] < 0.5 * res.history["loss"][0, 0]
        ), rule
        assert 0 < res.diverged_at[1] < 60, rule  # lr 1e3: frozen at the step it diverged


def test_grad_alignment_is_one_for_backprop_and_below_for_the_others(blobs):
    for rule in ("backprop", "fa", "dfa", "fwdgrad"):
        cfg = RunConfig(
            regime=rule,
            widths=(2, 6, 6, 1),
            activations=("tanh", "tanh", "sigmoid"),
            init="glorot",
            lr=0.3,
            steps=20,
            log_every=10,
        )
        res = engine.run_grid(
            cfg, engine.stack_hyper(cfg), engine.run_keys(0, 1), blobs, mesh=None, alignment=True
        )
        cos = res.history["grad_alignment"]
        assert cos.shape == (1, 2, 3) and np.all(np.abs(cos) <= 1)
        if rule == "backprop":
            np.testing.assert_allclose(cos, 1, atol=1e-6)
        else:  # fa and dfa: the output layer learns from its true gradient
            assert np.all(cos[..., 0] < 0.999)
            if rule != "fwdgrad":
                np.testing.assert_allclose(cos[..., -1], 1, atol=1e-6)


def test_a_rule_without_a_recurrent_form_names_the_kinds_it_supports():
    for rule in ("fa", "dfa+noise", "fwdgrad"):
        with pytest.raises(
            ValueError,
            match="trains feed-forward .dense and conv. networks only.*choose one of backprop, dni",
        ) as err:
            RunConfig(regime=rule, task="copy")
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="choose one of backprop, dni, fa, dfa, fwdgrad"):
        RunConfig(regime="feedback")


def test_init_dfa_uses_the_output_layers_init_scheme():
    spec = nets.mlp_spec((3, 4, 2), ("tanh", "identity"), "xent", "mean", init="zeros")
    fixed = feedback.init_dfa(jax.random.key(0), spec, jnp.float32)
    assert fixed[0].shape == (2, 4) and float(jnp.abs(fixed[0]).max()) == 0.0
    assert fixed[1] is None
