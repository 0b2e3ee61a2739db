"""Holds the JAX implementation to the hand-derived numpy reference.

This is the one library module that imports :mod:`dnijax.reference` (besides
the tests): it runs both on the same data, initial parameters, noise
realisation and update masks, and reports relative errors. The JAX side draws
the noise and the masks; the reference adds the same numbers (SPEC.md).

Relative error of two trees: the largest, over leaves, of
``||a - b||_F / ||b||_F`` (0 when both are exactly zero).

Example:
  >>> import jax
  >>> from dnijax import RunConfig, validate
  >>> with jax.enable_x64(True):
  ...     cfg = RunConfig(regime="dni", widths=(3, 6, 6, 1), lr=0.1, dtype="float64",
  ...                     activations=("tanh", "relu", "sigmoid"), steps=5, reduction="mean")
  ...     errors = validate.compare(cfg, *validate.random_data(cfg, 8, 0), jax.random.key(0))
  >>> errors["grad"] < 1e-9 and errors["params"] < 1e-7
  True
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dnijax import noise as noise_lib
from dnijax import reference, train
from dnijax.config import RunConfig

GRAD_TOL = 1e-9
PARAM_TOL = 1e-7


def to_numpy(tree: Any, dtype: Any = np.float64) -> Any:
    """A JAX tree as numpy arrays of ``dtype`` (``None`` entries kept)."""
    return jax.tree.map(lambda a: np.asarray(a, dtype), tree)


def rel_error(a: Any, b: Any) -> float:
    """``max over leaves ||a - b|| / ||b||`` (``b`` is the reference)."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        num, den = np.linalg.norm(x - y), np.linalg.norm(y)
        worst = max(worst, 0.0 if num == 0 else (num / den if den > 0 else np.inf))
    return float(worst)


def random_data(config: RunConfig, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs and uniformly drawn labels that fit ``config``."""
    rng = np.random.RandomState(seed)
    n_classes = 2 if config.widths[-1] == 1 else config.widths[-1]
    return rng.randn(batch, config.widths[0]), rng.randint(0, n_classes, batch)


def reference_settings(config: RunConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`reference.step` for a config."""
    return dict(activations=config.activations, loss=config.loss, reduction=config.reduction,
                lr=config.lr, sg_lr=config.sg_lr, topology=config.topology,
                conditioned=config.conditioned, clip=config.clip)


def _noise_state(opt_state: Any) -> Any:
    for s in opt_state:
        if isinstance(s, (noise_lib.BlogNoiseState, optax.AddNoiseState)):
            return s
    raise ValueError("no noise transform in this update rule")


@functools.partial(jax.jit, static_argnums=(0, 4))
def _realised(program: train.Program, hyper, state: train.TrainState, template, steps: int):
    """Per-step noise added to the network's and SG modules' gradients, and update masks."""
    def noise_seq(opt_state, params):
        if program.noise is None or not train.has_params(params):
            return None
        tx = noise_lib.flat_gradient_noise(program.noise, hyper.eta, hyper.gamma,
                                          jax.random.key(0))
        zeros = jax.tree.map(jnp.zeros_like, params)
        return jax.lax.scan(lambda s, _: tx.update(zeros, s)[::-1], _noise_state(opt_state),
                            None, length=steps)[1]

    def mask_step(key, _):
        key, _, mask_key = train.step_keys(key)
        return key, train.layer_mask(mask_key, hyper.update_prob, len(template))

    masks = jax.lax.scan(mask_step, state.key, None, length=steps)[1]
    return noise_seq(state.net_opt, state.net), noise_seq(state.sg_opt, state.sg), masks


def _per_step(tree: Any, steps: int) -> list | None:
    if tree is None:
        return None
    return [jax.tree.map(lambda a: a[t], tree) for t in range(steps)]


def compare(config: RunConfig, x: np.ndarray, labels: np.ndarray, key: jax.Array,
            steps: int | None = None) -> dict[str, float]:
    """Runs JAX and the reference side by side from the same start.

    Args:
      config: the run; must use ``sgd`` and full batches. Its dtype is the JAX
        side's; the reference always computes in float64.
      x, labels: the data.
      key: PRNG key for initial parameters, noise and masks.
      steps: trajectory length (default ``config.steps``).

    Returns:
      ``{"grad": ..., "params": ..., "loss": ...}``: relative errors of every
      gradient of the first step, of all parameters after ``steps`` steps, and of
      the losses along the way.
    """
    if config.optimizer != "sgd" or config.batch_size is not None:
        raise ValueError("validate: the reference implements full-batch SGD only")
    steps = config.steps if steps is None else steps
    data = train.make_data(config, x, labels)
    program = train.program_of(config)._replace(log_every=steps)
    hyper = config.hyper()
    state = train.init_state(config, key, hyper, program=program)

    sig = jax.jit(train.signals, static_argnums=0)(program, state, data.x, data.y)
    x64, y64 = np.asarray(data.x, np.float64), np.asarray(data.y, np.float64)
    net0, sg0 = to_numpy(state.net), to_numpy(state.sg)
    settings = reference_settings(config)
    _, _, info = reference.step(config.regime, net0, sg0, x64, y64, **settings)
    grad_err = rel_error(sig.net_grads, info["net_grads"])
    if config.is_dni:
        grad_err = max(grad_err, rel_error(sig.sg_grads, info["sg_grads"]))

    net_noise, sg_noise, masks = _realised(program, hyper, state, state.net, steps)
    final, hist = train._run_records_jit(program, hyper, state, data, 1)
    ref_net, ref_sg, ref_losses = reference.trajectory(
        config.regime, net0, sg0, x64, y64, steps,
        net_noises=_per_step(to_numpy(net_noise), steps),
        sg_noises=_per_step(to_numpy(sg_noise), steps),
        masks=np.asarray(masks) if program.async_updates else None, **settings)
    param_err = rel_error(final.net, ref_net)
    if config.is_dni:
        param_err = max(param_err, rel_error(final.sg, ref_sg))
    loss_err = rel_error(np.asarray(hist["loss"][:1]), np.asarray(ref_losses[:1]))
    return {"grad": grad_err, "params": param_err, "loss": loss_err,
            "diverged": bool(final.diverged_at >= 0)}
