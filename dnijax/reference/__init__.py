"""The numpy reference: every derivative written out by hand, no autodiff, no JAX.

The tests and ``dnijax validate`` (:mod:`dnijax.validate`) hold the JAX implementation
to it in float64 (``docs/math.md``, "Numerical agreement"). Four modules, numpy only:

* :mod:`dnijax.reference.layers`: every built-in layer kind, blocks and SG modules,
  forward and backward;
* :mod:`dnijax.reference.mlp`: the four regimes on feed-forward networks of those
  layers (signals, clipping, noise, optimisers, trajectories);
* :mod:`dnijax.reference.rules`: the signal rules ``fa``, ``dfa`` and ``fwdgrad`` on
  those networks (their fixed matrices and directions given as inputs);
* :mod:`dnijax.reference.rnn`: truncated BPTT with and without synthetic gradients for a
  tanh RNN.

The feed-forward functions are re-exported here (``reference.trajectory`` is
:func:`dnijax.reference.mlp.trajectory`). To replace one for a test, patch it in the
module that defines it (``reference.mlp``, ``reference.layers``, ``reference.rules``):
that is where the others look it up.

Examples:
  >>> from dnijax import reference
  >>> reference.OPTIMIZERS
  ('sgd', 'momentum', 'adam')
  >>> reference.trajectory is reference.mlp.trajectory
  True
"""

from dnijax.reference import layers, mlp, rnn, rules
from dnijax.reference.mlp import (
    ADAM_B1,
    ADAM_B2,
    ADAM_EPS,
    LOSSES,
    MOMENTUM,
    OPTIMIZER_RULES,
    OPTIMIZERS,
    TOPOLOGIES,
    OptimizerRule,
    Params,
    adam_step,
    backprop_grads,
    batch_scale,
    bce,
    blog_noise_std,
    clip_by_global_norm,
    dni_grads,
    effective_blocks,
    forward,
    init_optimizer,
    loss_and_output_grad,
    momentum_step,
    mse,
    optimizer_step,
    paper_noise_std,
    sg_set,
    sgd_step,
    signals,
    trajectory,
    tree_leaves,
    tree_map,
    xent,
)
from dnijax.reference.rules import dfa_grads, fa_grads, fwdgrad_grads

__all__ = [
    "ADAM_B1",
    "ADAM_B2",
    "ADAM_EPS",
    "LOSSES",
    "MOMENTUM",
    "OPTIMIZERS",
    "OPTIMIZER_RULES",
    "TOPOLOGIES",
    "OptimizerRule",
    "Params",
    "adam_step",
    "backprop_grads",
    "batch_scale",
    "bce",
    "blog_noise_std",
    "clip_by_global_norm",
    "dfa_grads",
    "dni_grads",
    "effective_blocks",
    "fa_grads",
    "forward",
    "fwdgrad_grads",
    "init_optimizer",
    "layers",
    "loss_and_output_grad",
    "mlp",
    "momentum_step",
    "mse",
    "optimizer_step",
    "paper_noise_std",
    "rnn",
    "rules",
    "sg_set",
    "sgd_step",
    "signals",
    "trajectory",
    "tree_leaves",
    "tree_map",
    "xent",
]
