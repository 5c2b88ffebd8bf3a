"""fastmlp's estimators against scikit-learn's: the same data and parameters give the same model.

Every fit runs on both libraries and compares the weights (relative error below 1e-6 in
float64), ``n_iter_``, ``t_``, the loss curve, the validation scores, the stopping state and the
ConvergenceWarnings, over activations x solvers x task kinds x alpha, (a) from the same
``random_state`` and (b) from the same weights set by hand; then sample weights, early
stopping, learning-rate schedules, momentum, ``batch_size`` clipping, ``n_iter_no_change=inf``
and verbose output. Multi-output squared error is reported differently by design (scikit-learn
issue 8349); ``test_multioutput_squared_error_loss_relation`` states the relation.
"""

import contextlib
import io
import itertools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import neural_network
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import fastmlp

RTOL = 1e-6  # float64 weights, losses and scores
MAX_ITER = 12  # epochs of sgd/adam, iterations of lbfgs: enough to move, few enough to be fast

_rng = np.random.RandomState(0)
X = _rng.randn(40, 4)
_lin = X @ _rng.randn(4, 3)
SAMPLE_WEIGHT = _rng.uniform(0.2, 3.0, size=X.shape[0])
# name: (estimator kind, y, extra parameters)
TASKS = {
    "binary": ("classifier", (_lin[:, 0] > 0).astype(int), {}),
    "multiclass": ("classifier", _lin.argmax(axis=1), {}),
    "multilabel": ("classifier", (_lin > 0).astype(int), {}),
    "strings": ("classifier", np.array(["ant", "bee", "cat"])[_lin.argmax(axis=1)], {}),
    "regression": ("regressor", _lin[:, 0], {}),
    # n_iter_no_change > MAX_ITER: the two libraries' losses differ (see module docstring), so
    # their stopping rules may differ; the weights must not.
    "multioutput": ("regressor", _lin[:, :2], {"n_iter_no_change": MAX_ITER + 1}),
    "poisson": (
        "regressor",
        _rng.poisson(np.exp(_lin[:, 0] / 3)).astype(float),
        {"loss": "poisson"},
    ),
}
ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
SOLVERS = ("lbfgs", "sgd", "adam")
ALPHAS = (0.0, 1e-3)
# Multi-output squared error with lbfgs: scikit-learn hands L-BFGS a loss value (divided by
# n_outputs) that is not the one its gradient belongs to, so the two optimizers take different
# paths by design; test_lbfgs_multioutput_reports_the_loss_it_minimises covers fastmlp's side.
GRID = [
    case
    for case in itertools.product(TASKS, ACTIVATIONS, SOLVERS, ALPHAS)
    if not (case[0] == "multioutput" and case[2] == "lbfgs")
]


def _classes(kind):
    if kind == "classifier":
        return fastmlp.MLPClassifier, neural_network.MLPClassifier
    return fastmlp.MLPRegressor, neural_network.MLPRegressor


def make_pair(task, **params):
    """(fastmlp estimator, scikit-learn estimator) with the same parameters for task."""
    kind, _, extra = TASKS[task]
    params = {
        "hidden_layer_sizes": (5, 3),
        "random_state": 1,
        "max_iter": MAX_ITER,
        "batch_size": 16,
        "learning_rate_init": 0.01,
        **extra,
        **params,
    }
    ours, theirs = _classes(kind)
    return ours(**params), theirs(**params)


def fit_pair(pair, X, y, **fit_params):
    """Fit both estimators; return the warnings each raised, as (category name, message)."""
    caught = []
    for est in pair:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            # One BLAS thread: scikit-learn's L-BFGS is as slow as fastmlp's was before it
            # limited them (see _base._fit_lbfgs), and the two then run the same arithmetic.
            with threadpool_limits(limits=1, user_api="blas"):
                est.fit(X, y, **fit_params)
        caught.append(
            [
                (w.category.__name__, str(w.message))
                for w in record
                if issubclass(w.category, (ConvergenceWarning, UserWarning))
            ]
        )
    return caught


def rel_error(ours, theirs):
    """Largest relative error of a list of arrays: max |a - b| / max |b|, layer by layer."""
    return max(
        np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)
        for a, b in zip(ours, theirs, strict=True)
    )


def assert_same_fit(ours, theirs, X, loss_factor=1.0):
    """The two fitted estimators hold the same model and training state.

    loss_factor: fastmlp's loss over scikit-learn's (n_outputs for multi-output squared error
    without L2, None where no exact relation holds).
    """
    assert len(ours.coefs_) == len(theirs.coefs_)
    assert rel_error(ours.coefs_, theirs.coefs_) < RTOL
    assert rel_error(ours.intercepts_, theirs.intercepts_) < RTOL
    for name in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    if loss_factor is not None:
        assert_allclose(ours.loss_, loss_factor * theirs.loss_, rtol=RTOL)
    if theirs.solver != "lbfgs":
        if not ours.warm_start:
            assert len(ours.loss_curve_) == ours.n_iter_
        if loss_factor is not None:
            assert_allclose(
                ours.loss_curve_, loss_factor * np.asarray(theirs.loss_curve_), rtol=RTOL
            )
        assert ours._no_improvement_count == theirs._no_improvement_count
        assert ours._optimizer.learning_rate == pytest.approx(
            theirs._optimizer.learning_rate, rel=1e-12
        )
        if theirs.validation_scores_ is None:
            assert ours.validation_scores_ is None and ours.best_validation_score_ is None
        else:
            assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=RTOL)
            assert_allclose(ours.best_validation_score_, theirs.best_validation_score_, rtol=RTOL)
        if theirs.best_loss_ is None:
            assert ours.best_loss_ is None
        elif loss_factor is not None:
            assert_allclose(ours.best_loss_, loss_factor * theirs.best_loss_, rtol=RTOL)
    if hasattr(theirs, "classes_"):
        assert_array_equal(ours.classes_, theirs.classes_)
        assert_array_equal(ours.predict(X), theirs.predict(X))
        assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=RTOL, atol=1e-12)
    else:
        assert_allclose(ours.predict(X), theirs.predict(X), rtol=RTOL, atol=1e-9)


def _loss_factor(task, alpha):
    if task != "multioutput":
        return 1.0
    # Without L2, fastmlp's loss is exactly n_outputs times scikit-learn's; with L2, only the
    # data term is (the L2 term of each minibatch is not observable from outside):
    # test_multioutput_squared_error_loss_relation checks that relation step by step.
    return TASKS[task][1].shape[1] if alpha == 0 else None


@pytest.mark.parametrize("task,activation,solver,alpha", GRID)
def test_same_fit_from_random_state(task, activation, solver, alpha):
    pair = make_pair(task, activation=activation, solver=solver, alpha=alpha)
    warned = fit_pair(pair, X, TASKS[task][1])
    assert warned[0] == warned[1]
    assert_same_fit(*pair, X, loss_factor=_loss_factor(task, alpha))


@pytest.mark.parametrize("task,activation,solver,alpha", GRID)
def test_same_fit_from_set_weights(task, activation, solver, alpha):
    y = TASKS[task][1]
    pair = make_pair(task, activation=activation, solver=solver, alpha=alpha, max_iter=1)
    fit_pair(pair, X, y)
    rng = np.random.RandomState(7)
    coefs = [rng.uniform(-0.8, 0.8, c.shape) for c in pair[0].coefs_]
    intercepts = [rng.uniform(-0.8, 0.8, b.shape) for b in pair[0].intercepts_]
    for est in pair:
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]
        est.set_params(warm_start=True, shuffle=False, max_iter=MAX_ITER)
    warned = fit_pair(pair, X, y)
    assert warned[0] == warned[1]
    assert_same_fit(*pair, X, loss_factor=_loss_factor(task, alpha))
    if solver != "lbfgs":
        assert len(pair[0].loss_curve_) == 1 + pair[0].n_iter_


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("task", list(TASKS))
def test_sample_weight(task, solver):
    pair = make_pair(task, activation="tanh", solver=solver, alpha=1e-3)
    fit_pair(pair, X, TASKS[task][1], sample_weight=SAMPLE_WEIGHT)
    assert_same_fit(*pair, X, loss_factor=None if task == "multioutput" else 1.0)
    # The weights matter: without them the model differs.
    unweighted = make_pair(task, activation="tanh", solver=solver, alpha=1e-3)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        unweighted.fit(X, TASKS[task][1])
    assert rel_error(unweighted.coefs_, pair[0].coefs_) > 1e-3


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "strings", "regression"])
def test_early_stopping(task, solver, weighted):
    params = dict(
        solver=solver,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=3,
        max_iter=60,
        learning_rate_init=0.05,
    )
    pair = make_pair(task, **params)
    warned = fit_pair(pair, X, TASKS[task][1], sample_weight=SAMPLE_WEIGHT if weighted else None)
    assert warned[0] == warned[1]
    assert_same_fit(*pair, X)
    ours = pair[0]
    assert len(ours.validation_scores_) == ours.n_iter_
    assert ours.best_validation_score_ == max(ours.validation_scores_)
    # The weights of the best epoch are restored.
    assert all(c is b for c, b in zip(ours.coefs_, ours._best_coefs, strict=True))


def test_early_stopping_restores_earlier_weights():
    # Here the best epoch is not the last, so restoring it changes the model (a precondition
    # checked below, so that this test cannot pass vacuously).
    params = dict(
        solver="sgd",
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=4,
        max_iter=60,
        learning_rate_init=0.3,
    )
    pair = make_pair("multiclass", **params)
    fit_pair(pair, X, TASKS["multiclass"][1])
    assert_same_fit(*pair, X)
    ours = pair[0]
    assert np.argmax(ours.validation_scores_) < ours.n_iter_ - 1
    last_epoch = make_pair(
        "multiclass", **{**params, "early_stopping": False, "max_iter": ours.n_iter_}
    )[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        last_epoch.fit(X, TASKS["multiclass"][1])
    assert rel_error(ours.coefs_, last_epoch.coefs_) > 1e-3


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_sgd_schedules_and_momentum(schedule, nesterov):
    pair = make_pair(
        "multiclass",
        solver="sgd",
        learning_rate=schedule,
        learning_rate_init=0.05,
        nesterovs_momentum=nesterov,
        tol=0.05,
        n_iter_no_change=1,
        max_iter=40,
    )
    warned = fit_pair(pair, X, TASKS["multiclass"][1])
    assert warned[0] == warned[1]
    assert_same_fit(*pair, X)
    rate = pair[0]._optimizer.learning_rate
    if schedule == "constant":
        assert rate == 0.05
    else:  # the schedule acted
        assert rate < 0.05 / 5


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_stopping_rule(solver):
    pair = make_pair("regression", solver=solver, tol=1e-2, n_iter_no_change=2, max_iter=200)
    warned = fit_pair(pair, X, TASKS["regression"][1])
    assert warned == [[], []]
    assert pair[0].n_iter_ < 200
    assert_same_fit(*pair, X)


def test_batch_size_larger_than_n_samples_warns_and_clips():
    pair = make_pair("multiclass", solver="sgd", batch_size=1000)
    warned = fit_pair(pair, X, TASKS["multiclass"][1])
    message = (
        "UserWarning",
        "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
    )
    assert message in warned[0]
    assert warned[0] == warned[1]
    assert_same_fit(*pair, X)
    full_batch = make_pair("multiclass", solver="sgd", batch_size=X.shape[0])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full_batch.fit(X, TASKS["multiclass"][1])
    assert rel_error(full_batch.coefs_, pair[0].coefs_) == 0


@pytest.mark.parametrize("solver", ["sgd", "adam"])  # lbfgs has no n_iter_no_change
def test_n_iter_no_change_inf_runs_max_iter(solver):
    pair = make_pair("regression", solver=solver, n_iter_no_change=np.inf, tol=10.0)
    warned = fit_pair(pair, X, TASKS["regression"][1])
    assert warned[0] == warned[1]
    assert [w[0] for w in warned[0]] == ["ConvergenceWarning"]
    assert pair[0].n_iter_ == MAX_ITER
    assert_same_fit(*pair, X)


@pytest.mark.parametrize(
    "params",
    [
        dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=1, max_iter=40),
        dict(
            solver="adam",
            early_stopping=True,
            validation_fraction=0.25,
            n_iter_no_change=2,
            max_iter=60,
        ),
        dict(solver="sgd", max_iter=3),
        dict(solver="lbfgs"),
    ],
)
def test_verbose_output_and_warnings_match(params):
    pair = make_pair("multiclass", verbose=True, **params)
    outputs, warned = [], []
    for est in pair:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            warned.append(fit_pair([est], X, TASKS["multiclass"][1])[0])
        outputs.append(buffer.getvalue())
    assert outputs[0] == outputs[1]
    assert warned[0] == warned[1]
    if params["solver"] != "lbfgs":  # scipy >= 1.15 prints nothing for L-BFGS-B
        assert outputs[0].startswith("Iteration 1, loss = ")


def test_convergence_warning_messages():
    for solver in SOLVERS:
        pair = make_pair("multiclass", solver=solver, max_iter=2)
        warned = fit_pair(pair, X, TASKS["multiclass"][1])
        assert [w[0] for w in warned[0]] == ["ConvergenceWarning"]
        assert warned[0] == warned[1]
        expected = (
            "Maximum iterations (2) reached"
            if solver != "lbfgs"
            else "Increase the number of iterations"
        )
        assert expected in warned[0][0][1]


@pytest.mark.parametrize("alpha", ALPHAS)
def test_multioutput_squared_error_loss_relation(alpha):
    """fastmlp's multi-output loss is the one whose gradient both libraries follow.

    scikit-learn reports ``data / n_outputs + l2`` where fastmlp reports ``data + l2``
    (scikit-learn issue 8349). One full-batch SGD epoch from set weights reports the loss at
    those weights, so the relation can be checked exactly; the step taken is the same.
    """
    y = TASKS["multioutput"][1]
    n, n_outputs = y.shape
    pair = make_pair("multioutput", solver="sgd", alpha=alpha, batch_size=n, shuffle=False)
    rng = np.random.RandomState(3)
    coefs = [rng.uniform(-1, 1, s) for s in [(4, 5), (5, 3), (3, n_outputs)]]
    intercepts = [rng.uniform(-1, 1, s) for s in [5, 3, n_outputs]]
    for est in pair:
        est.partial_fit(X, y)  # builds the state; then set the weights
        est.coefs_, est.intercepts_ = [c.copy() for c in coefs], [b.copy() for b in intercepts]
        est.partial_fit(X, y)
    l2 = 0.5 * alpha * sum(np.sum(c**2) for c in coefs) / n
    ours, theirs = pair[0].loss_, pair[1].loss_
    assert_allclose(ours - l2, n_outputs * (theirs - l2), rtol=1e-12)
    # Both equal a direct computation at the set weights.
    h = X
    for i, (c, b) in enumerate(zip(coefs, intercepts, strict=True)):
        h = h @ c + b
        h = np.maximum(h, 0) if i < len(coefs) - 1 else h
    data = 0.5 * np.mean((h - y) ** 2, axis=0).sum()
    assert_allclose(ours, data + l2, rtol=1e-12)
    assert_allclose(theirs, data / n_outputs + l2, rtol=1e-12)
    assert rel_error(pair[0].coefs_, pair[1].coefs_) < RTOL
    if alpha > 0:
        assert not np.isclose(ours, n_outputs * theirs, rtol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("alpha", ALPHAS)
def test_lbfgs_multioutput_reports_the_loss_it_minimises(alpha):
    y = TASKS["multioutput"][1]
    ours = make_pair("multioutput", solver="lbfgs", activation="tanh", alpha=alpha, max_iter=200)[
        0
    ]
    ours.fit(X, y)
    l2 = 0.5 * alpha * sum(np.sum(c**2) for c in ours.coefs_) / X.shape[0]
    data = 0.5 * np.mean((ours.predict(X) - y) ** 2, axis=0).sum()
    assert_allclose(ours.loss_, data + l2, rtol=1e-10)
    # ... and that loss is what L-BFGS brought down: the fit explains most of y.
    assert ours.score(X, y) > 0.95


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float32_matches_sklearn(activation, solver):
    # Both train in float32 (same dtype of weights and outputs); float32 rounding (eps 1.2e-7)
    # through 36 minibatch steps, amplified by Adam's division by sqrt(v), gives ~3e-6, hence
    # this test's 1e-4 instead of the float64 tests' 1e-6.
    pair = make_pair("multiclass", activation=activation, solver=solver)
    fit_pair(pair, X.astype(np.float32), TASKS["multiclass"][1])
    assert all(c.dtype == np.float32 for est in pair for c in est.coefs_ + est.intercepts_)
    assert rel_error(pair[0].coefs_, pair[1].coefs_) < 1e-4
    assert_allclose(pair[0].loss_curve_, pair[1].loss_curve_, rtol=1e-4)
