"""Truncated-BPTT training of recurrent cores on the copy tasks, with a length curriculum.

One *episode* is a batch of sequences of the run's current pattern length ``L``
(:mod:`dnijax.copy_task`), cut into windows of ``T`` steps. Each window is one
training step: its signals (:func:`dnijax.recurrent.window_signals`, plain truncated
BPTT or DNI), then the same update rules as the feed-forward nets
(:func:`dnijax.updates.update_rule`: clipping, gradient noise, the optimiser; one
chain for the network, one for the SG module), then the same finite guard
(``docs/math.md``, "Divergence"). The state flows from window to window of a
sequence and starts at zero for the next episode. Windows past the end of the
batch's longest sequence (the batch is padded to the longest length of the
curriculum) compute nothing that is kept: parameters and optimiser states stay as
they were.

The curriculum (``docs/math.md``, "Recurrent nets"): after each episode, the error in
bits per target bit (the masked cross-entropy over the episode's outputs, divided by
``ln 2``) is compared with ``threshold``; below it, ``L`` counts as solved and the next
episode uses ``L + 1`` (up to ``max_length``). A run's score is the longest length it
solved within its episode budget.

Known problem (jaxlib 0.10.2 on this project's 2-core CPU machine): a run sometimes
hangs, all threads idle, waiting for a program's results. It was seen mostly in
processes that ran several of these programs one after another, once in a process that
ran one, and never in the tests. ``benchmarks/copy_task.py`` runs each program in a
process of its own, which made its full runs finish.

Example:
  >>> import jax
  >>> from dnijax import bptt
  >>> cfg = bptt.SequenceConfig(regime="dni", core="rnn", hidden=8, window=2, max_length=3,
  ...                           batch_size=4, episodes=4, log_every=2)
  >>> res = bptt.run(cfg, bptt.stack_hyper(cfg, 2), jax.random.split(jax.random.key(0), 2))
  >>> res.history["length"].shape, res.solved.shape
  ((2, 2), (2,))
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dnijax import copy_task, nets, noise, recurrent, train, updates
from dnijax.config import (DTYPES, NOISE_TO, check_choice, check_number, default_log_every,
                           parse_regime)

LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """A recurrent run on a copy task (validated when built; one-line ``ValueError``s).

    Attributes:
      regime: ``backprop`` (truncated BPTT), ``dni``, or either with ``+noise``.
      task: ``copy`` or ``repeat_copy``; max_repeats: the largest repeat count.
      core, hidden: the recurrent core (``rnn``, ``lstm``) and its width.
      window: the truncation ``T`` (steps per window, one update per window).
      max_length: the curriculum's longest pattern; start_length: its first.
      threshold: error (bits per target bit) under which a length counts as solved.
      batch_size, episodes: sequences per episode, and the episode budget.
      optimizer, lr, sg_lr, clip: the update rules (``sg_lr`` defaults to ``lr``).
      noise, noise_to, eta, gamma: the ``+noise`` regimes' gradient noise.
      log_every: episodes between history records (default: about 100 records).
      dtype: ``float32`` or ``float64``.
      loss: the per-step loss (``bce`` for the copy tasks; :func:`train_windows` on
        other data may use ``mse`` or ``xent``).
    """

    regime: str = "backprop"
    task: str = "copy"
    max_repeats: int = 1
    core: str = "lstm"
    hidden: int = 64
    window: int = 4
    max_length: int = 16
    start_length: int = 1
    threshold: float = 0.15
    batch_size: int = 16
    episodes: int = 1000
    optimizer: str = "adam"
    lr: float = 1e-3
    sg_lr: float | None = None
    clip: float | None = None
    noise: str = "paper"
    noise_to: str = "all"
    eta: float = 0.01
    gamma: float = 0.55
    log_every: int | None = None
    dtype: str = "float32"
    loss: str = "bce"

    def __post_init__(self) -> None:
        signal, _ = parse_regime(self.regime)
        if signal not in recurrent.SIGNALS:
            raise ValueError(f"regime: {self.regime!r} has no recurrent form; choose "
                             "backprop, dni, backprop+noise or dni+noise")
        check_choice("task", self.task, copy_task.TASKS)
        check_choice("core", self.core, recurrent.CORES)
        for name in ("max_repeats", "hidden", "window", "max_length", "start_length",
                     "batch_size", "episodes"):
            check_number(name, getattr(self, name), integer=True, low=1)
        if self.start_length > self.max_length:
            raise ValueError(f"start_length: {self.start_length} exceeds max_length "
                             f"{self.max_length}")
        check_number("threshold", self.threshold, positive=True)
        check_choice("optimizer", self.optimizer, updates.OPTIMIZERS)
        check_number("lr", self.lr, positive=True)
        for name in ("sg_lr", "clip"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), positive=True)
        check_choice("noise", self.noise, noise.NOISES)
        check_choice("noise_to", self.noise_to, NOISE_TO)
        check_number("eta", self.eta, nonneg=True)
        check_number("gamma", self.gamma, nonneg=True)
        if self.log_every is None:
            object.__setattr__(self, "log_every", default_log_every(self.episodes))
        check_number("log_every", self.log_every, integer=True, low=1)
        if self.episodes % self.log_every:
            raise ValueError(f"log_every: {self.log_every} does not divide episodes "
                             f"{self.episodes}; pick a divisor")
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("loss", self.loss, nets.LOSSES)

    @property
    def signal(self) -> str:
        return parse_regime(self.regime)[0]

    @property
    def jnp_dtype(self) -> Any:
        return jnp.float64 if self.dtype == "float64" else jnp.float32

    @property
    def steps(self) -> int:
        """Time steps of an episode: the longest sequence, rounded up to whole windows."""
        longest = copy_task.max_steps(self.task, self.max_length, self.max_repeats)
        return -(-longest // self.window) * self.window

    def replace(self, **changes: Any) -> "SequenceConfig":
        return dataclasses.replace(self, **changes)


class SeqHyper(NamedTuple):
    """The numbers of a run, as arrays (stack them to vmap over runs)."""

    lr: Any
    sg_lr: Any
    eta: Any
    gamma: Any
    clip: Any


class SeqState(NamedTuple):
    """Everything that changes during a run."""

    net: dict
    sg: dict | None
    net_opt: optax.OptState
    sg_opt: optax.OptState
    key: jax.Array
    step: jax.Array
    diverged_at: jax.Array
    length: jax.Array
    solved: jax.Array


class SeqResult(NamedTuple):
    """Per-run results (leading axis = runs), numpy: ``solved`` (the longest length
    solved), ``diverged_at`` (-1 if never), ``history`` (``episode`` (K,), and (R, K)
    ``length``, ``solved``, ``error_bits`` (mean over the episodes since the last
    record), ``diverged``), and the final states."""

    solved: np.ndarray
    diverged_at: np.ndarray
    history: dict[str, np.ndarray]
    state: Any


def stack_hyper(config: SequenceConfig, n: int, **values: Any) -> SeqHyper:
    """``n`` runs' numbers: the config's, or per-run lists given as keyword arguments."""
    dtype = config.jnp_dtype
    base = dict(lr=config.lr, sg_lr=config.lr if config.sg_lr is None else config.sg_lr,
                eta=config.eta, gamma=config.gamma,
                clip=float("inf") if config.clip is None else config.clip)
    cols = {k: values.get(k, [v] * n) for k, v in base.items()}
    return SeqHyper(**{k: jnp.asarray(v, dtype) for k, v in cols.items()})


def _rules(config: SequenceConfig, hyper: SeqHyper, keys=(None, None)) -> train.UpdateRules:
    """The network's and the SG module's update rules (``keys`` seed the noise at init)."""
    return train.make_update_rules(
        hyper, optimizer=config.optimizer,
        noise=config.noise if parse_regime(config.regime)[1] else None,
        noise_to_sg=config.noise_to == "all", clip=config.clip, noise_keys=keys)


def init_state(config: SequenceConfig, hyper: SeqHyper, key: jax.Array) -> SeqState:
    """A run's initial state: network, SG module (``dni``), update-rule states."""
    dtype = config.jnp_dtype
    k_net, k_noise_net, k_noise_sg, k_run = jax.random.split(key, 4)
    net = recurrent.init_network(k_net, config.core, copy_task.n_inputs(config.task),
                                 config.hidden, copy_task.n_outputs(config.task), dtype)
    sg = (recurrent.init_sg(recurrent.state_size(config.core, config.hidden), dtype)
          if config.signal == "dni" else None)
    rules = _rules(config, hyper, (k_noise_net, k_noise_sg))
    return SeqState(net, sg, rules.net.init(net), rules.sg.init(sg) if sg is not None else (),
                    k_run, jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32),
                    jnp.asarray(config.start_length, jnp.int32), jnp.zeros((), jnp.int32))


def train_windows(config: SequenceConfig, hyper: SeqHyper, state: SeqState, x: jax.Array,
                  y: jax.Array, mask: jax.Array | None = None, active: jax.Array | None = None
                  ) -> tuple[SeqState, jax.Array]:
    """Trains on one batch of sequences ``x`` (B, S, d), ``y`` (B, S, K), window by window
    (``S`` a multiple of ``config.window``): signals, update rules, finite guard. The
    state starts at zero. ``mask`` (B, S) weights the per-step losses; a window whose
    ``active`` flag is off keeps every parameter and optimiser state. Returns the new
    state and each window's loss ``L_w`` (0 for inactive windows)."""
    rules = _rules(config, hyper)
    n_win, t = x.shape[1] // config.window, config.window
    split = lambda a: jnp.swapaxes(a.reshape(a.shape[0], n_win, t, *a.shape[2:]), 0, 1)  # noqa
    mask = jnp.ones(x.shape[:2], x.dtype) if mask is None else mask
    active = jnp.ones((n_win,), bool) if active is None else active
    core = recurrent.get_core(config.core)

    def window(carry, inputs):
        st, s = carry
        x_w, y_w, m_w, on = inputs
        sig = recurrent.window_signals(config.signal, st.net, st.sg, s, x_w, y_w, config.loss,
                                       "mean", core=core, mask=m_w)
        net, sg, net_opt, sg_opt, diverged_at = train.guarded_update(
            rules, st.net, st.sg, st.net_opt, st.sg_opt, sig, st.diverged_at, st.step,
            active=on)
        st = st._replace(net=net, sg=sg, net_opt=net_opt, sg_opt=sg_opt,
                         step=st.step + on.astype(jnp.int32), diverged_at=diverged_at)
        return (st, sig.s_end), jnp.where(on, sig.loss, 0.0)

    s0 = core.initial_state(x.shape[0], config.hidden, x.dtype)
    (state, _), losses = jax.lax.scan(window, (state, s0),
                                      (split(x), split(y), split(mask), active))
    return state, losses


def episode(config: SequenceConfig, hyper: SeqHyper, state: SeqState
            ) -> tuple[SeqState, jax.Array]:
    """One episode (a batch of sequences of the current length, window by window);
    returns the new state and the episode's error in bits per target bit."""
    key, k_batch = jax.random.split(state.key)
    dtype = config.jnp_dtype
    batch = copy_task.make_batch(k_batch, config.task, state.length, config.batch_size,
                                 config.max_length, config.max_repeats, config.steps, dtype)
    last = jnp.max(jnp.arange(config.steps) * jnp.max(batch.mask, axis=0))
    active = jnp.arange(config.steps // config.window) * config.window <= last
    state, losses = train_windows(config, hyper, state._replace(key=key), batch.x, batch.y,
                                  batch.mask, active)
    targets = jnp.mean(jnp.sum(batch.mask, axis=1)) * copy_task.n_outputs(config.task)
    error = jnp.sum(losses) / targets / LN2
    passed = (error < config.threshold) & (state.diverged_at < 0)
    state = state._replace(solved=jnp.where(passed, jnp.maximum(state.solved, state.length),
                                            state.solved),
                           length=jnp.where(passed, jnp.minimum(state.length + 1,
                                                                config.max_length),
                                            state.length))
    return state, error


def _structure(config: SequenceConfig) -> SequenceConfig:
    """The config with its numbers at fixed values: one compiled program for every value."""
    return config.replace(lr=1.0, sg_lr=None, eta=0.0, gamma=0.0,
                          clip=None if config.clip is None else 1.0)


@functools.partial(jax.jit, static_argnums=0)
def _run(config: SequenceConfig, hyper: SeqHyper, keys: jax.Array):
    def one(h, k):
        state = init_state(config, h, k)

        def chunk(st, _):
            st, errors = jax.lax.scan(lambda s, _: episode(config, h, s), st, None,
                                      length=config.log_every)
            return st, {"length": st.length, "solved": st.solved,
                        "error_bits": jnp.mean(errors), "diverged": st.diverged_at >= 0}

        return jax.lax.scan(chunk, state, None, length=config.episodes // config.log_every)

    return jax.vmap(one)(hyper, keys)


def run(config: SequenceConfig, hyper: SeqHyper, keys: jax.Array) -> SeqResult:
    """Trains every run (stacked ``hyper``, one key each) as one vmapped program."""
    state, hist = _run(_structure(config), hyper, keys)
    state, hist = jax.block_until_ready((state, hist))
    history = {k: np.asarray(v) for k, v in hist.items()}
    history["episode"] = np.arange(1, config.episodes // config.log_every + 1) * config.log_every
    return SeqResult(np.asarray(state.solved), np.asarray(state.diverged_at), history, state)
