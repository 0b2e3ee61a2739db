"""Shared fixtures: small data sets and configs that keep the suite fast.

The suite keeps compiled programs in the CLI's persistent cache (``DNIJAX_CACHE``, default
``~/.cache/dnijax/xla``; empty: off), set here before JAX starts, so the xdist workers and
the processes that tests start share the programs they compile instead of compiling each
again; results do not depend on it (a cached program is the same program).
"""

import os

import numpy as np
import pytest

_CACHE = os.environ.get(
    "DNIJAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "dnijax", "xla")
)
if _CACHE:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # as the CLI

# Most of the suite's time is XLA compiling small programs. XLA's cheaper backend passes
# halve that (the default compare: 4.2 -> 2.1 s before its first step) and change results
# only in the last bits, inside every tolerance the tests hold (float64 agreement with the
# numpy reference is asserted at 1e-9 and tighter, never bit for bit). Tests that hold
# user-visible output to the last digit (the README's transcripts) run their commands without
# these flags (the user's own are kept in ``DNIJAX_USER_XLA_FLAGS``). DNIJAX_TEST_XLA_FAST=0
# runs the whole suite at XLA's defaults.
FAST_XLA = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
FAST = os.environ.get("DNIJAX_TEST_XLA_FAST", "1") != "0"
if FAST and "DNIJAX_USER_XLA_FLAGS" not in os.environ:
    os.environ["DNIJAX_USER_XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (os.environ["DNIJAX_USER_XLA_FLAGS"] + " " + FAST_XLA).strip()


@pytest.fixture(scope="session")
def blobs():
    """Two separable Gaussian blobs in 2-D: 128 points, labels 0/1."""
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 2, 128)
    x = rng.randn(128, 2) * 0.7 + np.where(labels[:, None] == 1, 1.0, -1.0)
    return x.astype(np.float32), labels.astype(np.int32)
