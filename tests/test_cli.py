"""The command line: ``train`` and ``predict`` on CSV files, ``demo --plot``, and the errors.

Most tests call ``main([...])`` in this process; a few run ``python -m fastmlp`` in a
subprocess, to check the exit status and that the user sees one line and no traceback.
"""

import csv
import subprocess
import sys
import warnings

import matplotlib.image
import numpy as np
import pytest
from sklearn.datasets import make_blobs

import fastmlp
from fastmlp import _cli_data
from fastmlp.__main__ import main

FEATURES = ["width", "height", "depth"]


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def read_csv(text):
    rows = list(csv.reader(text.splitlines()))
    return rows[0], [row[0] for row in rows[1:]]


@pytest.fixture(scope="module")
def animals():
    """Three separable clusters, 3 numeric features in [0, 1], string labels."""
    X, y = make_blobs(n_samples=120, centers=3, n_features=3, cluster_std=0.5, random_state=0)
    X = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))
    return X, np.array(["cat", "dog", "bird"])[y]


@pytest.fixture
def animals_csv(tmp_path, animals):
    X, labels = animals
    rows = [[f"{v:.6f}" for v in x] + [label] for x, label in zip(X, labels, strict=True)]
    return write_csv(tmp_path / "animals.csv", [*FEATURES, "animal"], rows)


@pytest.fixture
def trained(tmp_path, animals_csv, capsys):
    """A classifier trained by the CLI on animals.csv: the model file's path."""
    model = str(tmp_path / "model.npz")
    args = [
        "train",
        animals_csv,
        "--target",
        "animal",
        "--hidden",
        "16,8",
        "--max-iter",
        "400",
        "--random-state",
        "0",
        "--out",
        model,
    ]
    assert main(args) == 0
    capsys.readouterr()
    return model


def python_predict(model_path, X):
    """What the model predicts for X in Python, as the CLI should print it."""
    with warnings.catch_warnings():
        # Fitted with feature names (by the CLI), given a bare array: sklearn's warning.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return fastmlp.load(model_path).predict(X)


def run(argv, capsys):
    """main(argv) -> (exit status, stdout, stderr); argparse's exits included."""
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, command, message):
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"fastmlp {command}: error: "), err
    assert message in err, err


# ---------------------------------------------------------------- train and predict


def test_train_writes_a_model_with_the_feature_names(animals_csv, tmp_path, capsys):
    model = str(tmp_path / "model.npz")
    args = [
        "train",
        animals_csv,
        "--target",
        "animal",
        "--hidden",
        "16,8",
        "--max-iter",
        "400",
        "--random-state",
        "0",
        "--out",
        model,
    ]
    code, out, err = run(args, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"{animals_csv}: 120 rows, 3 features (width, height, depth); "
        "target 'animal': 3 classes (bird, cat, dog)"
    )
    assert lines[1].startswith("MLPClassifier(hidden_layer_sizes=(16, 8)): ")
    assert lines[1].endswith("training accuracy 1.0000")
    assert lines[2] == f"wrote {model}"
    est = fastmlp.load(model)
    assert isinstance(est, fastmlp.MLPClassifier)
    assert est.hidden_layer_sizes == (16, 8) and est.max_iter == 400 and est.random_state == 0
    assert list(est.feature_names_in_) == FEATURES
    assert list(est.classes_) == ["bird", "cat", "dog"]


def test_predict_prints_the_models_predictions(trained, animals, animals_csv, capsys):
    X, labels = animals
    code, out, err = run(["predict", trained, animals_csv], capsys)
    assert code == 0
    header, predicted = read_csv(out)
    assert header == ["prediction"]
    assert predicted == list(python_predict(trained, X))
    assert np.mean(np.array(predicted) == labels) == 1.0
    # The training file has the target column too: used by nothing, and said so.
    assert err == "note: ignoring the columns the model does not use: animal\n"


def test_predict_picks_columns_by_name_and_writes_out(trained, animals, tmp_path, capsys):
    X, _ = animals
    # Columns in another order, no target column.
    order = [2, 0, 1]
    data = write_csv(tmp_path / "new.csv", [FEATURES[i] for i in order], X[:, order].round(6))
    out_path = str(tmp_path / "predictions.csv")
    code, out, err = run(["predict", trained, data, "--out", out_path], capsys)
    assert (code, err) == (0, "")
    assert out == f"wrote 120 predictions to {out_path}\n"
    with open(out_path, encoding="utf-8") as file:
        header, predicted = read_csv(file.read())
    assert header == ["prediction"]
    assert predicted == list(python_predict(trained, X.round(6)))


def test_regression_round_trip(tmp_path, capsys):
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, (80, 2))
    y = X[:, 0] - 0.5 * X[:, 1] ** 2
    data = write_csv(
        tmp_path / "r.csv",
        ["a", "target", "b"],
        [[x[0], t, x[1]] for x, t in zip(X, y, strict=True)],
    )
    model = str(tmp_path / "r.npz")
    args = [
        "train",
        data,
        "--target",
        "target",
        "--regression",
        "--hidden",
        "10",
        "--max-iter",
        "300",
        "--random-state",
        "1",
        "--out",
        model,
    ]
    code, out, _ = run(args, capsys)
    assert code == 0
    assert "target 'target': regression" in out
    r2 = float(out.splitlines()[1].rsplit(" ", 1)[1])
    assert "training R^2" in out and r2 > 0.8
    est = fastmlp.load(model)
    assert isinstance(est, fastmlp.MLPRegressor) and list(est.feature_names_in_) == ["a", "b"]
    code, out, _ = run(["predict", model, data], capsys)
    header, predicted = read_csv(out)
    # Written as the shortest text that reads back as the same float.
    np.testing.assert_array_equal(np.array(predicted, dtype=float), python_predict(model, X))


def test_predict_with_a_model_fitted_in_python_takes_columns_by_position(tmp_path, capsys):
    X = np.random.RandomState(0).uniform(size=(30, 2))
    est = fastmlp.MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning
        est.fit(X, X.sum(axis=1))
    model = str(tmp_path / "py.npz")
    est.save(model)
    data = write_csv(tmp_path / "d.csv", ["p", "q"], X)
    code, out, _ = run(["predict", model, data], capsys)
    assert code == 0
    np.testing.assert_array_equal(np.array(read_csv(out)[1], dtype=float), est.predict(X))
    wide = write_csv(tmp_path / "wide.csv", ["p", "q", "r"], np.hstack([X, X[:, :1]]))
    code, _, err = run(["predict", model, wide], capsys)
    assert_one_line_error(code, err, "predict", "has 3 columns, but the model takes 2 features")


# ---------------------------------------------------------------- errors


def test_train_errors_on_bad_files(tmp_path, capsys):
    out = ["--out", str(tmp_path / "m.npz")]
    cases = {
        "missing.csv": (None, "no such file: "),
        "empty.csv": ("", "is empty: expected a header row of column names"),
        "blank.csv": ("\n\n", "is empty"),
        "header_only.csv": ("x,y\n", "has a header but no data rows"),
        "text.csv": ("x,y\n1,a\n2,b\nfoo,c\n", "line 4, column 'x': 'foo' is not a number"),
        "hole.csv": ("x,y\n1,a\n,b\n", "line 3, column 'x': empty value (missing values"),
        "nan.csv": ("x,y\n1,a\nnan,b\n", "line 3, column 'x': 'nan' is not a finite number"),
        "ragged.csv": ("x,y\n1,a\n2\n", "line 3: 1 fields, but the header has 2"),
        "twice.csv": ("x,x,y\n1,2,a\n", "repeated column names ['x']"),
        "unnamed.csv": ("x,,y\n1,2,a\n", "column 2 of the header has no name"),
        "no_target.csv": ("x,z\n1,a\n", "has no column 'y' (--target); its columns are x, z"),
        "only_target.csv": ("y\na\n", "has no feature columns besides the target 'y'"),
        "no_label.csv": ("x,y\n1,a\n2,\n", "line 3, column 'y': empty label"),
        "latin1.csv": (b"x,y\n1,\xe9\n", "is not UTF-8 text"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content, encoding="utf-8")
        code, _, err = run(["train", str(path), "--target", "y", *out], capsys)
        assert_one_line_error(code, err, "train", message)
        assert str(path) in err
    assert not (tmp_path / "m.npz").exists()


def test_regression_target_must_be_numeric(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", ["x", "y"], [[1, 2.5], [2, "high"]])
    code, _, err = run(
        ["train", data, "--target", "y", "--regression", "--out", str(tmp_path / "m.npz")], capsys
    )
    assert_one_line_error(code, err, "train", "line 3, column 'y': 'high' is not a number")


@pytest.mark.parametrize("hidden", ["", "a", "8,x", "0", "64,0", "-4", "1.5", "12,,3", "²"])
def test_bad_hidden(hidden, animals_csv, tmp_path, capsys):
    code, _, err = run(
        [
            "train",
            animals_csv,
            "--target",
            "animal",
            "--hidden",
            hidden,
            "--out",
            str(tmp_path / "m.npz"),
        ],
        capsys,
    )
    assert_one_line_error(
        code,
        err,
        "train",
        f"--hidden must be comma-separated positive integers such as 128,64; got {hidden!r}",
    )


def test_bad_parameters_and_output_folder(animals_csv, tmp_path, capsys):
    code, _, err = run(
        [
            "train",
            animals_csv,
            "--target",
            "animal",
            "--max-iter",
            "0",
            "--out",
            str(tmp_path / "m.npz"),
        ],
        capsys,
    )
    assert_one_line_error(code, err, "train", "cannot train: The 'max_iter' parameter")
    missing = tmp_path / "no" / "m.npz"
    code, _, err = run(["train", animals_csv, "--target", "animal", "--out", str(missing)], capsys)
    assert_one_line_error(code, err, "train", f"cannot write {missing}: no folder")


def test_predict_errors(trained, tmp_path, capsys):
    def predict(data, *extra):
        return run(["predict", trained, data, *extra], capsys)

    code, _, err = predict(write_csv(tmp_path / "a.csv", ["width", "depth"], [[1, 2]]))
    assert_one_line_error(
        code,
        err,
        "predict",
        "lacks the model's feature columns ['height']; it was trained on width, height, depth",
    )
    code, _, err = predict(write_csv(tmp_path / "b.csv", FEATURES, [[1, 2, 3], [1, "?", 3]]))
    assert_one_line_error(code, err, "predict", "line 3, column 'height': '?' is not a number")
    code, _, err = predict(str(tmp_path / "none.csv"))
    assert_one_line_error(code, err, "predict", "no such file: ")
    code, _, err = predict(
        write_csv(tmp_path / "c.csv", FEATURES, [[1, 2, 3]]),
        "--out",
        str(tmp_path / "no" / "p.csv"),
    )
    assert_one_line_error(code, err, "predict", "no folder")

    data = write_csv(tmp_path / "d.csv", FEATURES, [[1, 2, 3]])
    code, _, err = run(["predict", str(tmp_path / "nothing.npz"), data], capsys)
    assert_one_line_error(code, err, "predict", "no such file: ")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a model")
    code, _, err = run(["predict", str(garbage), data], capsys)
    assert_one_line_error(code, err, "predict", f"cannot load the model in {garbage}: ")


def test_usage_errors_are_argparses(capsys):
    code, _, err = run(["train", "data.csv", "--out", "m.npz"], capsys)  # no --target
    assert code == 2 and "the following arguments are required: --target" in err
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("demo", "bench", "info", "train", "predict"):
        assert command in out


# ---------------------------------------------------------------- CSV helpers


def test_read_table_strips_and_skips_blank_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeff x , y \r\n 1 , a \r\n\r\n2,b\r\n".encode())  # BOM, CRLF, spaces
    table = _cli_data.read_table(str(path))
    assert table.columns == ["x", "y"]
    assert table.rows == [["1", "a"], ["2", "b"]]
    assert table.line_numbers == [2, 4]
    np.testing.assert_array_equal(table.numeric(["x"]), [[1.0], [2.0]])
    assert table.column("y") == ["a", "b"]


def test_numeric_reads_what_float_reads():
    table = _cli_data.Table("t.csv", ["x", "y"], [["1e3", "-0.5"], ["1_000", "+7"]], [2, 3])
    values = table.numeric(["y", "x"])
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [[-0.5, 1000.0], [7.0, 1000.0]])


def test_parse_hidden():
    assert _cli_data.parse_hidden("128,64") == (128, 64)
    assert _cli_data.parse_hidden(" 8 , 4 ") == (8, 4)
    assert _cli_data.parse_hidden("100") == (100,)


# ---------------------------------------------------------------- demo and info


def test_demo_plot_writes_the_loss_curve(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "curve.png"
    code, out, _ = run(["demo", "--plot", str(path)], capsys)
    assert code == 0
    assert "same weights as scikit-learn: True" in out
    assert out.endswith(f"wrote fastmlp's loss curve to {path}\n")
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 300 and image[..., :3].std() > 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]  # nothing else written


def test_demo_plot_errors_come_before_training(tmp_path, capsys, monkeypatch):
    code, out, err = run(["demo", "--plot", str(tmp_path / "no" / "c.png")], capsys)
    assert_one_line_error(code, err, "demo", "no folder")
    assert out == ""  # nothing trained
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(["demo", "--plot", str(tmp_path / "c.png")], capsys)
    assert_one_line_error(
        code, err, "demo", '--plot needs matplotlib: pip install "fastmlp[plot]"'
    )
    assert out == ""


def test_demo_writes_its_loss_curve_by_default_and_not_with_no_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["demo"], capsys)
    assert code == 0
    assert out.endswith("wrote fastmlp's loss curve to fastmlp_demo_loss_curve.png\n")
    (tmp_path / "fastmlp_demo_loss_curve.png").unlink()
    code, out, _ = run(["demo", "--no-plot"], capsys)
    assert code == 0 and "loss curve" not in out
    assert list(tmp_path.iterdir()) == []


def test_info_still_works(capsys):
    code, out, _ = run(["info"], capsys)
    assert code == 0 and "version" in out
    # The bf16 kernel that compute_dtype="bfloat16" would run, or none and why.
    bf16 = fastmlp.build_info()["bf16"]
    assert f"bf16: {bf16['kernel'] or 'none (' + bf16['reason'] + ')'}" in out.splitlines()


# ---------------------------------------------------------------- as a program


def python_m_fastmlp(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "fastmlp", *args],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.integration
def test_python_m_fastmlp_train_and_predict(animals_csv, tmp_path):
    # Both starts at once: the failing one needs no model.
    train = python_m_fastmlp(
        "train",
        animals_csv,
        "--target",
        "animal",
        "--hidden",
        "16,8",
        "--max-iter",
        "400",
        "--random-state",
        "0",
        "--out",
        "m.npz",
        cwd=tmp_path,
    )
    bad = python_m_fastmlp("train", "missing.csv", "--target", "y", "--out", "x.npz", cwd=tmp_path)
    out, err = train.communicate(timeout=120)
    assert train.returncode == 0, err
    assert out.endswith("wrote m.npz\n")
    predict = python_m_fastmlp("predict", "m.npz", animals_csv, cwd=tmp_path)
    out, err = bad.communicate(timeout=120)
    assert bad.returncode == 1 and out == ""
    assert err == "fastmlp train: error: no such file: missing.csv\n"
    out, err = predict.communicate(timeout=120)
    assert predict.returncode == 0, err
    header, predicted = read_csv(out)
    assert header == ["prediction"] and len(predicted) == 120
    assert set(predicted) == {"bird", "cat", "dog"}
