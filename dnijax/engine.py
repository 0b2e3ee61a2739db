"""The one training driver: vmap over runs, scan over steps, run blocks, shards over devices.

:func:`run_grid` trains a grid of runs; :func:`run_one` trains one (a grid of one).
What they compile (a run's state, its step, ``lax.scan`` over steps) is defined in
:mod:`dnijax.train`.

A grid is R runs of one :class:`~dnijax.config.Program` that differ in their
numbers (a stacked :class:`~dnijax.config.Hyper`), their PRNG keys and,
optionally, their data and initial parameters. The steps run in chunks of
``lax.scan`` so the host can report progress between chunks without a dispatch
per step; the compiled chunk is reused, so only the first chunk compiles. The
run axis can be cut into blocks of ``block_runs`` runs, trained one after the
other with the same compiled program, so device memory does not grow with R.
A run's results do not depend on the block it ran in beyond float rounding (the
compiled program differs with the block size, so the last bits can).

With several devices the run axis is sharded over a 1-D ``Mesh`` (axis
``"runs"``); R need not divide the device count (the grid is padded with copies
of its last run, dropped afterwards); on a CPU, :func:`use_cpu_devices` makes one
device per core (large grids trained 1.3-1.5x faster so on a 2-core machine). On
several hosts, call
``jax.distributed.initialize()`` in each process first: ``jax.devices()`` then
lists every host's devices and the same code shards the grid across all of them.

Example:
  >>> import jax, numpy as np
  >>> from dnijax import RunConfig, engine
  >>> x = np.random.RandomState(0).randn(64, 2).astype("float32")
  >>> labels = (x[:, 0] > 0).astype("int32")
  >>> cfg = RunConfig(regime="dni", widths=(2, 8, 1), steps=100, reduction="mean")
  >>> hyper = engine.stack_hyper(cfg, lr=[0.1, 0.5, 1e6])
  >>> res = engine.run_grid(cfg, hyper, engine.run_keys(0, 3), (x, labels))
  >>> res.diverged_at.tolist()[:2], bool(res.diverged_at[2] >= 0)
  ([-1, -1], True)
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dnijax import layers, nets, synthetic, train
from dnijax.config import Hyper, Program, RunConfig, largest_divisor

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


def stack_trees(trees: Sequence[Any]) -> Any:
    """Stacks identically shaped trees (one per run) along a new leading run axis."""
    return jax.tree.map(lambda *a: np.stack(a), *trees)


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


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init(program: Program, axes: tuple, hyper, keys, net, sg):
    def one(h, k, n, s):
        return train.init_state(program, h, k, net=n, sg=s)

    return jax.vmap(one, in_axes=(0, 0) + axes)(hyper, keys, net, sg)


@functools.partial(jax.jit, static_argnums=(0,))
def _init_network(net_init: tuple, keys):
    """The runs' initial networks, as :func:`train.init_state` draws them; compiled once per
    ``Program.net_init``, so the programs of several regimes share it (drawing normals is
    slow to compile)."""
    return jax.vmap(lambda k: nets.init_network(train.run_subkeys(k)[0], *net_init))(keys)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _advance(program: Program, n_records: int, data_axis: Any, alignment: bool, hyper, state,
             data, test=None):
    run = lambda h, s, d, t: train.run_records(program, h, s, d, n_records, t,  # noqa: E731
                                               alignment)
    return jax.vmap(run, in_axes=(0, 0, data_axis, data_axis))(hyper, state, data, test)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _evaluate(net_spec: nets.NetSpec, data_axis: Any, net, data, test):
    """Final loss and accuracy on the training data, and test accuracy (``None`` without
    test data): one program per network spec, shared by every regime's runs (each
    compile costs about 0.2 s)."""
    def one(n, d, t):
        loss, acc = train.evaluate(net_spec, n, d)
        return loss, acc, None if t is None else train.evaluate(net_spec, n, t)[1]

    return jax.vmap(one, in_axes=(0, data_axis, data_axis))(net, data, test)


def compiled_programs() -> int:
    """How many programs the engine holds compiled in this process (initialisation, the
    training chunks, the final evaluation): a new number of an existing structure (a
    learning rate, eta, a key) reuses them, so this count does not grow."""
    return sum(fn._cache_size() for fn in (_init, _init_network, _advance, _evaluate))


def compiled_bytes(config: RunConfig, hyper: Hyper, keys: jax.Array, data: Any,
                   n_records: int = 1) -> int:
    """Memory XLA's analysis reports (arguments, outputs, temporaries) for one chunk of
    ``n_records`` records of this grid, on one device, with data shared by every run."""
    program = config.program()
    state = jax.eval_shape(
        jax.vmap(lambda h, k: train.init_state(program, h, k)), hyper, keys)
    device_data = train.make_data(config, *data)
    mem = _advance.lower(program, n_records, None, False, hyper, state,
                         device_data).compile().memory_analysis()
    return int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes)


CPU_BLOCK_BYTES = 2 ** 29


def _host_memory() -> int:
    """The memory this process may use: physical memory, lowered by a cgroup limit or an
    address-space rlimit where one is set."""
    import resource
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft not in (resource.RLIM_INFINITY, -1):
        limits.append(soft)
    return min(limits)


def memory_budget() -> int:
    """The bytes one block of runs may use: ``DNIJAX_MEMORY_BUDGET`` (bytes, or with a
    ``K``/``M``/``G`` suffix) if set; else half an accelerator's ``bytes_limit``; on the CPU
    an eighth of the memory this process may use (physical memory, a cgroup limit or an
    address-space rlimit), at most 512 MiB (:func:`auto_block_runs` caps CPU blocks lower
    still, for speed). It depends on the machine only, not on what is free at the moment,
    so block sizes (and results, which can differ in the last bits with the block size)
    repeat."""
    text = os.environ.get("DNIJAX_MEMORY_BUDGET", "").strip().upper()
    if text:
        scale = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}.get(text[-1], 1)
        try:
            value = float(text[:-1] if scale > 1 else text) * scale
        except ValueError:
            value = 0
        if value <= 0:
            raise ValueError(f"DNIJAX_MEMORY_BUDGET: {text!r} is not a positive size; give "
                             "bytes or a number with K, M or G, e.g. 2G")
        return int(value)
    limit = (jax.devices()[0].memory_stats() or {}).get("bytes_limit")
    if limit:
        return int(limit // 2)
    return int(min(CPU_BLOCK_BYTES, _host_memory() // 8))


CPU_FAST_BLOCK_BYTES = 2 ** 25
CPU_MIN_BLOCK_RUNS = 128


def auto_block_runs(need: int, n_devices: int = 1) -> int:
    """The runs of one block for ``block_runs="auto"``, given :func:`bytes_per_run`'s
    ``need``: as many as :func:`memory_budget` allows; on the CPU also at most
    ``max(CPU_MIN_BLOCK_RUNS, CPU_FAST_BLOCK_BYTES // need)`` per device, because larger
    blocks train slower there once their working set leaves the caches (measured at
    article scale: 128-run blocks train DNI 2.9x faster per run-step than 1024-run
    blocks; a 4096-seed sweep took 120 s in these blocks, 210 s in 512 MiB ones).

    Args:
      need: the bytes one run needs (:func:`bytes_per_run`).
      n_devices: the devices the block is sharded over.
    """
    block = memory_budget() // need
    if jax.default_backend() == "cpu":
        block = min(block, n_devices * max(CPU_MIN_BLOCK_RUNS, CPU_FAST_BLOCK_BYTES // need))
    return max(1, int(block))


def bytes_per_run(config: RunConfig, n_rows: int, per_run_rows: int = 0) -> int:
    """A generous estimate of the device memory one run of a block needs: the training
    step's activations (a minibatch, or the ``n_rows`` rows of full-batch training) forward
    and backward, three times over with SG modules; the records' evaluations on the
    ``n_rows`` rows; the parameters with optimiser state; and ``per_run_rows`` rows of the
    run's own data."""
    item = 8 if config.dtype == "float64" else 4
    widths = config.widths
    sg = 3 if config.uses_sg else 1
    spec = config.net_spec
    weights = jax.eval_shape(lambda k: nets.init_network(k, spec), jax.random.key(0))
    units, shape = 0, spec.in_shape  # the outputs of the layers with weights
    for block in spec.blocks:
        traced = layers.trace_shapes(block.layers, shape)
        units += math.prod(traced[block.weighted][0])
        shape = traced[-1][0]
    train_rows = min(n_rows, config.batch_size or n_rows)
    activations = (2 * train_rows * sg + n_rows) * units * item  # ~2x XLA's own analysis
    params = sum(math.prod(p["w"].shape) + p["w"].shape[-1] for p in weights if "w" in p
                 ) * item * 4 * sg  # a bias counted for every layer
    data = per_run_rows * (widths[0] + widths[-1] + 1) * item
    return activations + params + data


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


def use_cpu_devices(n: int) -> None:
    """Splits the CPU into ``n`` JAX devices, so that :func:`run_grid` shards its runs over
    them: on a CPU, one device per core is fastest (a single CPU device runs each step's
    small operations one after another, on about one core). Call it before JAX computes
    anything (``jax.config.update("jax_num_cpu_devices", n)``; the environment variable
    ``JAX_NUM_CPU_DEVICES`` does the same). No effect on accelerators.

    A run's results depend, in the last bits, on how many runs share its device's
    program (:func:`run_grid`), so results with ``n`` devices are not bit-identical to
    those with one; they repeat exactly for the same ``n`` on the same machine.

    Args:
      n: the number of CPU devices, at least 1.

    Raises:
      ValueError: JAX already runs on the CPU with another number of devices.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"CPU devices: {n!r} must be an integer >= 1")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX has started
        if jax.default_backend() != "cpu":
            return  # grids run on the accelerator: nothing to split
        have = len(jax.devices("cpu"))
        if have != n:
            raise ValueError(f"cannot use {n} CPU devices: JAX already runs with {have}; "
                             "choose the number before JAX computes anything") from None


def device_summary() -> str:
    """``"2 x cpu"``: the devices :func:`run_grid` shards over by default."""
    devices = jax.devices()
    return f"{len(devices)} x {devices[0].platform}"


def default_mesh() -> Mesh | None:
    """A 1-D mesh over every device (``None`` with a single device)."""
    devices = jax.devices()
    return Mesh(np.array(devices), ("runs",)) if len(devices) > 1 else None


def run_one(config: RunConfig, x: Any, labels: Any, key: jax.Array, *,
            net: nets.Params | None = None, sg: synthetic.SGParams | None = None
            ) -> tuple[train.TrainState, dict[str, np.ndarray]]:
    """Trains one run of ``config`` on ``(x, labels)``: a grid of one.

    Args:
      config: the run.
      x: inputs (N, widths[0]); labels: integer classes (N,).
      key: PRNG key.
      net, sg: optional initial parameters.

    Returns:
      The final :class:`~dnijax.train.TrainState` and a history of numpy arrays with
      records at steps ``0, log_every, ..., steps`` (``sg_loss`` has no record at ``steps``).

    Example:
      >>> import jax, numpy as np
      >>> from dnijax import RunConfig, engine
      >>> x = np.random.RandomState(0).randn(64, 2).astype("float32")
      >>> labels = (x[:, 0] > 0).astype("int32")
      >>> cfg = RunConfig(regime="dni", widths=(2, 8, 1), lr=0.5, steps=200, reduction="mean")
      >>> state, history = engine.run_one(cfg, x, labels, jax.random.key(0))
      >>> bool(history["loss"][-1] < history["loss"][0])
      True
    """
    one = lambda tree: None if tree is None else jax.tree.map(lambda a: jnp.asarray(a)[None],  # noqa
                                                               tree)
    res = run_grid(config, stack_hyper(config), key[None], (x, labels), net=one(net),
                   sg=one(sg), mesh=None, chunks=1)
    history = {k: v if k == "step" else v[0] for k, v in res.history.items()}
    return jax.tree.map(lambda a: a[0], res.state), history


def run_grid(config: RunConfig, hyper: Hyper, keys: jax.Array, data: Any, *,
             test: Any = None, per_run_data: bool = False, net: Any = None, sg: Any = None,
             progress: Progress | None = None, chunks: int = 20,
             mesh: Mesh | None | bool = True, test_history: bool = False,
             alignment: bool = False, block_runs: int | str | None = "auto") -> GridResult:
    """Trains every run of a grid and returns their results.

    Args:
      config: the structure shared by all runs (and the defaults of their numbers).
      hyper: stacked hyperparameters, leading axis R (see :func:`stack_hyper`).
      keys: R PRNG keys (see :func:`run_keys`).
      data: ``(x, labels)`` shared by all runs, or stacked per run with
        ``per_run_data=True`` (x: (R, N, d), labels: (R, N)).
      test: optional test ``(x, labels)``, shaped like ``data``.
      net, sg: optional initial parameters stacked per run (leading axis R).
      progress: called as ``progress(steps_done, steps_total)`` between chunks, where
        the total counts the steps of every block.
      chunks: about how many host round-trips to make in all (for progress): per block,
        ``chunks`` divided by the number of blocks, at least one (the chunking does not
        change the results).
      mesh: a ``Mesh`` with axis ``"runs"``, ``True`` for all devices, ``None``/``False``
        for no sharding.
      test_history: also record test accuracy at every history record.
      alignment: also record ``sg_alignment`` (R, K-1, |S|) at every history record
        (:func:`dnijax.signals.sg_alignment`; rules with SG modules only).
      block_runs: train at most this many runs at once; ``"auto"``: blocks of
        :func:`auto_block_runs` (within :func:`memory_budget`, and cache-sized on the CPU);
        ``None``: all R at once. Per-run data go to the device block by block.
    """
    n_runs = int(keys.shape[0])
    if any(np.shape(v)[0] != n_runs for v in hyper):
        raise ValueError(f"engine: {n_runs} keys but hyperparameters for "
                         f"{sorted({np.shape(v)[0] for v in hyper})} runs")
    mesh = default_mesh() if mesh is True else (mesh or None)
    program = config.program()
    data_axis = 0 if per_run_data else None
    if block_runs == "auto":
        rows = sum(np.shape(pair[1])[-1] for pair in (data, test) if pair is not None)
        need = bytes_per_run(config, np.shape(data[1])[-1], rows if per_run_data else 0)
        block = min(n_runs, auto_block_runs(need, 1 if mesh is None else mesh.devices.size))
    else:
        block = n_runs if block_runs is None else max(1, min(int(block_runs), n_runs))
    starts = range(0, n_runs, block)
    block_chunks = max(1, -(-chunks // len(starts)))

    def to_device(pair, runs=slice(None)):
        if pair is None:
            return None
        if per_run_data:
            pair = tuple(np.asarray(a)[runs] for a in pair)
        return train.make_data(config, *pair, per_run=per_run_data)

    shared = (None, None) if per_run_data else (to_device(data), to_device(test))
    results = []
    for b, start in enumerate(starts):
        runs = slice(start, min(start + block, n_runs))
        cut = lambda tree: None if tree is None else jax.tree.map(lambda a: a[runs], tree)  # noqa
        tick = None if progress is None else (
            lambda done, total, b=b: progress(b * config.steps + done, len(starts) * total))
        train_data, test_data = ((to_device(data, runs), to_device(test, runs))
                                 if per_run_data else shared)
        results.append(_run_block(
            config, program, mesh, block, data_axis, cut(hyper), cut(keys), train_data,
            test_data, cut(net), cut(sg), tick, block_chunks, test_history, alignment))
    if len(results) == 1:
        return results[0]
    history = {k: (results[0].history[k] if k == "step" else
                   np.concatenate([r.history[k] for r in results]))
               for k in results[0].history}
    return GridResult(history, *(np.concatenate([getattr(r, f) for r in results])
                                 for f in ("final_loss", "final_accuracy", "test_accuracy",
                                           "diverged_at")),
                      jax.tree.map(lambda *a: jnp.concatenate(a), *[r.state for r in results]))


def _run_block(config: RunConfig, program: Program, mesh: Mesh | None, block: int,
               data_axis: Any, hyper: Hyper, keys: jax.Array, train_data: Any, test_data: Any,
               net: Any, sg: Any, progress: Progress | None, chunks: int,
               test_history: bool, alignment: bool) -> GridResult:
    """One block of runs: init, the scanned chunks, the final evaluation, the history.

    The block is padded (with copies of its last run) to ``block`` runs rounded up to a
    multiple of the devices, so every block runs the same compiled program."""
    n_runs = int(keys.shape[0])
    n_dev = 1 if mesh is None else mesh.devices.size
    n_pad = block + (-block % n_dev) - n_runs
    shard = lambda tree, axis=0: None if tree is None else _shard(tree, mesh, n_pad, axis)  # noqa
    train_data, test_data = shard(train_data, data_axis), shard(test_data, data_axis)
    hyper_d, keys_d = shard(hyper), shard(keys)
    if net is None:
        net_d = _init_network(program.net_init, keys_d)
    else:
        net_d = shard(net)
    state = _init(program, (0, None if sg is None else 0), hyper_d, keys_d, net_d, shard(sg))

    total_records = config.steps // config.log_every
    per_chunk = largest_divisor(total_records, -(-total_records // max(1, chunks)))
    records = []
    for done in range(0, total_records, per_chunk):
        state, rec = _advance(program, per_chunk, data_axis, alignment, hyper_d, state,
                              train_data, test_data if test_history else None)
        records.append(jax.device_get(rec))
        if progress is not None:
            progress((done + per_chunk) * config.log_every, config.steps)
    final_loss, final_acc, test_acc = _evaluate(program.net, data_axis, state.net, train_data,
                                                test_data)
    if test_acc is None:
        test_acc = np.full_like(np.asarray(final_acc), np.nan)
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
    if "sg_alignment" in hist:
        history["sg_alignment"] = hist["sg_alignment"]
    if "test_accuracy" in hist:
        history["test_accuracy"] = np.concatenate(
            [hist["test_accuracy"], np.asarray(test_acc)[:n_runs, None]], axis=1)
    state = jax.tree.map(lambda a: a[:n_runs], state)
    return GridResult(history, final_loss, final_acc, np.asarray(test_acc)[:n_runs],
                      diverged_at, state)
