"""Truncated-BPTT training on the copy tasks: windows, the curriculum, the update rules."""

import jax
import numpy as np
import pytest

from dnijax import bptt

SMALL = dict(core="rnn", hidden=6, window=2, max_length=4, batch_size=4, episodes=6,
             log_every=3)


def _run(cfg, n=2, seed=0, **values):
    return bptt.run(cfg, bptt.stack_hyper(cfg, n, **values),
                    jax.random.split(jax.random.key(seed), n))


@pytest.mark.parametrize("fields,message", [
    (dict(regime="sign"), "regime"), (dict(regime="dni", core="gru"), "core"),
    (dict(window=0), "window"), (dict(start_length=5, max_length=4), "start_length"),
    (dict(task="sort"), "task"), (dict(episodes=10, log_every=3), "log_every"),
    (dict(threshold=0.0), "threshold"),
])
def test_bad_settings_get_one_line_errors(fields, message):
    with pytest.raises(ValueError, match=message) as err:
        bptt.SequenceConfig(**fields)
    assert "\n" not in str(err.value)


def test_only_the_windows_of_the_sequence_update():
    # length 1 (3 steps: pattern, delimiter, answer) padded to 10 steps = 5 windows of 2:
    # windows 0 and 1 hold the sequence, 2..4 are padding and must change nothing
    cfg = bptt.SequenceConfig(regime="dni", threshold=1e-9, **SMALL)
    res = _run(cfg)
    assert res.history["length"].tolist() == [[1, 1]] * 2   # never solved
    np.testing.assert_array_equal(res.state.step, [2 * 6] * 2)


@pytest.mark.parametrize("regime", ["backprop", "dni+noise"])
def test_the_curriculum_lengthens_solved_sequences(regime):
    cfg = bptt.SequenceConfig(regime=regime, threshold=1e9, **SMALL)  # everything passes
    res = _run(cfg)
    assert res.history["length"].tolist() == [[4, 4]] * 2   # 1 -> 4 in 3 episodes
    assert res.solved.tolist() == [4, 4] and (res.diverged_at == -1).all()


def test_runs_are_reproducible_and_learning_lowers_the_error():
    # length 2 (5 steps) in one window of 6: learnable by the window's own gradient
    cfg = bptt.SequenceConfig(regime="dni", core="lstm", hidden=16, window=6, max_length=2,
                              start_length=2, batch_size=16, episodes=200, log_every=50,
                              lr=1e-2)
    a, b = _run(cfg), _run(cfg)
    np.testing.assert_array_equal(a.history["error_bits"], b.history["error_bits"])
    err = a.history["error_bits"]
    assert (err[:, -1] < 0.8 * err[:, 0]).all(), err


def test_a_divergent_run_is_frozen_and_recorded():
    cfg = bptt.SequenceConfig(regime="backprop", optimizer="sgd", threshold=1e-9, **SMALL)
    res = _run(cfg, lr=[0.1, 3e38])
    assert res.diverged_at[0] == -1 and res.diverged_at[1] >= 0
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(res.state.net))


@pytest.mark.parametrize("row", [2, 5])  # backprop+noise; dni+noise, momentum, clip
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
