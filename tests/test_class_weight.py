"""MLPClassifier(class_weight=...): the sample weights times each sample's class weight, as in
scikit-learn's other classifiers (scikit-learn issue 9113)."""

import warnings

import numpy as np
import pytest
from sklearn import neural_network
from sklearn.datasets import make_classification
from sklearn.utils.class_weight import compute_sample_weight

import fastmlp

X, Y_BIN = make_classification(120, n_features=5, weights=[0.8, 0.2], random_state=0)
Y_MULTI = np.random.RandomState(0).choice(["a", "b", "c"], 120, p=[0.6, 0.3, 0.1])
PARAMS = dict(hidden_layer_sizes=(6,), max_iter=8, random_state=0)


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(*args, **kwargs)


@pytest.mark.parametrize("y", [Y_BIN, Y_MULTI], ids=["binary", "multiclass"])
@pytest.mark.parametrize("class_weight", ["balanced", "dict"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_class_weight_is_sample_weight_times_class_weight(y, class_weight, solver):
    if class_weight == "dict":
        class_weight = {label: 1.0 + i for i, label in enumerate(np.unique(y))}
    base = np.random.RandomState(1).rand(len(y)) + 0.5
    weighted = _fit(
        fastmlp.MLPClassifier(solver=solver, class_weight=class_weight, **PARAMS), X, y, base
    )
    # The oracle: scikit-learn's MLP given the product as sample weights.
    sample_weight = base * compute_sample_weight(class_weight, y)
    theirs = _fit(neural_network.MLPClassifier(solver=solver, **PARAMS), X, y, sample_weight)
    for a, b in zip(weighted.coefs_, theirs.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)
    assert weighted.loss_ == pytest.approx(theirs.loss_, rel=1e-9)


def test_default_changes_nothing_and_to_sklearn_drops_it():
    plain = _fit(fastmlp.MLPClassifier(**PARAMS), X, Y_BIN)
    none = _fit(fastmlp.MLPClassifier(class_weight=None, **PARAMS), X, Y_BIN)
    for a, b in zip(plain.coefs_, none.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    weighted = _fit(fastmlp.MLPClassifier(class_weight="balanced", **PARAMS), X, Y_BIN)
    converted = weighted.to_sklearn()
    assert "class_weight" not in converted.get_params()
    np.testing.assert_allclose(converted.predict_proba(X), weighted.predict_proba(X))


def test_class_weight_gradient_by_finite_differences():
    est = _fit(fastmlp.MLPClassifier(solver="lbfgs", class_weight={"a": 3.0, "c": 0.5},
                                     hidden_layer_sizes=(4,), max_iter=2, random_state=0),
               X[:30], Y_MULTI[:30])  # fmt: skip
    Y = est._label_binarizer.transform(Y_MULTI[:30]).astype(float)
    sw = est._weighted_samples(Y, None, incremental=False)
    np.testing.assert_array_equal(sw, np.select([Y_MULTI[:30] == "a", Y_MULTI[:30] == "c"],
                                                [3.0, 0.5], 1.0))  # fmt: skip
    n = est.n_layers_ - 1
    lists = ([X[:30]] + [None] * n, [None] * n, [None] * n, [None] * n)
    theta = np.hstack([p.ravel() for p in est.coefs_ + est.intercepts_])
    _, grad = est._loss_grad_lbfgs(theta, X[:30], Y, sw, *lists)
    eps = 1e-6
    numeric = np.empty_like(theta)
    for i in range(len(theta)):
        step = np.zeros_like(theta)
        step[i] = eps
        up = est._loss_grad_lbfgs(theta + step, X[:30], Y, sw, *lists)[0]
        down = est._loss_grad_lbfgs(theta - step, X[:30], Y, sw, *lists)[0]
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_partial_fit_takes_a_dict_and_refuses_balanced():
    est = fastmlp.MLPClassifier(solver="sgd", class_weight={0: 2.0}, **PARAMS)
    est.partial_fit(X, Y_BIN, classes=[0, 1])
    theirs = neural_network.MLPClassifier(solver="sgd", **PARAMS)
    theirs.partial_fit(X, Y_BIN, classes=[0, 1], sample_weight=np.where(Y_BIN == 0, 2.0, 1.0))
    np.testing.assert_allclose(est.coefs_[0], theirs.coefs_[0], rtol=1e-10)
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        fastmlp.MLPClassifier(class_weight="balanced").partial_fit(X, Y_BIN, classes=[0, 1])


@pytest.mark.parametrize(
    ("class_weight", "match"),
    [
        ({0: 1.0, 7: 2.0}, r"The classes, \[7\], in class_weight are not among the classes"),
        ("heavy", "The 'class_weight' parameter of MLPClassifier must be"),
        ([1.0, 2.0], "The 'class_weight' parameter of MLPClassifier must be"),
    ],
)
def test_bad_class_weight_is_refused(class_weight, match):
    with pytest.raises(ValueError, match=match):
        fastmlp.MLPClassifier(class_weight=class_weight).fit(X, Y_BIN)


def test_multilabel_targets_refuse_class_weight():
    Y = np.column_stack([Y_BIN, 1 - Y_BIN])
    with pytest.raises(ValueError, match="multilabel"):
        fastmlp.MLPClassifier(class_weight="balanced").fit(X, Y)


def test_saved_model_keeps_class_weight(tmp_path):
    est = _fit(fastmlp.MLPClassifier(class_weight={0: 2.0, 1: 0.5}, **PARAMS), X, Y_BIN)
    est.save(tmp_path / "m.npz")
    loaded = fastmlp.load(tmp_path / "m.npz")
    assert loaded.class_weight == {0: 2.0, 1: 0.5}
    assert type(next(iter(loaded.class_weight))) is int
    est = _fit(fastmlp.MLPClassifier(class_weight={"a": 2.0}, **PARAMS), X, Y_MULTI)
    est.save(tmp_path / "s.npz")
    assert fastmlp.load(tmp_path / "s.npz").class_weight == {"a": 2.0}
