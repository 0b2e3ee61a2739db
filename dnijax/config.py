"""What a run is: a frozen, validated description of everything it depends on.

A :class:`RunConfig` is checked when it is built: every bad value raises a
``ValueError`` whose message names the field, the value and what is allowed,
before anything is compiled. Data are checked against it by :func:`check_data`.
A config splits into a :class:`Program` (the structure: everything that changes
the compiled code) and a :class:`Hyper` (the numbers, as arrays: one program
serves every value). A regime name is parsed here, and only here, into a signal
rule (:mod:`dnijax.signals`) and whether the update rule adds noise.

Examples:
  >>> from dnijax import RunConfig
  >>> cfg = RunConfig(regime="dni", widths=(2, 16, 16, 1), lr=0.5)
  >>> [layer.kind for block in cfg.net_spec.blocks for layer in block.layers]
  ['dense', 'sigmoid', 'dense', 'sigmoid', 'dense', 'sigmoid']
  >>> RunConfig(regime="dnl")  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ...
  ValueError: regime: unknown value 'dnl'; choose one of backprop, dni, fa, dfa, fwdgrad, ...
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from typing import Any, NamedTuple, cast

import jax.numpy as jnp
import numpy as np

from dnijax import copy_task, nets, noise, recurrent, signals, synthetic, updates
from dnijax import layers as layers_lib

REGIMES = ("backprop", "dni", "backprop+noise", "dni+noise")  # the article's four
DTYPES = ("float32", "float64")
NOISE_TO = ("all", "network")
NOISE_SUFFIX = "+noise"


def regime_names() -> tuple[str, ...]:
    """Every regime of the registered signal rules: each rule, then each rule with noise."""
    return tuple(signals.RULES) + tuple(r + NOISE_SUFFIX for r in signals.RULES)


def parse_regime(name: str) -> tuple[str, bool]:
    """``"dni+noise"`` -> ``("dni", True)``: the signal rule and whether noise is added."""
    noisy = isinstance(name, str) and name.endswith(NOISE_SUFFIX)
    rule = name[: -len(NOISE_SUFFIX)] if noisy else name
    if rule not in signals.RULES:
        raise ValueError(
            f"regime: unknown value {name!r}; choose one of {', '.join(regime_names())}"
        )
    return rule, noisy


def regime_name(rule: str, noisy: bool) -> str:
    """The inverse of :func:`parse_regime`."""
    return rule + (NOISE_SUFFIX if noisy else "")


class Hyper(NamedTuple):
    """The numeric hyperparameters of a run, as arrays: one program serves every value.

    Stack several (leading axis = runs) to vmap a sweep over them.
    """

    lr: Any
    sg_lr: Any
    eta: Any
    gamma: Any
    update_prob: Any
    clip: Any = float("inf")


class Program(NamedTuple):
    """The structure of a run: everything that changes the compiled code (hashable, so a
    static argument of ``jax.jit``). Built by :meth:`RunConfig.program`.

    Attributes:
      signal: the signal rule's name (:mod:`dnijax.signals`).
      widths: the input width, then the size of each block's output.
      net: the blocks (with their init), loss and reduction; sg: the SG modules
        (``None`` without them).
      init, init_scale, init_shift, bias, dtype: the network's init scheme (the SG
        modules' with ``sg_init="network"``) and dtype.
      noise: ``paper``/``blog``/``None``; noise_to_sg: whether the SG modules get it too;
      noise_before_clip: the order of noise and clipping.
      optimizer, batch_size, async_updates, train_hidden, log_every: the update rule
        and the loop.
      clip: whether to clip.
      kind: the network kind (:data:`dnijax.kinds.KINDS`): ``feedforward`` (MLPs and conv
        nets on rows of data) or ``recurrent`` (a recurrent core on a sequence task).
      sequence: the recurrent run's core, task and curriculum (``None`` for feed-forward).
      lr_decay_steps, lr_decay: the learning rates' step decay (``()``: constant).
    """

    signal: str
    widths: tuple[int, ...]
    net: nets.NetSpec
    init: str
    init_scale: float
    init_shift: float
    bias: bool
    sg: synthetic.SGSpec | None
    noise: str | None
    noise_to_sg: bool
    noise_before_clip: bool
    optimizer: str
    clip: bool
    batch_size: int | None
    async_updates: bool
    train_hidden: bool
    log_every: int
    dtype: str
    kind: str = "feedforward"
    sequence: recurrent.SequenceSpec | None = None
    lr_decay_steps: tuple[int, ...] = ()
    lr_decay: float = 0.1

    @property
    def jnp_dtype(self) -> Any:
        return jnp.float64 if self.dtype == "float64" else jnp.float32

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1

    @property
    def net_init(self) -> tuple:
        """What the network's initial weights depend on, the same in every regime: the
        arguments of :func:`dnijax.nets.init_network` after the key (feed-forward), or of
        :func:`dnijax.recurrent.init_network` (recurrent)."""
        if self.sequence is not None:
            seq = self.sequence
            return (seq.core, seq.n_in, seq.hidden, seq.n_out, self.jnp_dtype)
        return (self.net, self.jnp_dtype)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> None:
    """Raises a one-line ``ValueError`` naming the field ``name`` unless ``value`` is one of
    ``allowed`` (a tuple, or a registry dict: its names)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {', '.join(allowed)}")


def check_number(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    nonneg: bool = False,
    integer: bool = False,
    low: float | None = None,
) -> None:
    """Raises a one-line ``ValueError`` naming the field ``name`` unless ``value`` is a
    finite number (an integer with ``integer``), ``> 0`` with ``positive``, ``>= 0`` with
    ``nonneg`` and ``>= low`` with ``low``."""
    ok_type = (
        isinstance(value, (int, np.integer))
        if integer
        else isinstance(value, (int, float, np.integer, np.floating))
    )
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name}: {value!r} is not {kind}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: {value!r} is not finite; give a finite number")
    if positive and value <= 0:
        raise ValueError(f"{name}: {value!r} must be > 0")
    if nonneg and value < 0:
        raise ValueError(f"{name}: {value!r} must be >= 0")
    if low is not None and value < low:
        raise ValueError(f"{name}: {value!r} must be >= {low}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one training run depends on (apart from data and PRNG key).

    Attributes:
      regime: ``backprop``, ``dni``, ``backprop+noise`` or ``dni+noise`` (or a rule
        registered with :func:`dnijax.signals.register`, with or without ``+noise``).
      widths: layer widths ``(n_in, n_1, ..., n_out)`` of an MLP; L = len(widths) - 1
        layers. With ``layers``, only ``widths[0]`` (the input width) is read, and
        ``widths`` becomes the input width and each block's output size.
      activations: one name for every layer, or one per layer (MLPs; ignored with
        ``layers``).
      layers: any network, as a list of layers (:mod:`dnijax.layers`): dicts such as
        ``{"kind": "conv2d", "features": 8, "kernel": 3}`` or ``LayerSpec``s. The rows
        of the data are vectors; start with ``reshape`` to make them images. ``None``:
        the MLP of ``widths`` and ``activations``.
      bias: whether network layers have biases (the default of each dense and conv2d).
      init: ``normal`` (``init_scale * N(0,1) + init_shift``), ``zeros``, ``glorot``, ``he``
        or one of :func:`dnijax.layers.register_init` (the defaults of each dense and conv2d
        layer).
      loss, reduction: ``mse``/``xent``/``bce`` (or :func:`dnijax.nets.register_loss`) and
        ``mean``/``sum``.
      optimizer: ``sgd``, ``momentum``, ``adam``, ``rmsprop`` or one of
        :func:`dnijax.updates.register_optimizer`, for net and SG alike.
      lr: network learning rate; sg_lr: SG-module learning rate (default: ``lr``).
      lr_decay_steps, lr_decay: step decay of both learning rates: from each update count
        in ``lr_decay_steps`` on (0-based, increasing) they are multiplied by ``lr_decay``
        (``docs/math.md``, "Learning-rate decay"; the DNI paper's is ``/10`` at 300k and
        400k); ``()`` keeps them constant.
      topology, conditioned, sg_hidden, sg_init, sg_bias: the SG modules
        (``docs/math.md``, "Synthetic gradients (DNI)"; topologies of your own with
        :func:`dnijax.synthetic.register_topology`); sg_kernel: the kernel size of the
        convolutional SG modules of blocks that output images; sg_target: what the modules
        regress onto, ``per_example`` gradients or ``batch`` (the gradient of the batch
        loss, as PyTorch and TensorFlow DNI implementations do; ``docs/math.md``, "SG
        target scale"); sg_scale: the factor ``a`` on a synthetic gradient wherever it is
        used as a gradient (its block's update, the bootstrapped target below; 1 is the
        plain rule, 0.1 the recurrent reimplementations'; ``docs/math.md``, "SG scale").
      update_prob: probability that a layer (with its SG module) updates in a step
        (``docs/math.md``, "Asynchronous updates").
      train_hidden: ``False`` trains the output layer only (the DNI paper's "no backprop"
        baseline).
      noise: ``paper`` (optax.add_noise), ``blog`` or one of
        :func:`dnijax.noise.register_noise`; used by the ``+noise`` regimes.
      noise_to: ``all`` (network and SG modules, the article's choice) or ``network``.
      noise_before_clip: add the noise before the clipping instead of after it (the
        paper's order for its other tasks is after; it does not state it for MNIST).
      eta, gamma: noise schedule; clip: global-norm clipping before the noise.
      steps: training steps; batch_size: minibatch size (``None`` = full batch).
      log_every: steps between history records (``None``: about 100 records).
      dtype: ``float32`` or ``float64``.
      task: ``None`` (the network classifies rows of data: an MLP or ``layers``), or a
        sequence task of :mod:`dnijax.copy_task` (``copy``, ``repeat_copy``) learnt by a
        recurrent net with truncated BPTT (:mod:`dnijax.bptt`). Then ``steps`` counts
        episodes, ``batch_size`` is the sequences of one (``None``: 16), ``widths`` is set
        to the task's input width, ``hidden`` and its output width, and ``activations``
        is unused (the core has its own).
      core, hidden: the recurrent core (``rnn``, ``lstm``) and its width.
      window: the truncation ``T`` (time steps per window; one update per window).
      max_length, start_length, threshold: the length curriculum: an episode whose error
        (bits per target bit) is under ``threshold`` lengthens the next by one, from
        ``start_length`` up to ``max_length``; max_repeats: Repeat Copy's largest count.
      carry_state: ``False``: every episode starts from the zero state; ``True``: each
        batch lane is one stream, whose state carries over from an episode's last window
        to the next episode's first (``docs/math.md``, "Streams (``carry_state``)").
    """

    regime: str = "backprop"
    widths: tuple[int, ...] = (2, 10, 28, 1)
    activations: str | tuple[str, ...] = "sigmoid"
    layers: tuple | None = None
    bias: bool = True
    init: str = "normal"
    init_scale: float = 0.2
    init_shift: float = -0.1
    loss: str = "mse"
    reduction: str = "sum"
    optimizer: str = "sgd"
    lr: float = 0.01
    sg_lr: float | None = None
    lr_decay_steps: tuple[int, ...] = ()
    lr_decay: float = 0.1
    topology: str = "paper"
    conditioned: bool = False
    sg_hidden: tuple[int, ...] = ()
    sg_init: str = "zero"
    sg_bias: bool = True
    sg_kernel: int = 5
    sg_target: str = "per_example"
    sg_scale: float = 1.0
    update_prob: float = 1.0
    train_hidden: bool = True
    noise: str = "paper"
    noise_to: str = "all"
    noise_before_clip: bool = False
    eta: float = 0.01
    gamma: float = 0.55
    clip: float | None = None
    steps: int = 1000
    batch_size: int | None = None
    log_every: int | None = None
    dtype: str = "float32"
    task: str | None = None
    core: str = "lstm"
    hidden: int = 64
    window: int = 4
    max_length: int = 16
    start_length: int = 1
    threshold: float = 0.15
    max_repeats: int = 1
    carry_state: bool = False

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        parse_regime(self.regime)
        if self.task is not None:
            self._check_sequence(self.task)
        else:
            for name in SEQUENCE_ONLY:
                if getattr(self, name) != _DEFAULTS[name]:
                    raise ValueError(
                        f"{name}: {getattr(self, name)!r} is a sequence task's "
                        "setting; set task (e.g. copy) or leave it out"
                    )
        widths = tuple(self.widths) if isinstance(self.widths, (list, tuple)) else None
        if not widths or len(widths) < (1 if self.layers is not None else 2):
            raise ValueError(
                f"widths: {self.widths!r} must list at least an input and an "
                "output width, e.g. (2, 10, 1)"
            )
        for w in widths:
            check_number("widths", w, integer=True, low=1)
        widths = tuple(int(w) for w in widths)
        set_("widths", widths)
        acts = self.activations
        names = (acts,) if isinstance(acts, str) else tuple(acts)
        if self.layers is None:  # the MLP: one per layer (a layer list has its own)
            n_layers = len(widths) - 1
            if not isinstance(acts, str) and len(names) != n_layers:
                raise ValueError(
                    f"activations: {len(names)} given for {n_layers} layers; give "
                    "one name, or one per layer"
                )
            set_("activations", names * n_layers if isinstance(acts, str) else names)
        for a in names:
            check_choice("activations", a, nets.ACTIVATIONS)
        check_choice("init", self.init, nets.INITS)
        check_number("init_scale", self.init_scale, nonneg=True)
        check_number("init_shift", self.init_shift)
        check_choice("loss", self.loss, nets.LOSSES)
        check_choice("reduction", self.reduction, nets.REDUCTIONS)
        if self.layers is not None:
            set_("layers", layers_lib.parse_layers(self.layers))
            shapes = layers_lib.check_shapes(self.layers, (widths[0],))
            if len(shapes[-1]) != 1:
                raise ValueError(
                    f"layers: the last layer outputs shape {shapes[-1]}; the loss "
                    "needs vectors, so end with flatten and dense"
                )
            widths = (widths[0],) + tuple(math.prod(s) for s in nets.block_shapes(self.net_spec))
            set_("widths", widths)
        if self.loss == "xent" and widths[-1] < 2:
            raise ValueError(
                "loss: xent needs an output layer of at least 2 units; use bce "
                "or mse for a single output"
            )
        check_choice("optimizer", self.optimizer, updates.OPTIMIZERS)
        check_number("lr", self.lr, positive=True)
        if self.sg_lr is not None:
            check_number("sg_lr", self.sg_lr, positive=True)
        self._check_lr_decay()
        check_choice("topology", self.topology, synthetic.TOPOLOGIES)
        set_("sg_hidden", tuple(self.sg_hidden))
        for w in self.sg_hidden:
            check_number("sg_hidden", w, integer=True, low=1)
        check_number("sg_kernel", self.sg_kernel, integer=True, low=1)
        if self.uses_sg:
            in_s = synthetic.sg_layers(len(widths) - 1, self.topology)  # a topology's own check
        if self.layers is not None and self.uses_sg:
            for i, (shape, inside) in enumerate(
                zip(nets.block_shapes(self.net_spec), in_s, strict=True), 1
            ):
                if inside and len(shape) not in (1, 3):
                    raise ValueError(
                        f"layers: block {i} outputs shape {shape}, and SG modules "
                        "take vectors or images (H, W, C); end it with flatten"
                    )
        check_choice("sg_init", self.sg_init, synthetic.SG_INITS)
        check_choice("sg_target", self.sg_target, synthetic.SG_TARGETS)
        check_number("sg_scale", self.sg_scale, positive=True)
        check_number("update_prob", self.update_prob)
        if not 0 < self.update_prob <= 1:
            raise ValueError(f"update_prob: {self.update_prob!r} must be in (0, 1]")
        if self.update_prob < 1 and self.signal == "backprop":
            raise ValueError(
                "update_prob: asynchronous updates (< 1) need a rule whose "
                "layers learn apart (dni, fa, dfa, fwdgrad, ...), not backprop"
            )
        if not isinstance(self.train_hidden, bool):
            raise ValueError(f"train_hidden: {self.train_hidden!r} must be true or false")
        check_choice("noise", self.noise, noise.NOISES)
        check_choice("noise_to", self.noise_to, NOISE_TO)
        if not isinstance(self.noise_before_clip, bool):
            raise ValueError(f"noise_before_clip: {self.noise_before_clip!r} must be true or false")
        check_number("eta", self.eta, nonneg=True)
        check_number("gamma", self.gamma, nonneg=True)
        if self.clip is not None:
            check_number("clip", self.clip, positive=True)
        check_number("steps", self.steps, integer=True, low=1)
        if self.batch_size is not None:
            check_number("batch_size", self.batch_size, integer=True, low=1)
        log_every = default_log_every(self.steps) if self.log_every is None else self.log_every
        set_("log_every", log_every)
        check_number("log_every", log_every, integer=True, low=1)
        if self.steps % log_every:
            raise ValueError(
                f"log_every: {self.log_every} does not divide steps {self.steps}; pick a divisor"
            )
        check_choice("dtype", self.dtype, DTYPES)

    def _check_lr_decay(self) -> None:
        """The checks of ``lr_decay_steps`` and ``lr_decay``; makes the steps a tuple."""
        steps = self.lr_decay_steps
        if not isinstance(steps, (list, tuple)):
            raise ValueError(
                f"lr_decay_steps: {steps!r} must be a list of update counts, e.g. [300, 400]"
            )
        for s in steps:
            check_number("lr_decay_steps", s, integer=True, low=1)
        steps = tuple(int(s) for s in steps)
        if any(b <= a for a, b in zip(steps[:-1], steps[1:], strict=True)):
            raise ValueError(f"lr_decay_steps: {list(steps)} must increase strictly")
        object.__setattr__(self, "lr_decay_steps", steps)
        check_number("lr_decay", self.lr_decay, positive=True)
        if steps and self.update_prob < 1:
            raise ValueError(
                "lr_decay_steps: with update_prob < 1 each layer counts its own updates, "
                "so a decay step has no one meaning; use one or the other"
            )

    def _check_sequence(self, task: str) -> None:
        """The checks of a recurrent run (``task``, the set ``self.task``); sets its widths
        and batch size."""
        check_choice("task", task, copy_task.TASKS)
        rule = signals.RULES[self.signal]
        if rule.recurrent is None:
            how = (
                "it trains feed-forward (dense and conv) networks only"
                if self.signal in signals.BUILTIN_RULES
                else "register it with recurrent=... to train recurrent nets"
            )
            raise ValueError(
                f"regime: rule {self.signal!r} has no recurrent form ({how}); "
                "for a task choose one of "
                f"{', '.join(signals.recurrent_rules())}"
            )
        check_choice("core", self.core, recurrent.CORES)
        for name in ("hidden", "window", "max_length", "start_length", "max_repeats"):
            check_number(name, getattr(self, name), integer=True, low=1)
        if self.start_length > self.max_length:
            raise ValueError(
                f"start_length: {self.start_length} exceeds max_length {self.max_length}"
            )
        check_number("threshold", self.threshold, positive=True)
        if not isinstance(self.carry_state, bool):
            raise ValueError(f"carry_state: {self.carry_state!r} must be true or false")
        if self.layers is not None:
            raise ValueError(
                "layers: a sequence task's network is its recurrent core; set "
                "core and hidden instead"
            )
        widths = (copy_task.n_inputs(task), self.hidden, copy_task.n_outputs(task))
        acts = self.activations
        unsupported = [  # every regime's: a config is checked before any regime runs
            ("update_prob", self.update_prob != 1, "1"),
            ("train_hidden", self.train_hidden is not True, "true"),
            # the recurrent SG module: linear, zero-initialised, with C
            ("conditioned", bool(self.conditioned), "false"),
            ("sg_hidden", bool(tuple(self.sg_hidden)), "()"),
            ("sg_init", self.sg_init != "zero", "zero"),
            ("sg_bias", self.sg_bias is not True, "true"),
            (
                "max_repeats",
                self.task == "copy" and self.max_repeats != 1,
                "1 (Copy has no repeats; task repeat_copy has)",
            ),
            (
                "widths",
                tuple(self.widths) != _DEFAULTS["widths"]
                and (  # or a task's, replaced
                    len(self.widths) != 3 or (self.widths[0], self.widths[-1]) != widths[::2]
                ),
                "hidden (the task sets the input and output widths)",
            ),
            (
                "activations",
                any(a != "sigmoid" for a in ((acts,) if isinstance(acts, str) else tuple(acts))),
                "the default (the core has its own)",
            ),
        ]
        unsupported += [
            (
                name,
                getattr(self, name) != _DEFAULTS[name],
                f"{_DEFAULTS[name]!r} (the core has its own init)",
            )
            for name in ("bias", "init", "init_scale", "init_shift", "topology", "sg_kernel")
        ]
        for name, bad, fine in unsupported:
            if bad:
                raise ValueError(
                    f"{name}: {getattr(self, name)!r} has no recurrent form; "
                    f"use {fine} with a sequence task"
                )
        object.__setattr__(self, "widths", widths)
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", 16)

    @property
    def sequence(self) -> recurrent.SequenceSpec | None:
        """The recurrent run's core, task and curriculum (``None`` without ``task``)."""
        if self.task is None:
            return None
        return recurrent.SequenceSpec(
            self.task,
            self.max_repeats,
            self.core,
            self.hidden,
            self.window,
            self.max_length,
            self.start_length,
            float(self.threshold),
            cast(int, self.batch_size),  # __post_init__ sets it (16) for a task
            self.carry_state,
        )

    @property
    def signal(self) -> str:
        """The regime's signal rule, e.g. ``dni`` for ``dni+noise``."""
        return parse_regime(self.regime)[0]

    @property
    def noisy(self) -> bool:
        """Whether the regime adds gradient noise."""
        return parse_regime(self.regime)[1]

    @property
    def uses_sg(self) -> bool:
        """Whether the regime's signal rule trains SG modules."""
        return signals.RULES[self.signal].uses_sg

    @property
    def net_spec(self) -> nets.NetSpec:
        """The static network description (blocks, loss, reduction, input shape)."""
        weight_options = dict(
            bias=self.bias,
            init=self.init,
            init_scale=float(self.init_scale),
            init_shift=float(self.init_shift),
        )
        if self.layers is None:
            return nets.mlp_spec(
                self.widths, self.activations, self.loss, self.reduction, **weight_options
            )
        return nets.make_net_spec(
            layers_lib.with_defaults(self.layers, **weight_options),
            self.widths[:1],
            self.loss,
            self.reduction,
        )

    @property
    def sg_spec(self) -> synthetic.SGSpec:
        """The static SG-module description."""
        return synthetic.SGSpec(
            self.topology,
            self.conditioned,
            self.sg_hidden,
            self.sg_init,
            self.sg_bias,
            self.sg_kernel,
            self.sg_target,
            float(self.sg_scale),
        )

    @property
    def jnp_dtype(self) -> Any:
        return jnp.float64 if self.dtype == "float64" else jnp.float32

    def program(self) -> Program:
        """The run's :class:`Program`."""
        return Program(
            self.signal,
            self.widths,
            self.net_spec,
            self.init,
            float(self.init_scale),
            float(self.init_shift),
            self.bias,
            self.sg_spec if self.uses_sg else None,
            self.noise if self.noisy else None,
            self.noise_to == "all",
            self.noise_before_clip,
            self.optimizer,
            self.clip is not None,
            self.batch_size,
            self.update_prob < 1,
            self.train_hidden,
            cast(int, self.log_every),  # __post_init__ sets it
            self.dtype,
            "feedforward" if self.task is None else "recurrent",
            self.sequence,
            self.lr_decay_steps,
            float(self.lr_decay),
        )

    def hyper(self) -> Hyper:
        """The numeric hyperparameters as 0-d arrays of the run's dtype."""
        as_array = lambda v: jnp.asarray(v, self.jnp_dtype)  # noqa: E731
        return Hyper(
            as_array(self.lr),
            as_array(self.lr if self.sg_lr is None else self.sg_lr),
            as_array(self.eta),
            as_array(self.gamma),
            as_array(self.update_prob),
            as_array(float("inf") if self.clip is None else self.clip),
        )

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


SEQUENCE_ONLY = (
    "core",
    "hidden",
    "window",
    "max_length",
    "start_length",
    "threshold",
    "max_repeats",
    "carry_state",
)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}


def load_overrides(path: str, exclude: tuple[str, ...] = ("regime",)) -> dict[str, Any]:
    """Reads a JSON object of :class:`RunConfig` fields (a config file) and checks its keys.

    Lists become tuples; values are validated when the config is built.

    Raises:
      ValueError: the file is missing, is not JSON, is not an object, or has unknown keys.
    """
    try:
        with open(path) as f:
            obj = json.load(f)
    except OSError as err:
        raise ValueError(f"--config: cannot read {path!r} ({err.strerror})") from err
    except json.JSONDecodeError as err:
        raise ValueError(
            f"--config: {path!r} is not valid JSON: {err.msg} at line "
            f"{err.lineno} column {err.colno}"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"--config: {path!r} must hold a JSON object of RunConfig fields")
    allowed = [f.name for f in dataclasses.fields(RunConfig) if f.name not in exclude]
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ValueError(
            f"--config: unknown key(s) {', '.join(map(repr, unknown))} in {path!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in obj.items()}


def from_dict(fields: dict[str, Any]) -> RunConfig:
    """The :class:`RunConfig` of a JSON description (such as a results file's ``config``):
    its RunConfig keys, lists as tuples; other keys are ignored."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    kwargs: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if k in names
    }
    return RunConfig(**kwargs)


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is at most ``at_most`` (1 at least)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def default_log_every(steps: int) -> int:
    """The largest divisor of ``steps`` that gives at least 100 records (or 1)."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        return 1
    return largest_divisor(steps, steps // 100)


def check_data(config: RunConfig, x: Any, labels: Any) -> None:
    """Raises ``ValueError`` if ``x`` (N, n_in) and ``labels`` (N,) do not fit ``config``."""
    x = np.asarray(x)
    labels = np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(
            f"data: inputs must be a 2-D array (examples, features), got shape {x.shape}"
        )
    if x.shape[1] != config.widths[0]:
        raise ValueError(
            f"data: inputs have {x.shape[1]} features but widths[0] is "
            f"{config.widths[0]}; make them equal"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("data: inputs contain NaN or inf; clean or drop those rows")
    if labels.shape != (x.shape[0],):
        raise ValueError(
            f"data: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{x.shape[0]} examples; give one integer label per row"
        )
    if not np.issubdtype(labels.dtype, np.integer) and (
        not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels))
    ):
        raise ValueError("data: labels must be integers 0..K-1")
    n_out = config.widths[-1]
    n_classes = 2 if n_out == 1 else n_out
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"data: labels span {int(labels.min())}..{int(labels.max())} but an "
            f"output layer of {n_out} unit(s) takes classes 0..{n_classes - 1}"
        )
    if config.batch_size is not None and config.batch_size > x.shape[0]:
        raise ValueError(
            f"batch_size: {config.batch_size} exceeds the {x.shape[0]} examples; "
            "use a smaller batch or full batch (None)"
        )
