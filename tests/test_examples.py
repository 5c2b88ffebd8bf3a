"""The scripts in examples/: each runs as ``python examples/NAME.py --out DIR``, exits 0, writes
its picture and prints the numbers it is about.

The scripts start together, in parallel subprocesses (one module-scoped fixture), because each
spends most of its time importing scikit-learn.
"""

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# name -> (arguments, the PNG it writes or None)
RUNS = {
    "xor": (["--out", "{out}"], "xor.png"),
    "universal_approximation": (["--out", "{out}"], "universal_approximation.png"),
    "backprop_by_hand": (["--out", "{out}"], None),
    "digits": (["--out", "{out}", "--repeats", "1"], "digits_loss_curve.png"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run every example at once; return name -> (CompletedProcess-like, output folder)."""
    # One OpenMP thread each: the scripts run side by side, and OpenMP threads that outnumber
    # the cores wait on each other.
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    started = {}
    for name, (arguments, _) in RUNS.items():
        out = tmp_path_factory.mktemp(name)
        script = EXAMPLES / f"{name}.py"
        argv = [sys.executable, str(script)] + [a.format(out=out) for a in arguments]
        process = subprocess.Popen(
            argv, cwd=out, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        started[name] = (process, out)
    finished = {}
    for name, (process, out) in started.items():
        stdout, stderr = process.communicate(timeout=120)
        finished[name] = (process.returncode, stdout, stderr, out)
    return finished


@pytest.mark.parametrize("name", list(RUNS))
def test_example_exits_0_and_writes_its_picture(runs, name):
    returncode, stdout, stderr, out = runs[name]
    assert returncode == 0, f"{name} failed:\n{stdout}\n{stderr}"
    png = RUNS[name][1]
    if png is None:
        assert list(out.iterdir()) == []  # writes nothing
        return
    image = matplotlib.image.imread(out / png)
    height, width = image.shape[:2]
    assert height >= 300 and width >= 400
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert f"wrote {out / png}" in stdout or f"wrote {png}" in stdout


def test_pictures_go_to_the_current_folder_without_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # In this process (the imports are done): main(argv) as `python examples/xor.py` runs it.
    runpy.run_path(str(EXAMPLES / "xor.py"), run_name="example")["main"]([])
    assert os.listdir(tmp_path) == ["xor.png"]
    assert "wrote xor.png" in capsys.readouterr().out


def test_xor_prints_the_truth_table(runs):
    _, stdout, _, _ = runs["xor"]
    # x1 x2 h1 h2 y: h1 = OR, h2 = AND, y = XOR
    rows = re.findall(r"^\s+([01])\s+([01])\s+([01])\s+([01])\s+([01])\s*$", stdout, re.M)
    assert rows == [
        ("0", "0", "0", "0", "0"),
        ("0", "1", "1", "0", "1"),
        ("1", "0", "1", "0", "1"),
        ("1", "1", "1", "1", "0"),
    ]
    assert "XOR reproduced: True" in stdout
    assert "XOR learned (h > 0.5 exactly where y = 1): True" in stdout
    # The logistic network's outputs, near the targets 0 1 1 0.
    outputs = re.findall(r"^\s+([01])\s+([01])\s+(0\.\d{3}|1\.000)\s+([01])\s*$", stdout, re.M)
    assert len(outputs) == 4
    for x1, x2, h, y in outputs:
        assert int(y) == (int(x1) ^ int(x2)) and abs(float(h) - int(y)) < 0.1


def test_universal_approximation_prints_small_errors(runs):
    _, stdout, _, _ = runs["universal_approximation"]
    mse = {
        m[0]: float(m[1])
        for m in re.findall(r"^(\S+(?: H\(x\))?)\s+([\d.e+-]+)\s+\d+$", stdout, re.M)
    }
    assert set(mse) == {"x²", "sin(πx)", "|x|", "step H(x)"}
    # 3 tanh units fit the smooth functions closely; |x| has a kink, H(x) a jump.
    assert mse["x²"] < 1e-3 and mse["sin(πx)"] < 1e-3
    assert mse["|x|"] < 5e-3 and mse["step H(x)"] < 1e-2


def test_backprop_by_hand_prints_the_lectures_numbers(runs):
    _, stdout, _, _ = runs["backprop_by_hand"]
    # "  name (padded to 29 characters)= value    note"
    lines = dict(re.findall(r"^  (.{29})= (.*)$", stdout, re.M))
    lines = {name.strip(): value for name, value in lines.items()}
    assert lines["z = sigma(a1)"].startswith("(0.5969, 0.5933)")
    assert lines["h = sigma(a2)"].startswith("(0.7514, 0.7729)")
    assert lines["||h - y||^2"].startswith("0.5968 ")
    assert "E = 1/2 ||h - y||^2 = 0.2984" in stdout
    assert lines["delta2 = (h-y) h(1-h)"].startswith("(0.1385, -0.0381)")  # output units
    assert lines["delta1 = z(1-z) W2^T delta2"].startswith("(0.0104, 0.0083)")  # hidden units
    assert lines["dE/dW2 = delta2 z^T"] == "[[0.0827, 0.0822], [-0.0227, -0.0226]]"
    assert lines["new W2"] == "[[0.4087, 0.3589], [0.5114, 0.5613]]"
    assert lines["new b2"] == "(0.5308, 0.6191)"
    assert re.search(r"fastmlp\.reference\.MLP\s+largest difference 0\.0e\+00", stdout)
    assert re.search(r"fastmlp\.MLP\s+largest difference (\d\.\de-1[3-9]|0\.0e\+00)", stdout)
    assert stdout.rstrip().endswith("all agree")


def test_digits_prints_accuracy_beside_scikit_learn(runs):
    _, stdout, _, _ = runs["digits"]
    rows = dict(re.findall(r"^(fastmlp|scikit-learn)\s+(0\.\d{4})\s+[\d.]+s\s+\d+$", stdout, re.M))
    assert set(rows) == {"fastmlp", "scikit-learn"}
    assert float(rows["fastmlp"]) > 0.9
    assert rows["fastmlp"] == rows["scikit-learn"]
    assert "same weights as scikit-learn: True" in stdout
