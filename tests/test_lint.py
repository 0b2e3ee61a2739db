"""The code passes the linter (ruff, with the rules of pyproject.toml's ``[tool.ruff.lint]``),
is formatted as ``ruff format`` writes it, and the package passes the type checker (mypy,
with pyproject.toml's ``[tool.mypy]``): part of the test command, so CI runs them (the
same checks as ``.pre-commit-config.yaml``)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_code_passes_ruff():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def test_the_code_is_formatted():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def test_the_package_passes_mypy():
    # no arguments: [tool.mypy] names the files (dnijax/); .mypy_cache keeps a rerun to
    # about a second (a cold run takes some 20 s)
    out = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
