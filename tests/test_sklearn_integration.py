"""fastmlp's estimators inside scikit-learn's machinery: Pipeline, clone, cross_val_score,
cross_validate and GridSearchCV, sequential and with two worker processes.

Everything is seeded, so each result must equal the one computed by hand, and a parallel run
must equal the sequential run exactly: same random_state, same scores, same weights.

Threads in the workers. joblib's default backend, loky, starts worker processes and sets
OMP_NUM_THREADS (and the BLAS variables) in their environment to ``cpu_count() // n_jobs``
(1 with n_jobs=2 on this 2-core machine), unless the parent process has the variable set, in
which case the workers inherit the parent's value: ``OMP_NUM_THREADS=2`` with two workers
would run 4 threads on 2 cores. fastmlp's core asks OpenMP for its thread count at each call,
so it follows the variable; ``joblib.parallel_config(backend="loky",
inner_max_num_threads=1)`` pins the workers to one thread whatever the parent's environment.
The tests check the thread count from inside the workers, with a scorer that reports
``fastmlp.build_info()["max_threads"]`` and threadpoolctl's view of the OpenMP runtimes.
"""

import os

import joblib
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info

import fastmlp

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

_X_CLF, _Y_CLF = make_classification(
    n_samples=240, n_features=8, n_informative=5, n_classes=3, random_state=0
)
_X_CLF = _X_CLF * 20 + 5  # not standardised: the pipeline's scaler has work to do
_X_REG, _Y_REG = make_regression(n_samples=240, n_features=8, noise=1.0, random_state=0)
_Y_REG = _Y_REG / _Y_REG.std()

SMALL = {"hidden_layer_sizes": (12,), "max_iter": 60, "learning_rate_init": 0.01}
GRID = {"mlp__alpha": [1e-4, 1e-1], "mlp__hidden_layer_sizes": [(6,), (12,)]}


def _task(name, dtype=np.float64):
    """(estimator, X, y, cv) for 'classifier' or 'regressor'."""
    if name == "classifier":
        est = fastmlp.MLPClassifier(random_state=0, **SMALL)
        return est, _X_CLF.astype(dtype), _Y_CLF, StratifiedKFold(3)
    est = fastmlp.MLPRegressor(random_state=0, **SMALL)
    return est, _X_REG.astype(dtype), _Y_REG, KFold(3)


def _pipeline(est):
    return Pipeline([("scale", StandardScaler()), ("mlp", est)])


def _assert_same_weights(a, b):
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert x.dtype == y.dtype
        assert_array_equal(x, y)


# --- Pipeline ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_pipeline_equals_the_steps_run_by_hand(task):
    est, X, y, _ = _task(task)
    pipe = _pipeline(clone(est)).fit(X, y)

    Xs = StandardScaler().fit_transform(X)
    by_hand = clone(est).fit(Xs, y)
    _assert_same_weights(pipe.named_steps["mlp"], by_hand)
    assert_array_equal(pipe.predict(X), by_hand.predict(Xs))
    assert pipe.score(X, y) == by_hand.score(Xs, y)
    if task == "classifier":
        assert_array_equal(pipe.predict_proba(X), by_hand.predict_proba(Xs))
        assert_array_equal(pipe.classes_, by_hand.classes_)


def test_pipeline_parameters_reach_the_estimator():
    pipe = make_pipeline(StandardScaler(), fastmlp.MLPClassifier(random_state=0, **SMALL))
    params = pipe.get_params()
    assert params["mlpclassifier__hidden_layer_sizes"] == (12,)
    pipe.set_params(mlpclassifier__alpha=0.5, mlpclassifier__hidden_layer_sizes=(5, 4))
    pipe.fit(_X_CLF, _Y_CLF)
    mlp = pipe[-1]
    assert mlp.alpha == 0.5
    assert [c.shape for c in mlp.coefs_] == [(8, 5), (5, 4), (4, 3)]


def test_pipeline_keeps_float32():
    est, X, y, _ = _task("classifier", np.float32)
    pipe = _pipeline(est).fit(X, y)
    assert pipe.named_steps["mlp"].coefs_[0].dtype == np.float32
    assert pipe.predict_proba(X).dtype == np.float32


# --- clone ---------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_clone_gives_an_unfitted_twin_that_refits_identically(task):
    est, X, y, _ = _task(task)
    est.fit(X, y)
    twin = clone(est)
    assert type(twin) is type(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "coefs_")
    with pytest.raises(NotFittedError):
        twin.predict(X)
    twin.fit(X, y)
    _assert_same_weights(twin, est)
    twin.coefs_[0][0, 0] += 1.0  # no array shared with the original
    assert twin.coefs_[0][0, 0] != est.coefs_[0][0, 0]


def test_clone_of_a_pipeline_is_unfitted_and_independent():
    est, X, y, _ = _task("classifier")
    pipe = _pipeline(est).fit(X, y)
    twin = clone(pipe)
    assert twin.named_steps["mlp"] is not pipe.named_steps["mlp"]
    assert not hasattr(twin.named_steps["mlp"], "coefs_")
    assert_array_equal(twin.fit(X, y).predict_proba(X), pipe.predict_proba(X))


# --- cross-validation and grid search, sequential ----------------------------------------


@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_cross_val_score_equals_a_loop_by_hand(task):
    est, X, y, cv = _task(task)
    scores = cross_val_score(_pipeline(est), X, y, cv=cv)
    by_hand = [
        _pipeline(clone(est)).fit(X[train], y[train]).score(X[test], y[test])
        for train, test in cv.split(X, y)
    ]
    assert_array_equal(scores, by_hand)
    assert np.mean(scores) > (0.6 if task == "classifier" else 0.8)


def test_grid_search_equals_cross_val_score_per_candidate():
    est, X, y, cv = _task("classifier")
    search = GridSearchCV(_pipeline(est), GRID, cv=cv).fit(X, y)
    results = search.cv_results_
    for i, params in enumerate(results["params"]):
        scores = cross_val_score(_pipeline(clone(est)).set_params(**params), X, y, cv=cv)
        assert results["mean_test_score"][i] == np.mean(scores)
    best = _pipeline(clone(est)).set_params(**search.best_params_).fit(X, y)
    assert_array_equal(search.predict_proba(X), best.predict_proba(X))


def test_grid_search_on_the_regressor():
    est, X, y, cv = _task("regressor")
    search = GridSearchCV(_pipeline(est), GRID, cv=cv, scoring="neg_mean_squared_error")
    search.fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.named_steps["mlp"].n_features_in_ == X.shape[1]


# --- two worker processes ----------------------------------------------------------------


def _worker_threads(estimator, X, y):
    """A scorer: the thread count fastmlp's core would use, asked inside the worker."""
    return fastmlp.build_info()["max_threads"]


def _worker_openmp_threads(estimator, X, y):
    """A scorer: the most threads any OpenMP runtime loaded in the worker would use."""
    return max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp")


def _worker_pid(estimator, X, y):
    return os.getpid()


_THREAD_SCORERS = {
    "score": "accuracy",
    "threads": _worker_threads,
    "openmp": _worker_openmp_threads,
    "pid": _worker_pid,
}


def _search_threads(**parallel):
    est, X, y, cv = _task("classifier")
    search = GridSearchCV(
        _pipeline(est), GRID, cv=cv, scoring=_THREAD_SCORERS, refit="score", n_jobs=2
    )
    with joblib.parallel_config(**parallel):
        search.fit(X, y)
    results = search.cv_results_
    split_values = {
        name: {results[f"split{k}_test_{name}"][i] for k in range(3) for i in range(4)}
        for name in ("threads", "openmp", "pid")
    }
    assert os.getpid() not in split_values["pid"], "the scorers ran in the parent process"
    return split_values


@pytest.mark.parametrize("parent_omp_num_threads", [None, "2"])
def test_workers_run_fastmlp_on_one_thread(parent_omp_num_threads, monkeypatch):
    # The recommended setting: one thread per worker whatever the parent's environment.
    if parent_omp_num_threads is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", parent_omp_num_threads)
    values = _search_threads(backend="loky", inner_max_num_threads=1)
    assert values["threads"] == {1}
    assert values["openmp"] == {1}


def test_workers_default_to_their_share_of_the_cores(monkeypatch):
    # Without configuration, loky gives each of the 2 workers cpu_count() // 2 threads: 1 on a
    # 2-core machine, and never more threads in all than cores.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    values = _search_threads()
    share = max(joblib.cpu_count() // 2, 1)
    assert values["threads"] == {share}
    assert values["openmp"] == {share}
    if joblib.cpu_count() <= 3:
        assert values["threads"] == {1}


@pytest.fixture
def one_thread_workers():
    with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
        yield


@pytest.mark.usefixtures("one_thread_workers")
def test_parallel_grid_search_equals_sequential():
    est, X, y, cv = _task("classifier")
    sequential = GridSearchCV(_pipeline(est), GRID, cv=cv).fit(X, y)
    parallel = GridSearchCV(_pipeline(est), GRID, cv=cv, n_jobs=2).fit(X, y)
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        assert_array_equal(parallel.cv_results_[key], sequential.cv_results_[key])
    for k in range(3):
        key = f"split{k}_test_score"
        assert_array_equal(parallel.cv_results_[key], sequential.cv_results_[key])
    assert parallel.best_params_ == sequential.best_params_
    _assert_same_weights(
        parallel.best_estimator_.named_steps["mlp"], sequential.best_estimator_.named_steps["mlp"]
    )


@pytest.mark.usefixtures("one_thread_workers")
@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_parallel_cross_val_score_equals_sequential(task):
    est, X, y, cv = _task(task)
    sequential = cross_val_score(_pipeline(est), X, y, cv=cv)
    parallel = cross_val_score(_pipeline(est), X, y, cv=cv, n_jobs=2)
    assert_array_equal(parallel, sequential)


@pytest.mark.usefixtures("one_thread_workers")
@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_estimators_fitted_in_workers_equal_sequential_ones(task):
    # The fitted estimators come back from the workers pickled: same weights, same predictions.
    est, X, y, cv = _task(task)
    sequential = cross_validate(est, X, y, cv=cv, return_estimator=True)
    parallel = cross_validate(est, X, y, cv=cv, return_estimator=True, n_jobs=2)
    assert_array_equal(parallel["test_score"], sequential["test_score"])
    for a, b in zip(parallel["estimator"], sequential["estimator"], strict=True):
        _assert_same_weights(a, b)
        assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.usefixtures("one_thread_workers")
def test_float32_estimators_fitted_in_workers_predict():
    est, X, y, cv = _task("classifier", np.float32)
    parallel = cross_validate(est, X, y, cv=cv, return_estimator=True, n_jobs=2)
    sequential = cross_validate(est, X, y, cv=cv, return_estimator=True)
    assert_array_equal(parallel["test_score"], sequential["test_score"])
    for a, b in zip(parallel["estimator"], sequential["estimator"], strict=True):
        _assert_same_weights(a, b)
        assert_array_equal(a.predict_proba(X), b.predict_proba(X))
