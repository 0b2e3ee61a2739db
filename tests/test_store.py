"""Interruption and determinism of written results: kill a sweep, rerun it, compare files."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dnijax import store

SWEEP = [
    sys.executable,
    "-m",
    "dnijax.cli",
    "sweep",
    "--lr",
    "0.1,0.3,1",
    "--regimes",
    "backprop,dni",
    "--seeds",
    "2",
    "--steps",
    "100",
]


def _run(out, extra=()):
    return subprocess.run(
        SWEEP + ["--out", str(out), *extra], capture_output=True, text=True, timeout=600
    )


def _load(out):
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "sweep"
    assert _run(out).returncode == 0
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_killed_sweep_resumes_to_the_same_results(sig, tmp_path, uninterrupted):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(
        SWEEP + ["--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    blocks = out / "blocks"
    while time.time() < deadline and proc.poll() is None:
        if (
            blocks.is_dir()
            and len(
                [f for f in os.listdir(blocks) if f.endswith(".json") and not f.startswith(".tmp")]
            )
            >= 2
        ):
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    done_before = sorted(f for f in os.listdir(blocks) if not f.startswith(".tmp"))
    assert 2 <= len(done_before) < 6 or proc.returncode == 0
    assert not (out / "results.json").exists() or proc.returncode == 0
    rerun = _run(out)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed: {len(done_before)} of 6 blocks" in rerun.stderr or len(done_before) == 6
    # the same command gives byte-identical files, interrupted and resumed or not
    for name in ("results.json", "summary.md", "manifest.json", "results.csv"):
        assert (out / name).read_bytes() == (uninterrupted / name).read_bytes(), name


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "x.json"
    store.atomic_write_json(str(path), {"a": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        store.atomic_write_json(str(path), {"a": Boom()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.json"]


def test_claim_refuses_other_results_and_never_removes_other_files(tmp_path):
    out = str(tmp_path / "out")
    assert store.claim_out_dir(out, {"a": 1}, outputs=("results.json",)) is False
    assert store.claim_out_dir(out, {"a": 1}, outputs=("results.json",)) is True  # resume
    assert store.claim_out_dir(out, {"a": 2}, outputs=("results.json",)) is False  # nothing lost
    (tmp_path / "out" / "results.json").write_text("2")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="different configuration; pass --overwrite"):
        store.claim_out_dir(out, {"a": 3}, outputs=("results.json",))
    assert (tmp_path / "out" / "results.json").read_text() == "2"
    store.claim_out_dir(out, {"a": 3}, overwrite=True, outputs=("results.json",))
    assert sorted(os.listdir(out)) == ["manifest.json", "notes.txt"]
