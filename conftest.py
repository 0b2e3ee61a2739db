"""Every code block of README.md and docs/ runs in the test suite, through Sybil.

Sybil (https://sybil.readthedocs.io) was picked over pytest-examples, mktestdocs and
pytest-markdown-docs because it alone does all three things these pages need: it runs a page's
Python blocks in order in one namespace (so a page reads as one session), it checks the output
shown in ``>>>`` blocks as doctests do, and it takes a parser of our own for shell transcripts,
each block becoming one pytest item named by its file and line.

The blocks a page may hold (``tests/test_docs.py`` refuses any other fence):

- ``python``: run; a block that starts with ``>>>`` is a doctest and its shown output is
  checked (``ELLIPSIS`` and ``NORMALIZE_WHITESPACE`` on).
- ``console``: a transcript. Lines that start with ``$ `` are commands (``dnijax ...`` or
  ``python ...``), the lines after each are what it prints (stdout and stderr together). Each
  command runs in a fresh process and its output is compared line by line after progress bars
  are dropped and the seconds of ``trained in`` lines are blanked; a shown line ``...`` stands
  for any number of lines. Everything else, every figure, must match: runs are deterministic on
  one machine.
- ``text``: output or a file listing, not code; nothing to run.

A page's blocks run in one temporary folder that holds links to the repository's ``docs/`` and
``benchmarks/``, so ``--config docs/examples/cnn.json`` and ``--out runs/x`` work as written
and nothing is left in the checkout.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser

ROOT = os.path.dirname(os.path.abspath(__file__))
PROGRESS = re.compile(r"^\S.* \[#* *\] +\d+% +\d+\.\ds$")
SECONDS = re.compile(r"\d+\.\ds\b")
LINKED = ("docs", "benchmarks")  # what a page's commands may name by a relative path


def transcript(source: str) -> list[tuple[str, list[str]]]:
    """The ``(command, shown output lines)`` pairs of a ``console`` block."""
    runs: list[tuple[str, list[str]]] = []
    for line in source.rstrip("\n").splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], []))
        elif not runs:
            raise ValueError(f"a console block must start with a '$ ' command, not {line!r}")
        else:
            runs[-1][1].append(line)
    return runs


def normalise(lines: list[str]) -> list[str]:
    """The lines without progress bars, with the seconds of ``trained in`` lines blanked."""
    return [
        SECONDS.sub("<s>", line) if line.startswith("trained in ") else line
        for line in lines
        if not PROGRESS.match(line)
    ]


def matches(real: list[str], shown: list[str]) -> bool:
    """Whether ``real`` is ``shown``, a shown line ``...`` standing for any run of lines."""
    if not shown:
        return not real
    if shown[0] == "...":
        return any(matches(real[i:], shown[1:]) for i in range(len(real) + 1))
    return bool(real) and real[0] == shown[0] and matches(real[1:], shown[1:])


def run_command(command: str, cwd: str) -> list[str]:
    """Runs one transcript command as a user would and returns its output lines."""
    argv = shlex.split(command)
    if argv[0] == "dnijax":
        argv = [sys.executable, "-m", "dnijax.cli", *argv[1:]]
    elif argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    else:
        raise ValueError(f"transcripts run dnijax or python commands, not {argv[0]!r}")
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # as a user runs it: the CLI's own cache
    if not env.get("DNIJAX_CACHE"):
        env.pop("DNIJAX_CACHE", None)
    # the user's XLA flags, not the suite's faster ones (tests/conftest.py): shown figures
    # are held to the last digit
    env["XLA_FLAGS"] = os.environ.get("DNIJAX_USER_XLA_FLAGS", env.get("XLA_FLAGS", ""))
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    return done.stdout.rstrip("\n").splitlines()


def evaluate_console(example: Example) -> str | None:
    """Runs a ``console`` block's commands and says where the output differs."""
    cwd = example.namespace["_docs_cwd"]
    for command, shown in transcript(example.parsed):
        real = run_command(command, cwd)
        if not matches(normalise(real), normalise(shown)):
            return (
                f"`$ {command}` printed:\n"
                + "\n".join(real)
                + "\n\nbut the page shows:\n"
                + ("\n".join(shown))
            )
    return None


def enter_page(namespace: dict[str, Any]) -> None:
    """A page's blocks run in a fresh folder linked to the repository's docs and benchmarks."""
    cwd = tempfile.mkdtemp(prefix="dnijax-docs-")
    for name in LINKED:
        os.symlink(os.path.join(ROOT, name), os.path.join(cwd, name))
    namespace["_docs_cwd"], namespace["_docs_home"] = cwd, os.getcwd()
    os.chdir(cwd)


def leave_page(namespace: dict[str, Any]) -> None:
    os.chdir(namespace["_docs_home"])
    shutil.rmtree(namespace["_docs_cwd"], ignore_errors=True)


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(doctest_optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE),
        CodeBlockParser("console", evaluate_console),
    ],
    patterns=["README.md", "docs/*.md", "docs/*/*.md"],
    excludes=["docs/results/generated/*.md"],
    setup=enter_page,
    teardown=leave_page,
).pytest()


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)  # pytest's own record of the item's fixtures
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(d and d[-1].scope == "module" for d in defs)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-xdist (``--dist loadgroup``) keeps on one worker: a page's blocks, which share
    one namespace; and a module's tests that use one of its module-scoped fixtures (finished
    folders, launched processes), which would otherwise be made again on every worker."""
    for item in items:
        path = str(item.path)
        if path.endswith(".md") or _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(os.path.relpath(path, ROOT)))
