"""Every bad input gets a clear exception that names the problem; nothing passed is modified.

Table-driven: each row is (what is wrong, how to call, exception type, message pattern). The
messages are scikit-learn's where scikit-learn has one.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from fastmlp import MLPClassifier, MLPRegressor

rng = np.random.RandomState(0)
X = rng.normal(size=(20, 4))
Y_CLASS = np.arange(20) % 3
Y_REG = rng.normal(size=20)


def clf(**params):
    return MLPClassifier(
        **{"hidden_layer_sizes": (5,), "max_iter": 5, "random_state": 0, **params}
    )


def reg(**params):
    return MLPRegressor(**{"hidden_layer_sizes": (5,), "max_iter": 5, "random_state": 0, **params})


def fitted_clf():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf().fit(X, Y_CLASS)


def with_nan():
    bad = X.copy()
    bad[3, 2] = np.nan
    return bad


def with_inf():
    bad = X.copy()
    bad[0, 0] = np.inf
    return bad


def assign(name, value):
    def call():
        model = fitted_clf()
        setattr(model, name, value)
        return model.predict(X)

    return call


CASES = [
    ("NaN in X", lambda: clf().fit(with_nan(), Y_CLASS), ValueError, "Input X contains NaN"),
    ("inf in X", lambda: reg().fit(with_inf(), Y_REG), ValueError, "Input X contains infinity"),
    (
        "NaN in y",
        lambda: reg().fit(X, np.where(Y_REG > 1, np.nan, Y_REG)),
        ValueError,
        "Input y contains NaN",
    ),
    ("1-D X", lambda: clf().fit(X[:, 0], Y_CLASS), ValueError, "Expected 2D array, got 1D"),
    ("3-D X", lambda: clf().fit(X[:, :, None], Y_CLASS), ValueError, "Found array with dim 3"),
    ("no samples", lambda: reg().fit(X[:0], Y_REG[:0]), ValueError, "0 sample"),
    ("no features", lambda: reg().fit(X[:, :0], Y_REG), ValueError, "0 feature"),
    (
        "string X",
        lambda: clf().fit(np.full((20, 4), "a"), Y_CLASS),
        ValueError,
        "could not convert string to float",
    ),
    ("complex X", lambda: clf().fit(X + 1j, Y_CLASS), ValueError, "Complex data not supported"),
    (
        "object X",
        lambda: clf().fit(X.astype(object).tolist() + [[None] * 4], list(Y_CLASS) + [0]),
        (TypeError, ValueError),
        "float|NaN",
    ),
    (
        "lengths differ",
        lambda: clf().fit(X, Y_CLASS[:-1]),
        ValueError,
        "inconsistent numbers of samples",
    ),
    ("continuous y", lambda: clf().fit(X, Y_REG), ValueError, "Unknown label type"),
    (
        "feature count at predict",
        lambda: fitted_clf().predict(X[:, :3]),
        ValueError,
        "X has 3 features, but MLPClassifier is expecting 4 features",
    ),
    (
        "sample_weight length",
        lambda: clf().fit(X, Y_CLASS, sample_weight=np.ones(19)),
        ValueError,
        r"sample_weight.shape == \(19,\), expected \(20,\)",
    ),
    (
        "sample_weight all zero",
        lambda: clf().fit(X, Y_CLASS, sample_weight=np.zeros(20)),
        ValueError,
        "(?i)sample.weight",
    ),
    (
        "sample_weight negative",
        lambda: reg().fit(X, Y_REG, sample_weight=-np.ones(20)),
        ValueError,
        "(?i)sample.weight",
    ),
    (
        "partial_fit without classes",
        lambda: clf().partial_fit(X, Y_CLASS),
        ValueError,
        "classes must be passed on the first call to partial_fit",
    ),
    (
        "partial_fit unseen label",
        lambda: clf().partial_fit(X, Y_CLASS, classes=[0, 1, 2]).partial_fit(X, Y_CLASS + 1),
        ValueError,
        "`y` has classes not in `self.classes_`",
    ),
    (
        "partial_fit changed width",
        lambda: clf().partial_fit(X, Y_CLASS, classes=[0, 1, 2]).partial_fit(X[:, :3], Y_CLASS),
        ValueError,
        "X has 3 features, but MLPClassifier is expecting 4 features",
    ),
    ("coefs_ wrong count", assign("coefs_", [np.zeros((4, 5))]), ValueError, "coefs_"),
    (
        "coefs_ wrong shape",
        assign("coefs_", [np.zeros((4, 6)), np.zeros((6, 3))]),
        ValueError,
        r"coefs_\[0\] has shape \(4, 6\)",
    ),
    (
        "coefs_ strings",
        assign("coefs_", [np.full((4, 5), "x"), np.zeros((5, 3))]),
        ValueError,
        r"coefs_\[0\]",
    ),
    (
        "intercepts_ wrong shape",
        assign("intercepts_", [np.zeros(5), np.zeros(4)]),
        ValueError,
        r"intercepts_\[1\] has shape \(4,\)",
    ),
    (
        "coefs_ NaN",
        assign("coefs_", [np.full((4, 5), np.nan), np.zeros((5, 3))]),
        ValueError,
        "NaN",
    ),
    ("unfitted predict", lambda: clf().predict(X), NotFittedError, "not fitted"),
    ("unfitted predict_proba", lambda: clf().predict_proba(X), NotFittedError, "not fitted"),
    ("unfitted regressor", lambda: reg().predict(X), NotFittedError, "not fitted"),
    (
        "poisson with negative y",
        lambda: reg(loss="poisson").fit(X, Y_REG),
        ValueError,
        "non-negative",
    ),
    (
        "bad hidden_layer_sizes",
        lambda: clf(hidden_layer_sizes=(5, 0)).fit(X, Y_CLASS),
        ValueError,
        "hidden_layer_sizes",
    ),
    (
        "absurd hidden_layer_sizes",
        lambda: clf(hidden_layer_sizes=(10**12,)).fit(X, Y_CLASS),
        (ValueError, MemoryError),
        "hidden_layer_sizes|allocate|memory",
    ),
]


@pytest.mark.parametrize("name,call,error,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(name, call, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(error, match=message):
            call()


def test_inputs_are_not_modified():
    X_in, y_in, w_in = X.copy(), Y_CLASS.copy(), np.linspace(0.5, 2, 20)
    for array in (X_in, y_in, w_in):
        array.flags.writeable = False  # any write would raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = clf(solver="sgd").fit(X_in, y_in, sample_weight=w_in)
        model.partial_fit(X_in, y_in, sample_weight=w_in)
        model.predict_proba(X_in)
        model.score(X_in, y_in, sample_weight=w_in)
    np.testing.assert_array_equal(X_in, X)
    np.testing.assert_array_equal(y_in, Y_CLASS)


def test_assigned_coefs_are_never_modified_by_training():
    model = fitted_clf()
    mine = [c.copy() for c in model.coefs_]
    model.coefs_ = mine
    saved = [c.copy() for c in mine]
    model.set_params(warm_start=True, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y_CLASS)
    for got, want in zip(mine, saved, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(model.coefs_[0], saved[0])  # training went on from them
