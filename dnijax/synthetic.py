"""Synthetic-gradient (SG) modules: which layers carry one, their init and apply.

An SG module ``M_i`` maps a layer's output ``h_i`` (and, when conditioned, the
target vector ``y`` concatenated to it) to ``d_i``, an estimate of the
per-example gradient ``dl_b/dh_i``. A module is a list of dense layers: ReLU
hidden layers then a linear layer (no hidden sizes = a linear module).

The SG parameters of a network are a list with one entry per network layer:
the module's layer list for layers in the SG set S, ``None`` for the others.

See ``docs/math.md``, "Synthetic gradients (DNI)".

Example:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import synthetic
  >>> spec = synthetic.SGSpec("paper", conditioned=False)
  >>> sgs = synthetic.init_sg_modules(jax.random.key(0), (2, 8, 8, 1), spec, cond_dim=1)
  >>> [m is None for m in sgs]
  [False, False, True]
  >>> float(jnp.abs(synthetic.apply_sg(sgs[0], jnp.ones((4, 8)))).max())  # zero init
  0.0
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from dnijax import nets

TOPOLOGIES = ("paper", "seed")
SG_INITS = ("zero", "network")

SGParams = list  # list[list[dict[str, jax.Array]] | None]


class SGSpec(NamedTuple):
    """Static description of the SG modules of a DNI network.

    Attributes:
      topology: ``paper`` (layers 1..L-1 carry SG modules, the output layer learns
        from the true gradient) or ``seed`` (every layer, the output layer too).
      conditioned: feed the target vector ``y`` to the modules too (cDNI).
      hidden: hidden-layer sizes of each module (empty = linear).
      init: ``zero`` (last layer zero, so the first synthetic gradient is 0) or
        ``network`` (every layer initialised like the network).
      bias: whether module layers have biases.
    """

    topology: str = "paper"
    conditioned: bool = False
    hidden: tuple[int, ...] = ()
    init: str = "zero"
    bias: bool = True


def sg_layers(n_layers: int, topology: str) -> tuple[bool, ...]:
    """Which of the layers 1..L carry an SG module (the set S) as a bool per layer."""
    if topology == "paper":
        return (True,) * (n_layers - 1) + (False,)
    if topology == "seed":
        return (True,) * n_layers
    raise ValueError(f"unknown topology {topology!r}; choose one of {TOPOLOGIES}")


def init_sg_module(key: jax.Array, width: int, cond_dim: int, spec: SGSpec,
                   net_init: str = "normal", scale: float = 0.2, shift: float = -0.1,
                   dtype: Any = jnp.float32) -> list[dict[str, jax.Array]]:
    """Initialises one SG module for a layer of ``width`` units.

    With ``spec.init == "zero"`` hidden layers are He-normal and the last layer
    is zero; with ``"network"`` every layer uses the network's init scheme.
    """
    sizes = (width + (cond_dim if spec.conditioned else 0),) + tuple(spec.hidden) + (width,)
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for j, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        last = j == len(sizes) - 2
        if spec.init == "network":
            init = net_init
        elif spec.init == "zero":
            init = "zeros" if last else "he"
        else:
            raise ValueError(f"unknown SG init {spec.init!r}; choose one of {SG_INITS}")
        layers.append(nets.init_layer(k, a, b, init, scale, shift, spec.bias, dtype))
    return layers


def init_sg_modules(key: jax.Array, widths: Sequence[int], spec: SGSpec, cond_dim: int,
                    net_init: str = "normal", scale: float = 0.2, shift: float = -0.1,
                    dtype: Any = jnp.float32) -> SGParams:
    """SG modules for a network of widths ``(n_0, ..., n_L)``; ``None`` outside S."""
    in_s = sg_layers(len(widths) - 1, spec.topology)
    keys = jax.random.split(key, len(in_s))
    return [init_sg_module(k, w, cond_dim, spec, net_init, scale, shift, dtype) if s else None
            for k, w, s in zip(keys, widths[1:], in_s)]


def apply_sg(module: list[dict[str, jax.Array]], h: jax.Array,
             cond: jax.Array | None = None) -> jax.Array:
    """The synthetic gradient ``d = M([h, cond])`` for a batch (one row per example)."""
    a = h if cond is None else jnp.concatenate([h, cond.astype(h.dtype)], axis=-1)
    for j, layer in enumerate(module):
        act = "identity" if j == len(module) - 1 else "relu"
        a = nets.apply_layer(layer, a, act)[1]
    return a
