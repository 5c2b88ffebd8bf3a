"""ONNX export: fastmlp -> to_sklearn() -> skl2onnx -> onnxruntime gives fastmlp's predictions.

Each test converts a fitted fastmlp estimator twice where it can, with skl2onnx directly on
``est.to_sklearn()`` and with the helper ``fastmlp.onnx.to_onnx``, runs the graph with
onnxruntime and compares with fastmlp's own ``predict_proba`` / ``predict``.

Tolerance. Both sides evaluate the same float32 network: float32 carries 24 bits (eps = 2**-23,
1.2e-7), and the two runtimes differ only in rounding: Eigen's and MLAS's GEMM kernels add
the products of each dot product in different orders, and the exp / tanh / sigmoid / softmax
implementations differ by a few ulp. Over dot products of at most 10 terms of order 1 and two
hidden layers that is a few 1e-7 (measured here: at most 5e-7), so probabilities, which lie
in [0, 1], must agree to ``ATOL_FLOAT32 = 1e-5``: a margin of 20x, yet 100x tighter than what a
real conversion error gives (``test_tolerance_catches_a_small_conversion_error`` shows a
single weight changed by 0.01 moves them by more than 1e-3). Regression outputs are not
bounded, so there the same 1e-5 is relative to the largest output (targets are standardised,
so outputs are of order 1). float64 graphs get 1e-12. Labels are compared exactly, except on
samples whose two top probabilities (or whose probability and the 0.5 threshold, for binary
and multilabel targets) lie within the tolerance, where the two runtimes may legitimately
disagree; the tests check that such near-ties are rare.
"""

import doctest
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import fastmlp
import fastmlp.onnx

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

ATOL_FLOAT32 = 1e-5
ATOL_FLOAT64 = 1e-12
ACTIVATIONS = ["relu", "tanh", "logistic", "identity"]
CONVERTERS = ["skl2onnx", "fastmlp.onnx"]


@pytest.fixture(scope="module")
def skl2onnx():
    pytest.importorskip("onnx", reason="ONNX export needs onnx: pip install 'fastmlp[onnx]'")
    return pytest.importorskip(
        "skl2onnx", reason="ONNX export needs skl2onnx: pip install 'fastmlp[onnx]'"
    )


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip(
        "onnxruntime", reason="running ONNX models needs onnxruntime: pip install onnxruntime"
    )


def _convert(converter, estimator, X_sample, skl2onnx):
    if converter == "fastmlp.onnx":
        return fastmlp.onnx.to_onnx(estimator, X_sample)
    # The plain route: scikit-learn's estimator, straight into skl2onnx.
    return skl2onnx.to_onnx(
        estimator.to_sklearn(), X_sample[:1], options={SklearnMLPClassifier: {"zipmap": False}}
    )


def _run(ort, model, X):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    [input_] = session.get_inputs()
    assert input_.name == "X"
    outputs = session.run(None, {"X": X})
    return {meta.name: value for meta, value in zip(session.get_outputs(), outputs, strict=True)}


def _assert_labels_match(onnx_labels, labels, proba, atol, multilabel=False):
    """Labels equal, except where a near-tie within atol lets the runtimes differ (rare)."""
    onnx_labels = np.asarray(onnx_labels)
    assert onnx_labels.shape == labels.shape
    if multilabel or proba.shape[1] == 2:
        # Thresholded at 0.5 (binary: the positive class's probability).
        p = proba if multilabel else proba[:, 1]
        decided = np.abs(p - 0.5) > atol
    else:
        top2 = np.sort(proba, axis=1)[:, -2:]
        decided = (top2[:, 1] - top2[:, 0]) > atol
    assert decided.mean() >= 0.95, "too many near-ties for the comparison to mean anything"
    assert_array_equal(onnx_labels[decided], labels[decided])


@pytest.fixture(scope="module")
def binary_data():
    X, y = make_classification(
        n_samples=300, n_features=10, n_informative=6, random_state=0, class_sep=1.5
    )
    return X.astype(np.float32), np.where(y == 1, 7, 3)  # labels 3 and 7, not 0 and 1


@pytest.fixture(scope="module")
def multiclass_data():
    X, y = make_classification(
        n_samples=300,
        n_features=10,
        n_informative=6,
        n_classes=4,
        random_state=1,
        class_sep=1.5,
    )
    return X.astype(np.float32), np.array(["ant", "bee", "cat", "dog"])[y]


@pytest.mark.parametrize("converter", CONVERTERS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_classifier_matches_onnxruntime(
    task, activation, converter, binary_data, multiclass_data, skl2onnx, ort
):
    X, y = binary_data if task == "binary" else multiclass_data
    clf = fastmlp.MLPClassifier(
        hidden_layer_sizes=(10, 6),
        activation=activation,
        max_iter=150,
        learning_rate_init=0.01,
        random_state=0,
    ).fit(X, y)
    assert clf.coefs_[0].dtype == np.float32
    assert clf.score(X, y) > 0.7  # a trained model: probabilities far from uniform
    proba, labels = clf.predict_proba(X), clf.predict(X)

    out = _run(ort, _convert(converter, clf, X, skl2onnx), X)

    assert out["probabilities"].dtype == np.float32
    assert out["probabilities"].shape == proba.shape
    assert_allclose(out["probabilities"], proba, rtol=0, atol=ATOL_FLOAT32)
    _assert_labels_match(out["label"], labels, proba, ATOL_FLOAT32)


def test_multilabel_classifier_matches_onnxruntime(skl2onnx, ort):
    X, Y = make_multilabel_classification(n_samples=200, n_features=8, n_classes=3, random_state=0)
    X = X.astype(np.float32)
    clf = fastmlp.MLPClassifier((12,), max_iter=200, random_state=0).fit(X, Y)
    proba, labels = clf.predict_proba(X), clf.predict(X)
    for converter in CONVERTERS:
        out = _run(ort, _convert(converter, clf, X, skl2onnx), X)
        assert_allclose(out["probabilities"], proba, rtol=0, atol=ATOL_FLOAT32)
        _assert_labels_match(out["label"], labels, proba, ATOL_FLOAT32, multilabel=True)


def test_float64_model_gives_a_float64_graph(multiclass_data, skl2onnx, ort):
    X, y = multiclass_data
    X = X.astype(np.float64)
    clf = fastmlp.MLPClassifier((10,), activation="tanh", max_iter=100, random_state=0).fit(X, y)
    for converter in CONVERTERS:
        out = _run(ort, _convert(converter, clf, X, skl2onnx), X)
        assert out["probabilities"].dtype == np.float64
        assert_allclose(out["probabilities"], clf.predict_proba(X), rtol=0, atol=ATOL_FLOAT64)
        _assert_labels_match(out["label"], clf.predict(X), clf.predict_proba(X), ATOL_FLOAT64)


def _regression_data(n_targets):
    X, y = make_regression(n_samples=300, n_features=6, n_targets=n_targets, random_state=0)
    y = (y - y.mean(axis=0)) / y.std(axis=0)  # outputs of order 1: see the module's docstring
    return X.astype(np.float32), y


def _assert_regression_matches(out, expected, atol):
    expected = expected.reshape(len(expected), -1)  # ONNX gives (n_samples, n_outputs)
    assert out.shape == expected.shape
    assert_allclose(out, expected, rtol=0, atol=atol * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("converter", CONVERTERS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_regressor_matches_onnxruntime(activation, converter, skl2onnx, ort):
    X, y = _regression_data(1)
    reg = fastmlp.MLPRegressor(
        hidden_layer_sizes=(10, 6),
        activation=activation,
        max_iter=100,
        learning_rate_init=0.01,
        random_state=0,
    ).fit(X, y)
    assert reg.score(X, y) > 0.5
    out = _run(ort, _convert(converter, reg, X, skl2onnx), X)["variable"]
    assert out.dtype == np.float32
    _assert_regression_matches(out, reg.predict(X), ATOL_FLOAT32)


def test_multi_output_regressor_keeps_its_outputs_apart(skl2onnx, ort):
    # skl2onnx alone returns shape (n_samples * n_outputs, 1); the helper fixes the shape.
    X, Y = _regression_data(3)
    reg = fastmlp.MLPRegressor(hidden_layer_sizes=(12,), max_iter=100, random_state=0).fit(X, Y)
    model = fastmlp.onnx.to_onnx(reg, X[:5])
    out = _run(ort, model, X)["variable"]
    assert out.shape == (len(X), 3)
    _assert_regression_matches(out, reg.predict(X), ATOL_FLOAT32)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [0, 3]  # (batch, 3) declared in the graph


@pytest.mark.parametrize("n_targets", [1, 2])
def test_poisson_regressor_gets_its_exp_output(n_targets, skl2onnx, ort):
    X, _ = _regression_data(1)
    rng = np.random.RandomState(0)
    rate = np.exp(0.3 * X[:, :n_targets] + 0.5)
    y = rng.poisson(rate).astype(np.float64)
    reg = fastmlp.MLPRegressor(
        loss="poisson", hidden_layer_sizes=(8,), max_iter=100, random_state=0
    ).fit(X, y if n_targets > 1 else y.ravel())
    assert reg.out_activation_ == "exp"
    out = _run(ort, fastmlp.onnx.to_onnx(reg, X), X)["variable"]
    _assert_regression_matches(out, reg.predict(X), ATOL_FLOAT32)
    assert reg.out_activation_ == "exp"  # the estimator itself is left alone


def test_pipeline_with_scaler_converts(multiclass_data, skl2onnx, ort):
    X, y = multiclass_data
    X = X * 50 + 10  # badly scaled: the scaler matters
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", fastmlp.MLPClassifier((16,), max_iter=100, random_state=0)),
        ]
    ).fit(X, y)
    out = _run(ort, fastmlp.onnx.to_onnx(pipe, X[:3]), X)
    assert_allclose(out["probabilities"], pipe.predict_proba(X), rtol=0, atol=ATOL_FLOAT32)
    _assert_labels_match(out["label"], pipe.predict(X), pipe.predict_proba(X), ATOL_FLOAT32)
    assert type(pipe.named_steps["mlp"]) is fastmlp.MLPClassifier  # the caller's is unchanged


def test_tolerance_catches_a_small_conversion_error(multiclass_data, skl2onnx, ort):
    # The tolerance is tight enough to catch a tiny mistake: one weight off by 0.01.
    X, y = multiclass_data
    clf = fastmlp.MLPClassifier((10,), max_iter=100, random_state=0).fit(X, y)
    wrong = fastmlp.from_sklearn(clf.to_sklearn())
    wrong.coefs_[0][0, 0] += 0.01
    out = _run(ort, fastmlp.onnx.to_onnx(wrong, X), X)
    assert np.abs(out["probabilities"] - clf.predict_proba(X)).max() > 100 * ATOL_FLOAT32


def test_helper_refuses_what_it_cannot_convert(binary_data, skl2onnx):
    X, y = binary_data
    with pytest.raises(NotFittedError):
        fastmlp.onnx.to_onnx(fastmlp.MLPClassifier(), X)
    clf = fastmlp.MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="float32 or float64"):
        fastmlp.onnx.to_onnx(clf, X.astype(np.int64))
    with pytest.raises(ValueError, match="2-D"):
        fastmlp.onnx.to_onnx(clf, X[0])


def test_helper_without_skl2onnx_names_the_extra(binary_data, monkeypatch):
    # Runs with or without skl2onnx installed: a None entry makes its import fail.
    X, y = binary_data
    clf = fastmlp.MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[onnx\]"'):
        fastmlp.onnx.to_onnx(clf, X)


def test_helper_docstring_example_runs(skl2onnx, ort):
    result = doctest.testmod(fastmlp.onnx, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
