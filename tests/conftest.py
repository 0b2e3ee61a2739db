"""Shared fixtures: small data sets and configs that keep the suite fast."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def blobs():
    """Two separable Gaussian blobs in 2-D: 128 points, labels 0/1."""
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 2, 128)
    x = rng.randn(128, 2) * 0.7 + np.where(labels[:, None] == 1, 1.0, -1.0)
    return x.astype(np.float32), labels.astype(np.int32)
