"""The command line: outputs and their schema, one-line errors that write nothing, resume."""

import argparse
import json
import os

import numpy as np
import pytest

import dnijax
from dnijax import cli, engine

REGIMES = ["backprop", "dni", "backprop+noise", "dni+noise"]


def test_compare_writes_every_output_with_the_documented_schema(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--seeds", "2", "--steps", "40", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == [
        "alignment.png",
        "decision_regions.png",
        "final_params.npz",
        "grad_alignment.png",
        "loss_curves.png",
        "manifest.json",
        "results.csv",
        "results.json",
        "summary.md",
    ]
    res = json.loads((out / "results.json").read_text())
    assert res["preset"] == "tuned" and res["config"]["steps"] == 40
    assert res["config"]["data"] == "article"
    assert res["devices"] == engine.device_summary() == "1 x cpu"
    assert sorted(res["regimes"]) == sorted(REGIMES)
    for r in res["regimes"].values():
        for key in ("final_loss", "final_accuracy", "test_accuracy", "diverged_at"):
            assert len(r[key]) == 2
        curve = r["loss_curve"]
        assert curve["step"][0] == 0 and curve["step"][-1] == 40
        assert len(curve["mean"]) == len(curve["min"]) == len(curve["max"]) == len(curve["step"])
        assert all(
            lo <= m <= hi
            for lo, m, hi in zip(curve["min"], curve["mean"], curve["max"], strict=True)
        )
    printed = capsys.readouterr().out
    assert "| dni+noise |" in printed and "Seed 0" in printed
    assert "lower on" in printed and (out / "summary.md").read_text() in printed


def test_compare_reports_intervals_and_paired_tests(tmp_path):
    """results.json carries, per regime, means with 95% intervals and the diverged fraction,
    and every regime but backprop a paired-by-seed comparison with backprop."""
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--seeds", "5", "--steps", "200", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    for name, r in res["regimes"].items():
        s = r["summary"]
        for key in ("final_loss", "test_accuracy"):
            lo, hi = s[key]["ci95"]
            assert lo <= s[key]["mean"] <= hi and s[key]["n"] == 5
        assert s["diverged_fraction"] == 0.0
        assert len(r["steps_to_90pct_drop"]) == 5
        if name == "backprop":
            assert "paired_vs_backprop" not in r
            continue
        p = r["paired_vs_backprop"]["final_loss"]
        assert p["n"] == 5 and 0 <= p["wins"] <= 5 and 0 < p["p_value"] <= 1
        diffs = [
            a - b
            for a, b in zip(r["final_loss"], res["regimes"]["backprop"]["final_loss"], strict=True)
        ]
        assert abs(p["mean_diff"] - sum(diffs) / 5) < 1e-12
        assert p["ci95"][0] <= p["mean_diff"] <= p["ci95"][1]
    assert len(res["regimes"]["dni"]["sg_alignment"]["layers"]) == 2  # paper topology, 3 layers
    assert_intervals_in_range(res)
    summary = (out / "summary.md").read_text()
    assert "(n=5)" in summary and "Wilcoxon" in summary and "/5 |" in summary


RANGES = {"final_loss": (0, np.inf), "test_accuracy": (0, 1), "steps_to_90pct_drop": (0, np.inf)}


def assert_intervals_in_range(res):
    """Every interval of a comparison's results lies in its quantity's range."""
    for r in res["regimes"].values():
        for key, (low, high) in RANGES.items():
            ci = r["summary"][key]["ci95"]
            assert ci is None or low <= ci[0] <= ci[1] <= high, (key, ci)
        curve = r["loss_curve"]
        assert all(lo is None or lo >= 0 for lo in curve["ci95_lo"])
        for layer in r.get("sg_alignment", {}).get("layers", []):
            assert all(-1 <= v <= 1 for v in layer["ci95_lo"] + layer["ci95_hi"] if v is not None)
        p = r.get("paired_vs_backprop", {}).get("test_accuracy")
        assert p is None or p["ci95"] is None or -1 <= p["ci95"][0] <= p["ci95"][1] <= 1


def test_compare_refuses_another_configurations_folder(tmp_path, capsys):
    """One rule for every output folder: another configuration is refused (exit 2) and the
    folder's files stay byte-identical; --overwrite replaces them; the same configuration
    rewrites identical results."""
    out = tmp_path / "cmp"
    argv = ["compare", "--seeds", "2", "--steps", "40", "--out", str(out)]  # the schema test's
    assert cli.main(argv) == 0
    before = {name: (out / name).read_bytes() for name in ("results.json", "manifest.json")}
    capsys.readouterr()
    assert cli.main(["compare", "--seeds", "3", "--steps", "40", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different configuration; pass --overwrite" in err and err.count("\n") == 1
    assert {name: (out / name).read_bytes() for name in before} == before
    assert cli.main(argv) == 0  # the same configuration: identical results
    assert (out / "results.json").read_bytes() == before["results.json"]
    # another eta: another configuration, but the same compiled programs (eta is a number)
    assert cli.main(argv + ["--eta", "0.02", "--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["eta"] == 0.02


def test_a_folder_of_results_without_a_manifest_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "results.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    assert cli.main(["compare", "--seeds", "2", "--steps", "40", "--out", str(out)]) == 2
    assert "not made by this configuration (results.json); pass --overwrite" in (
        capsys.readouterr().err
    )
    assert sorted(os.listdir(out)) == ["notes.txt", "results.json"]
    assert (
        cli.main(["compare", "--seeds", "2", "--steps", "40", "--out", str(out), "--overwrite"])
        == 0
    )
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite removes only its outputs


@pytest.mark.parametrize(
    "argv,hint",
    [
        (["compare", "--seed", "3"], "unrecognized arguments: --seed 3 (did you mean --seeds"),
        (["compare", "--sg_lr", "0.1"], "did you mean --sg-lr"),
        (["sweep", "--lr", "1", "--regime", "dni"], "did you mean --regimes"),
        (["validate", "--dep", "2"], "did you mean --depth"),
    ],
)
def test_abbreviated_or_misspelt_options_are_refused_with_a_hint(
    argv, hint, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and hint in err and err.count("\n") == 1, err
    assert os.listdir(tmp_path) == []


def test_seed_preset_shows_the_articles_run(tmp_path, capsys):
    out = tmp_path / "seed"
    assert cli.main(["compare", "--preset", "seed", "--seeds", "1", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    bp = res["regimes"]["backprop"]
    # docs/math.md, "The seed preset": cost about 78 -> 61..64 and accuracy at the majority class
    assert 77 < bp["initial_loss"][0] < 79 and 61 < bp["final_loss"][0] < 64
    assert all(abs(r["final_accuracy"][0] - 0.5) < 0.02 for r in res["regimes"].values())


@pytest.mark.parametrize(
    "argv,message",
    [
        (["compare", "--preset", "fancy"], "invalid choice: 'fancy'"),
        (["compare", "--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["compare", "--lr", "-0.1"], "--lr must be a finite number > 0"),
        (["compare", "--lr", "fast"], "--lr must be a number, got 'fast'"),
        (["compare", "--lr", "nan"], "--lr must be a finite number > 0"),
        (["compare", "--eta", "-1"], "--eta must be a finite number >= 0"),
        (["compare", "--steps", "2.5"], "--steps must be an integer"),
        (["sweep", "--lr", "0.1,-1"], "--lr must be a finite number > 0"),
        (["sweep", "--lr", "0.1", "--regimes", "dni,sgd"], "unknown regime 'sgd'"),
        (["sweep"], "the following arguments are required: --lr"),
        (["validate", "--depth", "0"], "--depth must be >= 1, got 0"),
        (["compare", "--cpu-devices", "0"], "--cpu-devices must be >= 1, got 0"),
        (["validate", "--width", "-3"], "--width must be >= 1, got -3"),
    ],
)
def test_bad_options_get_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert os.listdir(tmp_path) == []


def test_cpu_devices_that_jax_cannot_take_any_more_get_one_line(tmp_path, capsys, monkeypatch):
    """In a process where JAX already runs (this one), another CPU device count is refused
    before anything runs or is written."""
    import jax

    jax.devices()  # JAX runs (a test worker's first test would otherwise set the count)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "--lr", "0.1", "--cpu-devices", "3"]) == 2
    err = capsys.readouterr().err
    assert "cannot use 3 CPU devices: JAX already runs with 1" in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == []


def test_an_unusable_out_folder_is_refused_before_running(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["compare", "--out", str(blocker)]) == 2
    assert "exists and is a file" in capsys.readouterr().err
    assert cli.main(["compare", "--out", str(blocker / "sub")]) == 2
    assert blocker.read_text() == "x"


def test_sweep_writes_results_and_resumes(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = [
        "sweep",
        "--lr",
        "0.5,1e6",
        "--regimes",
        "dni",
        "--seeds",
        "2",
        "--steps",
        "20",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["lrs"] == [0.5, 1e6]
    assert res["regimes"]["dni"]["diverged_fraction"] == [0.0, 1.0]
    assert res["regimes"]["dni"]["median_final_loss"][1] is None
    assert (out / "sensitivity.png").stat().st_size > 0
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "resumed: 2 of 2 blocks were already done" in capsys.readouterr().err
    assert cli.main(argv[:-2] + ["--seeds", "3", "--out", str(out)]) == 2
    assert "different configuration; pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"lr": 1,', "is not valid JSON: Expecting property name"),
        ("[1, 2]", "must hold a JSON object of RunConfig fields"),
        ('{"lr": 1, "widht": 3}', "unknown key(s) 'widht'"),
        ('{"regime": "dni"}', "unknown key(s) 'regime'"),
        ('{"lr": -2}', "lr: -2 must be > 0"),
        ('{"widths": [3, 8, 8, 1]}', "inputs have 2 features but widths[0] is 3"),
        ('{"loss": "xent"}', "xent needs an output layer of at least 2 units"),
        ('{"steps": 100, "log_every": 7}', "log_every: 7 does not divide steps 100"),
    ],
)
def test_bad_config_files_are_refused_before_anything_is_written(
    content, message, tmp_path, capsys
):
    path = tmp_path / "cfg.json"
    path.write_text(content)
    for argv in (["compare"], ["sweep", "--lr", "0.1"]):
        out = tmp_path / "out"
        assert cli.main(argv + ["--config", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()


def test_missing_config_file_and_seed_preset_fixed_fields(tmp_path, capsys):
    assert cli.main(["compare", "--config", str(tmp_path / "none.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    path = tmp_path / "cfg.json"
    path.write_text('{"widths": [2, 5, 1]}')
    assert cli.main(["compare", "--preset", "seed", "--config", str(path)]) == 2
    assert "article weights fix widths" in capsys.readouterr().err


def test_a_config_file_changes_the_run(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text('{"widths": [2, 6, 1], "activations": ["tanh", "sigmoid"], "steps": 20}')
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--seeds", "1", "--config", str(path), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["widths"] == [2, 6, 1] and res["config"]["steps"] == 20


# --- --data: built-in sets and a user's files ------------------------------------------------


def test_compare_on_digits_fits_the_network_to_the_data(tmp_path, capsys):
    out = tmp_path / "digits"
    out.mkdir()
    for stale in ("final_params.npz", "decision_regions.png"):  # from an earlier 2-D run
        (out / stale).write_text("old")
    assert (
        cli.main(
            [
                "compare",
                "--data",
                "digits",
                "--seeds",
                "2",
                "--steps",
                "100",
                "--out",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    notes = [line for line in printed.splitlines() if line.startswith("dnijax: ")]
    assert notes[0] == (
        "dnijax: --data digits has 64 features and 10 classes; widths "
        "(2, 10, 28, 1) -> (64, 10, 28, 10), loss mse -> xent (softmax outputs; "
        'a config file with "loss" keeps another)'
    )
    assert (
        notes[1].startswith(
            "dnijax: compare tuned: 2 seeds x 100 steps x 4 regimes; compiling first"
        )
        and len(notes) == 2
    )
    assert printed.startswith(notes[0])  # before training and the table
    res = json.loads((out / "results.json").read_text())
    cfg = res["config"]
    assert cfg["data"] == "digits" and cfg["widths"] == [64, 10, 28, 10]
    assert cfg["loss"] == "xent"  # ten classes: softmax cross-entropy, not ten sigmoids
    for r in res["regimes"].values():
        assert r["diverged_at"] == [None, None]
        assert r["final_loss"][0] < r["initial_loss"][0]
    assert min(res["regimes"]["backprop"]["test_accuracy"]) > 0.8  # chance is 0.1
    # 64 features: no decision regions (and no final networks for them, the stale ones gone),
    # and it says so
    assert sorted(os.listdir(out)) == [
        "alignment.png",
        "grad_alignment.png",
        "loss_curves.png",
        "manifest.json",
        "results.csv",
        "results.json",
        "summary.md",
    ]
    assert (
        "(no decision_regions.png: the inputs have 64 features; it is drawn for 2-D inputs)"
    ) in printed


def test_a_built_in_set_that_fits_prints_no_note_and_seed_s_gets_its_own_split(tmp_path, capsys):
    from dnijax import data
    from dnijax.experiments import presets

    out = tmp_path / "moons"
    assert (
        cli.main(["compare", "--data", "moons", "--seeds", "1", "--steps", "20", "--out", str(out)])
        == 0
    )
    assert "dnijax: --data" not in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["data"] == "moons" and res["config"]["widths"] == [2, 10, 28, 1]
    assert (out / "decision_regions.png").stat().st_size > 0
    datasets, _ = presets.grid_inputs("tuned", 2, data="moons")
    for seed, ds in enumerate(datasets):
        np.testing.assert_array_equal(ds.x_train, data.resolve("moons", seed).x_train)
    assert not np.array_equal(datasets[0].x_train, datasets[1].x_train)


def test_sweep_on_a_users_file_fits_the_network_and_records_the_data(tmp_path, capsys, monkeypatch):
    rng = np.random.RandomState(0)
    x = rng.randn(90, 3)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, labels=np.argmax(x, 1) * 5)  # labels 0, 5, 10: three classes
    monkeypatch.chdir(tmp_path)
    argv = [
        "sweep",
        "--lr",
        "0.5",
        "--regimes",
        "backprop",
        "--seeds",
        "2",
        "--steps",
        "20",
        "--data",
        str(path),
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == (
        f"dnijax: --data {path} has 3 features and 3 classes; "
        "widths (2, 10, 28, 1) -> (3, 10, 28, 3), loss mse -> "
        'xent (softmax outputs; a config file with "loss" '
        "keeps another)"
    )
    out = tmp_path / "runs" / "sweep-tuned-mine"  # the default folder names the data
    for name in ("manifest.json", "results.json"):
        cfg = json.loads((out / name).read_text())["config"]
        assert cfg["data"] == str(path) and cfg["widths"] == [3, 10, 28, 3]
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 2


X = np.random.RandomState(0).randn(20, 2)
Y = np.arange(20) % 2


def _npz(name, **arrays):
    def make(folder):
        np.savez(folder / name, **arrays)
        return folder / name

    return make


def _text(name, body):
    def make(folder):
        (folder / name).write_text(body)
        return folder / name

    return make


BAD_DATA = {  # a bad data file -> part of its one-line message
    "missing file": (lambda folder: folder / "none.npz", "no such file"),
    "unknown extension": (_text("data.txt", "1,2,0\n3,4,1\n"), "unknown file extension '.txt'"),
    "missing array": (_npz("nolabels.npz", x=X), "has no array 'labels'"),
    "shape mismatch": (_npz("short.npz", x=X, labels=Y[:-1]), "shape mismatch"),
    "NaN in inputs": (_npz("nan.npz", x=np.where(X > 1, np.nan, X), labels=Y), "NaN or inf"),
    "non-integer labels": (_npz("half.npz", x=X, labels=Y + 0.5), "labels must be integers"),
    "single class": (_npz("one.npz", x=X, labels=0 * Y), "single class"),
    "too few rows": (_npz("few.npz", x=X[:3], labels=[0, 0, 1]), "too few rows"),
    "non-numeric CSV cell": (
        _text("cell.csv", "a,b,label\n1,2,0\n3,x,1\n"),
        "row 3, column 2 is 'x', not a finite number",
    ),
}


@pytest.mark.parametrize("command", [["compare"], ["sweep", "--lr", "0.1"]])
@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_files_get_one_line_naming_the_file_and_nothing_runs_or_is_written(
    case, command, tmp_path, capsys, monkeypatch
):
    from dnijax.experiments import compare, lr_sweep

    make, message = BAD_DATA[case]
    (tmp_path / "files").mkdir()
    path = make(tmp_path / "files")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    never = lambda *a, **k: pytest.fail("training started")  # noqa: E731
    monkeypatch.setattr(compare, "run_compare", never)
    monkeypatch.setattr(lr_sweep, "run_sweep", never)
    for out in ([], ["--out", str(work / "out")]):
        assert cli.main(command + ["--data", str(path)] + out) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith("dnijax: error: data: ")
        assert message in captured.err and repr(str(path)) in captured.err
        assert captured.err.count("\n") == 1 and captured.out == "", captured
        assert os.listdir(work) == []


def test_the_seed_preset_and_unknown_names_refuse_data(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv, message in [
        (
            ["compare", "--preset", "seed", "--data", "moons"],
            "--data: the seed preset's data are the article's by definition",
        ),
        (
            ["sweep", "--lr", "1", "--preset", "seed", "--data", "article"],
            "--data: the seed preset's data are the article's by definition",
        ),
        (["compare", "--data", "mnist"], "unknown data set 'mnist'"),
    ]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert os.listdir(tmp_path) == []


# --- help and version ------------------------------------------------------------------------


def test_every_option_of_every_subcommand_has_help_with_its_default():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subs.choices) == {"compare", "sweep", "validate", "report"}
    for name, sub in subs.choices.items():
        assert issubclass(sub.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and " ".join(action.help.split()) in text, (name, action.dest)
            if not action.option_strings:  # the positional DIR of report
                continue
            if action.default is not None:
                assert f"(default: {action.default})" in text, (name, action.dest)
            else:  # the preset's value, "none", or required: the help says which
                assert "(default: " in action.help or "(required)" in action.help, action.dest
    compare_help = " ".join(subs.choices["compare"].format_help().split())
    assert "--data NAME|PATH" in compare_help and "(default: tuned)" in compare_help
    assert "training steps (default: the preset's: tuned 2000, seed 100)" in compare_help


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"dnijax {dnijax.__version__}\n"


def test_compare_trains_a_conv_net_with_a_user_layer_from_a_config_file(tmp_path, capsys):
    """The README's docs/examples/cnn.json (a conv net and a layer from a Python file) under
    backprop and DNI with noise (every code path of the four regimes), on digits; the results
    folder can be rebuilt by ``dnijax report``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "examples", "cnn.json")) as f:
        config = json.load(f)
    for layer in config["layers"]:
        if layer["kind"].startswith("docs/"):
            layer["kind"] = os.path.join(root, layer["kind"])
    config["log_every"] = 10  # 2 records: a conv net's records on all of digits are slow
    path = tmp_path / "cnn.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "cnn"
    assert (
        cli.main(
            [
                "compare",
                "--data",
                "digits",
                "--config",
                str(path),
                "--seeds",
                "2",
                "--steps",
                "20",
                "--regimes",
                "backprop,dni+noise",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    assert sorted(res["regimes"]) == ["backprop", "dni+noise"]
    assert res["config"]["widths"] == [64, 128, 32, 32, 32, 10]
    assert res["config"]["layers"][1] == {"kind": "conv2d", "features": 8, "kernel": 3}
    assert all(len(r["test_accuracy"]) == 2 for r in res["regimes"].values())
    assert cli.main(["report", str(out)]) == 0


# --- sequence tasks on the same engine: dnijax compare --task -------------------------------

TASK_SMALL = {"hidden": 6, "max_length": 3, "window": 3}


def _task_config(tmp_path):
    path = tmp_path / "small_lstm.json"
    path.write_text(json.dumps(TASK_SMALL))
    return str(path)


def test_compare_on_the_copy_task_writes_every_output_and_report_rebuilds_them(tmp_path, capsys):
    out = tmp_path / "copy"
    argv = [
        "compare",
        "--task",
        "copy",
        "--seeds",
        "2",
        "--steps",
        "20",
        "--out",
        str(out),
        "--config",
        _task_config(tmp_path),
    ]
    assert cli.main(argv) == 0
    assert sorted(os.listdir(out)) == [
        "length_curves.png",
        "manifest.json",
        "results.csv",
        "results.json",
        "summary.md",
    ]
    res = json.loads((out / "results.json").read_text())
    assert res["preset"] == "copy" and res["config"]["task"] == "copy"
    assert res["config"]["hidden"] == 6 and res["config"]["steps"] == 20
    assert sorted(res["regimes"]) == sorted(REGIMES)
    for r in res["regimes"].values():
        assert len(r["solved"]) == len(r["final_error_bits"]) == 2
        assert all(0 <= s <= 3 for s in r["solved"])
        assert r["length_curve"]["step"][-1] == 20
        lo, hi = r["summary"]["solved"]["ci95"] or (0, 3)
        assert 0 <= lo <= hi <= 3
    printed = capsys.readouterr().out
    assert "| dni+noise |" in printed and (out / "summary.md").read_text() in printed
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("regime,seed,lr,sg_lr,eta,solved") and len(rows) == 1 + 8
    summary, csv = (out / "summary.md").read_bytes(), (out / "results.csv").read_bytes()
    for name in ("summary.md", "results.csv", "length_curves.png"):
        (out / name).unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "summary.md").read_bytes() == summary
    assert (out / "results.csv").read_bytes() == csv and (out / "length_curves.png").exists()
    # another configuration into the same folder is refused, the files untouched
    capsys.readouterr()
    assert cli.main(argv[:4] + ["3"] + argv[5:]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "summary.md").read_bytes() == summary


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["compare", "--task", "copy", "--data", "digits"],
            "--data: a sequence task makes its own",
        ),
        (["compare", "--task", "copy", "--preset", "seed"], "--preset: a sequence task makes its"),
        (["compare", "--task", "sort"], "invalid choice: 'sort'"),
        (["sweep", "--task", "copy", "--lr", "0.1", "--data", "digits"], "--data: a sequence task"),
        (["compare", "--task", "copy", "--regime", "dni"], "unrecognized arguments: --regime"),
        (
            ["compare", "--task", "copy", "--regimes", "backprop,fa"],
            "rule 'fa' has no recurrent form (it trains feed-forward (dense and conv) "
            "networks only)",
        ),
        (
            ["compare", "--regimes", "backprop,sgd"],
            "unknown regime 'sgd'; choose from backprop, dni, fa, dfa, fwdgrad",
        ),
        (["compare", "--regimes", "fa,dfa,fa"], "regimes: 'fa' is given twice"),
    ],
)
def test_a_task_refuses_what_has_no_sequence_meaning(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as info:  # argparse's own errors
        code = info.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert os.listdir(tmp_path) == []


def test_sweep_on_the_copy_task_records_errors_and_lengths_and_report_rebuilds(tmp_path, capsys):
    out = tmp_path / "sweep"
    # the +noise regimes over 4 seeds: the programs of the compare test above (2 seeds x 2 arms)
    argv = [
        "sweep",
        "--task",
        "copy",
        "--lr",
        "0.003,0.03",
        "--regimes",
        "backprop+noise,dni+noise",
        "--seeds",
        "4",
        "--steps",
        "20",
        "--out",
        str(out),
        "--config",
        _task_config(tmp_path),
    ]
    assert cli.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["metric"] == "final_error_bits" and res["config"]["task"] == "copy"
    for r in res["regimes"].values():
        assert len(r["median_final_error_bits"]) == 2 and len(r["solved"][0]) == 4
        assert all(v is None or v > 0 for v in r["median_final_error_bits"])
    assert "final error (bits per target bit)" in (out / "summary.md").read_text()
    summary = (out / "summary.md").read_bytes()
    assert cli.main(argv) == 0  # the same command resumes: every block is done
    assert "resumed: 4 of 4 blocks" in capsys.readouterr().err
    (out / "summary.md").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "summary.md").read_bytes() == summary


def test_compare_runs_the_rule_family_and_report_rebuilds_it(tmp_path, capsys):
    out = tmp_path / "family"
    argv = [
        "compare",
        "--regimes",
        "backprop,fa,dfa,fwdgrad,dfa+noise",
        "--seeds",
        "2",
        "--steps",
        "50",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    assert sorted(os.listdir(out)) == [
        "decision_regions.png",
        "final_params.npz",
        "grad_alignment.png",
        "loss_curves.png",
        "manifest.json",
        "results.csv",
        "results.json",
        "summary.md",
    ]
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["regimes"] == ["backprop", "fa", "dfa", "fwdgrad", "dfa+noise"]
    assert sorted(res["regimes"]) == sorted(res["config"]["regimes"])  # JSON sorts keys
    for name, r in res["regimes"].items():
        assert len(r["test_accuracy"]) == 2 and r["summary"]["test_accuracy"]["n"] == 2
        assert ("paired_vs_backprop" in r) == (name != "backprop")
        assert ("grad_alignment" in r) == (name != "backprop")
    # the same backprop seeds as in the four-regime comparison: paired by seed
    printed = capsys.readouterr().out
    assert "| dfa+noise |" in printed and "| fwdgrad |" in printed
    summary = (out / "summary.md").read_bytes()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "summary.md").read_bytes() == summary
    assert cli.main(argv[:2] + ["backprop,fa"] + argv[3:]) == 2  # another configuration
