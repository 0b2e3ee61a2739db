"""Smoke tests: every benchmark script runs end to end at tiny sizes (``--quick``) and writes
its outputs, with a 95% interval beside each reported mean.

The scripts run in this test process, as ``python benchmarks/<script>`` would run them
(``runpy``, ``__name__ == "__main__"``, the script's folder on ``sys.path``), so they share
the process's JAX start-up and compiled programs instead of paying for their own."""

import json
import os
import runpy
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")


@pytest.fixture
def script_main(monkeypatch, capsys):
    """``run(script, *args) -> (exit code, stdout, stderr)``: the script's main, in-process."""
    monkeypatch.syspath_prepend(BENCHMARKS)

    def run(script, *args):
        monkeypatch.setattr(sys, "argv", [os.path.join(BENCHMARKS, script), *args])
        capsys.readouterr()
        code = 0
        with np.errstate():  # the scripts' np.seterr stays inside
            try:
                runpy.run_path(os.path.join(BENCHMARKS, script), run_name="__main__")
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (stop.code is not None)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def _run(script_main):
    def run(script, *args):
        code, out, err = script_main(script, *args)
        assert code == 0, err[-3000:]
        return out

    return run


def test_deep_noise_quick(_run, tmp_path):
    text = _run("deep_noise.py", "--quick", "--steps", "10", "--out", str(tmp_path))
    res = json.loads((tmp_path / "deep_noise.json").read_text())
    assert set(res["families"]) == {"backprop", "dni"}
    assert len(res["families"]["backprop"]) == 10  # 5 inits x noise on/off
    assert all(
        0 <= c["average"] <= c["best"] <= 100 and "ci95" in c for c in res["families"]["dni"]
    )
    # part 2: 3 poor rows x 4 etas after the clip, 2 clipped rows x 4 etas before it
    assert len(res["long"]) == 20 and res["long_steps"] == 50
    assert {c["order"] for c in res["long"]} == {"noise after clip", "noise before clip"}
    assert "zero init, clip 10" in text and "94.5 / 49.7" in text
    assert (tmp_path / "deep_noise.png").stat().st_size > 0


def test_dni_depth_quick(_run, tmp_path):
    # digits ships with scikit-learn; the full run's mnist1d is an optional extra
    text = _run(
        "dni_depth.py",
        "--quick",
        "--data",
        "digits",
        "--steps",
        "20",
        "--width",
        "8",
        "--out",
        str(tmp_path),
    )
    res = json.loads((tmp_path / "dni_depth.json").read_text())
    assert sorted(res["depths"]) == ["3"] and res["data"] == "digits"
    cells = res["depths"]["3"]["0.001"]
    assert {
        "backprop",
        "no backprop",
        "dni linear",
        "dni mlp",
        "cdni linear",
        "cdni mlp",
        "cdni linear p=0.1",
    } <= set(cells)
    assert all("ci95" in c for c in cells.values())
    assert len(cells["dni mlp"]["alignment"]) == 2  # SG modules on the 2 hidden layers
    assert (tmp_path / "dni_depth.png").stat().st_size > 0
    assert "| 3 |" in text


def test_dni_cnn_quick(_run, tmp_path):
    text = _run("dni_cnn.py", "--quick", "--out", str(tmp_path))
    res = json.loads((tmp_path / "dni_cnn.json").read_text())
    assert sorted(res["cells"]) == ["backprop", "cdni", "dni + noise", "no backprop"]
    assert all(c["summary"]["n_runs"] == 2 for c in res["cells"].values())
    assert len(res["cells"]["cdni"]["alignment"]) == 2  # the conv block's and the dense one's
    assert "| dni + noise |" in text and (tmp_path / "dni_cnn.png").stat().st_size > 0


def test_rule_family_quick(_run, tmp_path):
    text = _run("rule_family.py", "--quick", "--out", str(tmp_path))
    res = json.loads((tmp_path / "rule_family.json").read_text())
    cells = res["networks"]["digits MLP-2"]
    rules = ["backprop", "dni", "cdni", "fa", "dfa", "fwdgrad"]
    assert sorted(r for r in cells if r != "info") == sorted(rules)  # JSON sorts keys
    assert res["order"] == ["digits MLP-2"]
    for rule in rules:
        assert str(cells[rule]["lr"]) in [str(v) for v in res["lrs"]]
        assert sorted(cells[rule]["val_accuracy"]) == sorted(str(v) for v in res["lrs"])
        for arm in (rule, rule + "+noise"):
            cell = cells[rule][arm]
            assert cell["summary"]["n_runs"] == 2 and len(cell["steps_to_target"]) == 2
            assert ("alignment" in cell) == (rule != "backprop")
            assert ("paired_vs_backprop" in cell) == (rule != "backprop")
    for rule in rules:
        assert f"| {rule}+noise |" in text
    assert (tmp_path / "rule_family.png").stat().st_size > 0
    assert not (tmp_path / "rule_family.partial.json").exists()
    # an interrupted run resumes after the networks it finished (here: all of them)
    written = (tmp_path / "rule_family.json").read_bytes()
    (tmp_path / "rule_family.partial.json").write_text(json.dumps(res["networks"]))
    again = _run("rule_family.py", "--quick", "--out", str(tmp_path))
    assert "digits MLP-2: resumed" in again and "tuning" not in again
    resumed = json.loads((tmp_path / "rule_family.json").read_text())
    first = json.loads(written)
    assert resumed.pop("seconds") >= 0 and first.pop("seconds") >= 0  # this process's time
    assert resumed == first


def test_sg_target_quick(_run, tmp_path):
    text = _run("sg_target.py", "--quick", "--out", str(tmp_path))
    res = json.loads((tmp_path / "sg_target.json").read_text())
    assert sorted(res["cells"]) == ["dni batch", "dni per_example"]  # quick: DNI only
    assert all(c["summary"]["n_runs"] == 2 for c in res["cells"].values())
    assert sorted(res["paired"]) == ["dni"] and res["paired"]["dni"]["n"] == 2
    assert "| dni, sg_target batch |" in text and "batch − per_example" in text
    assert (tmp_path / "sg_target.png").stat().st_size > 0


def test_cnn_ablation_quick(_run, tmp_path):
    text = _run("cnn_ablation.py", "--quick", "--out", str(tmp_path))
    res = json.loads((tmp_path / "cnn_ablation.json").read_text())
    assert sorted(res["cells"]) == ["dni", "sg_scale"]  # quick: DNI and one factor
    assert res["paired"]["sg_scale"]["n"] == 2
    assert all(c["summary"]["n_runs"] == 2 for c in res["cells"].values())
    assert "| DNI, SG scale | 1 -> 0.1 |" in text
    assert (tmp_path / "cnn_ablation.png").stat().st_size > 0


def test_fcn_ablation_quick(_run, tmp_path):
    # digits ships with scikit-learn; the full run's mnist1d is an optional extra
    text = _run("fcn_ablation.py", "--quick", "--data", "digits", "--out", str(tmp_path))
    res = json.loads((tmp_path / "fcn_ablation.json").read_text())
    assert sorted(res["cells"]) == ["dni", "lr"]  # quick: DNI and one factor
    assert res["paired"]["lr"]["n"] == 2 and res["layers"] == 3
    assert all(c["summary"]["n_runs"] == 2 for c in res["cells"].values())
    assert "| DNI, learning rate | Adam 1e-3 -> 3e-5 (the paper's) |" in text
    assert (tmp_path / "fcn_ablation.png").stat().st_size > 0


def test_noise_rescue_quick(_run, tmp_path):
    text = _run("noise_rescue.py", "--quick", "--steps", "20", "--out", str(tmp_path))
    res = json.loads((tmp_path / "noise_rescue.json").read_text())
    assert [(c["lr"], c["noise"]) for c in res["cells"]] == [
        (0.1, False),
        (0.1, True),
        (0.01, False),
        (0.01, True),
    ]
    for c in res["cells"]:
        t = c["at_end"]["trains"]
        assert len(c["final"]) == 2 and t["n"] == 2 and 0 <= t["ci95"][0] <= t["ci95"][1] <= 1
    assert "| both (pooled) | paper's | - | - |" in text and "94.5 / 49.7" in text
    assert (tmp_path / "noise_rescue.png").stat().st_size > 0


def test_copy_ablation_quick(_run, tmp_path):
    text = _run("copy_ablation.py", "--quick", "--out", str(tmp_path))
    res = json.loads((tmp_path / "copy_ablation.json").read_text())
    assert sorted(res["cells"]) == ["dni", "lr"] and res["window"] == 3
    assert res["paired"]["lr"]["n"] == 2 and len(res["cells"]["dni"]["solved"]) == 2
    assert "| DNI, learning rate | Adam 1e-2 -> 1e-3 (paper ~7e-5) |" in text
    assert "seeds higher" in text and (tmp_path / "copy_ablation.png").stat().st_size > 0


def test_copy_task_quick(_run, tmp_path):
    # the stream (--carry-state): its own result files; episodes are the same code path
    text = _run("copy_task.py", "--quick", "--carry-state", "--out", str(tmp_path))
    res = json.loads((tmp_path / "copy_task_stream.json").read_text())
    assert res["carry_state"] is True and "one stream per batch lane" in text
    assert not (tmp_path / "copy_task.json").exists()
    assert sorted(res["windows"]) == ["3"]
    for cells in res["windows"].values():
        assert sorted(cells) == ["backprop", "backprop+noise", "dni", "dni+noise"]
        assert all(len(c["solved"]) == 1 and "ci95" in c["summary"] for c in cells.values())
    assert "| 3 |" in text and (tmp_path / "copy_task_stream.png").stat().st_size > 0


def test_dni_noise_quick(_run, tmp_path):
    text = _run("dni_noise.py", "--quick", "--out", str(tmp_path))
    res = json.loads((tmp_path / "dni_noise.json").read_text())
    assert len(res["variants"]) == 4
    for fam in res["variants"].values():
        assert fam["dni"]["summary"]["final_loss"]["n"] == 2
        assert len(fam["dni+noise"]["sg_alignment"]["layers"]) == 6
    assert "noise higher on" in text and (tmp_path / "dni_noise.png").stat().st_size > 0


@pytest.mark.parametrize("script", ["seed_comparison.py", "lr_sensitivity.py"])
def test_comparison_reports_quick(_run, script, tmp_path):
    text = _run(script, "--quick", "--out", str(tmp_path))
    name = script[: -len(".py")]
    assert (tmp_path / f"{name}.md").read_text() in text
    assert json.loads((tmp_path / f"{name}.json").read_text())["seeds"] == 2 + (
        name == "seed_comparison"
    )


def test_speed_quick(_run, tmp_path):
    """Every column and figure of speed.py, at tiny sizes, for the quick regimes backprop and
    dni+noise (every code path; torch only where installed)."""
    text = _run("speed.py", "--quick", "--out", str(tmp_path))
    res = json.loads((tmp_path / "speed.json").read_text())
    article = res["article_scale"]
    assert article["runs"] == 16 and article["steps"] == 50
    assert article["speedup_vs_tight_numpy"] > 0 and article["engine_over_lean_jax"] > 0
    assert sorted(article["details"]) == ["backprop", "dni+noise"]
    for regime in ("backprop", "dni+noise"):
        methods = article["details"][regime]["methods"]
        assert {"engine", "tight_numpy", "reference", "lean_jax"} <= set(methods)
        if (os.cpu_count() or 1) > 1 and regime == "backprop":  # --quick: backprop only
            assert methods["engine_all_cores"]["run_steps_per_s"] > 0
    compiled = res["compile_default_compare"]
    assert compiled["cold"]["compile_s"] > 0 and compiled["warm"]["compile_s"] >= 0
    assert res["grid_memory"]["runs"] == 128 and res["grid_memory"]["peak_gib"] > 0
    assert len(res["targets"]) == 10 and all(t["met"] is not None for t in res["targets"][2:])
    assert "| backprop |" in text and "**Targets**" in text
    assert (tmp_path / "speed.md").read_text() in text  # the report, printed and written
    if any(t["met"] is False for t in res["targets"][:5]):  # the profile of a missed target
        assert res["profile"][-1]["step"] == "the engine (dnijax.engine.run_grid)"


def test_scaling_quick(_run, tmp_path):
    """scaling.py at its smallest: every point on this process's one device."""
    text = _run("scaling.py", "--quick", "--out", str(tmp_path))
    res = json.loads((tmp_path / "scaling.json").read_text())
    assert res["runs"] == [1, 16] and res["regimes"] == ["backprop"]
    counts = {c["devices"]: c["points"] for c in res["counts"]}
    assert list(counts) == ["1 x cpu"]
    for points in counts.values():
        assert [(p["runs"], p["steps"]) for p in points] == [(1, 10), (16, 10)]
        assert all(p["run_steps_per_s"] > 0 for p in points)
    assert (tmp_path / "scaling.png").stat().st_size > 0 and "| backprop | 16 |" in text


def test_profile_step_quick(_run):
    text = _run("profile_step.py", "--quick", "--repeats", "1")
    assert "| the engine (dnijax.engine.run_grid) |" in text and "+ finite guard" in text


@pytest.mark.parametrize(
    "script",
    [
        "seed_comparison.py",
        "lr_sensitivity.py",
        "speed.py",
        "dni_noise.py",
        "profile_step.py",
        "dni_cnn.py",
        "copy_task.py",
    ],
)
def test_scripts_explain_themselves(_run, script):
    assert "usage" in _run(script, "--help")


@pytest.mark.parametrize(
    "script,args,message",
    [
        ("copy_task.py", ["--windows", "2,x"], "--windows: 'x' is not an integer > 0"),
        ("dni_cnn.py", ["--lr", "-1"], "--lr: '-1' is not a number > 0"),
        ("dni_depth.py", ["--seeds", "0"], "--seeds: '0' is not an integer > 0"),
        ("speed.py", ["--runs", "0"], "--runs: '0' is not an integer > 0"),
        (
            "rule_family.py",
            ["--quick", "--lrs", "1e-3,2e-3,3e-3"],
            "--lrs: 3 rates do not divide the 2 x 2 runs",
        ),
        ("rule_family.py", ["--data", "digits,cifar"], "--data: unknown cifar"),
    ],
)
def test_bad_options_get_one_line_errors(script_main, script, args, message):
    code, _, err = script_main(script, *args)
    assert code == 2 and message in err and err.count("\n") == 1, err


OUTPUT = {
    "seed_comparison.py": "seed_comparison.json",
    "lr_sensitivity.py": "lr_sensitivity.json",
    "speed.py": "speed.json",
    "dni_noise.py": "dni_noise.json",
    "dni_cnn.py": "dni_cnn.json",
    "copy_task.py": "copy_task.json",
    "copy_ablation.py": "copy_ablation.json",
    "deep_noise.py": "deep_noise.json",
    "dni_depth.py": "dni_depth.json",
    "rule_family.py": "rule_family.json",
    "sg_target.py": "sg_target.json",
    "cnn_ablation.py": "cnn_ablation.json",
    "fcn_ablation.py": "fcn_ablation.json",
    "noise_rescue.py": "noise_rescue.json",
    "scaling.py": "scaling.json",
}  # one file each script writes
WRITERS = sorted(OUTPUT)


@pytest.mark.parametrize("script", WRITERS + ["profile_step.py"])
def test_abbreviated_options_are_refused_with_a_hint(script_main, script):
    code, _, err = script_main(script, "--quic")
    assert code == 2 and "(did you mean --quick?)" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("script", WRITERS)
def test_another_configurations_folder_is_refused_before_any_work(script_main, script, tmp_path):
    (tmp_path / "manifest.json").write_text('{"benchmark": "something else"}')
    (tmp_path / OUTPUT[script]).write_text("earlier results")
    data = ["--data", "digits"] if script == "dni_depth.py" else []  # mnist1d is optional
    code, out, err = script_main(script, "--quick", *data, "--out", str(tmp_path))
    assert code == 2 and "pass --overwrite" in err and err.count("\n") == 1, err
    assert out == ""
    assert sorted(os.listdir(tmp_path)) == sorted(["manifest.json", OUTPUT[script]])
    assert (tmp_path / "manifest.json").read_text() == '{"benchmark": "something else"}'
    assert (tmp_path / OUTPUT[script]).read_text() == "earlier results"
