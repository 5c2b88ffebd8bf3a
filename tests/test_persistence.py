"""The safe model format: est.save(path) and fastmlp.load(path)."""

import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._persistence import ModelFormatError

X, y = load_iris(return_X_y=True)
NAMES = np.array(["setosa", "versicolor", "virginica"])[y]


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def fitted(kind="multiclass", **params):
    defaults = dict(hidden_layer_sizes=(6,), max_iter=15, random_state=0)
    if kind == "regression":
        return MLPRegressor(**{**defaults, **params}).fit(X[:, :3], X[:, 3:])
    targets = {"multiclass": NAMES, "binary": y == 1, "multilabel": np.eye(3)[y].astype(int)}
    return MLPClassifier(**{**defaults, **params}).fit(X, targets[kind])


CASES = [
    ("multiclass", dict(solver="adam")),
    ("multiclass", dict(solver="sgd", learning_rate="adaptive")),
    ("multiclass", dict(solver="lbfgs")),
    ("multiclass", dict(solver="adam", early_stopping=True)),
    ("binary", dict(solver="sgd")),
    ("multilabel", dict(solver="adam", activation="tanh")),
    ("regression", dict(solver="adam")),
    ("regression", dict(solver="sgd", loss="poisson", n_iter_no_change=np.inf)),
]


@pytest.mark.parametrize("kind,params", CASES, ids=lambda c: str(c))
def test_round_trip_predicts_the_same(tmp_path, kind, params):
    est = fitted(kind, **params)
    path = tmp_path / "model.npz"
    est.save(path)
    loaded = fastmlp.load(path)
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    data = X[:, :3] if kind == "regression" else X
    if kind == "regression":
        np.testing.assert_array_equal(loaded.predict(data), est.predict(data))
    else:
        np.testing.assert_array_equal(loaded.predict_proba(data), est.predict_proba(data))
        np.testing.assert_array_equal(loaded.predict(data), est.predict(data))
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
    for name in ("n_iter_", "t_", "loss_", "n_layers_", "n_outputs_", "out_activation_"):
        assert getattr(loaded, name) == getattr(est, name)
    assert getattr(loaded, "loss_curve_", None) == getattr(est, "loss_curve_", None)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_after_loading_continues_as_without_saving(tmp_path, solver):
    est = fitted(solver=solver, shuffle=False)
    est.save(tmp_path / "m.npz")
    loaded = fastmlp.load(tmp_path / "m.npz")
    # pickle is the other round trip; all three must continue identically
    unpickled = pickle.loads(pickle.dumps(est))
    for model in (est, loaded, unpickled):
        model.partial_fit(X, NAMES)
    for a, b, c in zip(est.coefs_, loaded.coefs_, unpickled.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_float32_models_stay_float32(tmp_path):
    est = MLPClassifier((5,), max_iter=5, random_state=0).fit(X.astype(np.float32), y)
    est.save(tmp_path / "m.npz")
    loaded = fastmlp.load(tmp_path / "m.npz")
    assert loaded.coefs_[0].dtype == np.float32
    assert loaded.predict_proba(X.astype(np.float32)).dtype == np.float32


def test_save_needs_a_fitted_estimator(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MLPClassifier().save(tmp_path / "m.npz")


# --- hostile and broken files ------------------------------------------------------------


def rewrite(path, out, change):
    """Copy the archive at path to out with change(arrays, meta) applied."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["__metadata__"]))
    change(arrays, meta)
    arrays["__metadata__"] = np.array(json.dumps(meta))
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    return out


def set_meta(key, value):
    def change(arrays, meta):
        meta[key] = value

    return change


def set_fitted(key, value):
    def change(arrays, meta):
        meta["fitted"][key] = value

    return change


def set_array(key, value):
    def change(arrays, meta):
        arrays[key] = value

    return change


def drop_array(key):
    def change(arrays, meta):
        del arrays[key]

    return change


BROKEN = [
    ("newer format", set_meta("format_version", 99), "format version 99 is not supported"),
    ("other format", set_meta("format", "something"), "not a fastmlp model file"),
    ("unknown estimator", set_meta("estimator", "os.system"), "unknown estimator"),
    ("bad params", set_meta("params", {"alpha": -1}), "invalid parameters"),
    ("unknown param", set_meta("params", {"evil": 1}), "unknown parameters"),
    ("bad dtype", set_meta("dtype", "object"), "dtype must be float32 or float64"),
    ("NaN weights", set_array("coef_0", np.full((4, 6), np.nan)), "NaN or infinity"),
    ("wrong shape", set_array("coef_1", np.zeros((5, 3))), "coef_1"),
    ("wrong dtype", set_array("coef_0", np.zeros((4, 6), np.float32)), "coef_0"),
    ("missing layer", drop_array("intercept_1"), "'intercept_1' is missing"),
    ("missing classes", drop_array("classes"), "classes"),
    ("too few classes", set_array("classes", np.array(["a", "b"])), "does not fit"),
    ("unsorted classes", set_array("classes", np.array(["c", "b", "a"])), "sorted"),
    ("n_layers", set_fitted("n_layers_", 10**9), "out of range"),
    ("n_layers type", set_fitted("n_layers_", "3"), "n_layers_"),
    ("outputs", set_fitted("out_activation_", "identity"), "out_activation_"),
    ("moments", set_array("optimizer_ms_0", np.zeros(3)), "optimizer_ms_0"),
    ("curve", set_fitted("loss_curve_", ["x"]), "loss_curve_"),
]


@pytest.mark.parametrize("name,change,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_inconsistent_files_are_rejected(tmp_path, name, change, message):
    est = fitted(hidden_layer_sizes=(6,))
    est.save(tmp_path / "good.npz")
    bad = rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", change)
    with pytest.raises(ModelFormatError, match=message):
        fastmlp.load(bad)


def test_truncated_and_garbage_files_are_rejected(tmp_path):
    fitted().save(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ModelFormatError):
            fastmlp.load(tmp_path / "cut.npz")
    (tmp_path / "noise.npz").write_bytes(np.random.RandomState(0).bytes(4000))
    with pytest.raises(ModelFormatError):
        fastmlp.load(tmp_path / "noise.npz")


def test_pickled_objects_in_the_archive_are_never_loaded(tmp_path):
    # An object array would need pickle, which can run arbitrary code: load refuses it.
    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as z:
        with z.open("__metadata__.npy", "w") as f:
            np.lib.format.write_array(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFormatError, match="not a readable fastmlp model"):
        fastmlp.load(tmp_path / "evil.npz")


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastmlp.load(tmp_path / "nothing.npz")


def test_a_pickle_from_before_the_new_parameters_loads_with_their_defaults():
    """An estimator pickled by an earlier fastmlp has no class_weight or leaky_relu_slope: it
    unpickles with their defaults and predicts as before."""
    model = fitted("multiclass")
    state = dict(model.__getstate__())  # a copy: the model keeps its own
    for name in ("class_weight", "leaky_relu_slope"):
        state.pop(name, None)
    old = MLPClassifier.__new__(MLPClassifier)
    old.__setstate__(state)
    assert old.leaky_relu_slope == 0.01 and old.class_weight is None
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))
