"""Synthetic-gradient (SG) modules: which layers carry one, their init and apply.

An SG module ``M_i`` maps a layer's output ``h_i`` (and, when conditioned, the
target vector ``y`` concatenated to it) to ``d_i``, an estimate of the
per-example gradient ``dl_b/dh_i``. A module is a list of layers, dense for a
block that outputs vectors and SAME convolutions for one that outputs images
(H, W, C): ReLU hidden layers then a linear layer (no hidden sizes = a linear
module). A conditioned module on images gets the target vector as extra channels.

The SG parameters of a network are a list with one entry per network layer:
the module's layer list for layers in the SG set S, ``None`` for the others.

See ``docs/math.md``, "Synthetic gradients (DNI)".

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import synthetic
  >>> spec = synthetic.SGSpec("paper", conditioned=False)
  >>> sgs = synthetic.init_sg_modules(jax.random.key(0), [(8,), (8,), (1,)], spec, 1)
  >>> [m is None for m in sgs]
  [False, False, True]
  >>> float(jnp.abs(synthetic.apply_sg(sgs[0], jnp.ones((4, 8)))).max())  # zero init
  0.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dnijax import layers, registry

Topology = Callable[[int], Sequence[bool]]

TOPOLOGIES: dict[str, Topology] = {
    "paper": lambda n_layers: (True,) * (n_layers - 1) + (False,),
    "seed": lambda n_layers: (True,) * n_layers,
}
"""The SG topologies by name: ``topology(n_layers)`` is one flag per layer 1..L, whether
it carries an SG module. Add one with :func:`register_topology`."""
BUILTIN_TOPOLOGIES = tuple(TOPOLOGIES)
SG_INITS = ("zero", "network")

SGParams = list  # list[list[dict[str, jax.Array]] | None]


SG_TARGETS = ("per_example", "batch")


class SGSpec(NamedTuple):
    """Static description of the SG modules of a DNI network.

    Attributes:
      topology: ``paper`` (layers 1..L-1 carry SG modules, the output layer learns
        from the true gradient), ``seed`` (every layer, the output layer too) or one
        added with :func:`register_topology`.
      conditioned: feed the target vector ``y`` to the modules too (cDNI).
      hidden: hidden-layer sizes of each module (empty = linear).
      init: ``zero`` (last layer zero, so the first synthetic gradient is 0) or
        ``network`` (every layer initialised like the network).
      bias: whether module layers have biases.
      kernel: the kernel size of a convolutional module (the DNI paper's is 5).
      target: what a module regresses onto (``docs/math.md``, "SG target scale"):
        ``per_example`` (the per-example gradient ``dl_b/dh_i``) or ``batch`` (the
        gradient of the batch loss, ``dJ/dh_i``: ``1/B`` times smaller under ``mean``).
      scale: the factor ``a`` on a synthetic gradient wherever it is used as a gradient,
        in its block's update and in the bootstrapped target of the block below
        (``docs/math.md``, "SG scale"; 1 is the plain rule, recurrent reimplementations
        of the DNI paper use 0.1).
    """

    topology: str = "paper"
    conditioned: bool = False
    hidden: tuple[int, ...] = ()
    init: str = "zero"
    bias: bool = True
    kernel: int = 5
    target: str = "per_example"
    scale: float = 1.0


def register_topology(name: str, topology: Topology) -> None:
    """Adds the SG topology ``name``: ``topology(n_layers)`` returns one bool per layer
    1..L, whether it carries an SG module (the set S). Only the output layer may be
    outside S (it then learns from the true gradient with its input held constant,
    :func:`dnijax.signals.dni_signals`); :func:`sg_layers` refuses other sets.

    Examples:
      >>> from dnijax import RunConfig, synthetic
      >>> synthetic.register_topology("all-but-last", lambda n: [True] * (n - 1) + [False])
      >>> cfg = RunConfig(regime="dni", topology="all-but-last")
      >>> synthetic.sg_layers(3, cfg.topology)
      (True, True, False)
      >>> synthetic.unregister_topology("all-but-last")
    """
    registry.add(TOPOLOGIES, BUILTIN_TOPOLOGIES, "topology", name, topology)


def unregister_topology(name: str) -> None:
    """Removes a topology added with :func:`register_topology` (built-ins stay)."""
    registry.remove(TOPOLOGIES, BUILTIN_TOPOLOGIES, name)


def sg_layers(n_layers: int, topology: str) -> tuple[bool, ...]:
    """Which of the layers 1..L carry an SG module (the set S) as a bool per layer: the
    topology ``topology`` of :data:`TOPOLOGIES`."""
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}")
    flags = tuple(bool(f) for f in TOPOLOGIES[topology](n_layers))
    if len(flags) != n_layers:
        raise ValueError(
            f"topology: {topology!r} gives {len(flags)} flags for {n_layers} "
            "layers; give one per layer"
        )
    if not all(flags[:-1]):
        raise ValueError(
            f"topology: {topology!r} gives layer {flags.index(False) + 1} of "
            f"{n_layers} no SG module; only the output layer may go without one"
        )
    return flags


def init_sg_module(
    key: jax.Array,
    shape: Sequence[int],
    cond_dim: int,
    spec: SGSpec,
    *,
    net_init: str = "normal",
    scale: float = 0.2,
    shift: float = -0.1,
    dtype: Any = jnp.float32,
) -> list[dict[str, jax.Array]]:
    """Initialises one SG module for a block whose output has per-example ``shape``:
    dense layers for a vector ``(n,)``, SAME convolutions of ``spec.kernel`` for an
    image ``(H, W, C)`` (hidden sizes are then channel counts).

    With ``spec.init == "zero"`` hidden layers are He-normal and the last layer
    is zero; with ``"network"`` every layer uses the network's init scheme.
    """
    shape = tuple(shape)
    if len(shape) not in (1, 3):
        raise ValueError(
            f"SG modules take block outputs of shape (n,) or (H, W, C), not "
            f"{shape}; end the block with flatten, or put no SG module there"
        )
    sizes = (shape[-1] + (cond_dim if spec.conditioned else 0),) + tuple(spec.hidden) + (shape[-1],)
    keys = jax.random.split(key, len(sizes) - 1)
    module = []
    for j, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
        last = j == len(sizes) - 2
        if spec.init == "network":
            init = net_init
        elif spec.init == "zero":
            init = "zeros" if last else "he"
        else:
            raise ValueError(f"unknown SG init {spec.init!r}; choose one of {', '.join(SG_INITS)}")
        layer = (
            layers.dense(b, spec.bias, init, scale, shift)
            if len(shape) == 1
            else layers.conv2d(b, spec.kernel, 1, spec.bias, init, scale, shift)
        )
        module.append(layer.init(k, shape[:-1] + (a,), dtype)[1])
    return module


def init_sg_modules(
    key: jax.Array,
    shapes: Sequence[Sequence[int]],
    spec: SGSpec,
    cond_dim: int,
    *,
    net_init: str = "normal",
    scale: float = 0.2,
    shift: float = -0.1,
    dtype: Any = jnp.float32,
) -> SGParams:
    """SG modules for a network whose blocks output per-example ``shapes`` (for an MLP
    of widths ``(n_0, ..., n_L)``: ``[(n_1,), ..., (n_L,)]``); ``None`` outside S."""
    in_s = sg_layers(len(shapes), spec.topology)
    keys = jax.random.split(key, len(in_s))
    return [
        init_sg_module(
            k, s, cond_dim, spec, net_init=net_init, scale=scale, shift=shift, dtype=dtype
        )
        if inside
        else None
        for k, s, inside in zip(keys, shapes, in_s, strict=True)
    ]


def apply_sg(
    module: list[dict[str, jax.Array]], h: jax.Array, cond: jax.Array | None = None
) -> jax.Array:
    """The synthetic gradient ``d = M([h, cond])`` for a batch (leading axis: examples).

    For an image batch ``h`` (B, H, W, C), ``cond`` (B, K) is repeated over every pixel
    as K extra channels (cDNI for convolutions)."""
    a = h
    if cond is not None:
        cond = cond.astype(h.dtype).reshape(cond.shape[:1] + (1,) * (h.ndim - 2) + (-1,))
        a = jnp.concatenate([h, jnp.broadcast_to(cond, h.shape[:-1] + cond.shape[-1:])], axis=-1)
    for j, layer in enumerate(module):
        if layer["w"].ndim == 4:
            kernel = layer["w"].shape[0]
            a = layers.conv2d(layer["w"].shape[-1], kernel, 1, "b" in layer).apply(layer, a)
        else:
            a = layers.dense(layer["w"].shape[-1], "b" in layer).apply(layer, a)
        if j < len(module) - 1:
            a = jax.nn.relu(a)
    return a
