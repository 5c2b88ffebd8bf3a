"""The CUDA backend from the Python side (issue #6): ``device=``, its errors, and GPU parity.

Three parts:

1. Everywhere: how ``device`` is spelled and checked, the errors of a build without CUDA (acted
   out by replacing the loaded module) and of a machine without a GPU (with the real module
   where it was built), and ``device`` as a parameter (get_params, clone, pickle, save/load,
   to_sklearn).
2. Everywhere: the device path's plumbing, through ``tests/fake_cuda_core.py``, a stand-in for
   ``fastmlp._cuda_core`` that exports the same backend interface, keeps its own copies of
   everything ("on the device") and computes with the CPU module. A fit through it must give
   bitwise the CPU's model, so any stale read, missed ``get_parameters`` or lost optimizer
   moment shows.
3. On a GPU only (skipped, with the reason, elsewhere): the same estimators fitted with
   device="cpu" and device="cuda" from the same random_state agree to rounding, for every
   hidden activation (leaky_relu, gelu and silu too, and a leaky_relu_slope other than the
   default), task, loss, solver and dtype; fastmlp.MLP on the GPU against the reference and
   finite differences.
"""

import os
import pickle
import warnings

import numpy as np
import pytest
from fake_cuda_core import FakeCudaCore
from gradient_check import assert_gradients_match_finite_differences
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import neural_network
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import fastmlp
from fastmlp import _backend, _cuda, reference

_rng = np.random.RandomState(0)
X = _rng.uniform(-1, 1, (96, 6))
_lin = X @ _rng.randn(6, 3)
SAMPLE_WEIGHT = _rng.uniform(0.5, 2.0, X.shape[0])
# task -> (estimator class, y, extra parameters)
TASKS = {
    "binary": (fastmlp.MLPClassifier, (_lin[:, 0] > 0).astype(int), {}),
    "multiclass": (fastmlp.MLPClassifier, _lin.argmax(axis=1), {}),
    "multilabel": (fastmlp.MLPClassifier, (_lin > 0).astype(int), {}),
    "squared_error": (fastmlp.MLPRegressor, _lin[:, :2], {}),
    "poisson": (fastmlp.MLPRegressor, np.exp(_lin[:, 0] / 2), {"loss": "poisson"}),
}
# Short fits (few epochs, no early stop by tol, so n_iter_ is max_iter) with every optimizer
# argument exercised: momentum with and without Nesterov, a schedule that changes the rate
# between epochs, Adam's step count, the L2 term.
SOLVERS = {
    "sgd": dict(solver="sgd", nesterovs_momentum=False, learning_rate_init=0.05),
    "sgd-nesterov": dict(
        solver="sgd", nesterovs_momentum=True, learning_rate="invscaling", learning_rate_init=0.2
    ),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "lbfgs": dict(solver="lbfgs", max_iter=15),
}
COMMON = dict(
    hidden_layer_sizes=(8, 5),
    batch_size=16,
    max_iter=6,
    n_iter_no_change=1000,
    alpha=1e-3,
    random_state=0,
)
ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
# The hidden activations of issue #16, with leaky_relu at its default slope and another one:
# (activation, leaky_relu_slope).
NEW_ACTIVATIONS = [("leaky_relu", 0.01), ("leaky_relu", 0.3), ("gelu", 0.01), ("silu", 0.01)]
NEW_IDS = [f"{a}-{s}" if a == "leaky_relu" else a for a, s in NEW_ACTIVATIONS]
BUILT_WITHOUT_CUDA = "fastmlp was built without CUDA"


def _why_no_gpu():
    if _cuda.cuda_core is None:
        return _cuda.import_problem
    return _cuda.cuda_core.device_status() or "device_count() is 0"


# FASTMLP_TEST_FAKE_GPU=1 runs part 3 against the stand-in module where no GPU is present: a dry
# run of those tests' own code (the stand-in is exact, so it proves nothing about a GPU).
_FAKE_GPU = os.environ.get("FASTMLP_TEST_FAKE_GPU") == "1" and not fastmlp.cuda_available()


def requires_gpu(test):
    """Mark a part-3 test: skipped, with the reason, where fastmlp cannot use a GPU."""
    skip = pytest.mark.skipif(
        not (fastmlp.cuda_available() or _FAKE_GPU), reason=f"no CUDA device: {_why_no_gpu()}"
    )
    return pytest.mark.gpu(pytest.mark.usefixtures("_gpu_or_stand_in")(skip(test)))


@pytest.fixture
def _gpu_or_stand_in(monkeypatch):
    if _FAKE_GPU:
        monkeypatch.setattr(_cuda, "cuda_core", FakeCudaCore(device_count=1))
        monkeypatch.setattr(_cuda, "import_problem", None)


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    # The fits are short on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture
def without_cuda_build(monkeypatch):
    """Act out a build made without FASTMLP_CUDA."""
    monkeypatch.setattr(_cuda, "cuda_core", None)
    monkeypatch.setattr(_cuda, "import_problem", BUILT_WITHOUT_CUDA)


@pytest.fixture
def fake_cuda(monkeypatch):
    """The CPU-computing stand-in for fastmlp._cuda_core, with one device."""
    fake = FakeCudaCore(device_count=1)
    monkeypatch.setattr(_cuda, "cuda_core", fake)
    monkeypatch.setattr(_cuda, "import_problem", None)
    return fake


def make(task, dtype=np.float64, **params):
    """An unfitted estimator for task, its X (of dtype) and y."""
    cls, y, extra = TASKS[task]
    return cls(**{**COMMON, **extra, **params}), X.astype(dtype), y


def weights(est):
    return [*est.coefs_, *est.intercepts_]


def moments(est):
    optimizer = getattr(est, "_optimizer", None)
    return [m for name in ("velocities", "ms", "vs") for m in getattr(optimizer, name, [])]


def outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def assert_same_model(a, b):
    """Bitwise the same weights, moments, curves and outputs."""
    assert a.n_iter_ == b.n_iter_
    for p, q in zip([*weights(a), *moments(a)], [*weights(b), *moments(b)], strict=True):
        assert p.dtype == q.dtype
        assert_array_equal(p, q)
    assert a.loss_ == b.loss_
    assert getattr(a, "loss_curve_", None) == getattr(b, "loss_curve_", None)
    assert getattr(a, "validation_scores_", None) == getattr(b, "validation_scores_", None)
    assert_array_equal(outputs(a, X), outputs(b, X))


# --- 1. device: spelling, errors, parameter ----------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:3"])
def test_parse_device_accepts_the_documented_spellings(device):
    assert _cuda.parse_device(device) == {"cpu": None, "cuda": 0, "cuda:0": 0, "cuda:3": 3}[device]


BAD_DEVICES = ["gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", " cuda", "cpu:0", "cuda0", "", 0, None]


@pytest.mark.parametrize("device", BAD_DEVICES)
def test_a_misspelled_device_is_a_value_error_naming_the_parameter(device):
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:<index>'"):
        _cuda.resolve_device(device)
    with pytest.raises(ValueError, match="device must be"):
        fastmlp.MLP((2, 3, 1), device=device)
    est, X_, y = make("multiclass", device=device)
    # scikit-learn's parameter validation (a ValueError), before anything is computed.
    with pytest.raises(ValueError, match="The 'device' parameter of MLPClassifier must be"):
        est.fit(X_, y)
    assert not hasattr(est, "coefs_")


def test_a_misspelled_device_assigned_after_fit_fails_predict():
    est, X_, y = make("squared_error")
    est.fit(X_, y)
    est.device = "gpu"  # bypasses set_params' validation; predict checks again
    with pytest.raises(ValueError, match="device must be"):
        est.predict(X_)


def test_device_cuda_on_a_build_without_cuda_says_how_to_build(without_cuda_build):
    assert not fastmlp.cuda_available()
    assert fastmlp.build_info()["cuda"] == {"built": False, "reason": BUILT_WITHOUT_CUDA}
    expected = f"{BUILT_WITHOUT_CUDA}. Build it .*{_cuda.BUILD_COMMAND}"
    with pytest.raises(RuntimeError, match=expected):
        fastmlp.MLP((2, 3, 1), device="cuda")
    est, X_, y = make("multiclass", solver="sgd")
    est.fit(X_, y)
    before = [w.copy() for w in weights(est)]
    # fit, partial_fit and predict all refuse, and a refused fit changes nothing.
    est.set_params(device="cuda", warm_start=True)
    for call in (lambda: est.fit(X_, y), lambda: est.partial_fit(X_, y), lambda: est.predict(X_)):
        with pytest.raises(RuntimeError, match=expected):
            call()
    for p, q in zip(weights(est), before, strict=True):
        assert_array_equal(p, q)
    assert est.set_params(device="cpu").predict(X_).shape == (len(X_),)
    fresh = make("multiclass", solver="sgd", device="cuda")[0]
    with pytest.raises(RuntimeError, match=expected):
        fresh.partial_fit(X_, y, classes=np.unique(y))
    assert not hasattr(fresh, "classes_")


def test_a_cuda_module_that_cannot_load_leaves_the_cpu_working(monkeypatch):
    def failing_import(name):
        assert name == "fastmlp._cuda_core"
        raise ImportError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setattr(_cuda.importlib, "import_module", failing_import)
    module, problem = _cuda._import_cuda_core()
    assert module is None
    assert (
        problem
        == "fastmlp._cuda_core did not import: libcuda.so.1: cannot open shared object file"
    )


def test_device_cuda_without_a_gpu_reports_the_drivers_reason(monkeypatch):
    monkeypatch.setattr(_cuda, "cuda_core", FakeCudaCore(device_count=0))
    assert not fastmlp.cuda_available()
    with pytest.raises(RuntimeError, match=r"no CUDA device is usable here \(no CUDA-capable"):
        _cuda.resolve_device("cuda")
    est, X_, y = make("poisson", device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA device is usable here"):
        est.fit(X_, y)


def test_a_device_index_beyond_the_devices_says_how_many_there_are(monkeypatch):
    monkeypatch.setattr(_cuda, "cuda_core", FakeCudaCore(device_count=2))
    assert fastmlp.cuda_available()
    assert _cuda.resolve_device("cuda:1") == 1
    with pytest.raises(
        RuntimeError, match=r"no CUDA device 2; this machine has 2 \(indices 0 to 1"
    ):
        _cuda.resolve_device("cuda:2")
    with pytest.raises(RuntimeError, match="no CUDA device 5"):
        fastmlp.MLP((2, 3, 1), device="cuda:5")


@pytest.mark.skipif(
    _cuda.cuda_core is None, reason=f"needs the CUDA build: {_cuda.import_problem}"
)
def test_the_built_module_reports_itself_in_build_info():
    info = fastmlp.build_info()["cuda"]
    assert info["built"] is True
    assert info["runtime"] and info["architectures"]
    assert len(info["devices"]) == _cuda.cuda_core.device_count()
    assert fastmlp.cuda_available() == (len(info["devices"]) > 0)


@pytest.mark.skipif(
    _cuda.cuda_core is None or fastmlp.cuda_available(),
    reason="needs the CUDA build on a machine without a GPU"
    + (f" ({_cuda.import_problem})" if _cuda.cuda_core is None else " (a GPU is present)"),
)
def test_the_built_module_without_a_gpu_refuses_device_cuda():
    status = _cuda.cuda_core.device_status()
    assert status  # why there is no device
    assert fastmlp.build_info()["cuda"]["device_status"] == status
    with pytest.raises(RuntimeError, match="no CUDA device is usable here"):
        fastmlp.MLP((2, 3, 1), device="cuda")
    for task in TASKS:
        est, X_, y = make(task, device="cuda")
        with pytest.raises(RuntimeError, match="no CUDA device is usable here"):
            est.fit(X_, y)


@pytest.mark.parametrize("cls", [fastmlp.MLPClassifier, fastmlp.MLPRegressor])
def test_device_is_a_parameter_kept_by_get_params_clone_and_pickle(cls):
    assert cls().get_params()["device"] == "cpu"
    est = cls(device="cuda:1")  # __init__ only stores: no check, so no GPU needed
    assert est.get_params()["device"] == "cuda:1"
    assert clone(est).device == "cuda:1"
    assert pickle.loads(pickle.dumps(est)).device == "cuda:1"
    assert est.set_params(device="cpu").device == "cpu"


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (fastmlp.MLPClassifier, neural_network.MLPClassifier),
        (fastmlp.MLPRegressor, neural_network.MLPRegressor),
    ],
)
def test_device_is_a_parameter_that_sklearn_lacks(ours, theirs):
    # The others: the classifier's class_weight, leaky_relu's slope, the products' precision.
    extra = {"device", "leaky_relu_slope", "compute_dtype"}
    extra |= {"class_weight"} if ours is fastmlp.MLPClassifier else set()
    assert set(ours().get_params()) - set(theirs().get_params()) == extra
    assert set(theirs().get_params()) <= set(ours().get_params())


@pytest.mark.parametrize("task", list(TASKS))
def test_device_cpu_is_the_default_model(task):
    default, X_, y = make(task, solver="sgd")
    explicit = make(task, solver="sgd", device="cpu")[0]
    assert_same_model(default.fit(X_, y), explicit.fit(X_, y))


def test_to_sklearn_drops_device_and_from_sklearn_gives_cpu(without_cuda_build):
    est, X_, y = make("multiclass", solver="adam")
    est.fit(X_, y)
    est.set_params(device="cuda")
    theirs = est.to_sklearn()  # no GPU needed: nothing is computed
    assert "device" not in theirs.get_params() and not hasattr(theirs, "device")
    # The same weights; the two libraries' predictions differ by rounding at most.
    expected = est.set_params(device="cpu").predict_proba(X_)
    assert_allclose(theirs.predict_proba(X_), expected, rtol=1e-12, atol=1e-15)
    assert fastmlp.from_sklearn(theirs).device == "cpu"
    unfitted = fastmlp.MLPRegressor(device="cuda").to_sklearn()
    assert isinstance(unfitted, neural_network.MLPRegressor)


def test_save_records_device_and_a_cuda_model_loads_without_a_gpu(tmp_path, without_cuda_build):
    est, X_, y = make("multilabel", solver="sgd")
    expected = est.fit(X_, y).predict_proba(X_)
    path = tmp_path / "model.npz"
    est.set_params(device="cuda").save(path)
    loaded = fastmlp.load(path)
    assert loaded.device == "cuda"
    # It loads, but computing on it needs the GPU it names; the error says how to move it.
    with pytest.raises(RuntimeError, match="Use device='cpu'"):
        loaded.predict(X_)
    assert_array_equal(loaded.set_params(device="cpu").predict_proba(X_), expected)


def test_load_refuses_a_misspelled_device(tmp_path):
    est, X_, y = make("binary")
    est.fit(X_, y).device = "gpu"
    est.save(tmp_path / "model.npz")
    with pytest.raises(fastmlp.ModelFormatError, match="invalid parameters.*'device'"):
        fastmlp.load(tmp_path / "model.npz")


def test_mlp_keeps_device_and_pickles(without_cuda_build):
    net = fastmlp.MLP((3, 4, 2), random_state=0)
    assert net.device == "cpu"
    net.device = "cuda"  # as if unpickled on a machine without a GPU
    copy = pickle.loads(pickle.dumps(net))
    with pytest.raises(RuntimeError, match=BUILT_WITHOUT_CUDA):
        copy.forward(np.zeros((1, 3)))
    with pytest.raises(RuntimeError, match=BUILT_WITHOUT_CUDA):
        copy.backward(np.zeros((1, 3)), np.zeros((1, 2)))


# --- 2. the device path's plumbing, through the stand-in module ------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fit_through_the_device_path_is_the_cpu_fit(fake_cuda, activation, task, solver, dtype):
    params = dict(SOLVERS[solver], activation=activation)
    cpu, X_, y = make(task, dtype, **params)
    gpu = make(task, dtype, device="cuda", **params)[0]
    assert_same_model(gpu.fit(X_, y), cpu.fit(X_, y))
    # One Trainer per fit: the data went up once, the state came back once.
    [trainer] = fake_cuda.trainers
    assert trainer.fused is _backend.trainer_options["cuda"].get("fused", True)
    if solver == "lbfgs":
        assert trainer.rows == 0 and trainer.gradient_calls > 0
    else:
        # Every epoch's rows ran in the trainer, in as many chunks as Python chose.
        assert (trainer.rows, trainer.downloads) == (cpu.n_iter_ * len(X_), 1)
        assert trainer.gradient_calls == 0
    assert fake_cuda.forward_calls > 0  # predictions ran on the device too


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("activation,slope", NEW_ACTIVATIONS, ids=NEW_IDS)
def test_new_activations_go_through_the_device_path(fake_cuda, activation, slope, solver):
    # leaky_relu, gelu and silu are no longer refused on the device path, and the slope reaches
    # the device's trainer and its forward passes.
    params = dict(SOLVERS[solver], activation=activation, leaky_relu_slope=slope)
    cpu, X_, y = make("multiclass", **params)
    gpu = make("multiclass", device="cuda", **params)[0]
    assert_same_model(gpu.fit(X_, y), cpu.fit(X_, y))
    [trainer] = fake_cuda.trainers
    assert trainer.config["activation"] == activation
    assert trainer.config["leaky_relu_slope"] == slope


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sample_weights_go_to_the_device(fake_cuda, solver):
    cpu, X_, y = make("multiclass", **SOLVERS[solver])
    gpu = make("multiclass", device="cuda", **SOLVERS[solver])[0]
    cpu.fit(X_, y, sample_weight=SAMPLE_WEIGHT)
    assert_same_model(gpu.fit(X_, y, sample_weight=SAMPLE_WEIGHT), cpu)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("task", ["multiclass", "squared_error"])
def test_early_stopping_scores_the_current_weights(fake_cuda, task, solver):
    # Each epoch's score needs that epoch's weights on the host: one download per epoch, and
    # the best epoch's weights restored at the end.
    params = dict(SOLVERS[solver], early_stopping=True, max_iter=12, n_iter_no_change=3)
    cpu, X_, y = make(task, **params)
    gpu = make(task, device="cuda", **params)[0]
    assert_same_model(gpu.fit(X_, y), cpu.fit(X_, y))
    assert fake_cuda.trainers[0].downloads == gpu.n_iter_ + 1


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_moves_between_devices(fake_cuda, solver):
    # Two epochs on the CPU, two on the device, then one on the CPU: the same as five on the
    # CPU, moments and Adam's step count included.
    reference_model, X_, y = make("multiclass", **SOLVERS[solver])
    moved = clone(reference_model)
    classes = np.unique(y)
    for device in ("cpu", "cpu", "cuda", "cuda", "cpu"):
        reference_model.partial_fit(X_, y, classes=classes)
        moved.set_params(device=device).partial_fit(X_, y, classes=classes)
    assert_same_model(moved, reference_model)
    assert len(fake_cuda.trainers) == 2  # one per partial_fit call on the device


def test_warm_start_and_pickle_of_a_device_model(fake_cuda):
    cpu, X_, y = make("squared_error", solver="adam", warm_start=True)
    gpu = make("squared_error", solver="adam", warm_start=True, device="cuda")[0]
    gpu.fit(X_, y)
    gpu = pickle.loads(pickle.dumps(gpu))
    assert gpu.device == "cuda"
    cpu.fit(X_, y)
    assert_same_model(gpu.fit(X_, y), cpu.fit(X_, y))


def test_non_finite_weights_on_the_device_raise_as_on_the_cpu(fake_cuda):
    for device in ("cpu", "cuda"):
        est, X_, y = make("squared_error", solver="sgd", learning_rate_init=10.0, device=device)
        with pytest.raises(ValueError, match="non-finite"):
            est.fit(X_ * 1e200, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_on_the_device_path_is_the_cpu_mlp(fake_cuda, dtype):
    sizes, rng = (6, 8, 3), np.random.RandomState(1)
    Y = rng.uniform(0, 1, (len(X), 3))
    kwargs = dict(output_activation="logistic", loss="log_loss", dtype=dtype, random_state=0)
    cpu = fastmlp.MLP(sizes, activation="tanh", **kwargs)
    gpu = fastmlp.MLP(sizes, activation="tanh", device="cuda", **kwargs)
    assert_array_equal(gpu.forward(X), cpu.forward(X))
    # MLP.backward writes into fresh np.empty_like arrays, wherever NumPy puts them, and the
    # core's last bits depend on that alignment (fastmlp._arrays): equal to a few ulps.
    eps = np.finfo(dtype).eps
    for a, b in zip(gpu.backward(X, Y)[1:], cpu.backward(X, Y)[1:], strict=True):
        for p, q in zip(a, b, strict=True):
            assert_allclose(p, q, rtol=8 * eps, atol=8 * eps * np.abs(q).max())
    gpu.sgd_step(X, Y, learning_rate=0.1)
    cpu.sgd_step(X, Y, learning_rate=0.1)
    for p, q in zip(gpu.coefs + gpu.intercepts, cpu.coefs + cpu.intercepts, strict=True):
        assert_allclose(p, q, rtol=8 * eps, atol=8 * eps * np.abs(q).max())


def test_gpu_benchmark_skips_with_the_reason_without_cuda(without_cuda_build, capsys):
    from fastmlp import _bench_gpu

    assert _bench_gpu.run() is None
    assert f"GPU benchmark skipped: no CUDA device for fastmlp ({BUILT_WITHOUT_CUDA})" in (
        capsys.readouterr().out
    )


def test_gpu_benchmark_runs_through_the_device_path(fake_cuda, monkeypatch, tmp_path, capsys):
    # Tiny workloads through the stand-in module: the table and the JSON, not the speed.
    from fastmlp import _bench_gpu

    tiny = {
        "wide": dict(n_samples=300, n_features=200, hidden=(130,), n_classes=3, batch=64),
        "narrow": dict(n_samples=500, n_features=8, hidden=(16, 16), n_classes=3, batch=100),
    }
    monkeypatch.setattr(_bench_gpu, "GPU_WORKLOADS", tiny)
    options_before = dict(_backend.trainer_options["cuda"])
    results = _bench_gpu.run(repeats=1, out_dir=str(tmp_path))
    out = capsys.readouterr().out
    assert "GPU: Fake GPU" in out
    assert results is not None and (tmp_path / "gpu_results.json").exists()
    # The unfused variant runs only where the fused kernel could apply (widths <= 128).
    assert list(results["workloads"]["wide"]["engines"])[:1] == ["fastmlp"]
    assert "fastmlp-unfused" not in results["workloads"]["wide"]["engines"]
    assert {"fastmlp", "fastmlp-unfused"} <= set(results["workloads"]["narrow"]["engines"])
    fused_flags = [t.fused for t in fake_cuda.trainers]
    assert True in fused_flags and False in fused_flags
    assert _backend.trainer_options["cuda"] == options_before  # restored after the unfused runs


def test_gpu_benchmarks_pytorch_loop_trains(monkeypatch):
    # The PyTorch side of the GPU benchmark, run on the CPU here: it must train, not only run.
    pytest.importorskip("torch", reason="PyTorch is not installed (pip install '.[bench]')")
    from fastmlp import _bench, _bench_gpu

    monkeypatch.setattr(_bench_gpu.TorchCudaEngine, "device", "cpu")
    workload = dict(n_samples=2000, n_features=10, hidden=(32,), n_classes=3, batch=50)
    X_, y = _bench.make_data(workload)
    engine = _bench_gpu.TorchCudaEngine(workload)
    accuracy_before = np.mean(engine.predict(X_).argmax(axis=1) == y)
    engine.fit(X_, y)
    epoch, draw_order = engine.prepare_resident(X_, y)
    assert draw_order is None
    for _ in range(3):
        epoch()
    probabilities = engine.predict(X_)
    assert probabilities.shape == (len(X_), 3)
    assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == y) > max(accuracy_before, 0.8)


# --- 3. on a GPU: the same fits, agreeing to rounding ------------------------------------------

# The GPU's GEMMs and reductions add the same products in another order than Eigen on the CPU
# (blocked over k, split over threads, tree reductions for the bias gradients), so each sum may
# differ by a few units of the last place times the number of terms (here <= 96): ~1e-6
# relative in float32 (eps 6e-8), ~1e-14 in float64 (eps 1e-16). Training feeds these
# differences back through a few dozen updates, which can grow them by an order or two, so the
# models agree to ~1e-4 relative in float32 and ~1e-9 in float64; the atol covers the weights and
# losses that pass near zero.
TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def assert_close_models(gpu, cpu, dtype):
    tolerance = TOLERANCES[dtype]
    assert gpu.n_iter_ == cpu.n_iter_
    for p, q in zip(weights(gpu), weights(cpu), strict=True):
        assert p.dtype == q.dtype == dtype
        assert_allclose(p, q, **tolerance)
    for p, q in zip(moments(gpu), moments(cpu), strict=True):
        assert_allclose(p, q, **tolerance)
    if hasattr(cpu, "loss_curve_"):
        assert_allclose(gpu.loss_curve_, cpu.loss_curve_, **tolerance)
    assert_allclose(gpu.loss_, cpu.loss_, **tolerance)
    expected = outputs(cpu, X.astype(dtype))
    assert_allclose(outputs(gpu, X.astype(dtype)), expected, **tolerance)
    if hasattr(cpu, "classes_"):
        # The same classes, except where the CPU's own probabilities are a near tie.
        margin = np.abs(expected - 0.5) if expected.ndim == 2 and cpu.n_outputs_ > 1 else None
        decided = np.ones(len(X), bool) if margin is None else (margin > 1e-3).all(axis=1)
        assert_array_equal(gpu.predict(X.astype(dtype))[decided], cpu.predict(X)[decided])


# The minibatch solvers with the fully fused kernel for narrow networks allowed and not (the
# networks here are narrow); L-BFGS evaluates full batches, where the flag does not apply.
SOLVER_KERNELS = [(s, f) for s in SOLVERS if s != "lbfgs" for f in (True, False)] + [
    ("lbfgs", True)
]


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "solver,fused",
    SOLVER_KERNELS,
    ids=[f"{s}-{'fused' if f else 'unfused'}" for s, f in SOLVER_KERNELS],
)
@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gpu_fit_matches_cpu_fit(monkeypatch, activation, task, solver, fused, dtype):
    monkeypatch.setitem(_backend.trainer_options["cuda"], "fused", fused)
    params = dict(SOLVERS[solver], activation=activation)
    cpu, X_, y = make(task, dtype, **params)
    gpu = make(task, dtype, device="cuda", **params)[0]
    assert_close_models(gpu.fit(X_, y), cpu.fit(X_, y), dtype)


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "solver,fused",
    SOLVER_KERNELS,
    ids=[f"{s}-{'fused' if f else 'unfused'}" for s, f in SOLVER_KERNELS],
)
@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("activation,slope", NEW_ACTIVATIONS, ids=NEW_IDS)
def test_gpu_fit_matches_cpu_fit_new_activations(
    monkeypatch, activation, slope, task, solver, fused, dtype
):
    # leaky_relu (its slope passed to the kernels), gelu and silu (their pre-activations kept
    # on the device for the derivative), on the fused and the unfused minibatch path.
    monkeypatch.setitem(_backend.trainer_options["cuda"], "fused", fused)
    params = dict(SOLVERS[solver], activation=activation, leaky_relu_slope=slope)
    cpu, X_, y = make(task, dtype, **params)
    gpu = make(task, dtype, device="cuda", **params)[0]
    assert_close_models(gpu.fit(X_, y), cpu.fit(X_, y), dtype)


@requires_gpu
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_gpu_fit_with_sample_weights(solver):
    cpu, X_, y = make("multiclass", **SOLVERS[solver])
    gpu = make("multiclass", device="cuda", **SOLVERS[solver])[0]
    cpu.fit(X_, y, sample_weight=SAMPLE_WEIGHT)
    assert_close_models(gpu.fit(X_, y, sample_weight=SAMPLE_WEIGHT), cpu, np.float64)


@requires_gpu
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("task", ["multiclass", "squared_error"])
def test_gpu_early_stopping(task, solver):
    params = dict(SOLVERS[solver], early_stopping=True, max_iter=12, n_iter_no_change=3)
    cpu, X_, y = make(task, **params)
    gpu = make(task, device="cuda", **params)[0]
    gpu.fit(X_, y)
    cpu.fit(X_, y)
    assert_close_models(gpu, cpu, np.float64)
    assert_allclose(gpu.validation_scores_, cpu.validation_scores_, **TOLERANCES[np.float64])


@requires_gpu
@pytest.mark.parametrize("first", ["cpu", "cuda"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_gpu_partial_fit_continues_cpu_training_and_back(solver, first):
    second = "cuda" if first == "cpu" else "cpu"
    all_cpu, X_, y = make("multiclass", np.float32, **SOLVERS[solver])
    moved = clone(all_cpu)
    classes = np.unique(y)
    for device in (first, first, second, second):
        all_cpu.partial_fit(X_, y, classes=classes)
        moved.set_params(device=device).partial_fit(X_, y, classes=classes)
    assert moved.t_ == all_cpu.t_
    assert_close_models(moved.set_params(device="cpu"), all_cpu, np.float32)


@requires_gpu
def test_gpu_fitted_model_pickles_and_trains_on():
    est, X_, y = make("multilabel", np.float32, solver="adam", device="cuda")
    est.fit(X_, y)
    copy = pickle.loads(pickle.dumps(est))
    assert_array_equal(copy.predict_proba(X_), est.predict_proba(X_))
    est.partial_fit(X_, y)
    copy.partial_fit(X_, y)
    assert_close_models(copy, est, np.float32)
    # and on the CPU, the same model to rounding
    cpu_outputs = copy.set_params(device="cpu").predict_proba(X_)
    assert_allclose(cpu_outputs, est.predict_proba(X_), **TOLERANCES[np.float32])


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "output,loss", [(o, loss) for loss in reference.LOSSES for o in reference.VALID_OUTPUTS[loss]]
)
@pytest.mark.parametrize("activation", reference.HIDDEN_ACTIVATIONS)
def test_gpu_mlp_matches_the_reference(activation, output, loss, dtype):
    sizes, rng = (6, 9, 7, 3), np.random.RandomState(2)
    Y = rng.uniform(0.1, 1, (len(X), 3))
    if output == "softmax":
        Y /= Y.sum(axis=1, keepdims=True)
    kwargs = dict(
        activation=activation, output_activation=output, loss=loss, dtype=dtype, alpha=0.01
    )
    ours = fastmlp.MLP(sizes, random_state=0, device="cuda", **kwargs)
    oracle = reference.MLP(sizes, random_state=0, **kwargs)
    tolerance = TOLERANCES[dtype]
    assert_allclose(ours.forward(X), oracle.forward(X), **tolerance)
    if "step" in (activation, output):
        return  # forward only (no gradient)
    loss_ours, *grads_ours = ours.backward(X, Y, sample_weight=SAMPLE_WEIGHT)
    loss_oracle, *grads_oracle = oracle.backward(X, Y, sample_weight=SAMPLE_WEIGHT)
    assert_allclose(loss_ours, loss_oracle, **tolerance)
    for a, b in zip(grads_ours, grads_oracle, strict=True):
        for p, q in zip(a, b, strict=True):
            assert_allclose(p, q, **tolerance)


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation,slope", NEW_ACTIVATIONS, ids=NEW_IDS)
def test_gpu_mlp_new_activations_match_the_reference(activation, slope, dtype):
    # A non-default slope reaches the kernels: the reference computes with it too.
    sizes, rng = (6, 9, 7, 3), np.random.RandomState(4)
    Y = rng.uniform(-1, 1, (len(X), 3))
    kwargs = dict(activation=activation, dtype=dtype, alpha=0.01, leaky_relu_slope=slope)
    ours = fastmlp.MLP(sizes, random_state=0, device="cuda", **kwargs)
    oracle = reference.MLP(sizes, random_state=0, **kwargs)
    X_ = (3 * X).astype(dtype)  # pre-activations on both sides of 0
    tolerance = TOLERANCES[dtype]
    assert_allclose(ours.forward(X_), oracle.forward(X_), **tolerance)
    loss_ours, *grads_ours = ours.backward(X_, Y, sample_weight=SAMPLE_WEIGHT)
    loss_oracle, *grads_oracle = oracle.backward(X_, Y, sample_weight=SAMPLE_WEIGHT)
    assert_allclose(loss_ours, loss_oracle, **tolerance)
    for a, b in zip(grads_ours, grads_oracle, strict=True):
        for p, q in zip(a, b, strict=True):
            assert_allclose(p, q, **tolerance)


@requires_gpu
@pytest.mark.parametrize("output,loss", [("identity", "squared_error"), ("softmax", "log_loss")])
@pytest.mark.parametrize("activation", ["leaky_relu", "gelu", "silu"])
def test_gpu_gradient_matches_finite_differences(activation, output, loss):
    # The GPU's gradient against central differences of the GPU's own loss (float64), with a
    # non-default slope: the backward pass uses the same slope and pre-activations as the
    # forward pass.
    shape = (3, 6, 5, 3)
    net = fastmlp.MLP(
        shape,
        activation=activation,
        output_activation=output,
        loss=loss,
        random_state=1,
        alpha=0.1,
        leaky_relu_slope=0.2,
        device="cuda",
    )
    rng = np.random.RandomState(3)
    X_ = 2 * rng.normal(size=(11, 3))
    Y = np.eye(3)[rng.randint(3, size=11)] if output == "softmax" else rng.normal(size=(11, 3))
    w = rng.uniform(0.1, 2.0, 11)
    assert_gradients_match_finite_differences(net, X_, Y, w)
