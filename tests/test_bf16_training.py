"""compute_dtype="bfloat16": the network's passes against the oracle's bfloat16 math
(fastmlp.reference rounds each product's operands itself), training, the estimators' parameter,
and what happens where no bfloat16 kernel runs. The kernels themselves are tested in
tests/test_bf16_kernels.py."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, reference
from fastmlp._arrays import aligned_copy

BF16 = fastmlp.build_info()["bf16"]
needs_bf16 = pytest.mark.skipif(
    BF16["kernel"] is None, reason=f"no bfloat16 kernel here: {BF16['reason']}"
)
HIDDEN = ["identity", "logistic", "tanh", "relu", "leaky_relu", "gelu", "silu"]
# bfloat16 keeps 8 significant bits: rounding an operand moves it by at most 2**-9 relative.
BF16_HALF_ULP = 2.0**-9


def data(n_in, n_out, rows, seed=0):
    rng = np.random.RandomState(seed)
    X = aligned_copy(rng.standard_normal((rows, n_in)), np.float32)
    Y = aligned_copy(rng.uniform(0.1, 1.0, (rows, n_out)), np.float32)
    return X, Y


def pair(sizes, activation="relu", output="identity", loss="squared_error", slope=0.01):
    kwargs = dict(
        activation=activation, output_activation=output, loss=loss, dtype="float32",
        random_state=3, leaky_relu_slope=slope, alpha=0.01,
    )  # fmt: skip
    product = fastmlp.MLP(sizes, compute_dtype="bfloat16", **kwargs)
    oracle = reference.MLP(sizes, compute_dtype="bfloat16", **kwargs)
    fp32 = reference.MLP(sizes, **kwargs)
    return product, oracle, fp32


def mean_abs(a, b):
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# --- one layer: the operands are the user's, the comparison is tight -------------------------


@needs_bf16
@pytest.mark.parametrize("shape", [(128, 128), (131, 127), (97, 257), (521, 33), (1024, 40)])
@pytest.mark.parametrize("rows", [1, 7, 130])
def test_single_layer_matches_the_oracle_to_float32_summation(shape, rows):
    # No intermediate layer: both compute bf16(X) @ bf16(W) + b, the product in float32 in
    # some order, the oracle exactly: they differ by the float32 sums' rounding alone.
    product, oracle, fp32 = pair(shape)
    X, Y = data(shape[0], shape[1], rows)
    got, want = product.forward(X), oracle.forward(X)
    k = shape[0]
    Xr = reference.round_to_bfloat16(X).astype(np.float64)
    Wr = reference.round_to_bfloat16(oracle.coefs[0]).astype(np.float64)
    bound = (k + 2) * 2.0**-24 * (np.abs(Xr) @ np.abs(Wr) + np.abs(oracle.intercepts[0]))
    assert np.all(np.abs(got - want) <= bound)
    # ... and the bound is tight enough to tell bfloat16 from float32 products.
    assert not np.all(np.abs(fp32.forward(X) - want) <= bound)


# --- whole networks: every activation and loss ------------------------------------------------


@needs_bf16
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize(
    "output, loss",
    [("identity", "squared_error"), ("softmax", "log_loss"), ("logistic", "log_loss"),
     ("exp", "poisson"), ("tanh", "squared_error")],
)  # fmt: skip
def test_network_matches_the_oracle(activation, output, loss):
    # Two bf16 layers (at least 128 x 128 weights) and a float32 output layer.
    sizes = (130, 129, 131, 20) if output != "logistic" else (130, 129, 131, 1)
    product, oracle, fp32 = pair(sizes, activation, output, loss, slope=0.2)
    X, Y = data(sizes[0], sizes[-1], 67, seed=1)
    if output in ("softmax",):
        Y = np.eye(sizes[-1], dtype=np.float32)[np.arange(67) % sizes[-1]]
    if output == "logistic":
        Y = (Y > 0.5).astype(np.float32)
    got, want, plain = product.forward(X), oracle.forward(X), fp32.forward(X)
    # Rarely, an intermediate value that the two compute a float32 rounding apart rounds to
    # different bfloat16 neighbours: compare mean errors, where such a flip is diluted, and
    # hold them far below the distance between bfloat16 and float32 products.
    assert mean_abs(got, want) <= 0.02 * mean_abs(plain, want)
    loss_got, grads_got, igrads_got = product.backward(X, Y)
    loss_want, grads_want, igrads_want = oracle.backward(X, Y)
    loss_plain, grads_plain, _ = fp32.backward(X, Y)
    assert abs(loss_got - loss_want) <= 0.02 * abs(loss_plain - loss_want) + 1e-6 * abs(loss_want)
    for g, w, p in zip(grads_got, grads_want, grads_plain, strict=True):
        assert mean_abs(g, w) <= 0.05 * mean_abs(p, w) + 1e-7 * float(np.mean(np.abs(w)))
    for g, w in zip(igrads_got, igrads_want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0.02, atol=1e-3 * float(np.max(np.abs(w))))


@needs_bf16
def test_bf16_gradient_is_the_true_gradient_to_bf16_rounding():
    # The oracle's float64 gradient is held to finite differences elsewhere; the bf16 one may
    # differ from it by bfloat16's rounding of the operands, and not by more.
    sizes = (140, 128, 130, 5)
    product, _, _ = pair(sizes, "tanh")
    exact = reference.MLP(sizes, activation="tanh", dtype="float64", random_state=3, alpha=0.01)
    X, Y = data(140, 5, 50, seed=2)
    _, grads, _ = product.backward(X, Y)
    _, true_grads, _ = exact.backward(X.astype(np.float64), Y.astype(np.float64))
    for g, t in zip(grads, true_grads, strict=True):
        scale = float(np.max(np.abs(t)))
        assert np.max(np.abs(g - t)) <= 16 * BF16_HALF_ULP * scale
        assert np.max(np.abs(g - t)) > 0  # bf16 does round


@needs_bf16
@pytest.mark.parametrize("sizes", [(12, 15, 10), (2000, 15, 10), (100, 100, 10)])
def test_narrow_layers_stay_float32(sizes):
    # Every layer under 16 units, or under 128 x 128 weights, keeps float32 products: the same
    # bits as without bf16.
    X, Y = data(sizes[0], sizes[-1], 30)
    kwargs = dict(activation="relu", dtype="float32", random_state=0)
    a = fastmlp.MLP(sizes, compute_dtype="bfloat16", **kwargs)
    b = fastmlp.MLP(sizes, **kwargs)
    np.testing.assert_array_equal(a.forward(X), b.forward(X))
    np.testing.assert_array_equal(a.backward(X, Y)[1][0], b.backward(X, Y)[1][0])


def test_mlp_refuses_bf16_with_float64_weights():
    with pytest.raises(ValueError, match="needs dtype='float32'"):
        fastmlp.MLP((4, 3), compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="compute_dtype must be None or 'bfloat16'"):
        fastmlp.MLP((4, 3), dtype="float32", compute_dtype="float16")
    with pytest.raises(ValueError, match="compute_dtype must be None or 'bfloat16'"):
        reference.MLP((4, 3), dtype="float32", compute_dtype="half")


def test_round_to_bfloat16_of_the_oracle():
    # Ties to even, carries into the exponent, NaN and infinities kept.
    values = np.array(
        [1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-8 + 2**-20, -2.5, np.inf, -np.inf,
         np.nan, 3.4028235e38, 1e-40, 0.0, -0.0],
        np.float32,
    )  # fmt: skip
    got = reference.round_to_bfloat16(values)
    want = [1.0, 1.0, 1.0 + 4 * 2**-8, 1.0 + 2 * 2**-8, -2.5, np.inf, -np.inf]
    np.testing.assert_array_equal(got[:7], np.array(want, np.float32))
    assert np.isnan(got[7]) and got[8] == np.inf
    # A denormal: the same rounding, at bfloat16's denormal spacing of 2**-133.
    assert got[9] != 0 and abs(float(got[9]) - 1e-40) <= 2.0**-134
    assert np.signbit(got[11]) and got[10] == 0
    assert (got.view(np.uint32)[:7] & 0xFFFF == 0).all()


# --- training ------------------------------------------------------------------------------


@needs_bf16
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("batch_split", ["never", "always"])
def test_bf16_training_stays_near_float32(solver, batch_split):
    # The core's epochs (weights packed once per minibatch, threads sharing the batch or the
    # products; L-BFGS's full batches) move off float32's path by bf16's rounding only.
    from fastmlp import _backend

    X, y = load_digits(return_X_y=True)
    X = (X[:600] / 16).astype(np.float32)
    y = y[:600]
    kwargs = dict(
        hidden_layer_sizes=(256, 128), solver=solver, max_iter=3, random_state=0, batch_size=128,
        compute_dtype="bfloat16", tol=0, shuffle=False,
    )  # fmt: skip
    original = _backend.trainer_options["cpu"]
    _backend.trainer_options["cpu"] = {"batch_split": batch_split}
    try:
        est = MLPClassifier(**kwargs).fit(X, y)
    finally:
        _backend.trainer_options["cpu"] = original
    plain = MLPClassifier(**{**kwargs, "compute_dtype": None}).fit(X, y)
    assert all(c.dtype == np.float32 for c in est.coefs_)
    # bf16 moves the weights off float32's path, by far less than the training moved them.
    for a, b in zip(est.coefs_, plain.coefs_, strict=True):
        assert not np.array_equal(a, b) or min(a.shape) < 16
        assert mean_abs(a, b) < 0.1 * float(np.mean(np.abs(b)))


@needs_bf16
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bf16_accuracy_on_digits_within_a_point_of_float32():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16, y, test_size=0.25, stratify=y, random_state=0
    )
    kwargs = dict(hidden_layer_sizes=(256, 128), max_iter=40, random_state=0)
    fp32 = MLPClassifier(**kwargs).fit(X_train.astype(np.float32), y_train)
    bf16 = MLPClassifier(compute_dtype="bfloat16", **kwargs).fit(X_train, y_train)
    assert abs(bf16.score(X_test, y_test) - fp32.score(X_test.astype(np.float32), y_test)) <= 0.01
    assert bf16.coefs_[0].dtype == np.float32  # float64 X, float32 master weights


# --- the parameter ------------------------------------------------------------------------


def test_parameter_round_trips(tmp_path):
    est = MLPRegressor(compute_dtype="bfloat16")
    assert est.get_params()["compute_dtype"] == "bfloat16"
    assert clone(est).compute_dtype == "bfloat16"
    assert pickle.loads(pickle.dumps(est)).compute_dtype == "bfloat16"
    assert MLPClassifier().compute_dtype is None
    with pytest.raises(ValueError, match="compute_dtype"):
        MLPRegressor(compute_dtype="float16").fit(np.zeros((4, 2)), np.zeros(4))


@needs_bf16
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fitted_bf16_model_survives_save_load_pickle_and_to_sklearn_drops_it(tmp_path):
    X, Y = data(130, 1, 80)
    est = MLPRegressor(hidden_layer_sizes=(256,), compute_dtype="bfloat16", max_iter=5)
    est.fit(X, Y.ravel())
    path = tmp_path / "model.npz"
    est.save(path)
    loaded = fastmlp.load(path)
    assert loaded.compute_dtype == "bfloat16"
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))
    sk = est.to_sklearn()
    assert "compute_dtype" not in sk.get_params()
    # scikit-learn's model is the same weights in float32 products: bf16 rounding apart.
    np.testing.assert_allclose(sk.predict(X), est.predict(X), rtol=0.05, atol=0.05)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bf16_on_a_float64_model_is_refused_clearly():
    X, Y = data(130, 1, 40)
    est = MLPRegressor(hidden_layer_sizes=(256,), max_iter=2).fit(X.astype(np.float64), Y.ravel())
    est.set_params(compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="needs float32 weights, and this model's are float64"):
        est.predict(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_misspelled_kernel_override_is_named_and_breaks_nothing_else():
    code = """
import numpy as np, scipy.sparse as sp, fastmlp
info = fastmlp.build_info()["bf16"]
print(info["kernel"], "fastest" in info["reason"])
X = sp.random(40, 300, density=0.1, format="csr", random_state=0)
fastmlp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=2).fit(X, np.arange(40) % 2)
try:
    fastmlp.MLPClassifier(compute_dtype="bfloat16").fit(X.toarray(), np.arange(40) % 2)
except RuntimeError as e:
    print("fit:", "fastest" in str(e))
"""
    result = run_python(code, FASTMLP_BF16_KERNEL="fastest")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "True", "fit:", "True"]
    gemm = run_python("import fastmlp", FASTMLP_GEMM_KERNEL="fastest")
    assert gemm.returncode != 0
    assert "FASTMLP_GEMM_KERNEL='fastest' is not one of" in gemm.stderr


@needs_bf16
@pytest.mark.parametrize("kernel", ["amx", "avx512_bf16"])
def test_bf16_results_do_not_depend_on_the_thread_count(kernel):
    # The kernels' blocks (so the epilogue's segments) change with the threads; tanh and silu,
    # whose vector and scalar forms differ in the last bit, must not.
    if kernel == "amx" and BF16["kernel"] != "amx":
        pytest.skip("no AMX here")
    code = """
import numpy as np, fastmlp
from threadpoolctl import threadpool_limits
rng = np.random.RandomState(0)
X = rng.standard_normal((50, 200)).astype(np.float32)
Y = rng.standard_normal((50, 3)).astype(np.float32)
out = []
for threads in (1, 2):
    with threadpool_limits(limits=threads, user_api="openmp"):
        for act in ("tanh", "silu"):
            net = fastmlp.MLP((200, 300, 200, 3), activation=act, dtype="float32", random_state=0,
                              compute_dtype="bfloat16")
            out.append((net.forward(X), net.backward(X, Y)[1]))
same = all(np.array_equal(a[0], b[0]) and all(np.array_equal(g, h) for g, h in zip(a[1], b[1]))
           for a, b in zip(out[:2], out[2:]))
print(fastmlp.build_info()["bf16"]["kernel"], same)
"""
    result = run_python(code, FASTMLP_BF16_KERNEL=kernel)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [kernel, "True"]


def test_old_pickles_get_the_default():
    est = MLPClassifier()
    state = est.__getstate__()
    del state["compute_dtype"]
    old = MLPClassifier.__new__(MLPClassifier)
    old.__setstate__(state)
    assert old.compute_dtype is None


def test_gpu_with_bf16_is_not_implemented(monkeypatch):
    from fake_cuda_core import FakeCudaCore

    from fastmlp import _cuda

    monkeypatch.setattr(_cuda, "cuda_core", FakeCudaCore())
    monkeypatch.setattr(_cuda, "import_problem", None)
    with pytest.raises(NotImplementedError, match="not implemented on the GPU"):
        MLPClassifier(device="cuda", compute_dtype="bfloat16").fit([[0.0], [1.0]], [0, 1])


def test_dask_refuses_bf16_for_now():
    pytest.importorskip("distributed")
    from fastmlp.dask import DaskMLPClassifier

    est = DaskMLPClassifier(compute_dtype="bfloat16")
    with pytest.raises(NotImplementedError, match="fastmlp.dask"):
        est._fit(None, None, None)


# --- where no bfloat16 kernel runs ----------------------------------------------------------


def run_python(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, **env), capture_output=True, text=True
    )


@pytest.mark.skipif(
    "avx2" not in fastmlp.build_info()["variants_available"], reason="no AVX2 variant built here"
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_without_a_kernel_fit_raises_and_predict_falls_back(tmp_path):
    # The AVX2 module has no bf16 kernels: it stands for a CPU without AMX or AVX512-BF16.
    X, Y = data(130, 1, 80)
    np.save(tmp_path / "X.npy", X)
    path = tmp_path / "model.npz"
    trained = MLPRegressor(hidden_layer_sizes=(256,), max_iter=3, compute_dtype="bfloat16")
    if BF16["kernel"] is None:
        pytest.skip(f"no bfloat16 kernel here to train the model: {BF16['reason']}")
    trained.fit(X, Y.ravel())
    trained.save(path)
    code = f"""
import warnings, numpy as np, fastmlp
X = np.load({str(tmp_path / "X.npy")!r})
print(fastmlp.build_info()["bf16"]["kernel"])
try:
    fastmlp.MLPRegressor(compute_dtype="bfloat16").fit(X, X[:, 0])
except RuntimeError as e:
    print("fit:", e)
model = fastmlp.load({str(path)!r})
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    p = model.predict(X)
print("warned:", [type(x.message).__name__ for x in w])
model.set_params(compute_dtype=None)
print("same:", np.array_equal(p, model.predict(X)))
"""
    result = run_python(code, FASTMLP_ARCH="avx2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "None"
    assert lines[1].startswith("fit: compute_dtype='bfloat16' needs a CPU with AMX-BF16")
    assert "avx2" in lines[1]
    assert lines[2] == "warned: ['Bf16FallbackWarning']"
    assert lines[3] == "same: True"


@needs_bf16
def test_each_kernel_trains_the_same_model_to_rounding():
    # FASTMLP_BF16_KERNEL forces either kernel (both run on an AMX machine): the same network
    # trained by each agrees with the oracle's forward pass.
    if BF16["kernel"] != "amx":
        pytest.skip("only an AMX machine runs both kernels")
    code = """
import numpy as np, fastmlp
from fastmlp import reference
rng = np.random.RandomState(0)
X = rng.standard_normal((50, 40)).astype(np.float32)
kw = dict(activation="relu", dtype="float32", random_state=1)
got = fastmlp.MLP((40, 512, 32), compute_dtype="bfloat16", **kw).forward(X)
want = reference.MLP((40, 512, 32), compute_dtype="bfloat16", **kw).forward(X)
plain = reference.MLP((40, 512, 32), **kw).forward(X)
close = np.mean(np.abs(got - want)) < 0.02 * np.mean(np.abs(plain - want))
print(fastmlp.build_info()["bf16"]["kernel"], close)
"""
    for kernel in ("amx", "avx512_bf16"):
        result = run_python(code, FASTMLP_BF16_KERNEL=kernel)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [kernel, "True"]
