"""Multi-process runs: one grid's run axis sharded over the devices of several processes.

Every process starts the same command (``dnijax compare ... --processes N --process-id I
--coordinator HOST:PORT``, or ``--processes auto`` on a cluster JAX recognises: SLURM,
Open MPI, Cloud TPU pods, Kubernetes) and calls :func:`initialize` before JAX computes
anything. :func:`dnijax.engine.run_grid` then shards each block of runs over the global
mesh (every process's devices), builds the global arrays from each process's copy of the
grid's inputs and gathers the per-run results back to every process, so each process
holds the whole :class:`~dnijax.engine.GridResult`; process 0 alone writes files
(:func:`is_writer`, :func:`on_writer`).

Before ``jax.distributed.initialize`` the processes meet at the coordinator's port in a
plain TCP handshake (:func:`initialize`): XLA ends a process that cannot reach the
coordinator with an abort and a stack trace, so the handshake finds an unreachable
coordinator, a missing process, disagreeing ``--processes`` or ``--process-id`` values and
different configurations first and turns each into a one-line ``ValueError`` on every
process that can be told, within ``timeout_s``. On the CPU the processes' collectives use
gloo (``jax_cpu_collectives_implementation``).

With one process none of this runs: results are bit-identical to those without it.

Examples:
  >>> from dnijax import distributed
  >>> distributed.parse_coordinator("node001:12355")
  ('node001', 12355)
  >>> distributed.initialize(None)  # one process: nothing to start
  False
  >>> distributed.is_writer(), distributed.split_error(3)
  (True, None)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_TIMEOUT_S = 300.0
"""Seconds a process waits for the others at start (JAX's own default)."""

SHUTDOWN_TIMEOUT_S = 900
"""Seconds the processes other than 0 wait at exit for process 0 (writing the results);
the ``--coordinator-timeout`` if longer."""

_PROTOCOL = "dnijax-distributed-1"
_RETRY_S = 0.25
_MAX_LINE = 1 << 16


def parse_coordinator(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)`` (``[::1]:PORT`` for an IPv6 host).

    Raises:
      ValueError: one line naming ``--coordinator``.
    """
    host, sep, port = str(text).rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"--coordinator: {text!r} is not HOST:PORT (e.g. node001:12345, a port 1-65535)"
        )
    return host, int(port)


def _auto_params(timeout_s: float) -> tuple[str, int, int, Sequence[int] | None]:
    """The coordinator, process count, process id and local devices that
    ``jax.distributed.initialize()`` would read from the environment (SLURM, Open MPI,
    Cloud TPU, Kubernetes; ``JAX_COORDINATOR_ADDRESS`` / ``JAX_COORDINATOR_PORT``)."""
    from jax._src import clusters  # JAX's own detection: the one initialize() runs

    address, count, pid, local = clusters.ClusterEnv.auto_detect_unset_distributed_params(
        os.environ.get("JAX_COORDINATOR_ADDRESS"), None, None, None, None, int(timeout_s)
    )
    if address is None or count is None or pid is None:
        raise ValueError(
            "--processes auto: no cluster environment that JAX recognises (SLURM under "
            "srun, Open MPI, a Cloud TPU pod, Kubernetes); give --processes N --process-id "
            "I --coordinator HOST:PORT instead"
        )
    return str(address), int(count), int(pid), local


def initialize(
    processes: int | str | None,
    process_id: int | None = None,
    coordinator: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    fingerprint: str = "",
) -> bool:
    """Joins this process to a multi-process run; call it before JAX computes anything.

    Args:
      processes: the number of processes, ``"auto"`` (read from the environment as
        ``jax.distributed.initialize()`` reads it), or ``None`` (with ``process_id`` and
        ``coordinator`` also ``None``: one process, nothing to do). One process is no
        multi-process run: nothing is started.
      process_id: this process's index, ``0 <= process_id < processes``; process 0 hosts
        the coordinator and writes the results.
      coordinator: ``"HOST:PORT"`` of process 0 (the port must be free there).
      timeout_s: how long every process waits for the others (and ``jax.distributed``
        for its own start), in seconds.
      fingerprint: a digest of this process's configuration; every process must bring
        process 0's (:func:`fingerprint_of`).

    Returns:
      Whether a multi-process run was started.

    Raises:
      ValueError: one line naming the cause: incomplete or bad options, a coordinator
        that no process answered at within ``timeout_s``, processes missing at process 0
        after ``timeout_s``, processes that disagree on ``--processes`` or have the same
        ``--process-id``, a configuration unlike process 0's, or JAX already started.
    """
    given = {"--processes": processes, "--process-id": process_id, "--coordinator": coordinator}
    if processes == "auto":
        extra = [k for k, v in given.items() if k != "--processes" and v is not None]
        if extra:
            raise ValueError(
                f"--processes auto reads {' and '.join(extra)} from the environment; "
                "drop them or give a number of processes"
            )
    elif all(v is None for v in given.values()):
        return False
    elif any(v is None for v in given.values()):
        missing = [k for k, v in given.items() if v is None]
        raise ValueError(
            f"{', '.join(given)}: give all three or none (missing {', '.join(missing)})"
        )
    if not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < math.inf:
        raise ValueError(f"--coordinator-timeout: {timeout_s!r} must be a number of seconds > 0")
    local_devices: Sequence[int] | None = None
    if processes == "auto":
        coordinator, processes, process_id, local_devices = _auto_params(timeout_s)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"--processes: {processes!r} must be an integer >= 1 or auto")
    if isinstance(process_id, bool) or not isinstance(process_id, int):
        raise ValueError(f"--process-id: {process_id!r} must be an integer")
    if not 0 <= process_id < processes:
        raise ValueError(
            f"--process-id: {process_id} is not in 0..{processes - 1} (--processes {processes})"
        )
    host, port = parse_coordinator(str(coordinator))
    if processes == 1:
        return False
    if jax.distributed.is_initialized():
        raise ValueError("jax.distributed is already initialized in this process")
    _handshake(host, port, processes, process_id, fingerprint, float(timeout_s))
    # gloo for the CPU's collectives (no effect on accelerators); before the backend starts
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    seconds = max(1, math.ceil(timeout_s))
    try:
        jax.distributed.initialize(
            coordinator_address=f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
            num_processes=processes,
            process_id=process_id,
            local_device_ids=local_devices,
            initialization_timeout=seconds,
            # at exit the others wait here for process 0 to finish writing the results
            shutdown_timeout_seconds=max(seconds, SHUTDOWN_TIMEOUT_S),
        )
    except RuntimeError as err:  # e.g. JAX has computed something already
        raise ValueError(f"jax.distributed: {str(err).splitlines()[0]}") from None
    return True


def fingerprint_of(*parts: Any) -> str:
    """A short digest of JSON-able ``parts`` (e.g. the options and the contents of the
    files they name), for :func:`initialize`'s ``fingerprint``."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def _receive(conn: socket.socket, deadline: float) -> dict[str, Any] | None:
    """One JSON line from ``conn`` before ``deadline``; ``None`` if it closed, timed out or
    sent something else."""
    data = b""
    while b"\n" not in data and len(data) < _MAX_LINE:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        conn.settimeout(left)
        try:
            chunk = conn.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    try:
        message = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _handshake(
    host: str, port: int, processes: int, process_id: int, fingerprint: str, timeout_s: float
) -> None:
    """Process 0 listens on the coordinator's port until every other process has said
    hello (its id, its process count, its configuration's fingerprint), then answers each
    ``ok`` or the one error every process then raises; the others connect (retrying until
    the deadline), say hello and wait for the answer. The port is free again afterwards,
    for ``jax.distributed``'s coordinator."""
    deadline = time.monotonic() + timeout_s
    where = f"{host}:{port}"
    if process_id == 0:
        _coordinate(port, processes, fingerprint, deadline, where, timeout_s)
        return
    hello = {
        "protocol": _PROTOCOL,
        "process_id": process_id,
        "processes": processes,
        "fingerprint": fingerprint,
    }
    reason = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ValueError(
                f"--coordinator {where}: cannot reach the coordinator within {timeout_s:g} s "
                f"({reason}); start process 0 (--process-id 0) on that host, or check "
                "the address"
            )
        try:
            conn = socket.create_connection((host, port), timeout=min(left, 2.0))
        except OSError as err:
            reason = err.strerror or type(err).__name__.replace("Error", " error").lower()
            time.sleep(min(_RETRY_S, max(0.0, deadline - time.monotonic())))
            continue
        with conn:
            _send(conn, hello)
            answer = _receive(conn, deadline)
        if answer is None or answer.get("protocol") != _PROTOCOL:
            reason = "it answered, but not as process 0 of a dnijax run"
            if answer is None and time.monotonic() < deadline:
                time.sleep(_RETRY_S)
            continue
        if answer.get("error"):
            raise ValueError(str(answer["error"]))
        return


def _coordinate(
    port: int, processes: int, fingerprint: str, deadline: float, where: str, timeout_s: float
) -> None:
    """Process 0's side of :func:`_handshake`."""
    try:
        if socket.has_dualstack_ipv6():
            server = socket.create_server(
                ("", port), family=socket.AF_INET6, dualstack_ipv6=True, reuse_port=False
            )
        else:
            server = socket.create_server(("", port))
    except OSError as err:
        raise ValueError(
            f"--coordinator {where}: process 0 cannot listen on port {port} "
            f"({err.strerror or err}); choose a free port"
        ) from None
    peers: list[tuple[socket.socket, dict[str, Any]]] = []
    seen: set[Any] = set()
    error = ""
    try:
        with server:
            while len(peers) < processes - 1 and not error:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                server.settimeout(left)
                try:
                    conn, _ = server.accept()
                except OSError:  # the deadline
                    break
                hello = _receive(conn, min(deadline, time.monotonic() + 10.0))
                if hello is None or hello.get("protocol") != _PROTOCOL:
                    conn.close()  # not one of ours
                    continue
                peers.append((conn, hello))
                pid, count = hello.get("process_id"), hello.get("processes")
                if count != processes:
                    error = (
                        f"processes disagree on --processes: process 0 has {processes}, "
                        f"process {pid} has {count}"
                    )
                elif pid in seen or pid == 0:
                    error = f"two processes have --process-id {pid}"
                seen.add(pid)
            if not error and len(peers) < processes - 1:
                missing = [i for i in range(1, processes) if i not in seen]
                error = (
                    f"--coordinator {where}: only {len(peers) + 1} of {processes} processes "
                    f"arrived within {timeout_s:g} s (missing --process-id "
                    f"{', '.join(map(str, missing[:8]))}{', ...' if len(missing) > 8 else ''}); "
                    f"start every process with --processes {processes} --coordinator {where}"
                )
            unlike = sorted(
                hello["process_id"] for _, hello in peers if hello["fingerprint"] != fingerprint
            )
            if not error and unlike:
                error = (
                    f"process {', '.join(map(str, unlike))} started with another "
                    "configuration than process 0 (its options or the files they name "
                    "differ); start every process with the same command"
                )
            for conn, _ in peers:
                with contextlib.suppress(OSError):
                    _send(conn, {"protocol": _PROTOCOL, "error": error})
            for conn, _ in peers:  # let the peers close first: the port is reused
                _receive(conn, time.monotonic() + 5.0)
    finally:
        for conn, _ in peers:
            conn.close()
    if error:
        raise ValueError(error)


def multi_process() -> bool:
    """Whether this process is one of several (``jax.process_count() > 1``)."""
    return jax.distributed.is_initialized() and jax.process_count() > 1


def is_writer() -> bool:
    """Whether this process writes files: process 0, or the only process."""
    return not multi_process() or jax.process_index() == 0


def _broadcast_bytes(payload: bytes) -> bytes:
    """Process 0's ``payload``, on every process."""
    from jax.experimental import multihost_utils

    size = int(multihost_utils.broadcast_one_to_all(np.array(len(payload), np.int64)))
    width = max(256, 1 << (size - 1).bit_length())  # few shapes, few compiled programs
    buffer = np.zeros(width, np.uint8)
    buffer[: len(payload)] = np.frombuffer(payload, np.uint8)
    return multihost_utils.broadcast_one_to_all(buffer)[:size].tobytes()


def on_writer(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` run on the writing process alone; every process returns its
    JSON-able result, or raises its ``ValueError`` / ``OSError`` as a one-line
    ``ValueError`` (so no process goes on while process 0 has stopped). With one process,
    just ``fn(*args, **kwargs)``."""
    if not multi_process():
        return fn(*args, **kwargs)
    outcome: dict[str, Any] = {}
    if is_writer():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except (ValueError, OSError) as err:
            outcome["error"] = str(err).splitlines()[0] if str(err) else type(err).__name__
    outcome = json.loads(_broadcast_bytes(json.dumps(outcome).encode()))
    if "error" in outcome:
        raise ValueError(outcome["error"])
    return outcome["value"]


def agree_min(value: int) -> int:
    """The least of every process's ``value`` (``value`` itself with one process)."""
    if not multi_process():
        return int(value)
    from jax.experimental import multihost_utils

    return int(np.min(multihost_utils.process_allgather(np.array(value, np.int64))))


def digest(tree: Any, *extra: Any) -> bytes:
    """A digest of a tree of arrays (PRNG keys by their data) and of ``extra`` (``repr``)."""
    h = hashlib.sha256(repr(extra).encode())
    for leaf in jax.tree.leaves(tree):
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.digest()


def check_same(what: str, value: bytes) -> None:
    """Raises a one-line ``ValueError`` on every process unless every process brings
    process 0's ``value`` (e.g. a :func:`digest` of its grid's inputs)."""
    if not multi_process():
        return
    from jax.experimental import multihost_utils

    rows = multihost_utils.process_allgather(np.frombuffer(value, np.uint8))
    unlike = [i for i in range(1, rows.shape[0]) if not np.array_equal(rows[i], rows[0])]
    if unlike:
        raise ValueError(
            f"process {', '.join(map(str, unlike))} runs another {what} than process 0 "
            "(different options, data or inputs); start every process with the same "
            "command and data"
        )


def split_error(n_runs: int, what: str = "grid", processes: int | None = None) -> str | None:
    """The one-line reason why ``processes`` processes (default: those of this run) cannot
    share a ``what`` of ``n_runs`` runs equally, or ``None`` when they can (always with one
    process)."""
    count = processes or (jax.process_count() if multi_process() else 1)
    if n_runs % count == 0:
        return None
    fits = [d for d in range(2, n_runs + 1) if n_runs % d == 0][:4]
    return (
        f"--processes {count} does not divide the {n_runs} runs of a {what}: each process "
        f"trains an equal share of the runs; choose --seeds so that {count} divides them"
        + (f", or --processes {' or '.join(map(str, fits))}" if fits else "")
    )


def _is_key(a: Any) -> bool:
    return hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def to_global(tree: Any, sharding: jax.sharding.Sharding, n_pad: int = 0) -> Any:
    """Every leaf of ``tree`` (the same on every process) as one global array laid out as
    ``sharding`` says, each process giving its devices their parts from its own copy;
    ``n_pad`` copies of the last row are appended first (the engine's padding)."""

    def one(a: Any) -> jax.Array:
        impl = jax.random.key_impl(a) if _is_key(a) else None
        host = np.asarray(jax.random.key_data(a) if impl is not None else a)
        if n_pad:
            host = np.concatenate([host, np.repeat(host[-1:], n_pad, axis=0)])
        out = jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
        return out if impl is None else jax.random.wrap_key_data(out, impl=impl)

    return jax.tree.map(one, tree)


def gather(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """A tree of global arrays on ``mesh`` as host values on every process: numpy arrays,
    PRNG keys as process-local key arrays; one compiled all-gather for the whole tree."""
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        return tree
    impls = [jax.random.key_impl(a) if _is_key(a) else None for a in leaves]
    datas = [a if i is None else jax.random.key_data(a) for a, i in zip(leaves, impls, strict=True)]
    copies = _replicate(jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))(*datas)
    host = [np.asarray(c.addressable_data(0)) for c in copies]
    out = [
        h if i is None else jax.random.wrap_key_data(jnp.asarray(h), impl=i)
        for h, i in zip(host, impls, strict=True)
    ]
    return jax.tree.unflatten(treedef, out)


@functools.cache
def _replicate(sharding: jax.sharding.Sharding) -> Callable[..., Any]:
    """A compiled identity whose outputs are whole on every device of ``sharding``."""
    return jax.jit(lambda *xs: xs, out_shardings=sharding)
