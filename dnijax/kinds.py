"""Network kinds: the one protocol through which every network plugs into the engine.

A :class:`Kind` says how a run of one kind of network starts, takes one training step and
is evaluated, as pure functions (in the spirit of learned_optimization's tasks). The engine
(:mod:`dnijax.engine`) knows nothing else about the network: it vmaps these functions over
runs, scans the steps, cuts the run axis into blocks and shards it over devices, for every
kind alike. ``KINDS`` holds

* ``feedforward`` (:mod:`dnijax.train`): MLPs and conv nets that classify rows of data,
  one step per minibatch or full batch;
* ``recurrent`` (:mod:`dnijax.bptt`): a recurrent core trained by truncated BPTT on a
  sequence task, one step per episode (a batch of sequences, one update per window).

A new kind is one more entry of ``KINDS`` and a way for :class:`~dnijax.config.RunConfig`
to choose it (today ``task`` chooses between the two).

A run's kind is :attr:`dnijax.config.Program.kind` (``RunConfig.task`` chooses it). The
history of a run (:func:`run_records`) holds, every ``log_every`` steps, the kind's
:attr:`Kind.evaluate` metrics taken before those steps and its :attr:`Kind.summarize` of
their per-step metrics.

Examples:
  >>> import jax
  >>> from dnijax import RunConfig, kinds
  >>> cfg = RunConfig(regime="dni", task="copy", core="rnn", hidden=4, window=3,
  ...                 max_length=2, batch_size=2, steps=4, log_every=2)
  >>> program, hyper = cfg.program(), cfg.hyper()
  >>> kind = kinds.KINDS[program.kind]
  >>> state = kind.init_state(program, hyper, jax.random.key(0))
  >>> state, history = kinds.run_records(program, hyper, state, None, 2)
  >>> sorted(history), history["length"].shape
  (['diverged', 'error_bits', 'length', 'solved'], (2,))
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax

from dnijax import bptt, train
from dnijax.config import Hyper, Program, RunConfig


class Kind(NamedTuple):
    """A network kind, as pure functions over a run's :class:`~dnijax.train.TrainState`.

    Attributes:
      init_network: ``(program.net_init, key) -> params``: the network a run's key draws
        (the same in every regime; :func:`dnijax.train.run_subkeys` splits the key).
      init_state: ``(program, hyper, key, *, net=None, sg=None) -> TrainState`` (given
        initial parameters, or ``None`` to draw them).
      step: ``(program, hyper, state, data, rules) -> (state, metrics)``: one training step
        behind the finite guard; ``metrics`` is a dict of arrays.
      summarize: reduces a record's per-step ``metrics`` (stacked over its ``log_every``
        steps) to the record's values.
      eval_spec: ``program -> spec``, the hashable part of a program that
        :attr:`evaluate` depends on (programs that share it share its compiled code).
      evaluate: ``(spec, net, task_state, data) -> metrics`` of a run's state on
        ``data``. Its keys (and ``test_`` + each key on test data), with ``diverged``, are
        the history's records that get a final value after the last step.
      alignment: ``(program, state, data) -> {name: cosines}``, the kind's alignment
        diagnostics (feed-forward: ``grad_alignment`` of every rule, ``sg_alignment`` with
        SG modules), or ``None`` where the kind has none.
      make_data: ``(config, data, per_run) -> device data`` (``data`` as the engine got
        it: ``(x, labels)``, or ``None`` for kinds that make their own).
      bytes_per_run: ``(config, n_rows, per_run_rows) -> bytes``: a generous estimate of
        one run's device memory in a block (:func:`dnijax.engine.auto_block_runs`).
    """

    init_network: Callable[[tuple, jax.Array], Any]
    init_state: Callable[..., train.TrainState]
    step: Callable[..., tuple[train.TrainState, dict]]
    summarize: Callable[[dict], dict]
    eval_spec: Callable[[Program], Hashable]
    evaluate: Callable[..., dict]
    alignment: Callable[..., dict[str, jax.Array]] | None
    make_data: Callable[[RunConfig, Any, bool], Any]
    bytes_per_run: Callable[[RunConfig, int, int], int]


KINDS: dict[str, Kind] = {
    "feedforward": Kind(
        train.init_network,
        train.init_state,
        train.step,
        train.summarize_steps,
        train.eval_spec,
        train.evaluate_state,
        train.alignment,
        train.data_for,
        train.bytes_per_run,
    ),
    "recurrent": Kind(
        bptt.init_network,
        bptt.init_state,
        bptt.step,
        bptt.summarize_steps,
        bptt.eval_spec,
        bptt.evaluate_state,
        None,
        bptt.data_for,
        bptt.bytes_per_run,
    ),
}


def get(program: Program) -> Kind:
    """The :class:`Kind` of a program."""
    if program.kind not in KINDS:
        raise ValueError(
            f"network kind: unknown value {program.kind!r}; choose one of {', '.join(KINDS)}"
        )
    return KINDS[program.kind]


def run_records(
    program: Program,
    hyper: Hyper,
    state: train.TrainState,
    data: Any,
    num_records: int,
    *,
    test: Any = None,
    alignment: bool = False,
) -> tuple[train.TrainState, dict[str, jax.Array]]:
    """Runs ``num_records * program.log_every`` steps of any kind with ``lax.scan``.

    Returns the final state and one record per ``log_every`` steps: the kind's
    :attr:`Kind.evaluate` metrics on ``data`` taken before those steps (with ``test``,
    also on the test data, prefixed ``test_``: ``test_accuracy``), ``diverged`` (whether
    the run was frozen), :attr:`Kind.summarize` of the steps' own metrics, and with
    ``alignment`` (kinds that have it) the kind's alignment diagnostics
    (``grad_alignment``, and ``sg_alignment`` with SG modules).
    """
    kind = get(program)
    spec = kind.eval_spec(program)
    rules = train.update_rules(program, hyper)

    def steps(carry, _):
        return kind.step(program, hyper, carry, data, rules)

    def record(carry, _):
        rec = dict(kind.evaluate(spec, carry.net, carry.task_state, data))
        if test is not None:
            rec.update(
                {
                    f"test_{k}": v
                    for k, v in kind.evaluate(spec, carry.net, carry.task_state, test).items()
                }
            )
        rec["diverged"] = carry.diverged_at >= 0
        if alignment and kind.alignment is not None:
            rec.update(kind.alignment(program, carry, data))
        carry, metrics = jax.lax.scan(steps, carry, None, length=program.log_every)
        rec.update(kind.summarize(metrics))
        return carry, rec

    return jax.lax.scan(record, state, None, length=num_records)
