"""Truncated-BPTT training of recurrent cores on the copy tasks, with a length curriculum.

One *episode* is a batch of sequences of the run's current pattern length ``L``
(:mod:`dnijax.copy_task`), cut into windows of ``T`` steps. Each window is one update: its
signals (the rule's recurrent form, e.g. :func:`dnijax.recurrent.backprop_window` or
:func:`dnijax.recurrent.dni_window`, looked up by :func:`dnijax.signals.window_signals`),
then the same update rules as the feed-forward nets (:func:`dnijax.updates.update_rule`:
clipping, gradient noise, the optimiser; one chain for the network, one for the SG module),
then the same finite guard (``docs/math.md``, "Divergence"). The state flows from window to
window of a sequence; the next episode starts from zero, or, with ``carry_state``, from the
state after this episode's last window (each batch lane is then one stream, and the SG
module is trained at every window boundary, the episode's first included). Windows past
the end of the batch's longest sequence (the batch is padded to the longest length of the
curriculum) compute nothing that is kept: parameters, optimiser states and the core's
state stay as they were.

The curriculum (``docs/math.md``, "Recurrent nets"): after each episode, the error in
bits per target bit (the masked cross-entropy over the episode's outputs, divided by
``ln 2``) is compared with ``threshold``; below it, ``L`` counts as solved and the next
episode uses ``L + 1`` (up to ``max_length``). A run's score is the longest length it
solved within its episode budget.

The functions here are the ``recurrent`` :class:`~dnijax.kinds.Kind`: the engine
(:mod:`dnijax.engine`) runs them like the feed-forward kind's, vmapped over runs, in
blocks, sharded over devices, with progress and a history (``length`` and ``solved``
before each record's episodes and after the last, ``error_bits`` the mean over a
record's episodes, ``diverged``). A run is a :class:`~dnijax.config.RunConfig` with
``task`` set; one step is one episode.

Examples:
  >>> import jax
  >>> from dnijax import RunConfig, engine
  >>> cfg = RunConfig(regime="dni", task="copy", core="rnn", hidden=8, window=2,
  ...                 max_length=3, batch_size=4, steps=4, log_every=2, optimizer="adam",
  ...                 lr=1e-3, loss="bce", reduction="mean")
  >>> res = engine.run_grid(cfg, engine.stack_hyper(cfg, lr=[1e-3, 1e-2]),
  ...                       engine.run_keys(0, 2), None)
  >>> res.history["length"].shape, res.final["solved"].shape
  ((2, 3), (2,))
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dnijax import copy_task, recurrent, signals, train
from dnijax.config import Hyper, Program, RunConfig

LN2 = math.log(2.0)


def _sequence(owner: Program | RunConfig) -> recurrent.SequenceSpec:
    """The recurrent run's :class:`~dnijax.recurrent.SequenceSpec` (every run with a task
    has one)."""
    seq = owner.sequence
    if seq is None:
        raise ValueError("a recurrent run needs a sequence task; set task (e.g. copy)")
    return seq


class Curriculum(NamedTuple):
    """A recurrent run's task state: the current pattern length, the longest solved, and
    the core's state after the last episode's last window (zeros before the first): where
    the next episode starts with ``carry_state``."""

    length: jax.Array
    solved: jax.Array
    core_state: Any


def init_network(net_init: tuple, key: jax.Array) -> dict[str, jax.Array]:
    """The network a run's ``key`` draws (:attr:`dnijax.config.Program.net_init`)."""
    return recurrent.init_network(train.run_subkeys(key)[0], *net_init)


def init_state(
    program: Program, hyper: Hyper, key: jax.Array, *, net: Any = None, sg: Any = None
) -> train.TrainState:
    """A run's initial state: network, SG module (rules with SG modules), update-rule
    states, the curriculum at ``start_length``. The key splits as in
    :func:`dnijax.train.init_state`, so a seed draws the same network in every regime."""
    seq = _sequence(program)
    if net is None:
        net = init_network(program.net_init, key)
    if program.sg is None:
        sg = None
    elif sg is None:
        sg = recurrent.init_sg(recurrent.state_size(seq.core, seq.hidden), program.jnp_dtype)
    return train.start_state(
        program,
        hyper,
        key,
        net,
        sg,
        Curriculum(
            jnp.asarray(seq.start_length, jnp.int32),
            jnp.zeros((), jnp.int32),
            recurrent.get_core(seq.core).initial_state(
                seq.batch_size, seq.hidden, program.jnp_dtype
            ),
        ),
    )


def train_windows(
    program: Program,
    hyper: Hyper,
    state: train.TrainState,
    x: jax.Array,
    y: jax.Array,
    *,
    mask: jax.Array | None = None,
    active: jax.Array | None = None,
    rules: train.UpdateRules | None = None,
    s0: recurrent.State | None = None,
) -> tuple[train.TrainState, jax.Array, recurrent.State]:
    """Trains on one batch of sequences ``x`` (B, S, d), ``y`` (B, S, K), window by window
    (``S`` a multiple of the window): the rule's recurrent form
    (:func:`dnijax.signals.window_signals`), update rules, finite guard. The core's state
    starts at ``s0`` (``None``: zeros). ``mask`` (B, S) weights the per-step losses; a
    window whose ``active`` flag is off keeps every parameter and optimiser state, and the
    core's state. ``state.step`` (the episodes done) is not advanced here: a run that
    diverges records that episode in ``diverged_at``. Returns the new state, each window's
    loss ``L_w`` (0 for inactive windows) and the core's state after the last active
    window."""
    seq = _sequence(program)
    rules = train.update_rules(program, hyper) if rules is None else rules
    n_win, t = x.shape[1] // seq.window, seq.window
    split = lambda a: jnp.swapaxes(a.reshape(a.shape[0], n_win, t, *a.shape[2:]), 0, 1)  # noqa
    mask = jnp.ones(x.shape[:2], x.dtype) if mask is None else mask
    active = jnp.ones((n_win,), bool) if active is None else active
    core = recurrent.get_core(seq.core)
    target = "per_example" if program.sg is None else program.sg.target
    sg_scale = 1.0 if program.sg is None else program.sg.scale

    def window(carry, inputs):
        st, s = carry
        x_w, y_w, m_w, on = inputs
        sig = signals.window_signals(
            program.signal,
            st.net,
            st.sg,
            s,
            x_w,
            y_w,
            program.net.loss,
            program.net.reduction,
            core=core,
            mask=m_w,
            sg_target=target,
            sg_scale=sg_scale,
        )
        st = train.guarded_update(rules, st, sig, active=on)
        s = jax.tree.map(lambda new, old: jnp.where(on, new, old), sig.s_end, s)
        return (st, s), jnp.where(on, sig.loss, 0.0)

    if s0 is None:
        s0 = core.initial_state(x.shape[0], seq.hidden, x.dtype)
    (state, s_last), losses = jax.lax.scan(
        window, (state, s0), (split(x), split(y), split(mask), active)
    )
    return state, losses, s_last


def step(
    program: Program, hyper: Hyper, state: train.TrainState, data: Any, rules: train.UpdateRules
) -> tuple[train.TrainState, dict[str, jax.Array]]:
    """One episode: a batch of sequences of the current length, window by window, then the
    curriculum. Its metric ``error_bits`` is the episode's error in bits per target bit
    (the masked loss over the episode's outputs per target bit, over ``ln 2``; bits for the
    ``bce`` loss)."""
    seq = _sequence(program)
    key, k_batch = jax.random.split(state.key)
    curriculum = state.task_state
    batch = copy_task.make_batch(
        k_batch,
        seq.task,
        curriculum.length,
        seq.batch_size,
        max_length=seq.max_length,
        max_repeats=seq.max_repeats,
        steps=seq.steps,
        dtype=program.jnp_dtype,
    )
    last = jnp.max(jnp.arange(seq.steps) * jnp.max(batch.mask, axis=0))
    active = jnp.arange(seq.steps // seq.window) * seq.window <= last
    state, losses, s_last = train_windows(
        program,
        hyper,
        state._replace(key=key),
        batch.x,
        batch.y,
        mask=batch.mask,
        active=active,
        rules=rules,
        s0=curriculum.core_state if seq.carry_state else None,
    )
    targets = jnp.mean(jnp.sum(batch.mask, axis=1)) * seq.n_out
    per_sequence = seq.batch_size if program.net.reduction == "sum" else 1
    error = jnp.sum(losses) / per_sequence / targets / LN2
    passed = (error < seq.threshold) & (state.diverged_at < 0)
    curriculum = Curriculum(
        jnp.where(passed, jnp.minimum(curriculum.length + 1, seq.max_length), curriculum.length),
        jnp.where(passed, jnp.maximum(curriculum.solved, curriculum.length), curriculum.solved),
        s_last,
    )
    return state._replace(step=state.step + 1, task_state=curriculum), {"error_bits": error}


def summarize_steps(metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """A record's ``error_bits``: the mean over its episodes."""
    return {"error_bits": jnp.mean(metrics["error_bits"])}


def eval_spec(program: Program) -> None:
    """Evaluation reads the curriculum alone: one compiled program for every run."""
    return None


def evaluate_state(spec: None, net: Any, task_state: Curriculum, data: Any) -> dict[str, jax.Array]:
    """``length`` (the current pattern length) and ``solved`` (the longest solved)."""
    return {"length": task_state.length, "solved": task_state.solved}


def data_for(config: RunConfig, data: Any, per_run: bool = False) -> None:
    """A sequence task makes its own sequences from each run's key: no data."""
    if data is not None:
        raise ValueError(f"data: task {config.task!r} makes its own sequences; pass no data")
    return None


def bytes_per_run(config: RunConfig, n_rows: int = 0, per_run_rows: int = 0) -> int:
    """A generous estimate of one recurrent run's device memory: an episode's inputs,
    targets and every time step's gate activations and states forward and backward (three
    times over with an SG module), and the parameters with optimiser state."""
    item = 8 if config.dtype == "float64" else 4
    seq = _sequence(config)
    n_in, n_out, h = seq.n_in, seq.n_out, seq.hidden
    gates = 4 if seq.core == "lstm" else 1
    sg_factor = 3 if config.uses_sg else 1
    per_step = n_in + n_out + 1 + 3 * gates * h + n_out
    activations = 2 * seq.batch_size * seq.steps * per_step * item * sg_factor
    size = recurrent.state_size(seq.core, h)
    params = ((n_in + h + 1) * gates * h + (h + 1) * n_out + size * (size + 1)) * item * 4
    return activations + params
