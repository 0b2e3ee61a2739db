"""The README's shown command-line output is what the commands print.

Every fenced block of README.md whose info string is ``console`` is a transcript: lines that
start with ``$ `` are commands, the lines after each are its output (stdout and stderr
together). The test runs each command in a fresh process, as a user would, and compares the
output line by line, after blanking what changes from run to run: seconds on progress bars
and in "trained in" lines. Everything else, every figure of every table, must match; the
runs are deterministic on one machine (``docs``: reproducibility). A block that is not
deterministic or too slow for the suite is fenced as plain text instead.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRESS = re.compile(r"^\S.* \[#* *\] +\d+% +\d+\.\ds$")
SECONDS = re.compile(r"\d+\.\ds\b")


def transcripts(path: str) -> list[tuple[int, list[tuple[str, list[str]]]]]:
    """The ``console`` blocks of a Markdown file: (line number, [(command, output lines)])."""
    blocks, lines = [], open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            runs: list[tuple[str, list[str]]] = []
            for line in body:
                if line.startswith("$ "):
                    runs.append((line[2:], []))
                else:
                    runs[-1][1].append(line)
            blocks.append((start, runs))
        i += 1
    return blocks


def normalise(lines: list[str]) -> tuple[list[str], bool]:
    """The lines without progress bars and with seconds blanked; whether a bar was there."""
    bars = [line for line in lines if PROGRESS.match(line)]
    kept = [
        SECONDS.sub("<s>", line) if line.startswith("trained in ") else line
        for line in lines
        if not PROGRESS.match(line)
    ]
    return kept, bool(bars)


BLOCKS = transcripts(os.path.join(ROOT, "README.md"))


def test_the_readme_has_transcripts():
    assert BLOCKS, "README.md has no ```console block"


@pytest.mark.parametrize(
    "command,shown",
    [run for _, runs in BLOCKS for run in runs],
    ids=[run[0] for _, runs in BLOCKS for run in runs],
)
def test_a_readme_transcript_matches_the_real_output(command, shown, tmp_path):
    argv = shlex.split(command)
    assert argv[0] == "dnijax", "transcripts run dnijax commands"
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # as a user runs it: XLA's flags, the CLI's cache
    if not env.get("DNIJAX_CACHE"):
        env.pop("DNIJAX_CACHE", None)  # the transcripts show the cache on
    env["XLA_FLAGS"] = os.environ.get("DNIJAX_USER_XLA_FLAGS", env.get("XLA_FLAGS", ""))
    done = subprocess.run(
        [sys.executable, "-m", "dnijax.cli", *argv[1:]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    real, real_bar = normalise(done.stdout.rstrip("\n").splitlines())
    want, want_bar = normalise(shown)
    assert real == want
    assert real_bar == want_bar
