"""The estimators' API beyond a single fit: partial_fit, sample weights, pickling and copies,
dtypes, assigned weights, probabilities, hidden methods, accuracy on digits, untouched inputs,
and the conversions to and from scikit-learn."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import neural_network
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split

import fastmlp
from fastmlp._sklearn_interop import from_sklearn

_rng = np.random.RandomState(0)
X = _rng.randn(30, 4)
_lin = X @ _rng.randn(4, 3)
Y_CLASSES = _lin.argmax(axis=1)
Y_MULTILABEL = (_lin > 0).astype(int)
Y_STRINGS = np.array(["ant", "bee", "cat"])[Y_CLASSES]
Y_REG = _lin[:, 0]
Y_REG2 = _lin[:, :2]
SMALL = dict(hidden_layer_sizes=(5, 3), random_state=0, batch_size=8, learning_rate_init=0.01)
# (estimator class, y, extra parameters) of each kind of task
TASKS = {
    "binary": (fastmlp.MLPClassifier, (Y_CLASSES == 1).astype(int), {}),
    "multiclass": (fastmlp.MLPClassifier, Y_CLASSES, {}),
    "multilabel": (fastmlp.MLPClassifier, Y_MULTILABEL, {}),
    "strings": (fastmlp.MLPClassifier, Y_STRINGS, {}),
    "regression": (fastmlp.MLPRegressor, Y_REG, {}),
    "multioutput": (fastmlp.MLPRegressor, Y_REG2, {}),
    "poisson": (fastmlp.MLPRegressor, np.abs(Y_REG), {"loss": "poisson"}),
}


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    # Small max_iter on purpose throughout: the warning says so; tests that check warnings
    # record them explicitly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def make(task, **params):
    cls, y, extra = TASKS[task]
    return cls(**{**SMALL, **extra, **params}), y


def partial_fit(est, X, y, **kwargs):
    """est.partial_fit, passing a classifier all the classes of the task whose y this is."""
    if isinstance(est, (fastmlp.MLPClassifier, neural_network.MLPClassifier)):
        if np.ndim(y) == 2:  # multilabel: the columns
            classes = np.arange(np.shape(y)[1])
        else:
            classes = np.unique(Y_STRINGS if np.asarray(y).dtype.kind == "U" else Y_CLASSES)
            classes = classes[:2] if set(np.unique(y)) <= {0, 1} and len(classes) == 3 else classes
        kwargs.setdefault("classes", classes)
    return est.partial_fit(X, y, **kwargs)


def sklearn_params(est):
    """est's parameters without those that scikit-learn's MLP does not take (at their
    defaults, which change nothing)."""
    params = est.get_params()
    if isinstance(est, (fastmlp.MLPClassifier, fastmlp.MLPRegressor)):
        assert params.pop("device") == "cpu"
        assert params.pop("leaky_relu_slope", 0.01) == 0.01
        assert params.pop("class_weight", None) is None
        assert params.pop("compute_dtype", None) is None
    return params


def weights(est):
    return [*est.coefs_, *est.intercepts_]


def assert_same_weights(a, b):
    for p, q in zip(weights(a), weights(b), strict=True):
        assert_array_equal(p, q)


# --- partial_fit ------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("task", list(TASKS))
def test_partial_fit_epochs_equal_fit_epochs(task, solver):
    # scikit-learn's guarantee: without shuffling, k calls to partial_fit train the same k epochs
    # as fit(max_iter=k) (with shuffling they differ: each call restarts random_state's stream).
    # n_iter_ counts the epochs of the last call, t_ and loss_curve_ all of them.
    fitted, y = make(task, solver=solver, shuffle=False, max_iter=4, n_iter_no_change=10)
    fitted.fit(X, y)
    incremental = make(task, solver=solver, shuffle=False)[0]
    for _ in range(4):
        partial_fit(incremental, X, y)
    assert_same_weights(incremental, fitted)
    assert incremental.loss_curve_ == fitted.loss_curve_
    assert (incremental.n_iter_, fitted.n_iter_) == (1, 4)
    assert incremental.t_ == fitted.t_ == 4 * X.shape[0]


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_partial_fit_sequence_matches_sklearn(task, solver):
    # With shuffling, over batches of different data, and with a subset of the classes first.
    ours, y = make(task, solver=solver)
    theirs = (
        neural_network.MLPClassifier if task != "regression" else neural_network.MLPRegressor
    )(**sklearn_params(ours))
    for est in (ours, theirs):
        for part in (slice(0, 12), slice(12, 30), slice(None)):
            partial_fit(est, X[part], y[part])
    for p, q in zip(weights(ours), weights(theirs), strict=True):
        assert_allclose(p, q, rtol=1e-9, atol=1e-12)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


def test_partial_fit_classes_errors():
    clf = fastmlp.MLPClassifier(solver="sgd")
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, Y_CLASSES)
    clf.partial_fit(X[Y_CLASSES < 2], Y_CLASSES[Y_CLASSES < 2], classes=[0, 1, 2])
    assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict_proba(X).shape == (30, 3)
    clf.partial_fit(X, Y_CLASSES)  # later calls need no classes
    clf.partial_fit(X, Y_CLASSES, classes=[2, 1, 0])  # the same classes, in any order
    with pytest.raises(ValueError, match="is not the same as on last call to partial_fit"):
        clf.partial_fit(X, Y_CLASSES, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        clf.partial_fit(X, Y_CLASSES + 1)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        fastmlp.MLPClassifier(early_stopping=True).partial_fit(X, Y_CLASSES, classes=[0, 1, 2])
    multilabel = fastmlp.MLPClassifier().partial_fit(X, Y_MULTILABEL, classes=[0, 1, 2])
    assert multilabel.predict(X).shape == Y_MULTILABEL.shape


@pytest.mark.parametrize("cls", [fastmlp.MLPClassifier, fastmlp.MLPRegressor])
def test_partial_fit_hidden_for_lbfgs(cls):
    est = cls(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as excinfo:
        est.partial_fit(X, Y_CLASSES)
    assert "partial_fit is only available for stochastic" in str(excinfo.value.__cause__)
    for solver in ("sgd", "adam"):
        assert hasattr(cls(solver=solver), "partial_fit")
    est.set_params(solver="adam")
    assert hasattr(est, "partial_fit")


# --- early stopping across calls --------------------------------------------------------------


def test_warm_start_early_stopping_keeps_the_best_weights():
    # The second fit does not beat the first one's best validation score (checked), so the
    # weights that scored it stay. (scikit-learn trains its restored best weights in place and
    # returns the last epoch's weights instead.)
    est = fastmlp.MLPClassifier(
        hidden_layer_sizes=(5,),
        solver="sgd",
        learning_rate_init=0.3,
        early_stopping=True,
        validation_fraction=0.3,
        n_iter_no_change=2,
        max_iter=30,
        random_state=0,
        warm_start=True,
    )
    est.fit(X, Y_CLASSES)
    best = copy.deepcopy(weights(est))
    best_score, n_scores = est.best_validation_score_, len(est.validation_scores_)
    est.set_params(max_iter=5).fit(X, Y_CLASSES)
    assert len(est.validation_scores_) > n_scores
    assert est.best_validation_score_ == best_score
    for p, q in zip(weights(est), best, strict=True):
        assert_array_equal(p, q)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_early_stopping_switched_between_calls(solver):
    # scikit-learn fails with a TypeError or an AttributeError here: its stopping record is
    # made for one setting of early_stopping only.
    est, y = make("regression", solver=solver, max_iter=3, early_stopping=True)
    est.fit(X, y)
    est.set_params(early_stopping=False)
    partial_fit(est, X, y)
    assert est.best_loss_ == est.loss_curve_[-1]
    est.set_params(warm_start=True, max_iter=2).fit(X, y)
    est.set_params(early_stopping=True, max_iter=2).fit(X, y)
    assert len(est.validation_scores_) == 3 + 2 and len(est.loss_curve_) == 3 + 1 + 2 + 2


# --- sample weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("task", list(TASKS))
def test_integer_sample_weight_equals_repeated_rows(task, solver):
    # One batch holding all the data (batch_size='auto': 200 >= both sizes), no shuffling: the
    # weighted and the repeated data have the same loss and gradient at every step, up to the
    # rounding of sums taken in another order.
    counts = np.random.RandomState(1).randint(0, 4, size=X.shape[0])
    weighted, y = make(task, solver=solver, batch_size="auto", shuffle=False, max_iter=15)
    repeated = clone(weighted)
    weighted.fit(X, y, sample_weight=counts)
    repeated.fit(np.repeat(X, counts, axis=0), np.repeat(y, counts, axis=0))
    # L-BFGS's line searches amplify that rounding: there, the suite's parity tolerance.
    rtol = 1e-6 if solver == "lbfgs" else 1e-10
    assert weighted.n_iter_ == repeated.n_iter_
    for p, q in zip(weights(weighted), weights(repeated), strict=True):
        assert_allclose(p, q, rtol=rtol, atol=1e-12)
    assert_allclose(weighted.loss_, repeated.loss_, rtol=rtol)


# --- pickling and copies ----------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("task", ["multiclass", "multilabel", "strings", "multioutput"])
def test_pickle_round_trip_continues_training_exactly(task, solver, tmp_path):
    est, y = make(task, solver=solver, max_iter=3)
    est.fit(X, y)
    copies = [pickle.loads(pickle.dumps(est)), copy.deepcopy(est)]
    joblib.dump(est, tmp_path / "est.joblib")
    copies.append(joblib.load(tmp_path / "est.joblib", mmap_mode="r"))  # read-only arrays
    for other in copies:
        assert_same_weights(other, est)
        assert_array_equal(other.predict(X), est.predict(X))
    if solver == "lbfgs":
        est.set_params(warm_start=True, max_iter=2)
        for other in copies:
            other.set_params(warm_start=True, max_iter=2)
        continue_training = lambda e: e.fit(X, y)  # noqa: E731
    else:
        continue_training = lambda e: partial_fit(e, X, y)  # noqa: E731
    original = copy.deepcopy(est)
    continue_training(est)
    continue_training(est)
    for other in copies:
        continue_training(other)
        continue_training(other)
        assert_same_weights(other, est)
        if solver != "lbfgs":
            assert other.loss_curve_ == est.loss_curve_
            assert other._optimizer.learning_rate == est._optimizer.learning_rate
            for name in ("velocities", "ms", "vs"):
                for p, q in zip(
                    getattr(other._optimizer, name, []),
                    getattr(est._optimizer, name, []),
                    strict=True,
                ):
                    assert_array_equal(p, q)
    # Training the copies left the original, which they were copied from, untouched.
    deep = copy.deepcopy(original)
    continue_training(deep)
    assert any(np.any(p != q) for p, q in zip(weights(deep), weights(original), strict=True))


def test_clone_and_unfitted_copies():
    est, y = make("multiclass", solver="sgd", alpha=0.01)
    est.fit(X, y)
    fresh = clone(est)
    assert fresh.get_params() == est.get_params()
    assert not hasattr(fresh, "coefs_")
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    assert_same_weights(fresh.fit(X, y), est)  # same random_state: the same model
    unfitted = pickle.loads(pickle.dumps(clone(est)))
    assert unfitted.get_params() == est.get_params()


# --- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_end_to_end(task, solver, dtype):
    # scikit-learn's L-BFGS returns float64 weights for float32 input; fastmlp stays float32.
    est, y = make(task, solver=solver, max_iter=5)
    est.fit(X.astype(dtype), y)
    assert all(p.dtype == dtype for p in weights(est))
    if solver != "lbfgs":
        assert all(m.dtype == dtype for m in _moments(est._optimizer))
    if isinstance(est, fastmlp.MLPClassifier):
        proba = est.predict_proba(X.astype(dtype))
        assert proba.dtype == dtype
        if task != "multilabel":
            assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        assert est.predict(X.astype(dtype)).dtype == np.asarray(y).dtype
    else:
        assert est.predict(X.astype(dtype)).dtype == dtype
    assert np.isfinite(est.loss_)


def _moments(optimizer):
    return [m for name in ("velocities", "ms", "vs") for m in getattr(optimizer, name, [])]


def test_float32_and_float64_models_agree():
    single, y = make("multiclass", solver="adam", max_iter=10)
    double = clone(single)
    single.fit(X.astype(np.float32), y)
    double.fit(X, y)
    for p, q in zip(weights(single), weights(double), strict=True):
        assert_allclose(p, q, rtol=1e-4, atol=1e-5)


# --- assigned weights -------------------------------------------------------------------------


def _forward(coefs, intercepts, X, hidden):
    h = X
    for i, (c, b) in enumerate(zip(coefs, intercepts, strict=True)):
        h = h @ c + b
        if i < len(coefs) - 1:
            h = hidden(h)
    return h


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_assigned_coefs_set_the_weights_and_are_not_modified(solver):
    est, y = make("regression", solver=solver, activation="tanh", max_iter=3)
    est.fit(X, y)
    rng = np.random.RandomState(5)
    coefs = [rng.uniform(-1, 1, c.shape) for c in est.coefs_]
    intercepts = [rng.uniform(-1, 1, b.shape) for b in est.intercepts_]
    saved = copy.deepcopy((coefs, intercepts))
    est.coefs_, est.intercepts_ = coefs, intercepts
    # Predictions follow the assigned weights.
    assert_allclose(est.predict(X), _forward(coefs, intercepts, X, np.tanh)[:, 0], rtol=1e-12)
    # warm_start fit continues from them: the same as scikit-learn given the same weights...
    est.set_params(warm_start=True, shuffle=False)
    theirs = neural_network.MLPRegressor(**sklearn_params(est))
    theirs.fit(X, y)
    theirs.coefs_, theirs.intercepts_ = copy.deepcopy((coefs, intercepts))
    est.fit(X, y)
    theirs.fit(X, y)
    for p, q in zip(weights(est), weights(theirs), strict=True):
        assert_allclose(p, q, rtol=1e-6, atol=1e-12)
    # ... and the arrays the user assigned are not modified in place.
    for p, q in zip(coefs + intercepts, saved[0] + saved[1], strict=True):
        assert_array_equal(p, q)
    assert all(p is not q for p, q in zip(est.coefs_, coefs, strict=True))
    if solver != "lbfgs":  # nor by partial_fit
        est.coefs_ = coefs
        est.partial_fit(X, y)
        assert_array_equal(coefs[0], saved[0][0])
        assert np.any(est.coefs_[0] != coefs[0])


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("coefs_", lambda c: c[:2], r"coefs_ holds 2 arrays, expected a list of 3"),
        (
            "coefs_",
            lambda c: [c[0].T, *c[1:]],
            r"coefs_\[0\] has shape \(5, 4\), expected \(4, 5\)",
        ),
        ("coefs_", lambda c: [c[0], c[1].astype(str), c[2]], r"coefs_\[1\] has dtype <U"),
        ("coefs_", lambda c: [c[0], c[1], c[2] * np.nan], r"coefs_\[2\] contains NaN"),
        ("intercepts_", lambda b: [b[0], b[1][:2], b[2]], r"intercepts_\[1\] has shape \(2,\)"),
    ],
)
def test_assigned_weights_that_do_not_fit_raise(name, value, message):
    est, y = make("regression", max_iter=2, warm_start=True)
    est.fit(X, y)
    setattr(est, name, value(getattr(est, name)))
    for method in (est.predict, lambda X: est.fit(X, y)):
        with pytest.raises(ValueError, match=message):
            method(X)


# --- probabilities, accuracy, inputs ----------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "strings"])
def test_predict_log_proba(task):
    est, y = make(task, max_iter=20)
    est.fit(X, y)
    proba = est.predict_proba(X)
    assert_allclose(est.predict_log_proba(X), np.log(proba), rtol=1e-12)
    assert proba.shape == (X.shape[0], 2 if task == "binary" else 3)
    if task != "multilabel":
        assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])


def test_digits_accuracy_with_default_parameters():
    # Unscaled digits (pixel values 0..16), scikit-learn's default parameters; random_state is
    # fixed so that the test is reproducible (seeds 0..29 all give 0.958 to 0.98).
    X_digits, y_digits = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X_digits, y_digits, random_state=0)
    clf = fastmlp.MLPClassifier(random_state=0)
    assert {k: v for k, v in clf.get_params().items() if k != "random_state"} == {
        k: v for k, v in fastmlp.MLPClassifier().get_params().items() if k != "random_state"
    }
    clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("task", list(TASKS))
def test_inputs_are_not_modified(task, solver):
    est, y = make(
        task, solver=solver, max_iter=3, early_stopping=solver != "lbfgs", validation_fraction=0.3
    )
    inputs = [X.copy(), np.array(y, copy=True), _rng.uniform(0.5, 2, X.shape[0])]
    for X_in in (inputs[0], inputs[0].astype(np.float32), np.asfortranarray(inputs[0])):
        X_in.flags.writeable = True
        saved = copy.deepcopy([X_in, *inputs[1:]])
        est.fit(X_in, inputs[1], sample_weight=inputs[2])
        est.predict(X_in)
        if solver != "lbfgs":
            est.set_params(early_stopping=False)
            partial_fit(est, X_in, inputs[1], sample_weight=inputs[2])
            est.set_params(early_stopping=True)
        for before, after in zip(saved, [X_in, *inputs[1:]], strict=True):
            assert_array_equal(before, after)
            assert before.dtype == after.dtype


# --- conversions to and from scikit-learn -----------------------------------------------------


def _assert_same_state(a, b):
    """Same parameters and fitted attributes; the optimizer's fields compared one by one."""
    assert sklearn_params(a) == sklearn_params(b)
    fitted = {k for k in vars(a) if k.endswith("_") or k.startswith("_")} - {"_optimizer"}
    fitted -= {"_coef_indptr", "_intercept_indptr"}
    assert fitted == {k for k in vars(b) if k.endswith("_") or k.startswith("_")} - {
        "_optimizer",
        "_coef_indptr",
        "_intercept_indptr",
    }
    for name in fitted:
        va, vb = getattr(a, name), getattr(b, name)
        if name == "_label_binarizer":
            assert_array_equal(va.classes_, vb.classes_)
            assert (va.y_type_, va.sparse_input_) == (vb.y_type_, vb.sparse_input_)
        elif name == "_random_state":
            assert_array_equal(va.get_state()[1], vb.get_state()[1])
        elif isinstance(va, list) and va and isinstance(va[0], np.ndarray):
            for p, q in zip(va, vb, strict=True):
                assert_array_equal(p, q)
                assert p is not q
        else:
            assert_array_equal(va, vb, err_msg=name)
    if hasattr(a, "_optimizer"):
        fields_a, fields_b = vars(a._optimizer), vars(b._optimizer)
        assert fields_a.keys() == fields_b.keys()
        for key in fields_a:
            assert_array_equal(
                np.asarray(fields_a[key], dtype=object).shape,
                np.asarray(fields_b[key], dtype=object).shape,
            )
            if isinstance(fields_a[key], list):
                for p, q in zip(fields_a[key], fields_b[key], strict=True):
                    assert_array_equal(p, q)
                    assert p is not q
            else:
                assert fields_a[key] == fields_b[key]


# early_stopping applies to the stochastic solvers only
@pytest.mark.parametrize(
    "solver,early_stopping",
    [("sgd", False), ("adam", False), ("lbfgs", False), ("sgd", True), ("adam", True)],
)
@pytest.mark.parametrize("task", list(TASKS))
def test_to_sklearn_and_back(task, solver, early_stopping):
    est, y = make(
        task, solver=solver, max_iter=4, early_stopping=early_stopping, validation_fraction=0.3
    )
    est.fit(X, y)
    theirs = est.to_sklearn()
    assert type(theirs) is getattr(neural_network, type(est).__name__)
    _assert_same_state(est, theirs)
    if hasattr(theirs, "_optimizer"):
        module = "sklearn.neural_network._stochastic_optimizers"
        assert type(theirs._optimizer).__module__ == module
    # The same weights: the predictions differ by the rounding of two implementations at most.
    if hasattr(est, "predict_proba"):
        assert_array_equal(theirs.predict(X), est.predict(X))
        assert_allclose(theirs.predict_proba(X), est.predict_proba(X), rtol=1e-12, atol=1e-15)
    else:
        assert_allclose(theirs.predict(X), est.predict(X), rtol=1e-12, atol=1e-15)
    back = from_sklearn(theirs)
    assert type(back) is type(est)
    _assert_same_state(back, est)
    if solver == "lbfgs":
        return
    # Both sides continue training the same way: with partial_fit, or, where early stopping
    # is on (which partial_fit refuses), with a warm-started fit.
    for e in (est, theirs, back):
        if early_stopping:
            e.set_params(warm_start=True, max_iter=3, n_iter_no_change=1).fit(X, y)
        else:
            for _ in range(3):
                partial_fit(e, X, y)
    if early_stopping:
        assert len(est.validation_scores_) > 4
        assert_allclose(est.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    for other in (theirs, back):
        for p, q in zip(weights(est), weights(other), strict=True):
            assert_allclose(p, q, rtol=1e-9, atol=1e-12)
    assert_same_weights(back, est)


def test_from_sklearn_fitted_by_sklearn_continues_like_sklearn():
    theirs = neural_network.MLPClassifier(
        **SMALL, solver="sgd", learning_rate="invscaling", max_iter=5
    ).fit(X, Y_STRINGS)
    ours = from_sklearn(theirs)
    assert isinstance(ours._optimizer, fastmlp._optimizers.SGDState)
    assert_array_equal(ours.predict(X), theirs.predict(X))
    for e in (ours, theirs):
        e.set_params(warm_start=True, max_iter=3)
        e.fit(X, Y_STRINGS)
        e.partial_fit(X, Y_STRINGS)
    for p, q in zip(weights(ours), weights(theirs), strict=True):
        assert_allclose(p, q, rtol=1e-9, atol=1e-12)
    assert ours.t_ == theirs.t_ and ours.loss_curve_ == pytest.approx(theirs.loss_curve_)


def test_conversions_of_unfitted_estimators_and_errors():
    est = fastmlp.MLPRegressor(loss="poisson", hidden_layer_sizes=(7,), alpha=0.5)
    theirs = est.to_sklearn()
    assert isinstance(theirs, neural_network.MLPRegressor)
    assert theirs.get_params() == sklearn_params(est)
    assert not hasattr(theirs, "coefs_")
    assert from_sklearn(theirs).get_params() == est.get_params()
    with pytest.raises(TypeError, match="expected one of MLPClassifier, MLPRegressor"):
        from_sklearn(est)
    with pytest.raises(TypeError, match="expected one of"):
        from_sklearn(neural_network.BernoulliRBM())


@pytest.mark.parametrize(
    "labels",
    [
        np.array([3, 7, 7, 3, 7]),
        np.array([2, 0, 1, 2, 2, 1]),
        np.array(["b", "a", "c", "a"]),
        np.array(["yes", "no", "no"], dtype=object),
        np.array([1.0, 2.0, 1.0, 3.0]),
        np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]]),
    ],
    ids=["binary", "multiclass", "strings", "objects", "floats", "multilabel"],
)
def test_fast_binarize_equals_label_binarizer(labels):
    from sklearn.preprocessing import LabelBinarizer

    from fastmlp._classifier import _binarize

    binarizer = LabelBinarizer().fit(labels)
    got = _binarize(binarizer, labels)
    np.testing.assert_array_equal(got, binarizer.transform(labels).astype(bool))
    assert got.dtype == bool
