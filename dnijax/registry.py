"""The one way a name-to-behaviour table of dnijax takes user entries.

Optimisers (:mod:`dnijax.updates`), noise schedules (:mod:`dnijax.noise`), losses
(:mod:`dnijax.nets`), init schemes (:mod:`dnijax.layers`) and SG topologies
(:mod:`dnijax.synthetic`) are dicts from a name to a function; each module's
``register_*``/``unregister_*`` pair goes through :func:`add` and :func:`remove`, so every
table checks names and protects its built-in entries the same way.

Examples:
  >>> table, builtins = {"sgd": print}, ("sgd",)
  >>> add(table, builtins, "optimizer", "mine", len)
  >>> sorted(table)
  ['mine', 'sgd']
  >>> add(table, builtins, "optimizer", "sgd", len)
  Traceback (most recent call last):
  ...
  ValueError: optimizer 'sgd' is built in; register it under another name
  >>> remove(table, builtins, "mine"); sorted(table)
  ['sgd']
"""

from __future__ import annotations

from collections.abc import Container, MutableMapping
from typing import Any


def add(
    table: MutableMapping[str, Any], builtins: Container[str], what: str, name: str, value: Any
) -> None:
    """Adds ``name -> value`` to ``table``.

    Raises:
      ValueError: one line, when ``name`` is not a non-empty string or is built in.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: {name!r} is not a valid name; give a non-empty string")
    if name in builtins:
        raise ValueError(f"{what} {name!r} is built in; register it under another name")
    if name in table and table[name] is not value:
        raise ValueError(f"{what} {name!r} is already registered; unregister it first")
    table[name] = value


def remove(table: MutableMapping[str, Any], builtins: Container[str], name: str) -> None:
    """Removes an entry added with :func:`add` (built-in entries stay), and empties JAX's
    caches of compiled programs: a program names its entries, so one compiled before would
    otherwise run the old entry if the name is registered again."""
    if name not in builtins and name in table:
        del table[name]
        import jax

        jax.clear_caches()
