"""Many runs as one compiled program: vmap over runs, scan over steps, sharded over devices.

A grid is R runs of one :class:`~dnijax.train.Program` that differ in their
numbers (a stacked :class:`~dnijax.config.Hyper`), their PRNG keys and,
optionally, their data and initial parameters. The steps run in chunks of
``lax.scan`` so the host can report progress between chunks without a dispatch
per step; the compiled chunk is reused, so only the first chunk compiles.

With several devices the run axis is sharded over a 1-D ``Mesh`` (axis
``"runs"``); R need not divide the device count (the grid is padded with copies
of its last run, dropped afterwards). On several hosts, call
``jax.distributed.initialize()`` in each process first: ``jax.devices()`` then
lists every host's devices and the same code shards the grid across all of them.

Example:
  >>> import jax, numpy as np
  >>> from dnijax import RunConfig, sweep
  >>> x = np.random.RandomState(0).randn(64, 2).astype("float32")
  >>> labels = (x[:, 0] > 0).astype("int32")
  >>> cfg = RunConfig(regime="dni", widths=(2, 8, 1), steps=100, reduction="mean")
  >>> hyper = sweep.stack_hyper(cfg, lr=[0.1, 0.5, 1e6])
  >>> res = sweep.run_grid(cfg, hyper, sweep.run_keys(0, 3), (x, labels))
  >>> res.diverged_at.tolist()[:2], bool(res.diverged_at[2] >= 0)
  ([-1, -1], True)
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dnijax import train
from dnijax.config import Hyper, RunConfig

Progress = Callable[[int, int], None]


class GridResult(NamedTuple):
    """Per-run results of a grid (leading axis = runs), as numpy arrays.

    Attributes:
      history: ``step`` (K,), and ``loss``, ``accuracy``, ``diverged`` (R, K) with
        records at ``0, log_every, ..., steps``; ``sg_loss`` (R, K-1, |S|).
      final_loss, final_accuracy: on the training data after the last step.
      test_accuracy: on the test data (NaN without test data).
      diverged_at: the step at which each run diverged, -1 if it did not.
      state: the final :class:`~dnijax.train.TrainState` of every run.
    """

    history: dict[str, np.ndarray]
    final_loss: np.ndarray
    final_accuracy: np.ndarray
    test_accuracy: np.ndarray
    diverged_at: np.ndarray
    state: Any


def run_keys(seed: int | Sequence[int], n: int | None = None) -> jax.Array:
    """PRNG keys of runs: ``key(seed + i)`` for i < n, or one key per listed seed."""
    seeds = np.arange(seed, seed + n) if n is not None else np.asarray(seed)
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))


def stack_hyper(config: RunConfig, **values: Any) -> Hyper:
    """A stacked :class:`Hyper`: each field given as a list (one value per run), the
    others taken from ``config``. Lists must share one length."""
    base = config.hyper()._asdict()
    n = {len(np.atleast_1d(v)) for v in values.values()} or {1}
    if len(n) != 1:
        raise ValueError(f"sweep: hyperparameter lists differ in length {sorted(n)}")
    n_runs = n.pop()
    if "lr" in values and "sg_lr" not in values and config.sg_lr is None:
        values["sg_lr"] = values["lr"]
    fields = {k: jnp.broadcast_to(jnp.asarray(values.get(k, v), config.jnp_dtype), (n_runs,))
              for k, v in base.items()}
    return Hyper(**fields)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _init(config: RunConfig, program: train.Program, axes: tuple, hyper, keys, net, sg):
    def one(h, k, n, s):
        return train.init_state(config, k, h, program=program, net=n, sg=s)

    return jax.vmap(one, in_axes=(0, 0) + axes)(hyper, keys, net, sg)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _advance(program: train.Program, n_records: int, data_axis: Any, hyper, state, data,
             test=None):
    run = lambda h, s, d, t: train.run_records(program, h, s, d, n_records, t)  # noqa: E731
    return jax.vmap(run, in_axes=(0, 0, data_axis, data_axis))(hyper, state, data, test)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _evaluate(program: train.Program, data_axis: Any, net, data):
    return jax.vmap(lambda n, d: train.evaluate(program, n, d), in_axes=(0, data_axis))(net, data)


def _chunk_records(total: int, target: int) -> int:
    """The largest divisor of ``total`` not above ``target`` (one compiled chunk size)."""
    return max(d for d in range(1, max(1, min(total, target)) + 1) if total % d == 0)


def _shard(tree: Any, mesh: Mesh | None, n_pad: int, axis: int | None) -> Any:
    """Pads the run axis by repeating the last run and shards it over the mesh."""
    if axis is None:
        return tree if mesh is None else jax.device_put(
            tree, NamedSharding(mesh, PartitionSpec()))

    def pad(a):
        a = jnp.asarray(a) if not isinstance(a, jax.Array) else a
        return jnp.concatenate([a, jnp.repeat(a[-1:], n_pad, axis=0)]) if n_pad else a

    tree = jax.tree.map(pad, tree)
    return tree if mesh is None else jax.device_put(
        tree, NamedSharding(mesh, PartitionSpec("runs")))


def default_mesh() -> Mesh | None:
    """A 1-D mesh over every device (``None`` with a single device)."""
    devices = jax.devices()
    return Mesh(np.array(devices), ("runs",)) if len(devices) > 1 else None


def run_grid(config: RunConfig, hyper: Hyper, keys: jax.Array, data: Any, *,
             test: Any = None, per_run_data: bool = False, net: Any = None, sg: Any = None,
             noise_kind: str | None | bool = False, progress: Progress | None = None,
             chunks: int = 20, mesh: Mesh | None | bool = True,
             test_history: bool = False) -> GridResult:
    """Trains every run of a grid and returns their results.

    Args:
      config: the structure shared by all runs (and the defaults of their numbers).
      hyper: stacked hyperparameters, leading axis R (see :func:`stack_hyper`).
      keys: R PRNG keys (see :func:`run_keys`).
      data: ``(x, labels)`` shared by all runs, or stacked per run with
        ``per_run_data=True`` (x: (R, N, d), labels: (R, N)).
      test: optional test ``(x, labels)``, shaped like ``data``.
      net, sg: optional initial parameters stacked per run (leading axis R).
      noise_kind: override the program's noise (``"paper"``/``"blog"``/``None``), e.g.
        to run a regime and its ``+noise`` twin in one program with eta 0 for the former.
      progress: called as ``progress(steps_done, steps_total)`` between chunks.
      chunks: about how many host round-trips to make (for progress).
      mesh: a ``Mesh`` with axis ``"runs"``, ``True`` for all devices, ``None``/``False``
        for no sharding.
      test_history: also record test accuracy at every history record.
    """
    n_runs = int(keys.shape[0])
    if any(np.shape(v)[0] != n_runs for v in hyper):
        raise ValueError(f"sweep: {n_runs} keys but hyperparameters for "
                         f"{sorted({np.shape(v)[0] for v in hyper})} runs")
    mesh = default_mesh() if mesh is True else (mesh or None)
    n_dev = 1 if mesh is None else mesh.devices.size
    n_pad = -n_runs % n_dev
    program = train.program_of(config, noise_kind=noise_kind)
    data_axis = 0 if per_run_data else None

    def device_data(pair):
        if pair is None:
            return None
        return _shard(train.make_data(config, *pair, per_run=per_run_data), mesh, n_pad,
                      data_axis)

    train_data, test_data = device_data(data), device_data(test)
    hyper_d, keys_d = _shard(hyper, mesh, n_pad, 0), _shard(keys, mesh, n_pad, 0)
    axes = (None if net is None else 0, None if sg is None else 0)
    net_d = None if net is None else _shard(net, mesh, n_pad, 0)
    sg_d = None if sg is None else _shard(sg, mesh, n_pad, 0)
    state = _init(config, program, axes, hyper_d, keys_d, net_d, sg_d)

    total_records = config.steps // config.log_every
    per_chunk = _chunk_records(total_records, -(-total_records // max(1, chunks)))
    records = []
    for done in range(0, total_records, per_chunk):
        state, rec = _advance(program, per_chunk, data_axis, hyper_d, state, train_data,
                              test_data if test_history else None)
        records.append(jax.device_get(rec))
        if progress is not None:
            progress((done + per_chunk) * config.log_every, config.steps)
    final_loss, final_acc = _evaluate(program, data_axis, state.net, train_data)
    test_acc = (_evaluate(program, data_axis, state.net, test_data)[1]
                if test_data is not None else jnp.full((n_runs + n_pad,), jnp.nan))
    hist = {k: np.concatenate([r[k] for r in records], axis=1)[:n_runs] for k in records[0]}
    final_loss, final_acc = np.asarray(final_loss)[:n_runs], np.asarray(final_acc)[:n_runs]
    diverged_at = np.asarray(state.diverged_at)[:n_runs]
    history = {
        "step": np.append(hist["step"][0], config.steps),
        "loss": np.concatenate([hist["loss"], final_loss[:, None]], axis=1),
        "accuracy": np.concatenate([hist["accuracy"], final_acc[:, None]], axis=1),
        "diverged": np.concatenate([hist["diverged"], (diverged_at >= 0)[:, None]], axis=1),
        "sg_loss": hist["sg_loss"],
    }
    if "test_accuracy" in hist:
        history["test_accuracy"] = np.concatenate(
            [hist["test_accuracy"], np.asarray(test_acc)[:n_runs, None]], axis=1)
    state = jax.tree.map(lambda a: a[:n_runs], state)
    return GridResult(history, final_loss, final_acc, np.asarray(test_acc)[:n_runs],
                      diverged_at, state)
