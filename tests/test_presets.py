"""Presets: per-seed data and weights depend on the seed alone, however many seeds are asked
for and however the runs are blocked."""

import numpy as np
import pytest

from dnijax.experiments import presets


@pytest.mark.parametrize("preset", ["tuned", "seed"])
def test_a_seeds_data_do_not_depend_on_how_many_seeds_are_made(preset):
    _, few = presets.grid_inputs(preset, 2)
    _, more = presets.grid_inputs(preset, 5, copies=2)
    for a, b in zip(few["data"] + few["test"], more["data"] + more["test"], strict=True):
        np.testing.assert_array_equal(a, b[:2])
        np.testing.assert_array_equal(b[:5], b[5:])  # the copies are the same seeds
    if preset == "seed":
        np.testing.assert_array_equal(few["net"][0]["w"], more["net"][0]["w"][:2])


def test_data_made_on_every_core_are_the_seeds_data(monkeypatch):
    _, serial = presets.grid_inputs("tuned", 4)
    monkeypatch.setattr(presets, "PARALLEL_SEEDS", 2)
    _, parallel = presets.grid_inputs("tuned", 4)
    for a, b in zip(
        serial["data"] + serial["test"], parallel["data"] + parallel["test"], strict=True
    ):
        np.testing.assert_array_equal(a, b)
