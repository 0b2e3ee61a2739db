"""Command-line parsing shared by ``dnijax`` and the benchmarks.

:class:`Parser` is an ``argparse.ArgumentParser`` that

* takes every option by its full name only (``allow_abbrev=False``): ``--seed 3`` is not
  read as ``--seeds 3``, and no new option can silently change what an old command means;
* reports a bad command line in one line on stderr with exit code 2, and for an unknown
  option names the closest real ones (``--sg_lr`` -> ``--sg-lr``, ``--seed`` -> ``--seeds``).

Examples:
  >>> parser = Parser(prog="demo")
  >>> _ = parser.add_argument("--seeds", type=int)
  >>> parser.parse_args(["--seeds", "3"]).seeds
  3
  >>> unknown_option_hint(["--seed", "3"], parser)
  'unrecognized arguments: --seed 3 (did you mean --seeds?)'
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn


def fail(message: str, prog: str | None = None) -> NoReturn:
    """Ends the program with ``<prog>: error: <message>`` on stderr and exit code 2 (``prog``:
    the running script's name)."""
    sys.stderr.write(f"{prog or os.path.basename(sys.argv[0])}: error: {message}\n")
    sys.exit(2)


def option_names(parser: argparse.ArgumentParser) -> list[str]:
    """Every long option string that ``parser``'s help shows (``--help`` included)."""
    return [
        s
        for action in parser._actions
        for s in action.option_strings  # noqa: SLF001
        if s.startswith("--") and action.help != argparse.SUPPRESS
    ]


def unknown_option_hint(extras: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments" message with, for each unknown option, the
    closest options of ``parser`` (at most two)."""
    known = option_names(parser)
    hints = {}
    for word in extras:
        name = word.split("=", 1)[0]
        if name.startswith("-"):
            spelled = "--" + name.lstrip("-").replace("_", "-")
            close = difflib.get_close_matches(spelled, known, n=2, cutoff=0.6)
            if close:
                hints[name] = f"did you mean {' or '.join(close)}?"
    message = f"unrecognized arguments: {' '.join(extras)}"
    if len(hints) == 1:
        return f"{message} ({next(iter(hints.values()))})"
    if hints:
        return message + " (" + "; ".join(f"{k}: {v}" for k, v in hints.items()) + ")"
    return message


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` without abbreviations, whose errors are one line and exit 2,
    and which suggests the closest option for an unknown one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        fail(message, self.prog.split()[0])

    def parse_args(  # type: ignore[override]  # one signature for typeshed's overloads
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(unknown_option_hint(extras, self._chosen_subparser(parsed)))
        return parsed

    def _chosen_subparser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The subcommand's parser that read ``parsed`` (``self`` without subcommands)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
                if chosen is not None:
                    return chosen
        return self
