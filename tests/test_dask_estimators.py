"""Data-parallel training on a Dask cluster (issue #17): fastmlp.dask's DaskMLPClassifier and
DaskMLPRegressor on a real ``dask.distributed`` LocalCluster of two worker processes of one
thread each (``processes=True``: the workers are separate processes, as on a cluster, so that
a worker can be killed). One cluster serves the module (it takes a few seconds to start).

What is held:

- L-BFGS: every evaluation's loss and gradient equal the local core's on the concatenated data
  to 1e-12 relative (float64), and the model equals the local L-BFGS fit to 1e-6, whatever the
  layout (chunks of X and y that do not line up, empty partitions, unknown chunk sizes, a class
  held by one worker only, DataFrames).
- Local SGD: one worker holding one partition gives the local fit's model, bit for bit (the
  local fit with one thread, as the worker); two workers reach the local fit's held-out
  accuracy within one point on a 10-class task.
- Faults: a worker killed in the middle of an L-BFGS fit costs a rerun of the evaluation and
  the fit ends with the same model; in local SGD the fit fails naming the lost worker. Ctrl-C
  cancels the workers' tasks and returns as the local fit does.
"""

import os
import pickle
import signal
import time
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from threadpoolctl import threadpool_limits

import fastmlp

da = pytest.importorskip("dask.array", reason="needs dask: pip install 'fastmlp[dask]'")
distributed = pytest.importorskip(
    "distributed", reason="needs dask.distributed: pip install 'fastmlp[dask]'"
)
fdask = pytest.importorskip("fastmlp.dask")
from fastmlp._backend import backend_for  # noqa: E402
from fastmlp.dask import _lbfgs, _session  # noqa: E402

pytestmark = pytest.mark.integration
N_WORKERS = 2


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=N_WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _classification(n=600, n_classes=3, seed=0):
    X, y = make_classification(
        n_samples=n, n_features=6, n_informative=4, n_redundant=0, n_classes=n_classes,
        n_clusters_per_class=1, random_state=seed,
    )  # fmt: skip
    return X, y


def _same_arrays(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _assert_close_model(a, b, rtol=1e-6):
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max())


# --- L-BFGS ----------------------------------------------------------------------------------


def test_lbfgs_evaluations_are_the_local_sums(client, monkeypatch):
    X, y = _classification()
    w = np.random.RandomState(1).uniform(0.2, 3.0, len(y))
    # X, y and the weights chunked three different ways: y and w move to X's blocks.
    Xd = da.from_array(X, chunks=(170, 6))
    yd, wd = da.from_array(y, chunks=250), da.from_array(w, chunks=100)
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", alpha=1e-2, max_iter=25, random_state=0)
    evaluations = []
    original = _lbfgs.ClusterLBFGS.loss_and_gradient

    def recording(self, flat, grad):
        loss = original(self, flat, grad)
        evaluations.append((flat.copy(), loss, grad.copy()))
        return loss

    monkeypatch.setattr(_lbfgs.ClusterLBFGS, "loss_and_gradient", recording)
    est = fdask.DaskMLPClassifier(client=client, **params).fit(Xd, yd, sample_weight=wd)
    assert est._timings["groups"] == N_WORKERS and len(evaluations) > 10

    # The local core's full-batch loss and gradient on the concatenated data.
    Y = LabelBinarizer().fit_transform(y).astype(np.float64)
    shapes = [(6, 8), (8, 3)]
    coefs = [np.zeros(s) for s in shapes]
    intercepts = [np.zeros(s[1]) for s in shapes]
    trainer = backend_for("cpu").trainer(
        X, Y, w, coefs, intercepts, [], [], activation="relu", output_activation="softmax",
        loss="log_loss", alpha=1e-2, solver="lbfgs", batch_size=len(X), learning_rate=0.0,
        momentum=0.0, nesterov=False, beta_1=0.0, beta_2=0.0, epsilon=1.0, t=0,
    )  # fmt: skip
    grad = np.empty_like(evaluations[0][2])
    for flat, loss, cluster_grad in evaluations:
        local_loss = trainer.loss_and_gradient(flat, grad)
        assert abs(loss - local_loss) <= 1e-12 * abs(local_loss)
        assert_allclose(cluster_grad, grad, rtol=1e-12, atol=1e-12 * np.abs(grad).max())

    local = fastmlp.MLPClassifier(**params).fit(X, y, sample_weight=w)
    _assert_close_model(est, local)
    assert est.n_iter_ == local.n_iter_
    assert est.loss_ == pytest.approx(local.loss_, rel=1e-9)
    assert_array_equal(est.classes_, local.classes_)


def test_class_weights_count_over_every_partition(client):
    if "class_weight" not in fastmlp.MLPClassifier().get_params():
        pytest.skip("the local MLPClassifier has no class_weight")
    X, y = _classification(n=400)
    y = np.where(y == 2, 1, y)  # unbalanced: about 1/3 of class 0, 2/3 of class 1
    Xd, yd = da.from_array(X, chunks=(130, 6)), da.from_array(y, chunks=130)
    for class_weight in ("balanced", {0: 3.0}):
        params = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=20, random_state=0,
                      class_weight=class_weight)  # fmt: skip
        est = fdask.DaskMLPClassifier(client=client, **params).fit(Xd, yd)
        _assert_close_model(est, fastmlp.MLPClassifier(**params).fit(X, y))
        assert est.to_local().class_weight == class_weight


def _placed(client, blocks, workers):
    """A dask array whose i-th row block lives on workers[i] (scattered there)."""
    parts = []
    for block, worker in zip(blocks, workers, strict=True):
        future = client.scatter(block, workers=[worker])
        parts.append(da.from_delayed(future, shape=block.shape, dtype=block.dtype))
    return da.concatenate(parts)


def test_lbfgs_layouts_give_the_local_model(client):
    X, y = _classification(n=480)
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30, random_state=0)
    local = fastmlp.MLPClassifier(**params).fit(X, y)
    Xd, yd = da.from_array(X, chunks=(120, 6)), da.from_array(y, chunks=120)
    layouts = {
        # empty partitions among the others
        "empty": (da.concatenate([Xd[:0], Xd[:200], Xd[:0], Xd[200:]]),
                  da.concatenate([yd[:0], yd[:200], yd[:0], yd[200:]])),
        # unknown chunk sizes (a boolean mask), y in blocks that do not line up with X's
        "unknown": (Xd[np.ones(len(X), bool)], da.from_array(y, chunks=70)),
        # one block: the other worker holds nothing
        "one block": (da.from_array(X), da.from_array(y)),
    }  # fmt: skip
    for name, (Xl, yl) in layouts.items():
        est = fdask.DaskMLPClassifier(client=client, **params).fit(Xl, yl)
        _assert_close_model(est, local)
        assert est.n_iter_ == local.n_iter_, name
    assert est._timings["groups"] == 1


def test_a_class_held_by_one_worker(client):
    X, y = _classification(n=450)
    order = np.argsort(y, kind="stable")  # class 2's rows last: all on the second worker
    X, y = X[order], y[order]
    workers = sorted(client.scheduler_info()["workers"])
    cut = 200
    Xd = _placed(client, [X[:cut], X[cut:]], workers)
    yd = _placed(client, [y[:cut], y[cut:]], workers)
    assert 2 not in set(y[:cut]) and 2 in set(y[cut:])

    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30, random_state=0)
    est = fdask.DaskMLPClassifier(client=client, **params).fit(Xd, yd)
    assert est._timings["groups"] == 2
    assert_array_equal(est.classes_, [0, 1, 2])
    _assert_close_model(est, fastmlp.MLPClassifier(**params).fit(X, y))
    est = fdask.DaskMLPClassifier(
        (6,), solver="adam", early_stopping=True, max_iter=5, random_state=0, client=client
    ).fit(Xd, yd)
    assert len(est.validation_scores_) == est.n_iter_
    assert est.predict_proba(Xd).shape[1] == 3

    # Binary, early stopping: the first worker holds one row of class 1, too few to stratify
    # its split (it splits without stratifying; the second worker stratifies).
    yb = (y == 2).astype(int)
    yb[0] = 1
    ybd = _placed(client, [yb[:cut], yb[cut:]], workers)
    est = fdask.DaskMLPClassifier(
        (6,), solver="sgd", early_stopping=True, max_iter=4, random_state=0, client=client
    ).fit(Xd, ybd)
    assert est.n_outputs_ == 1 and len(est.validation_scores_) == est.n_iter_


def test_regressor_on_dataframes(client):
    dd = pytest.importorskip("dask.dataframe", reason="needs dask[dataframe]")
    pd = pytest.importorskip("pandas")
    X, y = make_regression(n_samples=400, n_features=5, n_targets=2, random_state=0)
    y = y / y.std(axis=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    targets = pd.DataFrame(y, columns=["a", "b"])
    Xf, yf = dd.from_pandas(frame, npartitions=3), dd.from_pandas(targets, npartitions=2)
    params = dict(hidden_layer_sizes=(7,), solver="lbfgs", max_iter=30, random_state=0)
    est = fdask.DaskMLPRegressor(client=client, **params).fit(Xf, yf)
    local = fastmlp.MLPRegressor(**params).fit(frame, targets)
    _assert_close_model(est, local)
    assert_array_equal(est.feature_names_in_, frame.columns)

    predicted = est.predict(Xf)  # a dask Array, lazily, by partitions
    assert isinstance(predicted, da.Array)
    assert_allclose(predicted.compute(), local.predict(frame), rtol=1e-6, atol=1e-6)
    score = est.score(Xf, yf)
    assert isinstance(score, float)
    assert score == pytest.approx(r2_score(y, est.to_local().predict(frame)), rel=1e-10)


# --- local SGD ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        dict(solver="adam", early_stopping=True, weights=True),
        dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.05, batch_size=32),
    ],
    ids=["adam-early-stopping-weights", "sgd-invscaling"],
)
def test_one_worker_one_partition_gives_the_local_model(client, params):
    params = dict(params)
    weighted = params.pop("weights", False)
    X, y = _classification(n=500)
    w = np.random.RandomState(2).uniform(0.5, 2.0, len(y)) if weighted else None
    wd = None if w is None else da.from_array(w)
    params.update(hidden_layer_sizes=(8,), max_iter=8, random_state=0)
    est = fdask.DaskMLPClassifier(client=client, **params)
    est.fit(da.from_array(X), da.from_array(y), sample_weight=wd)
    with threadpool_limits(1, user_api="openmp"):  # the worker's thread count
        local = fastmlp.MLPClassifier(**params).fit(X, y, sample_weight=w)
    assert est._timings["groups"] == 1
    assert _same_arrays(est.coefs_ + est.intercepts_, local.coefs_ + local.intercepts_)
    assert est.loss_curve_ == local.loss_curve_
    assert (est.n_iter_, est.t_) == (local.n_iter_, local.t_)
    assert est.validation_scores_ == local.validation_scores_
    if getattr(local, "validation_loss_curve_", None) is not None:
        # To rounding: the core's last bits follow where the validation arrays lie in memory,
        # which the local fit leaves to NumPy.
        assert_allclose(est.validation_loss_curve_, local.validation_loss_curve_, rtol=1e-12)
    moments = "ms" if params["solver"] == "adam" else "velocities"
    assert _same_arrays(getattr(est.to_local()._optimizer, moments),
                        getattr(local._optimizer, moments))  # fmt: skip


def test_local_sgd_accuracy_on_ten_classes(client):
    X, y = make_classification(
        n_samples=30000, n_features=20, n_informative=16, n_redundant=0, n_classes=10,
        n_clusters_per_class=1, class_sep=1.5, random_state=0,
    )  # fmt: skip
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=6000, random_state=0)
    params = dict(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=15, random_state=0)
    est = fdask.DaskMLPClassifier(client=client, sync_period=20, **params)
    est.fit(da.from_array(X_train, chunks=(6000, 20)), da.from_array(y_train, chunks=6000))
    assert est._timings["groups"] == N_WORKERS
    local = fastmlp.MLPClassifier(**params).fit(X_train, y_train)
    accuracy = est.score(da.from_array(X_test, chunks=(2000, 20)), da.from_array(y_test))
    assert accuracy >= local.score(X_test, y_test) - 0.01
    assert len(est.loss_curve_) == est.n_iter_ == 15


def test_predictions_are_lazy_and_blockwise(client):
    X, y = _classification(n=300)
    Xd, yd = da.from_array(X, chunks=(100, 6)), da.from_array(y, chunks=100)
    est = fdask.DaskMLPClassifier((5,), max_iter=3, random_state=0, client=client).fit(Xd, yd)
    local = est.to_local()
    assert type(local) is fastmlp.MLPClassifier and "client" not in local.get_params()
    for method in ("predict", "predict_proba", "predict_log_proba"):
        lazy = getattr(est, method)(Xd)
        assert isinstance(lazy, da.Array) and lazy.chunks[0] == Xd.chunks[0]
        assert_array_equal(lazy.compute(), getattr(local, method)(X))
    w = np.arange(len(y)) % 3
    score = est.score(Xd, yd, sample_weight=da.from_array(w, chunks=70))
    assert score == pytest.approx(accuracy_score(y, local.predict(X), sample_weight=w), abs=1e-12)
    with pytest.raises(ValueError, match="features"):
        est.predict(da.from_array(X[:, :4]))
    with pytest.raises(TypeError, match="dask"):
        est.predict(X)


def test_estimator_protocols(client):
    X, y = _classification(n=200)
    Xd, yd = da.from_array(X, chunks=(100, 6)), da.from_array(y, chunks=100)
    est = fdask.DaskMLPClassifier((4,), max_iter=2, client=client, sync_period=7)
    params = est.get_params()
    assert set(fastmlp.MLPClassifier().get_params()) | {"client", "sync_period"} == set(params)
    assert clone(est).client is client and clone(est).sync_period == 7
    assert not hasattr(est, "partial_fit")
    est.fit(Xd, yd)
    restored = pickle.loads(pickle.dumps(est))
    assert restored.client is None
    assert _same_arrays(restored.coefs_, est.coefs_)
    # warm_start continues from the weights reached
    first = [c.copy() for c in est.coefs_]
    est.set_params(warm_start=True, max_iter=1).fit(Xd, yd)
    assert est.t_ == 3 * len(X) and not _same_arrays(first, est.coefs_)
    with pytest.raises(ValueError, match="same classes"):
        est.fit(Xd, yd % 2)
    with pytest.raises(TypeError, match="dask"):
        fdask.DaskMLPClassifier(client=client).fit(X, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fdask.DaskMLPClassifier(client=client).fit(Xd, yd[:150])
    with pytest.raises(ValueError, match="only one class"):
        fdask.DaskMLPClassifier(client=client).fit(Xd, da.zeros(len(y), chunks=100, dtype=int))
    with pytest.raises(ValueError, match="sync_period"):
        fdask.DaskMLPClassifier(client=client, sync_period=0).fit(Xd, yd)


# --- faults and Ctrl-C -------------------------------------------------------------------------


def _on_wait_call(monkeypatch, call, action):
    """Run ``action()`` inside the fit's wait for the cluster, on its ``call``-th wait (with
    the step's tasks submitted and running)."""
    original, count = _session.wait, [0]

    def hooked(*args, **kwargs):
        count[0] += 1
        if count[0] == call:
            action()
        return original(*args, **kwargs)

    monkeypatch.setattr(_session, "wait", hooked)


def _kill_a_worker(client):
    """SIGKILL a worker process that holds training partitions (so a part of the fit's state);
    its nanny starts a new one, at another address."""
    pids = client.run(os.getpid)
    holders = {w for key, ws in client.who_has().items() if "fastmlp-part" in str(key) for w in ws}
    victim = sorted(holders)[0]
    os.kill(pids[victim], signal.SIGKILL)
    return victim


def _fault_data(n=4000):
    X, y = _classification(n=n)
    # From a NumPy array in the graph: partitions the scheduler can recompute when lost.
    return X, y, da.from_array(X, chunks=(n // 2, 6)), da.from_array(y, chunks=n // 2)


@pytest.mark.slow
def test_lost_worker_in_lbfgs_reruns_the_evaluation(client, monkeypatch):
    X, y, Xd, yd = _fault_data()
    params = dict(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=15, random_state=0)
    clean = fdask.DaskMLPClassifier(client=client, **params).fit(Xd, yd)
    killed = []
    _on_wait_call(monkeypatch, 3, lambda: killed.append(_kill_a_worker(client)))
    try:
        faulted = fdask.DaskMLPClassifier(client=client, **params).fit(Xd, yd)
    finally:
        client.wait_for_workers(N_WORKERS, timeout=60)
    assert killed and killed[0] not in client.scheduler_info()["workers"]
    if faulted._timings["partition_groups"] == clean._timings["partition_groups"]:
        assert _same_arrays(faulted.coefs_ + faulted.intercepts_,
                            clean.coefs_ + clean.intercepts_)  # fmt: skip
    _assert_close_model(faulted, fastmlp.MLPClassifier(**params).fit(X, y))


@pytest.mark.slow
def test_lost_worker_in_local_sgd_fails_naming_it(client, monkeypatch):
    _, _, Xd, yd = _fault_data()
    killed = []
    _on_wait_call(monkeypatch, 2, lambda: killed.append(_kill_a_worker(client)))
    est = fdask.DaskMLPClassifier((16,), max_iter=50, random_state=0, client=client)
    try:
        with pytest.raises(RuntimeError, match="lost|left the cluster") as error:
            est.fit(Xd, yd)
    finally:
        client.wait_for_workers(N_WORKERS, timeout=60)
    assert killed[0] in str(error.value)
    assert not hasattr(est, "coefs_")  # never a silently different model


def _idle(client, bound=10.0):
    """Whether the workers run none of the fit's tasks within ``bound`` seconds (else what
    they run)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        processing = client.processing()
        if not any(processing.values()):
            return True
        time.sleep(0.05)
    return processing


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_ctrl_c_cancels_the_workers_tasks(client, monkeypatch, solver):
    _, _, Xd, yd = _fault_data(n=2000)
    est = fdask.DaskMLPClassifier(
        (16,), solver=solver, max_iter=10_000, tol=0, random_state=0, client=client
    )
    _on_wait_call(monkeypatch, 4, lambda: os.kill(os.getpid(), signal.SIGINT))
    began = time.monotonic()
    if solver == "lbfgs":
        with pytest.raises(KeyboardInterrupt):
            est.fit(Xd, yd)
        assert not hasattr(est, "coefs_")  # as the local L-BFGS fit: left as it was
    else:
        with pytest.warns(UserWarning, match="Training interrupted by user."):
            est.fit(Xd, yd)
        assert est.predict(Xd).compute().shape == (2000,)  # the weights reached, usable
    assert time.monotonic() - began < 30
    assert _idle(client) is True
