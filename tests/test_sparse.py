"""Sparse X (issue #15): the core's sparse first layer against the same data made dense, the
estimators against scikit-learn on sparse input, and bad sparse input.

The core runs in .ci/sanitize (ASan/UBSan) through this file: the binding's checks of indptr and
indices must hold before the core reads them.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, _backend, _sparse
from fastmlp._arrays import aligned_copy, aligned_empty


def awkward_csr(n_rows=40, n_cols=30, dtype=np.float64, index_dtype=np.int32, seed=0):
    """A CSR matrix with everything SciPy allows: unsorted and duplicate indices within rows,
    explicit zeros, empty rows and empty columns. Its dense form sums the duplicates."""
    rng = np.random.RandomState(seed)
    rows, cols, vals = [], [], []
    for i in range(n_rows):
        if i % 7 == 3:
            continue  # an empty row
        k = rng.randint(1, 6)
        js = rng.randint(0, n_cols - 3, k)  # the last 3 columns stay empty
        js = np.concatenate([js, js[:1]])  # a duplicate
        rows += [i] * len(js)
        cols += list(js)
        vals += list(rng.standard_normal(len(js)))
        rows.append(i)
        cols.append(int(rng.randint(0, n_cols - 3)))
        vals.append(0.0)  # an explicit zero
    # Built by hand, rows in order but columns unsorted and repeated, as a user's CSR may be.
    order = np.lexsort((rng.rand(len(rows)), rows))
    rows, cols, vals = np.array(rows)[order], np.array(cols)[order], np.array(vals)[order]
    indptr = np.searchsorted(rows, np.arange(n_rows + 1)).astype(index_dtype)
    X = sp.csr_matrix(
        (vals.astype(dtype), cols.astype(index_dtype), indptr), shape=(n_rows, n_cols)
    )
    assert not X.has_canonical_format
    return X


def dense_of(X):
    return aligned_copy(X.toarray(), X.dtype)  # toarray sums duplicates, as SciPy does


def random_net(sizes, dtype, seed=0):
    rng = np.random.RandomState(seed)
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    coefs = [aligned_copy(rng.uniform(-0.5, 0.5, shape), dtype) for shape in shapes]
    intercepts = [aligned_copy(rng.uniform(-0.5, 0.5, b), dtype) for b in sizes[1:]]
    return coefs, intercepts


# --- the core: sparse against the same data made dense ---------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_forward_and_backward_equal_dense(dtype, index_dtype):
    X = awkward_csr(dtype=dtype, index_dtype=index_dtype)
    D = dense_of(X)
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    coefs, intercepts = random_net([30, 8, 3], dtype)
    be = _backend.backend_for("cpu")
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(
        be.forward(X, coefs, intercepts, "tanh", "softmax"),
        be.forward(D, coefs, intercepts, "tanh", "softmax"),
        rtol=tol, atol=tol,
    )  # fmt: skip
    Y = aligned_copy(np.eye(3)[np.arange(40) % 3], dtype)
    w = aligned_copy(np.linspace(0.0, 2.0, 40), dtype)
    grads = {}
    for name, x in (("sparse", X), ("dense", D)):
        cg = [aligned_empty(c.shape, dtype) for c in coefs]
        ig = [aligned_empty(b.shape, dtype) for b in intercepts]
        loss = be.backward(x, Y, w, coefs, intercepts, cg, ig, "relu", "softmax", "log_loss", 0.1)
        grads[name] = (loss, cg + ig)
    assert grads["sparse"][0] == pytest.approx(grads["dense"][0], rel=tol)
    for a, b in zip(grads["sparse"][1], grads["dense"][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    # The user's matrix is used as it is, never modified.
    for a, b in zip(before, (X.data, X.indices, X.indptr), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("split", ["always", "never"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_trainer_runs_as_on_dense_data(solver, split, index_dtype):
    """Minibatches with the batch split among threads or not: the sparse first layer's
    by-feature gradient and exact update give the dense result."""
    X = awkward_csr(n_rows=300, n_cols=60, index_dtype=index_dtype)
    D = dense_of(X)
    Y = aligned_copy(np.random.RandomState(1).standard_normal((300, 2)), np.float64)
    w = aligned_copy(np.random.RandomState(2).rand(300), np.float64)
    order = np.random.RandomState(3).permutation(300).astype(np.int64)
    results = []
    for x in (X, D):
        coefs, intercepts = random_net([60, 16, 2], np.float64)
        params = coefs + intercepts
        first = [aligned_copy(np.zeros_like(p), np.float64) for p in params]
        second = (
            [aligned_copy(np.zeros_like(p), np.float64) for p in params]
            if solver == "adam"
            else []
        )
        trainer = _backend.backend_for("cpu").module.Trainer(
            _sparse.core_input(x), Y, w, coefs, intercepts, first, second,
            activation="relu", output_activation="identity", loss="squared_error", alpha=0.01,
            solver=solver, batch_size=140, learning_rate=0.01, momentum=0.9, nesterov=True,
            beta_1=0.9, beta_2=0.999, epsilon=1e-8, t=0, batch_split=split,
        )  # fmt: skip
        losses = [trainer.run(order, 0.01, 0.0)[0] for _ in range(3)]
        results.append((losses, params + first + second))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_split_does_not_change_the_bits():
    """Each feature's gradient sums the batch's rows in order, whatever the threads."""
    X = awkward_csr(n_rows=300, n_cols=60)
    Y = aligned_copy(np.random.RandomState(1).standard_normal((300, 1)), np.float64)
    out = []
    for split in ("always", "never"):
        coefs, intercepts = random_net([60, 16, 1], np.float64)
        first = [aligned_copy(np.zeros_like(p), np.float64) for p in coefs + intercepts]
        second = [aligned_copy(np.zeros_like(p), np.float64) for p in coefs + intercepts]
        trainer = _backend.backend_for("cpu").module.Trainer(
            _sparse.core_input(X), Y, None, coefs, intercepts, first, second,
            activation="tanh", output_activation="identity", loss="squared_error", alpha=0.0,
            solver="adam", batch_size=200, learning_rate=0.01, momentum=0.0, nesterov=False,
            beta_1=0.9, beta_2=0.999, epsilon=1e-8, t=0, batch_split=split,
        )  # fmt: skip
        trainer.run(np.arange(300, dtype=np.int64), 0.01, 0.0)
        out.append(coefs[0].copy())
    # The first layer's gradient is bitwise the same; only later layers' sums may differ.
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-14)


def test_lbfgs_gradient_equals_dense():
    X = awkward_csr(n_rows=100, n_cols=30)
    D = dense_of(X)
    Y = aligned_copy(np.random.RandomState(1).standard_normal((100, 1)), np.float64)
    coefs, intercepts = random_net([30, 5, 1], np.float64)
    n = sum(p.size for p in coefs + intercepts)
    flat = aligned_copy(np.concatenate([p.ravel() for p in coefs + intercepts]), np.float64)
    out = []
    for x in (X, D):
        trainer = _backend.backend_for("cpu").trainer(
            x, Y, None, coefs, intercepts, [], [], activation="relu",
            output_activation="identity", loss="squared_error", alpha=0.1, solver="lbfgs",
            batch_size=100, learning_rate=0.0, momentum=0.0, nesterov=False, beta_1=0.0,
            beta_2=0.0, epsilon=1.0, t=0,
        )  # fmt: skip
        grad = aligned_empty(n, np.float64)
        out.append((trainer.loss_and_gradient(flat, grad), grad))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-12)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-11, atol=1e-13)


# --- the estimators: scikit-learn's model on sparse input, and fastmlp's own on dense -----------


def classification(n=240, n_cols=40, seed=0):
    X = sp.random(n, n_cols, density=0.15, format="csr", random_state=seed)
    sums = np.asarray(X.sum(axis=1)).ravel()
    y = (sums > np.median(sums)).astype(int)
    y[::5] = 2
    return X, y


FIT = dict(hidden_layer_sizes=(12,), random_state=0, alpha=1e-3, batch_size=50, max_iter=4)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_classifier_matches_sklearn_and_dense(solver):
    X, y = classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(solver=solver, **FIT).fit(X, y)
        theirs = SkClassifier(solver=solver, **FIT).fit(X, y)
        dense = MLPClassifier(solver=solver, **FIT).fit(X.toarray(), y)
    for a, b, c in zip(ours.coefs_, theirs.coefs_, dense.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(ours.predict_log_proba(X), dense.predict_log_proba(X.toarray()))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y))


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "dok", "bsr"])
def test_other_formats_and_float32(fmt):
    X, y = classification()
    Xf = X.astype(np.float32).asformat(fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPRegressor(**FIT).fit(Xf, y.astype(float))
        dense = MLPRegressor(**FIT).fit(X.toarray().astype(np.float32), y.astype(float))
    assert ours.coefs_[0].dtype == np.float32
    for a, b in zip(ours.coefs_, dense.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.predict(Xf), dense.predict(X.toarray()), atol=1e-4)


def test_regressor_sample_weight_early_stopping_partial_fit():
    X, y = classification(n=300)
    y = y.astype(float) + np.asarray(X.sum(axis=1)).ravel()
    w = np.random.RandomState(4).rand(300)
    params = dict(FIT, early_stopping=True, validation_fraction=0.2, max_iter=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPRegressor(**params).fit(X, y, sample_weight=w)
        theirs = SkRegressor(**params).fit(X, y, sample_weight=w)
        dense = MLPRegressor(**params).fit(X.toarray(), y, sample_weight=w)
    for a, b, c in zip(ours.coefs_, theirs.coefs_, dense.coefs_, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(a, c, atol=1e-10)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, atol=1e-6)
    # partial_fit on sparse data as scikit-learn's.
    ours, theirs = MLPRegressor(**FIT), SkRegressor(**FIT)
    for _ in range(2):
        ours.partial_fit(X, y, sample_weight=w)
        theirs.partial_fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-6)


def test_user_matrix_is_not_modified_and_dense_predict_agrees():
    X, y = classification()
    X = X.tocoo()
    X = sp.coo_matrix((np.concatenate([X.data, X.data[:5]]),
                       (np.concatenate([X.row, X.row[:5]]), np.concatenate([X.col, X.col[:5]]))),
                      shape=X.shape)  # fmt: skip
    before = (X.data.copy(), X.row.copy(), X.col.copy())
    model = MLPClassifier(**FIT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    for a, b in zip(before, (X.data, X.row, X.col), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(
        model.predict_proba(X), model.predict_proba(X.toarray()), atol=1e-12
    )


def test_text_sized_feature_space_is_never_densified():
    """2,000 x 10^6 would take 16 GB dense: sparse, the fit needs the weights only."""
    n, n_cols = 2000, 1_000_000
    rng = np.random.RandomState(0)
    X = sp.csr_matrix(
        (rng.rand(n * 20), rng.randint(0, n_cols, n * 20), np.arange(n + 1) * 20),
        shape=(n, n_cols),
    )
    y = rng.randint(0, 2, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(2,), max_iter=1, random_state=0).fit(X, y)
    assert model.predict_proba(X[:100]).shape == (100, 2)


def test_low_level_mlp_takes_sparse():
    X = awkward_csr()
    net = fastmlp.MLP((30, 6, 2), activation="tanh", random_state=0)
    np.testing.assert_allclose(net.forward(X), net.forward(X.toarray()), atol=1e-13)
    Y = np.random.RandomState(0).standard_normal((40, 2))
    a, b = net.backward(X.tocsc(), Y), net.backward(X.toarray(), Y)
    assert a[0] == pytest.approx(b[0])
    for g, h in zip(a[1] + a[2], b[1] + b[2], strict=True):
        np.testing.assert_allclose(g, h, atol=1e-13)


# --- bad input -------------------------------------------------------------------------------


def test_nan_and_infinity_among_stored_values():
    X, y = classification()
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb.data[3] = bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            MLPClassifier(**FIT).fit(Xb, y)
        with pytest.raises(ValueError, match="NaN|infinity"):
            fastmlp.MLP((40, 3, 1)).forward(Xb)


def test_feature_count_mismatch_sparse_and_dense():
    X, y = classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(**FIT).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :-1])
    with pytest.raises(ValueError, match="features"):
        model.predict(X.toarray()[:, :-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense_model = MLPClassifier(**FIT).fit(X.toarray(), y)
    with pytest.raises(ValueError, match="features"):
        dense_model.predict(sp.hstack([X, X]).tocsr())


def bad_triples():
    data = np.ones(4)
    good = (np.array([0, 2, 1, 3], np.int32), np.array([0, 2, 4], np.int32))
    yield "out of range", (data, np.array([0, 2, 1, 9], np.int32), good[1], 4), "not a column"
    yield "negative", (data, np.array([0, -1, 1, 3], np.int32), good[1], 4), "not a column"
    yield "decreasing indptr", (data, good[0], np.array([0, 3, 2], np.int32), 4), "decreases"
    yield "indptr past data", (data, good[0], np.array([0, 2, 5], np.int32), 4), "indptr"
    yield "indptr not from 0", (data, good[0], np.array([1, 2, 4], np.int32), 4), "indptr"
    yield "columns", (data, good[0], good[1], 5), "features"
    yield "index dtypes", (data, good[0], good[1].astype(np.int64), 4), "dtype"
    yield "indices length", (data, good[0][:3], good[1], 4), "shape"
    yield "float indices", (data, good[0].astype(float), good[1], 4), "dtype"


@pytest.mark.parametrize("case", list(bad_triples()), ids=lambda c: c[0])
def test_binding_checks_the_triple_before_the_core_reads_it(case):
    _, triple, message = case
    module = _backend.backend_for("cpu").module
    coefs, intercepts = random_net([4, 3, 1], np.float64)
    with pytest.raises((ValueError, TypeError), match=message):
        module.forward(triple, coefs, intercepts, "relu", "identity")
    Y = np.zeros((2, 1))
    with pytest.raises((ValueError, TypeError), match=message):
        module.Trainer(
            triple, Y, None, coefs, intercepts, [], [], activation="relu",
            output_activation="identity", loss="squared_error", alpha=0.0, solver="lbfgs",
            batch_size=2, learning_rate=0.0, momentum=0.0, nesterov=False, beta_1=0.0,
            beta_2=0.0, epsilon=1.0, t=0,
        )  # fmt: skip


def test_backend_without_sparse_refuses_it_clearly(monkeypatch):
    backend = _backend.backend_for("cpu")
    monkeypatch.setattr(backend, "capabilities", lambda: {"device": "cuda", "sparse": False})
    coefs, intercepts = random_net([30, 3, 1], np.float64)
    with pytest.raises(ValueError, match="sparse X is not supported"):
        backend.forward(awkward_csr(), coefs, intercepts, "relu", "identity")


def test_gpu_fit_refuses_sparse_x_before_touching_the_estimator(monkeypatch):
    # The fake CUDA module (no sparse flag) stands for the GPU: a fitted model asked to refit on
    # sparse X there keeps its weights, its attributes and its feature count.
    from fake_cuda_core import FakeCudaCore

    from fastmlp import _cuda

    monkeypatch.setattr(_cuda, "cuda_core", FakeCudaCore())
    monkeypatch.setattr(_cuda, "import_problem", None)
    X, y = classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(**FIT).fit(X, y)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(est).items()}
    coefs = [c.copy() for c in est.coefs_]
    est.set_params(device="cuda", warm_start=True)
    wider = sp.csr_matrix(sp.hstack([sp.csr_matrix(X), sp.csr_matrix(X)]))
    with pytest.raises(ValueError, match="sparse X is not supported on device 'cuda'"):
        est.fit(wider, y)
    assert est.n_features_in_ == before["n_features_in_"]
    assert est.n_iter_ == before["n_iter_"]
    for a, b in zip(est.coefs_, coefs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_scipy_sparse_arrays_and_empty_matrix_rows():
    X, y = classification()
    Xa = sp.csr_array(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(**FIT).fit(Xa, y)
        b = MLPClassifier(**FIT).fit(X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    empty = sp.csr_matrix((3, X.shape[1]))
    np.testing.assert_allclose(a.predict_proba(empty), a.predict_proba(empty.toarray()))
