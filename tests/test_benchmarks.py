"""Smoke tests: the benchmark scripts run end to end at tiny sizes and write their outputs."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args, timeout=300):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_deep_noise_quick(tmp_path):
    text = _run("deep_noise.py", "--quick", "--steps", "10", "--out", str(tmp_path))
    res = json.loads((tmp_path / "deep_noise.json").read_text())
    assert set(res["families"]) == {"backprop", "dni"}
    assert len(res["families"]["backprop"]) == 10  # 5 inits x noise on/off
    assert all(0 <= c["average"] <= c["best"] <= 100 for c in res["families"]["dni"])
    assert "zero init, clip 10" in text and "94.5 / 49.7" in text
    assert (tmp_path / "deep_noise.png").stat().st_size > 0


def test_dni_depth_quick(tmp_path):
    text = _run("dni_depth.py", "--quick", "--steps", "20", "--width", "8", "--out",
                str(tmp_path))
    res = json.loads((tmp_path / "dni_depth.json").read_text())
    assert sorted(res["depths"]) == ["3", "4"]
    assert {"backprop", "no backprop", "dni", "cdni", "cdni p=0.1"} <= set(res["depths"]["3"])
    assert (tmp_path / "dni_depth.png").stat().st_size > 0
    assert "| 4 |" in text


@pytest.mark.parametrize("script", ["seed_comparison.py", "lr_sensitivity.py", "speed.py"])
def test_scripts_explain_themselves(script):
    assert "usage" in _run(script, "--help")
