"""The one training driver: vmap over runs, scan over steps, run blocks, shards over devices.

:func:`run_grid` trains a grid of runs of any network kind; :func:`run_one` trains one (a
grid of one). What they compile (a run's state, its step, ``lax.scan`` over steps) is the
run's :class:`~dnijax.kinds.Kind` (:mod:`dnijax.kinds`): feed-forward nets on data
(:mod:`dnijax.train`) and recurrent nets on sequence tasks (:mod:`dnijax.bptt`) alike.

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
several processes (hosts), call :func:`dnijax.distributed.initialize` in each process
first: ``jax.devices()`` then lists every process's devices, the same code shards the grid
across all of them and every process gets every run's results.

Examples:
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
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dnijax import distributed, kinds, nets, synthetic, train
from dnijax.config import Hyper, Program, RunConfig, largest_divisor

Progress = Callable[[int, int], None]


class GridResult(NamedTuple):
    """Per-run results of a grid (leading axis = runs), as numpy arrays.

    Attributes:
      history: ``step`` (K,), and (R, K) records at ``0, log_every, ..., steps`` of the
        kind's evaluation (feed-forward: ``loss``, ``accuracy``, with ``test_history``
        ``test_loss``, ``test_accuracy``; recurrent: ``length``, ``solved``) and
        ``diverged``; (R, K-1, ...) records of the steps between (feed-forward:
        ``sg_loss`` (R, K-1, |S|), with ``alignment`` ``grad_alignment`` (R, K-1, L) and
        ``sg_alignment``; recurrent:
        ``error_bits``).
      final: the kind's evaluation after the last step, per run (feed-forward: ``loss``,
        ``accuracy`` on the training data, ``test_loss``, ``test_accuracy`` on the test
        data, NaN without; recurrent: ``length``, ``solved``).
      diverged_at: the step (recurrent: the episode) at which each run diverged, -1 if it
        did not.
      state: the final :class:`~dnijax.train.TrainState` of every run.
    """

    history: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    diverged_at: np.ndarray
    state: Any


def run_keys(seed: int | Sequence[int] | np.ndarray, n: int | None = None) -> jax.Array:
    """PRNG keys of runs: ``key(seed + i)`` for i < n, or one key per listed seed."""
    seeds = np.asarray(seed) + np.arange(n) if n is not None else np.asarray(seed)
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
    fields = {
        k: jnp.broadcast_to(jnp.asarray(values.get(k, v), config.jnp_dtype), (n_runs,))
        for k, v in base.items()
    }
    return Hyper(**fields)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init(program: Program, axes: tuple, hyper, keys, net, sg):
    init_state = kinds.get(program).init_state

    def one(h, k, n, s):
        return init_state(program, h, k, net=n, sg=s)

    return jax.vmap(one, in_axes=(0, 0) + axes)(hyper, keys, net, sg)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init_network(kind: str, net_init: tuple, keys):
    """The runs' initial networks, as the kind's ``init_state`` draws them; compiled once
    per ``Program.net_init``, so the programs of several regimes share it (drawing normals
    is slow to compile)."""
    return jax.vmap(lambda k: kinds.KINDS[kind].init_network(net_init, k))(keys)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _advance(
    program: Program, n_records: int, data_axis: Any, alignment: bool, hyper, state, data, test=None
):
    def run(h, s, d, t):
        return kinds.run_records(program, h, s, d, n_records, test=t, alignment=alignment)

    return jax.vmap(run, in_axes=(0, 0, data_axis, data_axis))(hyper, state, data, test)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _evaluate(kind: str, spec: Any, data_axis: Any, net, task_state, data, test):
    """The kind's evaluation after the last step, on the training data and (prefixed
    ``test_``) the test data: one program per evaluation spec, shared by every regime's
    runs (each compile costs about 0.2 s)."""
    evaluate = kinds.KINDS[kind].evaluate

    def one(n, ts, d, t):
        out = dict(evaluate(spec, n, ts, d))
        if t is not None:
            out.update({f"test_{k}": v for k, v in evaluate(spec, n, ts, t).items()})
        return out

    return jax.vmap(one, in_axes=(0, 0, data_axis, data_axis))(net, task_state, data, test)


def compiled_programs() -> int:
    """How many programs the engine holds compiled in this process (initialisation, the
    training chunks, the final evaluation): a new number of an existing structure (a
    learning rate, eta, a key) reuses them, so this count does not grow."""
    return sum(
        fn._cache_size()  # type: ignore[attr-defined]  # jax's JitWrapped stub lacks it
        for fn in (_init, _init_network, _advance, _evaluate)
    )


def compiled_bytes(
    config: RunConfig, hyper: Hyper, keys: jax.Array, data: Any, n_records: int = 1
) -> int:
    """Memory XLA's analysis reports (arguments, outputs, temporaries) for one chunk of
    ``n_records`` records of this grid, on one device, with data shared by every run."""
    program = config.program()
    kind = kinds.get(program)
    state = jax.eval_shape(
        jax.vmap(lambda h, k: kind.init_state(program, h, k, net=None, sg=None)), hyper, keys
    )
    device_data = kind.make_data(config, data, False)
    mem = (
        _advance.lower(program, n_records, None, False, hyper, state, device_data)
        .compile()
        .memory_analysis()
    )
    if mem is None:
        raise RuntimeError("compiled_bytes: XLA gives no memory analysis on this backend")
    return int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes)


def bytes_per_run(config: RunConfig, n_rows: int, per_run_rows: int = 0) -> int:
    """A generous estimate of the device memory one run of a block needs (the kind's
    :attr:`~dnijax.kinds.Kind.bytes_per_run`; feed-forward: :func:`dnijax.train.
    bytes_per_run`, recurrent: :func:`dnijax.bptt.bytes_per_run`)."""
    return kinds.get(config.program()).bytes_per_run(config, n_rows, per_run_rows)


CPU_BLOCK_BYTES = 2**29


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
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
        try:
            value = float(text[:-1] if scale > 1 else text) * scale
        except ValueError:
            value = 0
        if value <= 0:
            raise ValueError(
                f"DNIJAX_MEMORY_BUDGET: {text!r} is not a positive size; give "
                "bytes or a number with K, M or G, e.g. 2G"
            )
        return int(value)
    limit = (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
    if limit:
        return int(limit // 2)
    return int(min(CPU_BLOCK_BYTES, _host_memory() // 8))


CPU_FAST_BLOCK_BYTES = 2**25
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


def _shard(tree: Any, mesh: Mesh | None, n_pad: int, axis: int | None) -> Any:
    """Pads the run axis by repeating the last run and shards it over the mesh (a mesh over
    several processes: one global array, each process giving its devices their runs from
    its own copy of ``tree``, :func:`dnijax.distributed.to_global`)."""
    if mesh is not None and mesh.is_multi_process:
        spec = PartitionSpec() if axis is None else PartitionSpec("runs")
        return distributed.to_global(tree, NamedSharding(mesh, spec), 0 if axis is None else n_pad)
    if axis is None:
        return tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))

    def pad(a):
        a = jnp.asarray(a) if not isinstance(a, jax.Array) else a
        return jnp.concatenate([a, jnp.repeat(a[-1:], n_pad, axis=0)]) if n_pad else a

    tree = jax.tree.map(pad, tree)
    return (
        tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, PartitionSpec("runs")))
    )


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
            raise ValueError(
                f"cannot use {n} CPU devices: JAX already runs with {have}; "
                "choose the number before JAX computes anything"
            ) from None


def device_summary() -> str:
    """``"2 x cpu"``: the devices :func:`run_grid` shards over by default (``"2 x cpu in 2
    processes"`` in a multi-process run, :mod:`dnijax.distributed`)."""
    devices = jax.devices()
    summary = f"{len(devices)} x {devices[0].platform}"
    if distributed.multi_process():
        summary += f" in {jax.process_count()} processes"
    return summary


def default_mesh() -> Mesh | None:
    """A 1-D mesh over every device (``None`` with a single device)."""
    devices = jax.devices()
    return Mesh(np.array(devices), ("runs",)) if len(devices) > 1 else None


def run_one(
    config: RunConfig,
    x: Any,
    labels: Any,
    key: jax.Array,
    *,
    net: nets.Params | None = None,
    sg: synthetic.SGParams | None = None,
) -> tuple[train.TrainState, dict[str, np.ndarray]]:
    """Trains one run of ``config`` on ``(x, labels)``: a grid of one.

    Args:
      config: the run.
      x: inputs (N, widths[0]); labels: integer classes (N,) (both ``None`` for a
        sequence task, which makes its own data).
      key: PRNG key.
      net: optional initial network parameters.
      sg: optional initial SG-module parameters.

    Returns:
      The final :class:`~dnijax.train.TrainState` and a history of numpy arrays with
      records at steps ``0, log_every, ..., steps`` (``sg_loss`` has no record at ``steps``).

    Examples:
      >>> import jax, numpy as np
      >>> from dnijax import RunConfig, engine
      >>> x = np.random.RandomState(0).randn(64, 2).astype("float32")
      >>> labels = (x[:, 0] > 0).astype("int32")
      >>> cfg = RunConfig(regime="dni", widths=(2, 8, 1), lr=0.5, steps=200, reduction="mean")
      >>> state, history = engine.run_one(cfg, x, labels, jax.random.key(0))
      >>> bool(history["loss"][-1] < history["loss"][0])
      True
    """

    def one(tree):
        return None if tree is None else jax.tree.map(lambda a: jnp.asarray(a)[None], tree)

    data = None if x is None and labels is None else (x, labels)
    res = run_grid(
        config, stack_hyper(config), key[None], data, net=one(net), sg=one(sg), mesh=None, chunks=1
    )
    history = {k: v if k == "step" else v[0] for k, v in res.history.items()}
    return jax.tree.map(lambda a: a[0], res.state), history


def run_grid(
    config: RunConfig,
    hyper: Hyper,
    keys: jax.Array,
    data: Any,
    *,
    test: Any = None,
    per_run_data: bool = False,
    net: Any = None,
    sg: Any = None,
    progress: Progress | None = None,
    chunks: int = 20,
    mesh: Mesh | None | bool = True,
    test_history: bool = False,
    alignment: bool = False,
    block_runs: int | str | None = "auto",
) -> GridResult:
    """Trains every run of a grid and returns their results.

    Args:
      config: the structure shared by all runs (and the defaults of their numbers).
      hyper: stacked hyperparameters, leading axis R (see :func:`stack_hyper`).
      keys: R PRNG keys (see :func:`run_keys`).
      data: ``(x, labels)`` shared by all runs, or stacked per run with
        ``per_run_data=True`` (x: (R, N, d), labels: (R, N)); ``None`` for a sequence
        task (``config.task``), which makes its own sequences from each run's key.
      test: optional test ``(x, labels)``, shaped like ``data``.
      net: optional initial network parameters stacked per run (leading axis R).
      sg: optional initial SG-module parameters, stacked the same way.
      progress: called as ``progress(steps_done, steps_total)`` between chunks, where
        the total counts the steps of every block.
      chunks: about how many host round-trips to make in all (for progress): per block,
        ``chunks`` divided by the number of blocks, at least one (the chunking does not
        change the results).
      mesh: a ``Mesh`` with axis ``"runs"``, ``True`` for all devices, ``None``/``False``
        for no sharding. In a multi-process run (:mod:`dnijax.distributed`) ``True`` is
        every process's devices: every process calls ``run_grid`` with the same arguments,
        the process count must divide R, and every process gets all R runs' results.
      test_history: also record the test metrics (``test_loss``, ``test_accuracy``) at
        every history record.
      alignment: also record at every history record ``grad_alignment`` (R, K-1, L;
        :func:`dnijax.train.grad_alignment`) and, with SG modules, ``sg_alignment``
        (R, K-1, |S|; :func:`dnijax.signals.sg_alignment`); feed-forward runs only.
      block_runs: train at most this many runs at once; ``"auto"``: blocks of
        :func:`auto_block_runs` (within :func:`memory_budget`, and cache-sized on the CPU);
        ``None``: all R at once. Per-run data go to the device block by block.
    """
    n_runs = int(keys.shape[0])
    if any(np.shape(v)[0] != n_runs for v in hyper):
        raise ValueError(
            f"engine: {n_runs} keys but hyperparameters for "
            f"{sorted({np.shape(v)[0] for v in hyper})} runs"
        )
    mesh = default_mesh() if mesh is True else (mesh or None)
    program = config.program()
    kind = kinds.get(program)
    data_axis = 0 if per_run_data else None
    if block_runs == "auto":
        rows = sum(np.shape(pair[1])[-1] for pair in (data, test) if pair is not None)
        n_rows = 0 if data is None else np.shape(data[1])[-1]
        need = kind.bytes_per_run(config, n_rows, rows if per_run_data else 0)
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
        return kind.make_data(config, pair, per_run_data)

    if data is None:
        kind.make_data(config, None, False)  # the kind's own check: does it need data?
    if kind.alignment is None and alignment:
        raise ValueError(f"alignment: a {program.kind} run has no alignment diagnostic")
    if data is None and (test is not None or test_history or per_run_data):
        raise ValueError(
            "test, test_history, per_run_data: a run without data has no test "
            "data and no per-run data; leave them out"
        )
    if mesh is not None and mesh.is_multi_process:  # every process, the same grid
        distributed.check_same(
            "grid",
            distributed.digest(
                (hyper, keys, data, test, net, sg),
                config,
                chunks,
                per_run_data,
                test_history,
                alignment,
                block_runs,
            ),
        )
        reason = distributed.split_error(n_runs)
        if reason:
            raise ValueError(reason)
        block = distributed.agree_min(block)  # memory budgets may differ between hosts
        starts = range(0, n_runs, block)
        block_chunks = max(1, -(-chunks // len(starts)))
    shared = (None, None) if per_run_data else (to_device(data), to_device(test))
    results = []
    for b, start in enumerate(starts):
        runs = slice(start, min(start + block, n_runs))

        def cut(tree: Any, runs: slice = runs) -> Any:
            return None if tree is None else jax.tree.map(lambda a: a[runs], tree)

        tick = (
            None
            if progress is None
            else (lambda done, total, b=b: progress(b * config.steps + done, len(starts) * total))
        )
        train_data, test_data = (
            (to_device(data, runs), to_device(test, runs)) if per_run_data else shared
        )
        results.append(
            _run_block(
                config,
                program,
                mesh,
                block=block,
                data_axis=data_axis,
                hyper=cut(hyper),
                keys=cut(keys),
                train_data=train_data,
                test_data=test_data,
                net=cut(net),
                sg=cut(sg),
                progress=tick,
                chunks=block_chunks,
                test_history=test_history,
                alignment=alignment,
            )
        )
    if len(results) == 1:
        return results[0]
    history = {
        k: (
            results[0].history[k]
            if k == "step"
            else np.concatenate([r.history[k] for r in results])
        )
        for k in results[0].history
    }
    final = {k: np.concatenate([r.final[k] for r in results]) for k in results[0].final}
    return GridResult(
        history,
        final,
        np.concatenate([r.diverged_at for r in results]),
        jax.tree.map(lambda *a: jnp.concatenate(a), *[r.state for r in results]),
    )


def _run_block(
    config: RunConfig,
    program: Program,
    mesh: Mesh | None,
    *,
    block: int,
    data_axis: Any,
    hyper: Hyper,
    keys: jax.Array,
    train_data: Any,
    test_data: Any,
    net: Any,
    sg: Any,
    progress: Progress | None,
    chunks: int,
    test_history: bool,
    alignment: bool,
) -> GridResult:
    """One block of runs: init, the scanned chunks, the final evaluation, the history.

    The block is padded (with copies of its last run) to ``block`` runs rounded up to a
    multiple of the devices, so every block runs the same compiled program."""
    n_runs = int(keys.shape[0])
    n_dev = 1 if mesh is None else mesh.devices.size
    n_pad = block + (-block % n_dev) - n_runs
    multi = mesh is not None and mesh.is_multi_process
    fetch: Callable[[Any], Any] = jax.device_get
    if mesh is not None and multi:
        fetch = functools.partial(distributed.gather, mesh=mesh)
    shard = lambda tree, axis=0: None if tree is None else _shard(tree, mesh, n_pad, axis)  # noqa
    train_data, test_data = shard(train_data, data_axis), shard(test_data, data_axis)
    hyper_d, keys_d = shard(hyper), shard(keys)
    kind = kinds.get(program)
    net_d = _init_network(program.kind, program.net_init, keys_d) if net is None else shard(net)
    state = _init(program, (0, None if sg is None else 0), hyper_d, keys_d, net_d, shard(sg))

    log_every = program.log_every  # config.log_every, set
    total_records = config.steps // log_every
    per_chunk = largest_divisor(total_records, -(-total_records // max(1, chunks)))
    records = []
    for done in range(0, total_records, per_chunk):
        state, rec = _advance(
            program,
            per_chunk,
            data_axis,
            alignment,
            hyper_d,
            state,
            train_data,
            test_data if test_history else None,
        )
        records.append(fetch(rec))
        if progress is not None:
            progress((done + per_chunk) * log_every, config.steps)
    final = fetch(
        _evaluate(
            program.kind,
            kind.eval_spec(program),
            data_axis,
            state.net,
            state.task_state,
            train_data,
            test_data,
        )
    )
    final = {k: np.asarray(v)[:n_runs] for k, v in final.items()}
    if multi:  # every process gets every run's final state
        state = fetch(state)
    diverged_at = np.asarray(state.diverged_at)[:n_runs]
    final["diverged"] = diverged_at >= 0
    if train_data is not None and test_data is None:  # no test data: NaN test metrics
        final.update({f"test_{k}": np.full(n_runs, np.nan) for k in list(final) if k != "diverged"})
    hist = {k: np.concatenate([r[k] for r in records], axis=1)[:n_runs] for k in records[0]}
    history = {"step": np.arange(total_records + 1) * log_every}
    for k, v in hist.items():  # a record of the state gets its value after the last step
        history[k] = np.concatenate([v, final[k][:, None]], axis=1) if k in final else v
    state = jax.tree.map(lambda a: a[:n_runs], state)
    return GridResult(history, final, diverged_at, state)
