"""The code passes the linter (ruff, with the rules of pyproject.toml's ``[tool.ruff.lint]``):
part of the test command, so CI runs it."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_code_passes_ruff():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "dnijax", "benchmarks", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
