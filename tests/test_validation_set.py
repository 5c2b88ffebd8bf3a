"""fit(X, y, X_val=, y_val=, sample_weight_val=): early stopping on one's own validation set
(scikit-learn issue 18748, as HistGradientBoosting takes it), and validation_loss_curve_ (issue
18507) whenever early stopping runs."""

import warnings

import numpy as np
import pytest
from sklearn import neural_network
from sklearn.datasets import make_classification, make_regression

import fastmlp

X, Y = make_classification(150, n_features=6, n_classes=3, n_informative=4, random_state=0)
XR, YR = make_regression(150, n_features=6, random_state=0)
PARAMS = dict(hidden_layer_sizes=(8,), max_iter=6, random_state=0, n_iter_no_change=100)


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(*args, **kwargs)


def _sklearn_loss(est, X_val, Y_val, w_val=None):
    """The oracle: scikit-learn's own loss for fastmlp's weights (same model, same numbers)."""
    theirs = est.to_sklearn()
    n = est.n_layers_ - 1
    lists = ([X_val] + [None] * n, [None] * n, [None] * n, [None] * n)
    return neural_network.MLPClassifier._backprop(theirs, X_val, Y_val, w_val, *lists)[0]


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_given_validation_set_trains_on_all_of_X_and_scores_on_it(solver):
    X_train, y_train, X_val, y_val = X[:120], Y[:120], X[120:], Y[120:]
    ours = _fit(
        fastmlp.MLPClassifier(solver=solver, early_stopping=True, **PARAMS),
        X_train,
        y_train,
        X_val=X_val,
        y_val=y_val,
    )
    # No split: training is exactly the fit without early stopping (same random stream).
    plain = _fit(fastmlp.MLPClassifier(solver=solver, **PARAMS), X_train, y_train)
    assert ours.loss_curve_ == plain.loss_curve_
    assert len(ours.validation_scores_) == len(ours.validation_loss_curve_) == ours.n_iter_
    # After a single epoch, the best weights are that epoch's: its score and loss are theirs.
    one = _fit(
        fastmlp.MLPClassifier(solver=solver, early_stopping=True, **{**PARAMS, "max_iter": 1}),
        X_train,
        y_train,
        X_val=X_val,
        y_val=y_val,
    )
    assert one.validation_scores_ == [one.score(X_val, y_val)]
    Y_val = one._label_binarizer.transform(y_val)
    np.testing.assert_allclose(
        one.validation_loss_curve_[0], _sklearn_loss(one, X_val, Y_val), rtol=1e-12
    )


def test_sample_weight_val_weighs_the_score_and_loss():
    w_val = np.random.RandomState(0).rand(30)
    est = _fit(
        fastmlp.MLPClassifier(early_stopping=True, **{**PARAMS, "max_iter": 1}),
        X[:120],
        Y[:120],
        X_val=X[120:],
        y_val=Y[120:],
        sample_weight_val=w_val,
    )
    assert est.validation_scores_ == [est.score(X[120:], Y[120:], sample_weight=w_val)]
    Y_val = est._label_binarizer.transform(Y[120:])
    np.testing.assert_allclose(
        est.validation_loss_curve_[0], _sklearn_loss(est, X[120:], Y_val, w_val), rtol=1e-12
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regressor_validation_set(dtype):
    est = _fit(
        fastmlp.MLPRegressor(early_stopping=True, **PARAMS),
        XR[:120].astype(dtype),
        YR[:120],
        X_val=XR[120:],
        y_val=YR[120:],
    )
    assert len(est.validation_loss_curve_) == est.n_iter_
    assert all(np.isfinite(est.validation_loss_curve_))
    assert est.coefs_[0].dtype == dtype


def test_internal_split_records_the_validation_loss_too_and_matches_scikit_learn():
    ours = _fit(fastmlp.MLPClassifier(early_stopping=True, **PARAMS), X, Y)
    theirs = _fit(neural_network.MLPClassifier(early_stopping=True, **PARAMS), X, Y)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    assert len(ours.validation_loss_curve_) == ours.n_iter_
    assert _fit(fastmlp.MLPClassifier(**PARAMS), X, Y).validation_loss_curve_ is None


def test_validation_loss_curve_survives_save_and_conversion(tmp_path):
    est = _fit(fastmlp.MLPClassifier(early_stopping=True, **PARAMS), X, Y)
    est.save(tmp_path / "m.npz")
    assert fastmlp.load(tmp_path / "m.npz").validation_loss_curve_ == est.validation_loss_curve_
    assert (
        fastmlp.from_sklearn(est.to_sklearn()).validation_loss_curve_ == est.validation_loss_curve_
    )


@pytest.mark.parametrize(
    ("kwargs", "params", "match"),
    [
        (dict(X_val=X[:5]), {}, "X_val is provided, but y_val was not provided."),
        (dict(y_val=Y[:5]), {}, "y_val is provided, but X_val was not provided."),
        (
            dict(X_val=X[:5], y_val=Y[:5]),
            {"early_stopping": False},
            "X_val and y_val are passed to fit while at the same time early_stopping is False",
        ),
        (
            dict(X_val=X[:5, :4], y_val=Y[:5]),
            {},
            "X has 4 features, but MLPClassifier is expecting 6",
        ),
        (
            dict(X_val=X[:5], y_val=Y[:5] + 10),
            {},
            r"y_val contains previously unseen labels: \[10",
        ),
        (dict(X_val=X[:5], y_val=Y[:4]), {}, "inconsistent numbers of samples"),
        (dict(X_val=X[:5], y_val=Y[:5], sample_weight_val=np.ones(3)), {}, "sample_weight"),
        (dict(X_val=X[:5], y_val=Y[:5]), {"solver": "lbfgs"}, "'lbfgs' solver does not"),
    ],
)
def test_bad_validation_sets_are_refused(kwargs, params, match):
    est = fastmlp.MLPClassifier(**{**PARAMS, "early_stopping": True, **params})
    with pytest.raises(ValueError, match=match):
        est.fit(X, Y, **kwargs)


def test_partial_fit_takes_no_validation_set():
    with pytest.raises(TypeError):
        fastmlp.MLPClassifier().partial_fit(X, Y, classes=[0, 1, 2], X_val=X, y_val=Y)
