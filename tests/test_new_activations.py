"""The hidden activations leaky_relu, gelu and silu (issue #16): the core against the NumPy
reference and finite differences, the estimators (fit, save/load, pickle), bad slopes,
to_sklearn's refusal, the ONNX export, and the device path (the GPU's own tests are in
tests/test_cuda.py and tests/test_cuda_module.py)."""

import pickle

import numpy as np
import pytest
from core_calls import train_epoch
from gradient_check import assert_gradients_match_finite_differences
from numpy.testing import assert_allclose

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, _core, reference

NEW = ("leaky_relu", "gelu", "silu")
SHAPES = ((4, 5, 2), (3, 7, 6, 2))
RTOL = {"float64": 1e-10, "float32": 1e-4}


def assert_close(actual, expected, rtol):
    scale = max(np.abs(expected).max(), 1e-12)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def data(shape, dtype, seed=0, n=23):
    rng = np.random.RandomState(seed)
    X = (2 * rng.normal(size=(n, shape[0]))).astype(dtype)
    Y = rng.normal(size=(n, shape[-1])).astype(dtype)
    return X, Y, rng.uniform(0.1, 2.0, n).astype(dtype)


def pair(shape, activation, dtype, slope=0.01, seed=0, **kw):
    kwargs = dict(activation=activation, dtype=dtype, random_state=seed, alpha=0.01, **kw)
    return (
        fastmlp.MLP(shape, leaky_relu_slope=slope, **kwargs),
        reference.MLP(shape, leaky_relu_slope=slope, **kwargs),
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "activation,slope", [("leaky_relu", 0.01), ("leaky_relu", 0.3), ("gelu", 0.01), ("silu", 0.01)]
)
def test_forward_and_backward_match_the_reference(activation, slope, shape, dtype):
    ours, oracle = pair(shape, activation, dtype, slope)
    X, Y, w = data(shape, dtype)
    assert_close(ours.forward(X), oracle.forward(X), RTOL[dtype])
    loss, cg, ig = ours.backward(X, Y, w)
    loss_ref, cg_ref, ig_ref = oracle.backward(X, Y, w)
    assert_close(loss, loss_ref, RTOL[dtype])
    for a, b in zip(cg + ig, cg_ref + ig_ref, strict=True):
        assert a.dtype == np.dtype(dtype)
        assert_close(a, b, RTOL[dtype])


@pytest.mark.parametrize("output,loss", [("identity", "squared_error"), ("softmax", "log_loss")])
@pytest.mark.parametrize("activation", NEW)
def test_gradient_matches_finite_differences(activation, output, loss):
    shape = (3, 6, 5, 3)
    net = fastmlp.MLP(
        shape,
        activation=activation,
        output_activation=output,
        loss=loss,
        random_state=1,
        alpha=0.1,
        leaky_relu_slope=0.2,
    )
    X, Y, w = data(shape, "float64", seed=3, n=11)
    if output == "softmax":
        Y = np.eye(3)[np.random.RandomState(0).randint(3, size=11)]
    assert_gradients_match_finite_differences(net, X, Y, w)


def test_derivatives_of_the_reference_match_finite_differences():
    a = np.linspace(-6, 6, 241)
    for activation in NEW:
        for slope in (0.01, 0.5):
            z = reference.activate(activation, a, slope)
            numeric = (
                reference.activate(activation, a + 1e-6, slope)
                - reference.activate(activation, a - 1e-6, slope)
            ) / 2e-6
            exact = reference.derivative(activation, z, a, slope)
            mask = np.abs(a) > 1e-3  # leaky_relu's kink
            assert_allclose(exact[mask], numeric[mask], atol=1e-7)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", NEW)
def test_core_trainer_epoch_matches_reference_steps(activation, dtype):
    shape = (4, 8, 6, 2)
    ours, oracle = pair(shape, activation, dtype, slope=0.1)
    X, Y, _ = data(shape, dtype, n=40)
    coefs = [c.copy() for c in ours.coefs]
    intercepts = [b.copy() for b in ours.intercepts]
    first = [np.zeros_like(p) for p in coefs + intercepts]
    lr, batch = 0.05, 10
    order = np.arange(len(X), dtype=np.int64)
    loss_sum, t = train_epoch(
        _core.module,
        X,
        Y,
        None,
        order,
        batch,
        coefs,
        intercepts,
        first,
        [],
        activation,
        "identity",
        "squared_error",
        0.01,
        learning_rate=lr,
        t=0,
        solver="sgd",
        momentum=0.0,
        nesterov=False,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        leaky_relu_slope=0.1,
    )
    expected = 0.0
    for start in range(0, len(X), batch):
        expected += oracle.sgd_step(X[start : start + batch], Y[start : start + batch], lr) * batch
    assert_close(loss_sum, expected, RTOL[dtype] * 10)
    for a, b in zip(coefs + intercepts, oracle.coefs + oracle.intercepts, strict=True):
        assert_close(a, b, RTOL[dtype] * 10)


def test_slope_changes_leaky_relu_only():
    X, _, _ = data((4, 5, 2), "float64")
    outs = {
        s: fastmlp.MLP(
            (4, 5, 2), activation="leaky_relu", random_state=0, leaky_relu_slope=s
        ).forward(X)
        for s in (0.01, 0.5)
    }
    assert not np.allclose(outs[0.01], outs[0.5])
    relu = [
        fastmlp.MLP((4, 5, 2), random_state=0, leaky_relu_slope=s).forward(X) for s in (0.01, 0.5)
    ]
    assert_allclose(relu[0], relu[1], rtol=0, atol=0)


@pytest.mark.parametrize("bad", [0, -0.1, np.inf, np.nan])
def test_bad_slopes_are_rejected(bad):
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    with pytest.raises(ValueError, match="leaky_relu_slope"):
        MLPClassifier(leaky_relu_slope=bad, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="leaky_relu_slope"):
        fastmlp.MLP((3, 2), leaky_relu_slope=bad)
    with pytest.raises(ValueError, match="leaky_relu_slope"):
        reference.MLP((3, 2), leaky_relu_slope=bad)
    net = fastmlp.MLP((3, 4, 2), activation="leaky_relu")
    with pytest.raises(ValueError, match="leaky_relu_slope"):
        _core.module.forward(
            X, net.coefs, net.intercepts, "leaky_relu", "identity", leaky_relu_slope=bad
        )


def test_bad_activation_message_is_sklearn_style():
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    with pytest.raises(ValueError, match="'activation' parameter of MLPClassifier must be"):
        MLPClassifier(activation="swish").fit(X, y)
    net = fastmlp.MLP((3, 4, 2))
    with pytest.raises(ValueError, match="hidden activation"):
        _core.module.forward(X, net.coefs, net.intercepts, "relu", "gelu")
    with pytest.raises(ValueError):
        fastmlp.MLP((3, 2), output_activation="silu")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("activation", NEW)
@pytest.mark.parametrize("solver", ["adam", "lbfgs", "sgd"])
def test_estimators_fit_predict_save_load_pickle(activation, solver, tmp_path):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
    clf = MLPClassifier(
        (8,),
        activation=activation,
        solver=solver,
        leaky_relu_slope=0.2,
        max_iter=60,
        learning_rate_init=0.05,
        random_state=0,
    ).fit(X, y)
    assert clf.score(X, y) > 0.6
    reg = MLPRegressor(
        hidden_layer_sizes=(8,),
        activation=activation,
        solver=solver,
        leaky_relu_slope=0.2,
        max_iter=30,
        random_state=0,
    ).fit(X, X[:, 0])
    for est in (clf, reg):
        path = tmp_path / f"{type(est).__name__}.fastmlp"
        est.save(path)
        loaded = fastmlp.load(path)
        assert loaded.get_params()["leaky_relu_slope"] == 0.2
        assert loaded.activation == activation
        assert_allclose(loaded.predict(X), est.predict(X), rtol=0, atol=0)
        again = pickle.loads(pickle.dumps(est))
        assert_allclose(again.predict(X), est.predict(X), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_matches_reference_forward():
    X = np.random.RandomState(0).normal(size=(30, 4))
    reg = MLPRegressor(
        hidden_layer_sizes=(6, 5), activation="gelu", max_iter=5, random_state=0
    ).fit(X, X[:, 0])
    oracle = reference.MLP((4, 6, 5, 1), activation="gelu")
    oracle.coefs, oracle.intercepts = reg.coefs_, reg.intercepts_
    assert_allclose(reg.predict(X), oracle.forward(X).ravel(), rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_defaults_unchanged_and_to_sklearn():
    X = np.random.RandomState(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = MLPClassifier((5,), max_iter=20, random_state=0).fit(X, y)
    assert clf.get_params()["leaky_relu_slope"] == 0.01
    sk = clf.to_sklearn()
    assert "leaky_relu_slope" not in sk.get_params()
    assert_allclose(sk.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    for activation in NEW:
        est = MLPClassifier((5,), activation=activation, max_iter=5, random_state=0).fit(X, y)
        with pytest.raises(ValueError, match=f"activation='{activation}' has no counterpart"):
            est.to_sklearn()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("activation", NEW)
def test_device_cuda_takes_the_new_activations(activation, monkeypatch):
    # The GPU computes them too (on a GPU, tests/test_cuda.py and tests/test_cuda_module.py
    # hold its kernels to the CPU, the reference and finite differences). Here, without one,
    # the device path through the CPU-computing stand-in module: nothing refuses them on the
    # way, and the slope goes along.
    from fake_cuda_core import FakeCudaCore

    from fastmlp import _cuda

    fake = FakeCudaCore()
    monkeypatch.setattr(_cuda, "cuda_core", fake)
    monkeypatch.setattr(_cuda, "import_problem", None)
    X, Y, _ = data((4, 2), "float64", seed=5, n=40)
    kwargs = dict(activation=activation, leaky_relu_slope=0.3, max_iter=5, random_state=0)
    cpu = MLPRegressor(hidden_layer_sizes=(6,), **kwargs).fit(X, Y)
    gpu = MLPRegressor(hidden_layer_sizes=(6,), device="cuda", **kwargs).fit(X, Y)
    for a, b in zip(gpu.coefs_ + gpu.intercepts_, cpu.coefs_ + cpu.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(gpu.predict(X), cpu.predict(X))
    [trainer] = fake.trainers
    assert (trainer.config["activation"], trainer.config["leaky_relu_slope"]) == (activation, 0.3)
    net = fastmlp.MLP((4, 5, 2), activation=activation, leaky_relu_slope=0.3, random_state=0)
    on_gpu = fastmlp.MLP(
        (4, 5, 2), activation=activation, leaky_relu_slope=0.3, random_state=0, device="cuda"
    )
    np.testing.assert_array_equal(on_gpu.forward(X), net.forward(X))
    assert fake.forward_calls > 0


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", NEW)
def test_onnx_export_matches(activation, dtype):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from fastmlp.onnx import to_onnx

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4)).astype(dtype)
    y = (X[:, 0] - X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    clf = MLPClassifier(
        (7, 5), activation=activation, leaky_relu_slope=0.3, max_iter=40, random_state=0
    ).fit(X, y)
    reg = MLPRegressor(
        hidden_layer_sizes=(6,),
        activation=activation,
        leaky_relu_slope=0.3,
        max_iter=40,
        random_state=0,
    ).fit(X, X[:, :2])
    # float64 gelu: the graph's Erf runs in float32 (see fastmlp.onnx).
    atol = 1e-5 if dtype == np.float32 else 1e-6 if activation == "gelu" else 1e-10
    model = to_onnx(clf, X[:1])
    session = onnxruntime.InferenceSession(model.SerializeToString())
    labels, proba = session.run(None, {"X": X})
    assert_allclose(proba, clf.predict_proba(X), atol=atol)
    np.testing.assert_array_equal(labels, clf.predict(X))
    model = to_onnx(reg, X[:1])
    session = onnxruntime.InferenceSession(model.SerializeToString())
    (out,) = session.run(None, {"X": X})
    assert_allclose(out, reg.predict(X), atol=atol * 10)
    assert clf.activation == activation  # the caller's estimator is untouched
