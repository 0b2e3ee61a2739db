"""dnijax: backprop, synthetic gradients (DNI) and gradient noise, compared properly in JAX.

The public API is re-exported here; see the README for a tour.
"""

from dnijax import config, nets, noise, regimes, synthetic, train
from dnijax.config import REGIMES, Hyper, RunConfig, check_data
from dnijax.noise import add_blog_noise, gradient_noise, update_rule
from dnijax.train import Program, TrainState, init_state, program_of, train_step

__all__ = [
    "REGIMES", "Hyper", "Program", "RunConfig", "TrainState", "add_blog_noise", "check_data",
    "config", "gradient_noise", "init_state", "nets", "noise", "program_of", "regimes",
    "synthetic", "train", "train_step", "update_rule",
]
__version__ = "0.1.0"
