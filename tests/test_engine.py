"""The training engine: vmapped grids, divergence inside the program, sharding over devices."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from dnijax import RunConfig, engine

CFG = RunConfig(
    regime="dni",
    widths=(2, 8, 8, 1),
    activations=("tanh", "tanh", "sigmoid"),
    init="glorot",
    reduction="mean",
    steps=60,
    log_every=10,
    sg_lr=0.1,
)


def test_grid_runs_equal_single_runs(blobs):
    lrs = [0.1, 0.5, 1.0]
    res = engine.run_grid(
        CFG,
        engine.stack_hyper(CFG, lr=lrs, sg_lr=[0.1] * 3),
        engine.run_keys(0, 3),
        blobs,
        mesh=None,
    )
    for i, lr in enumerate(lrs):
        _, hist = engine.run_one(CFG.replace(lr=lr), *blobs, jax.random.key(i))
        np.testing.assert_allclose(res.history["loss"][i], hist["loss"], rtol=2e-5, atol=1e-7)
    assert res.history["loss"].shape == (3, 7) and res.history["step"][-1] == 60


def test_diverging_runs_are_recorded_and_do_not_touch_the_others(blobs):
    lrs = [0.5, 1e5, 0.5, 1e7]
    res = engine.run_grid(
        CFG,
        engine.stack_hyper(CFG, lr=lrs, sg_lr=lrs),
        engine.run_keys([3, 4, 3, 5]),
        blobs,
        mesh=None,
    )
    assert res.diverged_at[0] == -1 and res.diverged_at[2] == -1
    assert res.diverged_at[1] >= 0 and res.diverged_at[3] >= 0
    np.testing.assert_array_equal(res.history["loss"][0], res.history["loss"][2])
    assert np.all(np.isfinite(res.final["loss"]))


def test_a_new_learning_rate_does_not_recompile(blobs):
    engine.run_grid(
        CFG, engine.stack_hyper(CFG, lr=[0.2, 0.3]), engine.run_keys(0, 2), blobs, mesh=None
    )
    before = engine.compiled_programs()
    assert before > 0
    engine.run_grid(
        CFG, engine.stack_hyper(CFG, lr=[0.7, 0.9]), engine.run_keys(5, 2), blobs, mesh=None
    )
    assert engine.compiled_programs() == before


SHARDED = textwrap.dedent("""
    import os, sys, json
    import jax, numpy as np
    from dnijax import RunConfig, engine
    engine.use_cpu_devices(8)
    assert engine.device_summary() == "8 x cpu", jax.devices()
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 2, 64).astype("int32")
    x = (rng.randn(64, 2) + labels[:, None]).astype("float32")
    cfg = RunConfig(regime="dni+noise", widths=(2, 8, 1), activations=("tanh", "sigmoid"),
                    init="glorot", reduction="mean", steps=40, log_every=10, sg_lr=0.1)
    lrs = [0.1, 0.3, 1.0, 3.0, 0.2]  # 5 runs over 8 devices
    hyper = engine.stack_hyper(cfg, lr=lrs)
    a = engine.run_grid(cfg, hyper, engine.run_keys(0, 5), (x, labels), mesh=True)
    b = engine.run_grid(cfg, hyper, engine.run_keys(0, 5), (x, labels), mesh=None)
    fa = cfg.replace(regime="fwdgrad+noise")  # a rule that draws a direction every step
    e = engine.run_grid(fa, engine.stack_hyper(fa, lr=lrs), engine.run_keys(0, 5), (x, labels),
                        mesh=True)
    f = engine.run_grid(fa, engine.stack_hyper(fa, lr=lrs), engine.run_keys(0, 5), (x, labels),
                        mesh=None)
    dfa = cfg.replace(regime="dfa")  # fixed feedback matrices in the state
    g = engine.run_grid(dfa, engine.stack_hyper(dfa, lr=lrs), engine.run_keys(0, 5),
                        (x, labels), mesh=True)
    h = engine.run_grid(dfa, engine.stack_hyper(dfa, lr=lrs), engine.run_keys(0, 5),
                        (x, labels), mesh=None)
    seq = RunConfig(regime="dni+noise", task="copy", core="rnn", hidden=6, window=3,
                    max_length=3, batch_size=4, steps=12, log_every=4, optimizer="adam",
                    lr=1e-2, loss="bce", reduction="mean")  # the recurrent kind, 3 runs
    c = engine.run_grid(seq, engine.stack_hyper(seq, lr=[1e-2, 3e-2, 1e-1]),
                        engine.run_keys(0, 3), None, mesh=True)
    d = engine.run_grid(seq, engine.stack_hyper(seq, lr=[1e-2, 3e-2, 1e-1]),
                        engine.run_keys(0, 3), None, mesh=None)
    print(json.dumps({"sharded": a.history["loss"].tolist(), "single": b.history["loss"].tolist(),
                      "n_shards": len(a.state.step.sharding.device_set),
                      "seq_sharded": c.history["error_bits"].tolist(),
                      "seq_single": d.history["error_bits"].tolist(),
                      "seq_shards": len(c.state.step.sharding.device_set),
                      "rule_sharded": e.history["loss"].tolist() + g.history["loss"].tolist(),
                      "rule_single": f.history["loss"].tolist() + h.history["loss"].tolist()}))
""")


def test_sharded_grid_equals_single_device_grid():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAX_NUM_CPU_DEVICES", None)
    out = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n_shards"] == 8 and res["seq_shards"] == 8
    np.testing.assert_allclose(res["sharded"], res["single"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res["seq_sharded"], res["seq_single"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res["rule_sharded"], res["rule_single"], rtol=1e-5, atol=1e-7)


def test_blocks_of_runs_give_the_results_of_one_block(blobs):
    x, labels = blobs
    cfg = CFG.replace(regime="dni+noise", steps=20, log_every=5)
    n = 5
    per_run = (np.stack([x] * n), np.stack([labels] * n))
    args = (
        cfg,
        engine.stack_hyper(cfg, lr=[0.1, 0.3, 0.5, 0.7, 1e6]),
        engine.run_keys(0, n),
        per_run,
    )
    whole = engine.run_grid(*args, per_run_data=True, mesh=None)
    blocked = engine.run_grid(*args, per_run_data=True, mesh=None, block_runs=2)
    np.testing.assert_array_equal(whole.diverged_at, blocked.diverged_at)
    for a, b in (
        (whole.final["loss"], blocked.final["loss"]),
        (whole.history["loss"], blocked.history["loss"]),
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # float rounding only
    for a, b in zip(
        jax.tree.leaves(whole.state.net), jax.tree.leaves(blocked.state.net), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # float rounding only


def test_auto_blocks_follow_the_memory_budget(blobs, monkeypatch):
    """With a budget of about two runs, "auto" trains a 5-run grid in blocks, per-run data
    block by block, with the results of one block."""
    x, labels = blobs
    cfg = CFG.replace(steps=20, log_every=5)
    per_run = (np.stack([x] * 5), np.stack([labels] * 5))
    args = (
        cfg,
        engine.stack_hyper(cfg, lr=[0.1, 0.3, 0.5, 0.7, 0.9]),
        engine.run_keys(0, 5),
        per_run,
    )
    whole = engine.run_grid(*args, per_run_data=True, mesh=None, block_runs=None)
    need = engine.bytes_per_run(cfg, len(labels), len(labels))
    monkeypatch.setenv("DNIJAX_MEMORY_BUDGET", str(2 * need + 1))
    assert engine.memory_budget() == 2 * need + 1
    ticks = []
    auto = engine.run_grid(
        *args,
        per_run_data=True,
        mesh=None,
        progress=lambda done, total: ticks.append((done, total)),
    )
    assert ticks[-1] == (3 * 20, 3 * 20)  # three blocks of two runs (the last one padded)
    np.testing.assert_allclose(whole.final["loss"], auto.final["loss"], rtol=1e-5, atol=1e-7)


def test_auto_blocks_are_cache_sized_on_the_cpu_within_the_memory_budget(monkeypatch):
    mib = 2**20
    monkeypatch.setenv("DNIJAX_MEMORY_BUDGET", "1G")
    assert jax.default_backend() == "cpu"
    fast = engine.CPU_FAST_BLOCK_BYTES
    assert engine.auto_block_runs(fast // 1000) == 1000  # small runs: the cache-sized block
    assert engine.auto_block_runs(mib) == engine.CPU_MIN_BLOCK_RUNS  # never below the floor
    assert engine.auto_block_runs(mib, n_devices=2) == 2 * engine.CPU_MIN_BLOCK_RUNS
    monkeypatch.setenv("DNIJAX_MEMORY_BUDGET", "10M")
    assert engine.auto_block_runs(mib) == 10  # the memory budget comes first
    assert engine.auto_block_runs(64 * mib) == 1


def test_cpu_devices_cannot_change_once_jax_runs():
    jax.devices()
    engine.use_cpu_devices(len(jax.devices("cpu")))  # the number it runs with: accepted
    with pytest.raises(ValueError, match="cannot use 3 CPU devices: JAX already runs with 1"):
        engine.use_cpu_devices(3)
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        engine.use_cpu_devices(0)


def test_a_bad_memory_budget_is_refused(monkeypatch):
    monkeypatch.setenv("DNIJAX_MEMORY_BUDGET", "lots")
    import pytest

    with pytest.raises(ValueError, match="DNIJAX_MEMORY_BUDGET: 'LOTS' is not a positive size"):
        engine.memory_budget()


def test_the_modules_below_the_engine_do_not_import_it():
    """The engine drives train, which knows nothing of it: no import circle, and no import
    inside a function to dodge one."""
    import ast
    import inspect

    from dnijax import config, layers, nets, noise, signals, synthetic, train, updates

    for module in (train, signals, updates, noise, nets, layers, synthetic, config):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.ImportFrom):
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            assert "dnijax.engine" not in names, module.__name__
