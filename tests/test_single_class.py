"""One class in fit, and a diverging fit: both as scikit-learn does them."""

import warnings

import numpy as np
import pytest
from sklearn import neural_network

import fastmlp

RNG = np.random.RandomState(0)
X = RNG.randn(40, 3)
CLASS_LABELS = [np.full(40, "spam"), np.full(40, 7)]


def _quiet(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit()


@pytest.mark.parametrize("y", CLASS_LABELS, ids=["str", "int"])
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_single_class_fit_is_scikit_learns(y, solver):
    params = dict(hidden_layer_sizes=(5,), solver=solver, random_state=0, max_iter=15)
    ours = _quiet(lambda: fastmlp.MLPClassifier(**params).fit(X, y))
    theirs = _quiet(lambda: neural_network.MLPClassifier(**params).fit(X, y))
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    proba = ours.predict_proba(X)
    assert proba.shape == theirs.predict_proba(X).shape == (40, 2)
    np.testing.assert_allclose(proba, theirs.predict_proba(X), rtol=1e-10, atol=1e-12)
    assert ours.n_outputs_ == 1 and ours.out_activation_ == "logistic"


def test_single_class_partial_fit_is_scikit_learns():
    ours = fastmlp.MLPClassifier((5,), solver="sgd", random_state=0)
    theirs = neural_network.MLPClassifier((5,), solver="sgd", random_state=0)
    for _ in range(3):
        ours.partial_fit(X, CLASS_LABELS[1], classes=[7])
        theirs.partial_fit(X, CLASS_LABELS[1], classes=[7])
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_class_model_saves_converts_and_exports(tmp_path, dtype):
    Xd = X.astype(dtype)
    est = _quiet(
        lambda: fastmlp.MLPClassifier((4,), random_state=0, max_iter=5).fit(Xd, CLASS_LABELS[0])
    )
    path = tmp_path / "one_class.npz"
    est.save(path)
    loaded = fastmlp.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(Xd), est.predict_proba(Xd))
    np.testing.assert_array_equal(loaded.predict(Xd), est.predict(Xd))
    _quiet(lambda: loaded.partial_fit(Xd, CLASS_LABELS[0]))
    converted = est.to_sklearn()
    np.testing.assert_allclose(converted.predict_proba(Xd), est.predict_proba(Xd), atol=1e-6)
    np.testing.assert_array_equal(converted.predict(Xd), est.predict(Xd))
    ort = pytest.importorskip("onnxruntime")
    from fastmlp.onnx import to_onnx

    session = ort.InferenceSession(to_onnx(est, Xd[:1]).SerializeToString())
    labels, proba = session.run(None, {"X": Xd})
    np.testing.assert_array_equal(labels, est.predict(Xd))
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba, est.predict_proba(Xd), atol=1e-6)


# --- divergence --------------------------------------------------------------------------------

DIVERGING = dict(
    hidden_layer_sizes=(20,), activation="identity", solver="sgd", learning_rate_init=1.0,
    max_iter=20, random_state=0,
)  # fmt: skip
X_BIG = RNG.randn(80, 4) * 10
Y_BIG = X_BIG @ np.arange(1.0, 5.0) * 10


def test_diverging_fit_with_early_stopping_keeps_the_best_finite_weights():
    ours = _quiet(lambda: fastmlp.MLPRegressor(early_stopping=True, **DIVERGING).fit(X_BIG, Y_BIG))
    theirs = _quiet(
        lambda: neural_network.MLPRegressor(early_stopping=True, **DIVERGING).fit(X_BIG, Y_BIG)
    )
    assert all(np.isfinite(c).all() for c in ours.coefs_ + ours.intercepts_)
    assert np.isnan(ours.validation_scores_[-1])
    assert isinstance(ours.validation_scores_[-1], float)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_equal(np.isnan(ours.validation_scores_), np.isnan(theirs.validation_scores_))
    for a, b in zip(ours.coefs_, theirs.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert np.isfinite(ours.predict(X_BIG)).all()


@pytest.mark.parametrize("Estimator", [fastmlp.MLPRegressor, fastmlp.MLPClassifier])
def test_diverging_fit_without_early_stopping_raises_scikit_learns_error(Estimator):
    y = Y_BIG if Estimator is fastmlp.MLPRegressor else (Y_BIG > 0)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        _quiet(lambda: Estimator(**{**DIVERGING, "learning_rate_init": 1e6}).fit(X_BIG * 1e150, y))
