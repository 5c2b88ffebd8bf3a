"""State survives every round trip and every input layout; runs are deterministic; threads are
safe."""

import copy
import os
import pickle
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor

rng = np.random.RandomState(0)
X = rng.normal(size=(120, 6))
y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 1)
Y_REG = np.c_[X[:, 0] - X[:, 1], X[:, 2] * X[:, 3]]


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def model(**params):
    return MLPClassifier(
        **{"hidden_layer_sizes": (16,), "max_iter": 30, "random_state": 0, **params}
    )


def same_model(a, b):
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_same_random_state_gives_bitwise_identical_models(solver):
    same_model(model(solver=solver).fit(X, y), model(solver=solver).fit(X, y))


def layouts():
    fortran = np.asfortranarray(X)
    readonly = X.copy()
    readonly.flags.writeable = False
    strided = np.repeat(X, 2, axis=0)[::2]  # not contiguous
    return {
        "fortran": fortran,
        "readonly": readonly,
        "strided": strided,
        "float32->float64 list": X.tolist(),
    }


@pytest.mark.parametrize("name", sorted(layouts()))
def test_every_input_layout_gives_the_same_model(name):
    reference = model().fit(X, y)
    other = model().fit(layouts()[name], y)
    same_model(reference, other)
    np.testing.assert_array_equal(other.predict_proba(layouts()[name]), reference.predict_proba(X))


def test_memory_mapped_input(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    same_model(model().fit(mapped, y), model().fit(X, y))


def test_integer_input_trains_in_float64():
    X_int = np.round(X * 10).astype(np.int32)
    fitted = model().fit(X_int, y)
    assert fitted.coefs_[0].dtype == np.float64
    same_model(fitted, model().fit(X_int.astype(np.float64), y))


def test_pandas_input_keeps_feature_names():
    pd = pytest.importorskip("pandas", reason="pandas is an optional test dependency")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    fitted = model().fit(frame, pd.Series(y))
    assert list(fitted.feature_names_in_) == list(frame.columns)
    same_model(fitted, model().fit(X, y))
    with pytest.raises(ValueError, match="feature names"):
        fitted.predict(frame.rename(columns={"f0": "other"}))


@pytest.mark.parametrize(
    "round_trip",
    [
        lambda m: pickle.loads(pickle.dumps(m)),
        copy.deepcopy,
    ],
    ids=["pickle", "deepcopy"],
)
def test_round_trips_keep_everything(round_trip):
    fitted = model(solver="sgd").fit(X, y)
    copied = round_trip(fitted)
    np.testing.assert_array_equal(copied.predict_proba(X), fitted.predict_proba(X))
    fitted.partial_fit(X, y)
    copied.partial_fit(X, y)
    same_model(fitted, copied)


def test_clone_gives_an_unfitted_estimator_with_the_same_parameters():
    fitted = model(alpha=0.3).fit(X, y)
    cloned = clone(fitted)
    assert cloned.get_params() == fitted.get_params()
    assert not hasattr(cloned, "coefs_")
    same_model(cloned.fit(X, y), fitted)


def test_concurrent_predict_matches_sequential():
    fitted = MLPRegressor(hidden_layer_sizes=(64, 32), max_iter=20, random_state=0).fit(X, Y_REG)
    big = np.tile(X, (200, 1))
    expected = fitted.predict(big)
    results, errors = [None] * 6, []

    def work(i):
        try:
            results[i] = fitted.predict(big)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_concurrent_fits_of_different_estimators_match_sequential():
    configs = [
        dict(solver="adam"),
        dict(solver="sgd"),
        dict(solver="lbfgs"),
        dict(solver="adam", activation="tanh"),
    ]
    sequential = [model(**c).fit(X, y) for c in configs]
    concurrent = [model(**c) for c in configs]
    errors = []

    def work(m):
        try:
            m.fit(X, y)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(m,)) for m in concurrent]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for a, b in zip(sequential, concurrent, strict=True):
        same_model(a, b)


def test_diverging_fit_raises_and_leaves_a_consistent_estimator():
    huge = X * 1e200
    est = MLPRegressor(
        hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=10.0, max_iter=50, random_state=0
    )
    with pytest.raises(ValueError, match="non-finite"):
        est.fit(huge, Y_REG)
    # The estimator can still be fitted on good data afterwards.
    est.set_params(learning_rate_init=1e-3).fit(X, Y_REG)
    assert np.isfinite(est.predict(X)).all()


FAULT_CHILD = """
import sys, warnings
import numpy as np
import scipy.sparse
from fastmlp import MLPClassifier, _backend, _core
warnings.simplefilter("ignore")
batch_split, kind = sys.argv[1:]
_backend.trainer_options["cpu"] = {"batch_split": batch_split}
X = np.random.RandomState(0).normal(size=(1024, 200)).astype(np.float32)
y = (X[:, 0] > 0).astype(int)
if kind == "sparse":
    X = scipy.sparse.csr_matrix(np.where(X > 1, X, 0))
bf16 = {"compute_dtype": "bfloat16"} if kind == "bf16" else {}
def fit():
    return MLPClassifier((256,), batch_size=256, max_iter=3, random_state=0, **bf16).fit(X, y)
_core.module._inject_trainer_fault(0)
try:
    fit()
except MemoryError:
    print("MemoryError")
_core.module._inject_trainer_fault(None)
print("fitted", fit().n_iter_)
"""


@pytest.mark.parametrize(
    "batch_split, kind",
    [("always", "dense"), ("always", "sparse"), ("always", "bf16"), ("never", "dense")],
)
def test_an_exception_in_the_trainers_threads_raises_and_the_next_fit_runs(batch_split, kind):
    # A kernel's buffer that cannot grow throws std::bad_alloc in the trainer's parallel region
    # (batch_split="always": two threads that meet at 2, 3 (sparse X) or 3 (bf16, whose first
    # barrier follows the weights' packing) barriers per batch, so the failure is seen at an
    # even and at an odd barrier). It must reach Python as a MemoryError, not end the process
    # (std::terminate) nor leave the other thread waiting at a barrier; and the next fit must
    # run. In a child process, which would die or hang otherwise.
    if kind == "bf16" and fastmlp.build_info()["bf16"]["kernel"] is None:
        pytest.skip(f"no bfloat16 kernel here: {fastmlp.build_info()['bf16']['reason']}")
    child = subprocess.run(
        [sys.executable, "-c", FAULT_CHILD, batch_split, kind],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["MemoryError", "fitted", "3"], child.stderr


def test_unpickled_float32_model_predicts():
    # Unpickled arrays carry dtype objects equal to, but not the same as, NumPy's own.
    fitted = model().fit(X.astype(np.float32), y)
    copied = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        copied.predict_proba(X.astype(np.float32)), fitted.predict_proba(X.astype(np.float32))
    )
    np.testing.assert_array_equal(copied.predict(X), fitted.predict(X))
