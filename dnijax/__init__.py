"""dnijax: backprop, synthetic gradients (DNI) and gradient noise, compared properly in JAX.

The public API is re-exported here; see the README for a tour and ``docs/math.md``
for the mathematics.
"""

import importlib.metadata

from dnijax import (
    bptt,
    config,
    engine,
    kinds,
    nets,
    noise,
    recurrent,
    signals,
    synthetic,
    train,
    updates,
)
from dnijax.config import REGIMES, Hyper, Program, RunConfig, check_data, parse_regime
from dnijax.noise import add_blog_noise, gradient_noise
from dnijax.train import TrainState, init_state, train_step
from dnijax.updates import async_gate, update_rule

__all__ = [
    "REGIMES",
    "Hyper",
    "Program",
    "RunConfig",
    "TrainState",
    "add_blog_noise",
    "async_gate",
    "bptt",
    "check_data",
    "config",
    "engine",
    "gradient_noise",
    "init_state",
    "kinds",
    "nets",
    "noise",
    "parse_regime",
    "recurrent",
    "signals",
    "synthetic",
    "train",
    "train_step",
    "update_rule",
    "updates",
]
__version__ = importlib.metadata.version("dnijax")  # pyproject.toml's, the one place
