"""report: results.csv, the final networks, and `dnijax report DIR` rebuilding a finished
folder byte for byte (or refusing one that is not)."""

import csv
import io
import json
import os
import shutil

import numpy as np
import pytest

from dnijax import cli, report

TEXTS = ("summary.md", "results.csv")


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def _compare_results(sg_lr=0.1):
    def run(loss, div):
        return {
            "final_loss": loss,
            "final_accuracy": [0.5, 1.0],
            "test_accuracy": [0.25, 0.75],
            "diverged_at": div,
        }

    return {
        "preset": "tuned",
        "config": {"lr": 1.0, "sg_lr": sg_lr, "eta": 0.01},
        "regimes": {
            "backprop": run([0.1, 0.2], [None, None]),
            "dni+noise": run([None, 0.3], [7, None]),
        },
    }


def test_results_csv_of_a_comparison_is_one_row_per_run():
    rows = _rows(report.results_csv(_compare_results()))
    assert list(rows[0]) == list(report.CSV_COLUMNS)
    assert [(r["regime"], r["seed"]) for r in rows] == [
        ("backprop", "0"),
        ("backprop", "1"),
        ("dni+noise", "0"),
        ("dni+noise", "1"),
    ]
    assert {(r["lr"], r["sg_lr"]) for r in rows} == {("1.0", "0.1")}
    assert [r["eta"] for r in rows] == ["0.0", "0.0", "0.01", "0.01"]  # the twin runs at eta 0
    assert rows[0]["diverged_at"] == "" and rows[2]["diverged_at"] == "7"  # None: empty
    assert rows[2]["final_loss"] == "" and rows[3]["final_loss"] == "0.3"
    assert rows[1]["test_accuracy"] == "0.75"
    # without an SG learning rate the SG modules train at the network's
    assert {r["sg_lr"] for r in _rows(report.results_csv(_compare_results(None)))} == {"1.0"}


def test_results_csv_of_a_sweep_varies_lr_per_row():
    cell = {
        "final_loss": [[0.1, 0.2], [None, None]],
        "diverged_at": [[None, None], [3, 4]],
        "final_accuracy": [[0.9, 0.8], [0.5, 0.5]],
        "test_accuracy": [[0.7, 0.6], [0.5, 0.5]],
    }
    results = {
        "preset": "tuned",
        "config": {"lr": 1.0, "sg_lr": 0.1, "eta": 0.01},
        "lrs": [0.5, 1e6],
        "sg_lr": None,
        "regimes": {"dni": cell},
    }
    rows = _rows(report.results_csv(results))
    assert [(r["lr"], r["seed"], r["diverged_at"]) for r in rows] == [
        ("0.5", "0", ""),
        ("0.5", "1", ""),
        ("1000000.0", "0", "3"),
        ("1000000.0", "1", "4"),
    ]
    assert [r["sg_lr"] for r in rows] == [r["lr"] for r in rows]  # one lr for both
    assert rows[0]["final_accuracy"] == "0.9" and rows[2]["final_loss"] == ""
    results["sg_lr"] = 0.1
    del cell["final_accuracy"]  # a sweep written before per-run accuracies were kept
    rows = _rows(report.results_csv(results))
    assert {r["sg_lr"] for r in rows} == {"0.1"} and {r["final_accuracy"] for r in rows} == {""}


def test_final_params_round_trip_and_decision_region_rule(tmp_path):
    nets = {
        "backprop": [{"w": np.ones((2, 3)), "b": np.zeros(3)}, {"w": np.ones((3, 1))}],
        "dni+noise": [{"w": np.full((2, 1), 2.0)}],
    }
    path = tmp_path / "final_params.npz"
    path.write_bytes(report.final_params_npz(nets))
    with np.load(path) as z:
        assert sorted(z.files) == ["backprop/0/b", "backprop/0/w", "backprop/1/w", "dni+noise/0/w"]
    back = report.read_final_params(str(path))
    assert list(back) == ["backprop", "dni+noise"] and len(back["backprop"]) == 2
    np.testing.assert_array_equal(back["dni+noise"][0]["w"], nets["dni+noise"][0]["w"])
    assert report.read_final_params(str(tmp_path / "none.npz")) is None
    path.write_text("not a zip")
    with pytest.raises(ValueError, match="cannot be read"):
        report.read_final_params(str(path))
    assert report.decision_regions_skipped({"widths": [2, 8, 1]}) is None
    assert "64 features" in report.decision_regions_skipped({"widths": [64, 8, 10]})
    assert "3 outputs" in report.decision_regions_skipped({"widths": [2, 8, 3]})


# --- dnijax report DIR on real folders ------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Finished folders: a compare on moons, a seed-preset compare, and a sweep (regimes in a
    non-canonical order, one learning rate that diverges)."""
    root = tmp_path_factory.mktemp("finished")
    runs = {
        "compare": ["compare", "--data", "moons", "--seeds", "2", "--steps", "40"],
        "seed": ["compare", "--preset", "seed", "--seeds", "1", "--steps", "10"],
        "sweep": [
            "sweep",
            "--lr",
            "0.5,1e6",
            "--regimes",
            "dni,backprop",
            "--seeds",
            "2",
            "--steps",
            "20",
        ],
    }
    for name, argv in runs.items():
        assert cli.main(argv + ["--out", str(root / name)]) == 0
    return root


def _copy(folders, name, tmp_path):
    return shutil.copytree(folders / name, tmp_path / name)


@pytest.mark.parametrize(
    "name,figures",
    [
        (
            "compare",
            ["alignment.png", "decision_regions.png", "grad_alignment.png", "loss_curves.png"],
        ),
        (
            "seed",
            ["alignment.png", "decision_regions.png", "grad_alignment.png", "loss_curves.png"],
        ),
        ("sweep", ["sensitivity.png"]),
    ],
)
def test_report_rebuilds_a_folder_byte_for_byte(folders, name, figures, tmp_path, capsys):
    out = _copy(folders, name, tmp_path)
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == figures
    originals = {f: (out / f).read_bytes() for f in TEXTS}
    for f in [*TEXTS, *figures]:
        (out / f).unlink()
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == 0
    for f, content in originals.items():
        assert (out / f).read_bytes() == content, f
    for f in figures:
        assert (out / f).stat().st_size > 0
    printed = capsys.readouterr().out
    kind = "sweep" if name == "sweep" else "compare"
    assert printed.count("\n") == 1 and printed.startswith("dnijax report: rebuilt ")
    assert f"from results.json ({kind})" in printed and "no decision_regions" not in printed


def test_results_csv_matches_results_json(folders):
    res = json.loads((folders / "compare" / "results.json").read_text())
    rows = _rows((folders / "compare" / "results.csv").read_text())
    assert len(rows) == 4 * 2
    for row in rows:
        r = res["regimes"][row["regime"]]
        seed = int(row["seed"])
        # float32's shortest round-trip digits: the same float32 value, and no more digits
        for key in ("final_loss", "test_accuracy"):
            assert np.float32(row[key]) == np.float32(r[key][seed])
            assert row[key] == str(report.csv_value(r[key][seed], True))
            assert len(row[key]) <= len(str(np.float32(r[key][seed])))
        assert float(row["eta"]) == (0.01 if row["regime"].endswith("+noise") else 0.0)
    sweep = _rows((folders / "sweep" / "results.csv").read_text())
    assert [(r["regime"], r["lr"]) for r in sweep][::2] == [
        ("dni", "0.5"),
        ("dni", "1000000.0"),
        ("backprop", "0.5"),
        ("backprop", "1000000.0"),
    ]
    diverged = [r for r in sweep if r["regime"] == "dni" and r["lr"] == "1000000.0"]
    assert diverged and all(r["diverged_at"] != "" for r in diverged)
    assert all(r["diverged_at"] == "" for r in sweep if r["lr"] == "0.5")  # None: empty


def test_final_params_hold_seed_0s_final_networks(folders):
    import jax.numpy as jnp

    from dnijax import config, data, nets

    res = json.loads((folders / "compare" / "results.json").read_text())
    params = report.read_final_params(str(folders / "compare" / "final_params.npz"))
    assert sorted(params) == ["backprop", "backprop+noise", "dni", "dni+noise"]
    ds = data.resolve("moons", 0)
    cfg = res["config"]
    spec = config.from_dict(cfg).net_spec
    for name, net in params.items():
        out = nets.predict(
            [{k: jnp.asarray(v) for k, v in layer.items()} for layer in net],
            jnp.asarray(ds.x_train),
            spec,
        )
        accuracy = float(nets.accuracy(out, jnp.asarray(ds.y_train), spec))
        assert accuracy == pytest.approx(res["regimes"][name]["final_accuracy"][0], abs=1e-6)


def test_report_skips_decision_regions_it_cannot_draw_and_says_why(folders, tmp_path, capsys):
    out = _copy(folders, "compare", tmp_path)
    (out / "final_params.npz").unlink()
    (out / "decision_regions.png").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert "no decision_regions.png: the folder has no final_params.npz" in (
        capsys.readouterr().out
    )
    assert not (out / "decision_regions.png").exists()
    out = _copy(folders, "seed", tmp_path / "moved")
    res = json.loads((out / "results.json").read_text())
    res["preset"], res["config"]["data"] = "tuned", str(tmp_path / "gone.npz")  # data moved
    (out / "results.json").write_text(json.dumps(res))
    assert cli.main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no decision_regions.png: data: " in printed and "gone.npz" in printed


def _write(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


REFUSED = {  # a folder that is not a finished compare or sweep -> part of the one line
    "missing folder": (lambda tmp: tmp / "none", "is not a folder"),
    "a file": (lambda tmp: _write(tmp / "d", "x", "") / "x", "is not a folder"),
    "no results.json": (lambda tmp: _write(tmp / "d", "summary.md", "hi"), "has no results.json"),
    "bad JSON": (
        lambda tmp: _write(tmp / "d", "results.json", '{"preset": '),
        "is not readable JSON",
    ),
    "a list": (
        lambda tmp: _write(tmp / "d", "results.json", "[1, 2]"),
        "does not hold the results of a dnijax compare or sweep",
    ),
    "a manifest": (
        lambda tmp: _write(
            tmp / "d",
            "results.json",
            json.dumps({"kind": "sweep", "preset": "tuned", "lrs": [1.0], "regimes": ["dni"]}),
        ),
        "does not hold the results",
    ),
    "compare without curves": (
        lambda tmp: _write(
            tmp / "d",
            "results.json",
            json.dumps(
                {"preset": "tuned", "config": {}, "regimes": {"dni": {"final_loss": [1.0]}}}
            ),
        ),
        "does not hold the results",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_report_refuses_what_is_not_a_finished_folder(case, tmp_path, capsys):
    make, message = REFUSED[case]
    path = make(tmp_path)
    before = sorted(os.listdir(path)) if os.path.isdir(path) else None
    assert cli.main(["report", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("dnijax: error: report: ") and message in captured.err
    assert captured.err.count("\n") == 1 and captured.out == "", captured
    assert (sorted(os.listdir(path)) if os.path.isdir(path) else None) == before
