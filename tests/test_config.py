import math

import numpy as np
import pytest

from dnijax import RunConfig, check_data, config, updates

BAD = [
    (dict(regime="dnl"), "regime: unknown value 'dnl'"),
    (dict(activations="softsign"), "activations: unknown value"),
    (dict(activations=("tanh",)), "activations: 1 given for 3 layers"),
    (dict(loss="hinge"), "loss: unknown value"),
    (dict(reduction="max"), "reduction: unknown value"),
    (dict(optimizer="lbfgs"), "optimizer: unknown value"),
    (dict(lr=0.0), "lr: 0.0 must be > 0"),
    (dict(lr=-1e-3), "lr: -0.001 must be > 0"),
    (dict(lr=math.nan), "lr: nan is not finite"),
    (dict(lr="fast"), "lr: 'fast' is not a number"),
    (dict(sg_lr=-1.0), "sg_lr: -1.0 must be > 0"),
    (dict(eta=-0.1), "eta: -0.1 must be >= 0"),
    (dict(widths=(2, 0, 1)), "widths: 0 must be >= 1"),
    (dict(widths=(2,)), "widths: .* at least an input and an output"),
    (dict(widths=(2, 3.5, 1)), "widths: 3.5 is not an integer"),
    (dict(regime="dni", update_prob=0.0), r"update_prob: 0.0 must be in \(0, 1\]"),
    (dict(regime="dni", update_prob=1.5), r"update_prob: 1.5 must be in \(0, 1\]"),
    (dict(update_prob=0.5), "update_prob: asynchronous updates"),
    (dict(steps=0), "steps: 0 must be >= 1"),
    (dict(steps=40, log_every=7), "log_every: 7 does not divide steps 40"),
    (dict(loss="xent"), "xent needs an output layer of at least 2"),
    (dict(topology="full"), "topology: unknown value"),
    (dict(sg_init="ones"), "sg_init: unknown value"),
    (dict(noise="pink"), "noise: unknown value"),
    (dict(clip=0.0), "clip: 0.0 must be > 0"),
    (dict(dtype="bfloat16"), "dtype: unknown value"),
    (dict(train_hidden="no"), "train_hidden: .no. must be true or false"),
    (dict(sg_scale=0.0), "sg_scale: 0.0 must be > 0"),
    (dict(sg_scale=math.inf), "sg_scale: inf is not finite"),
    (dict(lr_decay_steps=300), "lr_decay_steps: 300 must be a list of update counts"),
    (dict(lr_decay_steps=(0,)), "lr_decay_steps: 0 must be >= 1"),
    (dict(lr_decay_steps=(5, 3)), r"lr_decay_steps: \[5, 3\] must increase strictly"),
]


@pytest.mark.parametrize("kwargs,message", BAD)
def test_bad_values_are_refused_with_a_message_that_names_them(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        RunConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_defaults_and_derived_specs():
    cfg = RunConfig(regime="dni+noise", widths=(2, 4, 3), loss="xent", activations="tanh")
    assert cfg.uses_sg and cfg.noisy and cfg.signal == "dni"
    assert [b.layers[-1].kind for b in cfg.net_spec.blocks] == ["tanh", "identity"]
    assert cfg.log_every == 10 and cfg.steps % cfg.log_every == 0
    assert float(cfg.hyper().sg_lr) == float(cfg.hyper().lr)
    with pytest.raises(ValueError):
        cfg.replace(lr=-1.0)


@pytest.mark.parametrize(
    "x,labels,message",
    [
        (np.zeros((4, 3)), np.zeros(4, int), "inputs have 3 features but widths"),
        (np.zeros((4, 2)), np.zeros(5, int), "5 labels for 4 examples"),
        (np.full((4, 2), np.nan), np.zeros(4, int), "NaN or inf"),
        (np.zeros((4, 2)), np.array([0, 1, 2, 0]), "labels span 0..2 but an output layer of 1"),
        (np.zeros((4, 2)), np.array([0, 0.5, 1, 0]), "labels must be integers"),
    ],
)
def test_data_that_does_not_fit_is_refused(x, labels, message):
    with pytest.raises(ValueError, match=message):
        check_data(RunConfig(), x, labels)


def test_batch_larger_than_data_is_refused():
    with pytest.raises(ValueError, match="batch_size: 10 exceeds the 4 examples"):
        check_data(RunConfig(batch_size=10), np.zeros((4, 2)), np.zeros(4, int))


def test_the_field_checks_are_public_and_read_registries():
    config.check_choice("optimizer", "adam", updates.OPTIMIZERS)  # a dict: its names
    with pytest.raises(
        ValueError,
        match="optimizer: unknown value 'lbfgs'; choose one of sgd, momentum, adam, rmsprop$",
    ):
        config.check_choice("optimizer", "lbfgs", updates.OPTIMIZERS)
    with pytest.raises(ValueError, match=r"core: unknown value \['rnn'\]"):
        config.check_choice("core", ["rnn"], {"rnn": None})  # unhashable: still a ValueError
    config.check_number("hidden", 3, integer=True, low=1)
    with pytest.raises(ValueError, match="hidden: 0 must be >= 1"):
        config.check_number("hidden", 0, integer=True, low=1)
    with pytest.raises(ValueError, match="eta: inf is not finite"):
        config.check_number("eta", math.inf, nonneg=True)
