"""The command line on sparse data (issue #15): svmlight/libsvm files and SciPy .npz matrices."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file

import fastmlp
from fastmlp.__main__ import main


@pytest.fixture
def sparse_data():
    X = sp.random(80, 500, density=0.02, format="csr", random_state=0)
    y = (np.asarray(X.sum(axis=1)).ravel() > 0.1).astype(int)
    return X, y


def test_svmlight_train_and_predict(sparse_data, tmp_path, capsys):
    X, y = sparse_data
    path, model = tmp_path / "train.svm", tmp_path / "model.npz"
    dump_svmlight_file(X, y, str(path))
    args = [str(path), "--hidden", "8", "--max-iter", "5", "--random-state", "0"]
    assert main(["train", *args, "--out", str(model)]) == 0
    assert "80 rows," in capsys.readouterr().out  # the width: the largest index in the file
    out = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(path), "--out", str(out)]) == 0
    predicted = np.loadtxt(out, skiprows=1)
    loaded = fastmlp.load(model)
    np.testing.assert_array_equal(predicted, loaded.predict(X[:, : loaded.n_features_in_]))


def test_npz_with_labels(sparse_data, tmp_path, capsys):
    X, y = sparse_data
    path, labels, model = tmp_path / "X.npz", tmp_path / "y.txt", tmp_path / "m.npz"
    sp.save_npz(path, X.tocsc())
    labels.write_text("\n".join(str(v) for v in y) + "\n")
    assert main(["train", str(path), "--out", str(model)]) == 1
    assert "--labels" in capsys.readouterr().err
    assert main(["train", str(path), "--labels", str(labels), "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["predict", str(model), str(path)]) == 0
    assert capsys.readouterr().out.count("\n") == 1 + 80  # the header and one line a row
    sp.save_npz(path, X[:, :-1])
    assert main(["predict", str(model), str(path)]) == 1
    assert "features" in capsys.readouterr().err


def test_bad_sparse_files(tmp_path, capsys):
    bad = tmp_path / "bad.svm"
    bad.write_text("1 3:0.5 notapair\n")
    assert main(["train", str(bad), "--out", str(tmp_path / "m.npz")]) == 1
    assert "svmlight" in capsys.readouterr().err
    missing = tmp_path / "missing.libsvm"
    assert main(["train", str(missing), "--out", str(tmp_path / "m.npz")]) == 1
    assert "no such file" in capsys.readouterr().err
