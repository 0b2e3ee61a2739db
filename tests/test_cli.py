"""The command line: outputs and their schema, one-line errors that write nothing, resume."""

import json
import os

import pytest

from dnijax import cli

REGIMES = ["backprop", "dni", "backprop+noise", "dni+noise"]


def test_compare_writes_every_output_with_the_documented_schema(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--seeds", "2", "--steps", "40", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["alignment.png", "decision_regions.png",
                                       "loss_curves.png", "results.json", "summary.md"]
    res = json.loads((out / "results.json").read_text())
    assert res["preset"] == "tuned" and res["config"]["steps"] == 40
    assert sorted(res["regimes"]) == sorted(REGIMES)
    for r in res["regimes"].values():
        for key in ("final_loss", "final_accuracy", "test_accuracy", "diverged_at"):
            assert len(r[key]) == 2
        curve = r["loss_curve"]
        assert curve["step"][0] == 0 and curve["step"][-1] == 40
        assert len(curve["mean"]) == len(curve["min"]) == len(curve["max"]) == len(curve["step"])
        assert all(lo <= m <= hi for lo, m, hi in zip(curve["min"], curve["mean"], curve["max"]))
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
        diffs = [a - b for a, b in zip(r["final_loss"], res["regimes"]["backprop"]["final_loss"])]
        assert abs(p["mean_diff"] - sum(diffs) / 5) < 1e-12
        assert p["ci95"][0] <= p["mean_diff"] <= p["ci95"][1]
    assert len(res["regimes"]["dni"]["sg_alignment"]["layers"]) == 2  # paper topology, 3 layers
    summary = (out / "summary.md").read_text()
    assert "(n=5)" in summary and "Wilcoxon" in summary and "/5 |" in summary


def test_seed_preset_shows_the_articles_run(tmp_path, capsys):
    out = tmp_path / "seed"
    assert cli.main(["compare", "--preset", "seed", "--seeds", "1", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    bp = res["regimes"]["backprop"]
    # docs/math.md, "The seed preset": cost about 78 -> 61..64 and accuracy at the majority class
    assert 77 < bp["initial_loss"][0] < 79 and 61 < bp["final_loss"][0] < 64
    assert all(abs(r["final_accuracy"][0] - 0.5) < 0.02 for r in res["regimes"].values())


@pytest.mark.parametrize("argv,message", [
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
    (["validate", "--width", "-3"], "--width must be >= 1, got -3"),
])
def test_bad_options_get_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
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
    argv = ["sweep", "--lr", "0.5,1e6", "--regimes", "dni", "--seeds", "2", "--steps", "20",
            "--out", str(out)]
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


@pytest.mark.parametrize("content,message", [
    ('{"lr": 1,', "is not valid JSON: Expecting property name"),
    ('[1, 2]', "must hold a JSON object of RunConfig fields"),
    ('{"lr": 1, "widht": 3}', "unknown key(s) 'widht'"),
    ('{"regime": "dni"}', "unknown key(s) 'regime'"),
    ('{"lr": -2}', "lr: -2 must be > 0"),
    ('{"widths": [3, 8, 8, 1]}', "inputs have 2 features but widths[0] is 3"),
    ('{"loss": "xent"}', "xent needs an output layer of at least 2 units"),
    ('{"steps": 100, "log_every": 7}', "log_every: 7 does not divide steps 100"),
])
def test_bad_config_files_are_refused_before_anything_is_written(content, message, tmp_path,
                                                                 capsys):
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
