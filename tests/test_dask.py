"""Out-of-core training with dask-ml's Incremental wrapper on a dask.distributed cluster.

``dask_ml.wrappers.Incremental(estimator).fit(X, y)`` calls ``estimator.partial_fit`` once per
block of the dask arrays, one block after another, on the cluster's worker; ``predict`` maps
the fitted estimator over the blocks. So the model must equal the one that ``partial_fit``
gives when called on the same blocks in the same order by hand, and the predictions must equal
fastmlp's own.

The cluster is a real ``dask.distributed`` LocalCluster with one worker of one thread, in
this process (``processes=False``): it starts in well under a second, where a worker process
would first import NumPy, scikit-learn and fastmlp, and it still goes through distributed's
scheduler and serialises the estimator and the data as a remote worker would.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import accuracy_score, mean_squared_error

import fastmlp

pytestmark = pytest.mark.integration

da = pytest.importorskip("dask.array", reason="needs dask: pip install 'fastmlp[dask]'")
distributed = pytest.importorskip(
    "distributed", reason="needs dask.distributed: pip install 'fastmlp[dask]'"
)
dask_ml_wrappers = pytest.importorskip(
    "dask_ml.wrappers", reason="needs dask-ml: pip install 'fastmlp[dask]'"
)

N_SAMPLES, N_FEATURES, CHUNK = 610, 8, 130  # blocks of 130, 130, 130, 130 and 90 rows


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _data(task, dtype=np.float64):
    if task == "classifier":
        X, y = make_classification(
            n_samples=N_SAMPLES,
            n_features=N_FEATURES,
            n_informative=5,
            n_classes=3,
            random_state=0,
        )
        est = fastmlp.MLPClassifier((16,), learning_rate_init=0.01, random_state=0)
        return est, X.astype(dtype), y, "accuracy", {"classes": np.unique(y)}
    X, y = make_regression(n_samples=N_SAMPLES, n_features=N_FEATURES, random_state=0)
    est = fastmlp.MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    # Not "r2": dask-ml 2025.1's dask-aware r2_score fails on dask 2026.8 arrays ("cannot
    # broadcast shape (nan,)"), whatever the estimator; its mean squared error works.
    return est, X.astype(dtype), y / y.std(), "neg_mean_squared_error", {}


def _dask(X, y):
    Xd = da.from_array(X, chunks=(CHUNK, X.shape[1]))
    yd = da.from_array(y, chunks=CHUNK)
    assert Xd.numblocks == (5, 1)
    return Xd, yd


def _by_hand(est, X, y, fit_kwargs, passes=1):
    """partial_fit on each block of CHUNK rows, in order, for `passes` passes over the data."""
    est = clone(est)
    starts = range(0, len(X), CHUNK)
    for _ in range(passes):
        for start in starts:
            block = slice(start, start + CHUNK)
            est.partial_fit(X[block], y[block], **fit_kwargs)
    return est


def _assert_same_model(a, b):
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert x.dtype == y.dtype
        assert_array_equal(x, y)
    assert (a.n_iter_, a.t_, a.loss_) == (b.n_iter_, b.t_, b.loss_)


@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_incremental_equals_partial_fit_block_by_block(task, client):
    est, X, y, scoring, fit_kwargs = _data(task)
    Xd, yd = _dask(X, y)
    inc = dask_ml_wrappers.Incremental(est, scoring=scoring, shuffle_blocks=False)

    with distributed.get_task_stream(client) as tasks:
        inc.fit(Xd, yd, **fit_kwargs)
    # Key ("fit-...", i) is partial_fit on the i-th block; ("fit-...", -1) the initial model.
    fits = [t["key"] for t in tasks.data if str(t["key"][0]).startswith("fit-")]
    assert sorted(i for _, i in fits) == [-1, 0, 1, 2, 3, 4], (
        "partial_fit per block, on the cluster"
    )
    assert not hasattr(est, "coefs_")  # Incremental trained a clone
    _assert_same_model(inc.estimator_, _by_hand(est, X, y, fit_kwargs))
    assert inc.estimator_.t_ == N_SAMPLES

    # A second pass continues from the first, as partial_fit does.
    inc.partial_fit(Xd, yd, **fit_kwargs)
    _assert_same_model(inc.estimator_, _by_hand(est, X, y, fit_kwargs, passes=2))


@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_predictions_on_dask_arrays(task, client):
    est, X, y, scoring, fit_kwargs = _data(task)
    Xd, yd = _dask(X, y)
    inc = dask_ml_wrappers.Incremental(est, scoring=scoring, shuffle_blocks=False)
    inc.fit(Xd, yd, **fit_kwargs)
    inc.partial_fit(Xd, yd, **fit_kwargs)
    reference = _by_hand(est, X, y, fit_kwargs, passes=2)

    predicted = inc.predict(Xd)
    assert isinstance(predicted, da.Array)  # lazy, block by block
    assert predicted.chunks == (Xd.chunks[0],)
    predicted = predicted.compute()
    # Block by block as dask does: the same numbers exactly. On the whole array at once, the
    # numbers may differ in the last bit (a row's position in the batch can change the order of
    # the core's sums), so labels agree and values to rounding.
    assert_array_equal(predicted, _blockwise(reference.predict, X))
    assert_allclose(predicted, reference.predict(X), rtol=1e-12, atol=1e-12)
    if task == "classifier":
        proba = inc.predict_proba(Xd)
        assert isinstance(proba, da.Array)
        assert_array_equal(proba.compute(), _blockwise(reference.predict_proba, X))
        assert inc.score(Xd, yd) == accuracy_score(y, predicted)
        assert inc.score(Xd, yd) > 0.6  # two passes over the data learn something
    else:
        assert inc.score(Xd, yd) == pytest.approx(-mean_squared_error(y, predicted), rel=1e-12)
        assert inc.score(Xd, yd) > -0.5  # targets of variance 1: R^2 above 0.5


def _blockwise(method, X):
    return np.concatenate([method(X[start : start + CHUNK]) for start in range(0, len(X), CHUNK)])


def test_shuffled_blocks_are_reproducible(client):
    est, X, y, scoring, fit_kwargs = _data("classifier")
    Xd, yd = _dask(X, y)

    def fit(**kwargs):
        inc = dask_ml_wrappers.Incremental(est, scoring=scoring, **kwargs)
        return inc.fit(Xd, yd, **fit_kwargs).estimator_

    first, second = (
        fit(shuffle_blocks=True, random_state=3),
        fit(shuffle_blocks=True, random_state=3),
    )
    _assert_same_model(first, second)
    in_order = fit(shuffle_blocks=False)
    assert not np.array_equal(first.coefs_[0], in_order.coefs_[0])  # the order did change


def test_float32_model_predicts_on_dask_arrays(client):
    est, X, y, scoring, fit_kwargs = _data("classifier", np.float32)
    Xd, yd = _dask(X, y)
    inc = dask_ml_wrappers.Incremental(est, scoring=scoring, shuffle_blocks=False)
    inc.fit(Xd, yd, **fit_kwargs)
    reference = _by_hand(est, X, y, fit_kwargs)
    _assert_same_model(inc.estimator_, reference)
    assert inc.estimator_.coefs_[0].dtype == np.float32
    assert_array_equal(inc.predict_proba(Xd).compute(), _blockwise(reference.predict_proba, X))
