"""Multi-process runs (``--processes``): two local processes, one CPU device each, give the
per-seed results of one process with two CPU devices; process 0 alone writes, a sweep
resumes; bad launches end every process with one line and exit 2, writing nothing.

The launches that need two live processes start at once (module fixture), so their imports
and compiles share the two cores; the tests then wait for their own processes. A launch
that fails before any other process is involved (no coordinator, a missing process, a
process count that does not divide the runs) runs in the test's own process through
``cli.main``: it stops before ``jax.distributed`` starts.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

TIMEOUT = 240  # seconds a launched command may take on a loaded machine
TINY = '{"widths": [2, 6, 1], "activations": ["tanh", "sigmoid"]}'
COMPARE = ["compare", "--seeds", "2", "--steps", "20", "--regimes", "backprop+noise"]
SWEEP = ["sweep", "--lr", "0.5,1", "--regimes", "backprop", "--seeds", "2", "--steps", "20"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Group:
    """The processes of one launch, started at once; a thread collects each one's output
    and the time it ended."""

    def __init__(self, argvs, cwd, env):
        self.start = time.monotonic()
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "dnijax.cli", *argv],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for argv in argvs
        ]
        self.results: list = [None] * len(self.procs)
        self.seconds: list = [None] * len(self.procs)
        self.threads = [
            threading.Thread(target=self._collect, args=(i,), daemon=True)
            for i in range(len(self.procs))
        ]
        for t in self.threads:
            t.start()

    def _collect(self, i):
        out, err = self.procs[i].communicate(timeout=TIMEOUT)
        self.seconds[i] = time.monotonic() - self.start
        self.results[i] = (self.procs[i].returncode, out, err)

    def wait(self):
        """``[(returncode, stdout, stderr)]``, one per process."""
        for t in self.threads:
            t.join(TIMEOUT)
        assert None not in self.results, "a launched process did not end"
        return self.results


def processes(args, n=2, port=None, timeout=60, per_process=None):
    """The argvs of ``n`` processes running ``args``; ``per_process[i]``: extra options."""
    port = port or free_port()
    return [
        [
            *args,
            "--processes",
            str(n),
            "--process-id",
            str(i),
            "--coordinator",
            f"127.0.0.1:{port}",
            "--coordinator-timeout",
            str(timeout),
            *((per_process or {}).get(i, [])),
        ]
        for i in range(n)
    ]


def error_lines(err):
    """stderr without gloo's connection notices."""
    return [line for line in err.splitlines() if not line.startswith("[Gloo]")]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    (root / "tiny.json").write_text(TINY)
    env = dict(os.environ, JAX_PLATFORMS="cpu", DNIJAX_CACHE=str(root / "cache"))
    for name in ("JAX_NUM_CPU_DEVICES", "JAX_COORDINATOR_ADDRESS"):
        env.pop(name, None)
    one_device = env  # JAX's default: one CPU device per process
    two_devices = dict(
        env, XLA_FLAGS=(env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2")
    )
    tiny = ["--config", "tiny.json"]
    resumable_sweep(root)
    groups = {  # the cheap launch first: its processes stop at the handshake
        "mismatch": Group(
            processes([*COMPARE, *tiny, "--out", "m"], per_process={1: ["--eta", "0.5"]}),
            root,
            one_device,
        ),
        "two_processes": Group(processes([*COMPARE, *tiny, "--out", "d2"]), root, one_device),
        "two_devices": Group([[*COMPARE, *tiny, "--out", "d1"]], root, two_devices),
        "sweep": Group(processes([*SWEEP, *tiny, "--out", "s2"]), root, one_device),
    }
    yield root, groups, one_device
    for group in groups.values():
        for p in group.procs:
            if p.poll() is None:
                p.kill()


def resumable_sweep(root):
    """The folder of the sweep ``SWEEP`` stopped after its first block: its manifest (as
    the command writes it) and a stand-in for the block of lr 0.5."""
    from dnijax.config import load_overrides
    from dnijax.experiments import lr_sweep, presets

    base = presets.preset_config("tuned", steps=20, overrides=load_overrides(root / "tiny.json"))
    meta = lr_sweep.manifest(base, "tuned", [0.5, 1.0], ["backprop"], seeds=2, sg_lr=None)
    (root / "s2" / "blocks").mkdir(parents=True)
    (root / "s2" / "manifest.json").write_text(json.dumps(meta))
    (root / "s2" / "blocks" / lr_sweep.block_name("backprop", 0.5)).write_text(
        json.dumps(DONE_BLOCK)
    )


DONE_BLOCK = {
    "regime": "backprop",
    "lr": 0.5,
    "devices": "an earlier run",
    "final_loss": [0.25, 0.5],
    "final_accuracy": [0.5, 0.75],
    "test_accuracy": [0.5, 0.75],
    "diverged_at": [None, None],
}


def per_seed(path):
    res = json.loads(path.read_text())
    return res, {
        (regime, key): np.asarray(r[key], float)
        for regime, r in res["regimes"].items()
        for key in ("initial_loss", "final_loss", "final_accuracy", "test_accuracy")
    }


def test_two_processes_give_the_results_of_one_process_with_two_devices(launched):
    root, groups, _ = launched
    (rc0, out0, err0), (rc1, out1, err1) = groups["two_processes"].wait()
    assert rc0 == 0 and rc1 == 0, (err0[-2000:], err1[-2000:])
    [(rc, _, err)] = groups["two_devices"].wait()
    assert rc == 0, err[-2000:]
    assert "wrote results.json" in out0  # process 0 writes; process 1 says so and no more
    assert [line for line in out1.splitlines() if not line.startswith("[Gloo]")] == [
        "dnijax: process 1 of 2 done; process 0 writes the results to d2"
    ]
    multi, a = per_seed(root / "d2" / "results.json")
    single, b = per_seed(root / "d1" / "results.json")
    assert multi["devices"] == "2 x cpu in 2 processes" and single["devices"] == "2 x cpu"
    assert a.keys() == b.keys() and len(a) == 4
    worst = max(float(np.max(np.abs(a[k] - b[k]) / np.abs(b[k]))) for k in a)
    print(f"max relative difference, 2 processes vs 1 process with 2 devices: {worst:.3g}")
    for k in a:  # the bound of test_engine's sharding test
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=str(k))


def test_a_sweep_resumes_under_two_processes_and_process_0_alone_writes(launched):
    root, groups, _ = launched
    [(rc0, out0, err0), (rc1, out1, err1)] = groups["sweep"].wait()
    assert rc0 == 0 and rc1 == 0, (err0[-2000:], err1[-2000:])
    assert "[2/2] backprop" in err0 and "resumed: 1 of 2 blocks were already done" in err0
    assert "[1/2]" not in err0 and error_lines(err1) == []  # process 1 logs nothing
    assert "wrote results.json" in out0 and "process 1 of 2 done" in out1
    block = json.loads((root / "s2" / "blocks" / "backprop__lr1.json").read_text())
    assert block["devices"] == "2 x cpu in 2 processes" and len(block["final_loss"]) == 2
    res = json.loads((root / "s2" / "results.json").read_text())
    assert res["devices"] == "2 x cpu in 2 processes, an earlier run"
    assert res["regimes"]["backprop"]["final_loss"] == [
        DONE_BLOCK["final_loss"],
        block["final_loss"],
    ]
    leftovers = os.listdir(root / "s2") + os.listdir(root / "s2" / "blocks")
    assert not [name for name in leftovers if name.startswith(".tmp-")]


def assert_one_line_and_nothing_written(results, folder, *expected):
    for rc, _, err in results:
        lines = error_lines(err)
        assert rc == 2 and len(lines) == 1, err[-2000:]
        assert lines[0].startswith("dnijax: error: ") and all(e in lines[0] for e in expected), (
            lines
        )
    assert not folder.exists()


def _main_in_process(argv, tmp_path, capsys):
    """``cli.main(argv)`` here, on the tiny network: ``(exit code, stderr, seconds)``."""
    from dnijax import cli

    (tmp_path / "tiny.json").write_text(TINY)
    start = time.monotonic()
    code = cli.main([*argv, "--config", str(tmp_path / "tiny.json")])
    return code, capsys.readouterr().err, time.monotonic() - start


def assert_one_line_here(code, err, folder, *expected):
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("dnijax: error: ") and all(e in err for e in expected), err
    assert not folder.exists()


def test_a_coordinator_that_cannot_be_reached_is_one_line_within_the_timeout(tmp_path, capsys):
    out = tmp_path / "u"
    [argv] = processes([*COMPARE, "--out", str(out)], timeout=2)[1:]
    code, err, seconds = _main_in_process(argv, tmp_path, capsys)
    assert_one_line_here(
        code, err, out, ": cannot reach the coordinator within 2 s (Connection refused)"
    )
    assert seconds < 2 + 30, seconds  # the timeout, and the checks before it


def test_a_process_that_waits_alone_is_one_line_within_the_timeout(tmp_path, capsys):
    out = tmp_path / "a"
    [argv] = processes([*COMPARE, "--out", str(out)], timeout=2)[:1]
    code, err, seconds = _main_in_process(argv, tmp_path, capsys)
    assert_one_line_here(
        code, err, out, "only 1 of 2 processes arrived within 2 s (missing --process-id 1)"
    )
    assert seconds < 2 + 30, seconds


def test_a_process_count_that_does_not_divide_the_runs_is_refused_before_connecting(
    tmp_path, capsys
):
    out = tmp_path / "x"
    argv = ["compare", "--seeds", "3", "--regimes", "backprop", "--out", str(out)]
    code, err, seconds = _main_in_process(processes(argv)[0], tmp_path, capsys)
    assert_one_line_here(code, err, out, "--processes 2 does not divide the 3 runs of a grid")
    assert seconds < 30, seconds  # no wait for the other process: its timeout is 60 s


def test_processes_with_different_configurations_are_refused(launched):
    root, groups, _ = launched
    assert_one_line_and_nothing_written(
        groups["mismatch"].wait(),
        root / "m",
        "process 1 started with another configuration than process 0",
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--processes", "2"], "give all three or none (missing --process-id, --coordinator)"),
        (["--processes", "2", "--process-id", "2", "--coordinator", "h:1"], "not in 0..1"),
        (["--processes", "2", "--process-id", "1", "--coordinator", "h"], "is not HOST:PORT"),
        (["--processes", "auto", "--process-id", "1"], "--processes auto reads --process-id"),
        (["--processes", "0"], "--processes must be an integer >= 1 or auto, got '0'"),
        (["--processes", "auto"], "--processes auto: no cluster environment that JAX recognises"),
    ],
)
def test_incomplete_or_bad_options_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    from dnijax import cli

    for name in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)  # no cluster for --processes auto to find
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    out = tmp_path / "o"
    try:
        code = cli.main([*COMPARE, "--out", str(out), *argv])
    except SystemExit as stop:  # argparse's own one-line errors
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()
