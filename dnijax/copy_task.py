"""Graves et al.'s (2014) Copy and Repeat Copy tasks, as padded and masked batches on device.

A batch holds ``B`` sequences of the same pattern length ``L`` (a traced integer, so
one compiled program serves every length of a curriculum), padded to a static number
of time steps. Every pattern element is a vector of ``BITS`` random bits.

* ``copy``: the ``L`` patterns, then a delimiter (an extra input channel set to 1);
  the net must then output the ``L`` patterns. ``2L + 1`` steps; inputs have
  ``BITS + 1`` channels, targets ``BITS``.
* ``repeat_copy``: the ``L`` patterns, then the delimiter with the repeat count
  ``R`` (drawn from ``1..max_repeats`` per sequence) on a third channel as
  ``R / max_repeats``; the net must output the patterns ``R`` times and then raise an
  end marker (an extra target channel). ``L + 2 + R L`` steps; inputs ``BITS + 2``,
  targets ``BITS + 1``.

``mask`` is 1 on the steps where the targets count (the outputs) and 0 elsewhere.

Examples:
  >>> import jax
  >>> from dnijax import copy_task
  >>> batch = copy_task.make_batch(jax.random.key(0), "copy", 3, 2, max_length=4)
  >>> batch.x.shape, batch.y.shape, batch.mask[0].tolist()
  ((2, 9, 9), (2, 9, 8), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

BITS = 8
TASKS = ("copy", "repeat_copy")


class Batch(NamedTuple):
    """Inputs ``x`` (B, S, n_in), targets ``y`` (B, S, n_out), loss mask (B, S)."""

    x: jax.Array
    y: jax.Array
    mask: jax.Array


def n_inputs(task: str) -> int:
    """Input channels: the bits, the delimiter (and the repeat count)."""
    return BITS + (1 if task == "copy" else 2)


def n_outputs(task: str) -> int:
    """Target channels: the bits (and the end marker)."""
    return BITS + (0 if task == "copy" else 1)


def max_steps(task: str, max_length: int, max_repeats: int = 1) -> int:
    """Time steps of the longest sequence."""
    if task == "copy":
        return 2 * max_length + 1
    return max_length + 2 + max_repeats * max_length


def make_batch(
    key: jax.Array,
    task: str,
    length: Any,
    batch: int,
    *,
    max_length: int,
    max_repeats: int = 1,
    steps: int | None = None,
    dtype: Any = jnp.float32,
) -> Batch:
    """A batch of ``task`` with pattern length ``length`` (<= ``max_length``), padded to
    ``steps`` time steps (default :func:`max_steps`)."""
    steps = max_steps(task, max_length, max_repeats) if steps is None else steps
    k_bits, k_rep = jax.random.split(key)
    patterns = jax.random.bernoulli(k_bits, 0.5, (batch, max_length, BITS)).astype(dtype)
    t = jnp.arange(steps)[None, :]  # (1, S)
    length = jnp.asarray(length)
    source = jnp.take_along_axis(  # pattern at step t
        patterns, jnp.clip(t, 0, max_length - 1)[..., None].repeat(batch, 0), axis=1
    )
    shown = (t < length)[..., None]
    delimiter = (t == length).astype(dtype)
    if task == "copy":
        repeats = jnp.ones((batch, 1), jnp.int32)
    else:
        repeats = jax.random.randint(k_rep, (batch, 1), 1, max_repeats + 1)
    out_pos = t - length - 1  # output step index
    answer = (out_pos >= 0) & (out_pos < repeats * length)
    idx = jnp.clip(out_pos % jnp.maximum(length, 1), 0, max_length - 1)
    recalled = jnp.take_along_axis(patterns, idx[..., None].repeat(BITS, -1), axis=1)
    y_bits = jnp.where(answer[..., None], recalled, 0.0)
    x = [jnp.where(shown, source, 0.0), jnp.broadcast_to(delimiter, (batch, steps))[..., None]]
    mask = answer
    if task == "repeat_copy":
        x.append((delimiter * repeats / max_repeats)[..., None])
        end = out_pos == repeats * length
        y_bits = jnp.concatenate([y_bits, end[..., None].astype(dtype)], axis=-1)
        mask = answer | end
    elif task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    return Batch(
        jnp.concatenate(x, axis=-1).astype(dtype), y_bits.astype(dtype), mask.astype(dtype)
    )
