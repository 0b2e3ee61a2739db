"""The JAX implementation against the hand-derived numpy reference, in float64
(``docs/math.md``, "Numerical agreement").

Every gradient of one step within 1e-9 relative error; all parameters after 100
steps within 1e-7; for every regime, both topologies, conditioned or not,
depths 1 to 8, every activation and loss, SGD, momentum and Adam, synchronous
and asynchronous updates, noise to every group or to the network only.
"""

import jax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnijax import RunConfig, reference, validate
from dnijax.validate import GRAD_TOL, PARAM_TOL

ACTS = ("sigmoid", "tanh", "relu", "identity")


def _check(cfg: RunConfig, batch: int, seed: int, steps: int = 100):
    with jax.enable_x64(True):
        x, labels = validate.random_data(cfg, batch, seed)
        errors = validate.compare(cfg, x, labels, jax.random.key(seed), steps)
    assert not errors["diverged"], errors
    assert errors["grad"] <= GRAD_TOL, errors
    assert errors["params"] <= PARAM_TOL, errors
    assert errors["loss"] <= GRAD_TOL, errors
    return errors


@st.composite
def configs(draw):
    depth = draw(st.integers(1, 8))
    loss = draw(st.sampled_from(("mse", "xent", "bce")))
    n_out = draw(st.integers(2, 4)) if loss == "xent" else draw(st.integers(1, 3))
    widths = (
        (draw(st.integers(1, 5)),)
        + tuple(draw(st.integers(1, 6)) for _ in range(depth - 1))
        + (n_out,)
    )
    regime = draw(st.sampled_from(("backprop", "dni", "backprop+noise", "dni+noise")))
    dni = regime.startswith("dni")
    return RunConfig(
        regime=regime,
        widths=widths,
        loss=loss,
        dtype="float64",
        activations=tuple(draw(st.sampled_from(ACTS)) for _ in range(depth)),
        reduction=draw(st.sampled_from(("mean", "sum"))),
        bias=draw(st.booleans()),
        init=draw(st.sampled_from(("normal", "glorot"))),
        init_scale=0.5,
        init_shift=0.0,
        lr=0.05,
        sg_lr=0.02,
        topology=draw(st.sampled_from(("paper", "seed"))),
        conditioned=draw(st.booleans()),
        sg_hidden=draw(st.sampled_from(((), (4,), (3, 5)))),
        sg_init=draw(st.sampled_from(("zero", "network"))),
        sg_bias=draw(st.booleans()),
        noise=draw(st.sampled_from(("paper", "blog"))),
        eta=0.01,
        clip=draw(st.sampled_from((None, 1.0))),
        noise_before_clip=draw(st.booleans()),
        update_prob=draw(st.sampled_from((1.0, 0.5))) if dni else 1.0,
        optimizer=draw(st.sampled_from(("sgd", "sgd", "momentum", "adam"))),
        noise_to=draw(st.sampled_from(("all", "network"))),
        steps=100,
    ), draw(st.integers(1, 8))


@settings(
    max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(configs())
def test_jax_matches_the_reference_on_random_configurations(case):
    cfg, batch = case
    _check(cfg, batch, seed=batch)


SEED = dict(
    widths=(2, 10, 28, 1),
    activations="sigmoid",
    bias=False,
    init="normal",
    init_scale=0.2,
    init_shift=-0.1,
    loss="mse",
    reduction="sum",
    lr=8e-5,
    topology="seed",
    sg_init="network",
    sg_bias=False,
    noise="blog",
    eta=0.1,
    dtype="float64",
    steps=100,
)


@pytest.mark.parametrize("regime", ["backprop", "dni", "backprop+noise", "dni+noise"])
def test_the_seed_configuration(regime):
    _check(RunConfig(regime=regime, **SEED), batch=500, seed=4567)


@pytest.mark.parametrize("depth", [1, 8])
@pytest.mark.parametrize("topology,conditioned", [("paper", False), ("seed", True)])
def test_depth_extremes(depth, topology, conditioned):
    widths = (3,) + (5,) * (depth - 1) + (3,)
    cfg = RunConfig(
        regime="dni+noise",
        widths=widths,
        activations="tanh",
        loss="xent",
        reduction="mean",
        lr=0.1,
        topology=topology,
        conditioned=conditioned,
        sg_init="network",
        init="glorot",
        dtype="float64",
        steps=100,
    )
    _check(cfg, batch=6, seed=depth)


@pytest.mark.parametrize(
    "topology,conditioned,hidden", [("paper", True, (4,)), ("seed", False, ())]
)
def test_the_batch_sg_target_matches_the_reference(topology, conditioned, hidden):
    """``sg_target="batch"`` (the SG regresses onto dJ/dh_i, 1/B of the per-example
    gradient under ``mean``) against the reference's own derivation, with Adam, which does
    not undo the scale of the SG loss's gradient in the hidden SG layers."""
    _check(
        RunConfig(
            regime="dni+noise",
            widths=(3, 5, 4, 3),
            loss="xent",
            reduction="mean",
            activations=("tanh", "relu", "identity"),
            init="glorot",
            lr=0.01,
            sg_lr=0.005,
            optimizer="adam",
            topology=topology,
            conditioned=conditioned,
            sg_hidden=hidden,
            sg_init="network",
            sg_target="batch",
            dtype="float64",
            steps=100,
        ),
        batch=8,
        seed=2,
    )


@pytest.mark.parametrize(
    "topology,sg_target,optimizer", [("paper", "per_example", "sgd"), ("seed", "batch", "adam")]
)
def test_the_sg_scale_matches_the_reference(topology, sg_target, optimizer):
    """``sg_scale`` (each synthetic gradient used as a gradient is a d_i) against the
    reference's own derivation, under both SG targets."""
    _check(
        RunConfig(
            regime="dni+noise",
            widths=(3, 5, 4, 3),
            loss="xent",
            reduction="mean",
            activations=("tanh", "relu", "identity"),
            init="glorot",
            lr=0.05 if optimizer == "sgd" else 0.01,
            sg_lr=0.02 if optimizer == "sgd" else 0.005,
            optimizer=optimizer,
            topology=topology,
            sg_hidden=(4,),
            sg_init="network",
            sg_target=sg_target,
            sg_scale=0.1,
            dtype="float64",
            steps=100,
        ),
        batch=8,
        seed=3,
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_learning_rate_step_decay_matches_the_reference(optimizer):
    """``lr_decay_steps``: both learning rates divided by 10 from update 30 and again from
    70, against the reference's own schedule (``reference.mlp.decayed_rate``)."""
    _check(
        RunConfig(
            regime="dni+noise",
            widths=(3, 5, 3),
            activations="tanh",
            loss="xent",
            reduction="mean",
            init="glorot",
            lr=0.1 if optimizer == "sgd" else 0.01,
            optimizer=optimizer,
            sg_init="network",
            lr_decay_steps=(30, 70),
            lr_decay=0.1,
            dtype="float64",
            steps=100,
        ),
        batch=6,
        seed=5,
    )


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_asynchronous_updates_with_stateful_optimisers(optimizer):
    cfg = RunConfig(
        regime="dni+noise",
        widths=(3, 6, 5, 2),
        activations="tanh",
        loss="xent",
        reduction="mean",
        lr=0.01,
        sg_lr=0.005,
        optimizer=optimizer,
        update_prob=0.4,
        sg_init="network",
        init="glorot",
        dtype="float64",
        steps=100,
    )
    _check(cfg, batch=8, seed=1)


def test_a_skipped_layer_whose_moments_move_is_caught(monkeypatch):
    """If a layer that sits a step out still fed its gradient to Adam (the optimiser
    state advancing, only the update masked), the trajectories would differ."""
    cfg = RunConfig(
        regime="dni",
        widths=(3, 6, 5, 2),
        activations="tanh",
        loss="xent",
        reduction="mean",
        lr=0.01,
        optimizer="adam",
        update_prob=0.5,
        sg_init="network",
        init="glorot",
        dtype="float64",
        steps=30,
    )
    _check(cfg, batch=8, seed=2, steps=30)
    original = reference.mlp.optimizer_step

    def leaky(params, grads, states, lr, optimizer, mask=None):
        new_params, _ = original(params, grads, states, lr, optimizer, mask)
        _, new_states = original(params, grads, states, lr, optimizer, None)
        return new_params, new_states

    monkeypatch.setattr(reference.mlp, "optimizer_step", leaky)  # where trajectory finds it
    with jax.enable_x64(True):
        errors = validate.compare(cfg, *validate.random_data(cfg, 8, 2), jax.random.key(2), 30)
    assert errors["params"] > 1e-4, errors


def test_a_wrong_reference_is_caught(monkeypatch):
    """A sign flip in one layer's backward pass must fail both checks."""
    cfg = RunConfig(
        regime="dni",
        widths=(3, 5, 5, 2),
        activations="tanh",
        loss="bce",
        reduction="mean",
        lr=0.1,
        sg_init="network",
        dtype="float64",
        steps=20,
    )
    _check(cfg, batch=6, seed=0, steps=20)
    original = reference.layers.dense_backward

    def flipped(cache, grad_out):
        grads, grad_in = original(cache, grad_out)
        if cache[0]["w"].shape == (3, 5):  # layer 1 only
            grads = {k: -v for k, v in grads.items()}
        return grads, grad_in

    monkeypatch.setattr(reference.layers, "dense_backward", flipped)
    with jax.enable_x64(True):
        errors = validate.compare(cfg, *validate.random_data(cfg, 6, 0), jax.random.key(0), 20)
    assert errors["grad"] > 1.0 and errors["params"] > 1e-3, errors


CONV_ROWS = [
    ("dni", "seed", True, "no pool"),
    ("dni+noise", "seed", True, "pool, adam p=0.5"),
    ("dni", "paper", False, "pool, sg batch"),
]


@pytest.mark.parametrize("row", CONV_ROWS, ids=lambda r: " ".join(map(str, r)))
def test_conv_nets_match_the_reference(row):
    """Conv nets, with and without pooling, image and vector SG modules, against the
    hand-derived conv and pooling reference (``dnijax validate --arch conv``)."""
    cases = {case[:4]: case[4] for case in validate.conv_cases(20, "float64")}
    _check(cases[row], batch=8, seed=3, steps=20)
