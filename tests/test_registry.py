"""The registries' shared rules: names checked, built-ins protected, no stale programs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import RunConfig, engine, nets, registry


def test_a_name_is_registered_once_until_it_is_removed():
    table, builtins = {"sgd": min}, ("sgd",)
    registry.add(table, builtins, "optimizer", "mine", max)
    registry.add(table, builtins, "optimizer", "mine", max)  # the same entry again: fine
    with pytest.raises(ValueError, match="'mine' is already registered; unregister it first"):
        registry.add(table, builtins, "optimizer", "mine", len)
    with pytest.raises(ValueError, match="not a valid name"):
        registry.add(table, builtins, "optimizer", "", len)
    registry.remove(table, builtins, "sgd")  # built in: stays
    registry.remove(table, builtins, "mine")
    assert table == {"sgd": min}


def test_a_name_registered_again_runs_its_new_function():
    """A compiled program names its loss; after unregister, the same name with another
    function must not reuse the program compiled for the old one."""
    x = np.random.RandomState(0).randn(16, 2).astype("float32")
    labels = (x[:, 0] > 0).astype("int32")
    finals = []
    for scale in (1.0, 100.0):
        nets.register_loss("scaled", lambda out, y, s=scale: s * jnp.sum((out - y) ** 2, -1))
        try:
            cfg = RunConfig(loss="scaled", widths=(2, 3, 1), steps=2, log_every=1)
            _, history = engine.run_one(cfg, x, labels, jax.random.key(0))
            finals.append(float(history["loss"][0]))
        finally:
            nets.unregister_loss("scaled")
    assert finals[1] == pytest.approx(100 * finals[0], rel=1e-5)
