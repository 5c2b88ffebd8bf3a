"""fastmlp.plotting: what is drawn, the errors, and the message when matplotlib is missing."""

import doctest
import importlib
import re
import sys
import warnings

import matplotlib  # the "plot" extra, which the "test" extra includes
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

import fastmlp
from fastmlp import plotting

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _blobs(n_per_class=20, seed=0):
    """Three separable clusters in the plane, labels 0, 1, 2."""
    rng = np.random.RandomState(seed)
    centers = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    X = np.vstack([c + 0.4 * rng.randn(n_per_class, 2) for c in centers])
    y = np.repeat([0, 1, 2], n_per_class)
    return X, y


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


# ---------------------------------------------------------------- plot_loss_curve


def test_loss_curve_draws_loss_curve_against_epochs():
    X, y = _blobs()
    clf = _fit(fastmlp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=15, random_state=0), X, y)
    ax = plotting.plot_loss_curve(clf)
    assert len(ax.figure.axes) == 1  # no early stopping: no validation axis
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 16))
    np.testing.assert_array_equal(line.get_ydata(), clf.loss_curve_)
    assert ax.get_xlabel() == "epoch"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training loss"]


def test_loss_curve_draws_validation_scores_on_twin_axis():
    X, y = _blobs(n_per_class=40)
    clf = _fit(
        fastmlp.MLPClassifier(
            hidden_layer_sizes=(5,),
            max_iter=30,
            early_stopping=True,
            n_iter_no_change=100,
            random_state=0,
        ),
        X,
        y,
    )
    assert len(clf.validation_scores_) == clf.n_iter_ == 30
    ax = plotting.plot_loss_curve(clf)
    main, twin = ax.figure.axes
    assert main is ax
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), clf.loss_curve_)
    (score_line,) = twin.lines
    np.testing.assert_array_equal(score_line.get_xdata(), np.arange(1, 31))
    np.testing.assert_array_equal(score_line.get_ydata(), clf.validation_scores_)
    assert twin.get_ylabel() == "validation accuracy"
    # One legend naming both lines (on the twin axis, which is drawn over the first).
    assert [t.get_text() for t in twin.get_legend().get_texts()] == [
        "training loss",
        "validation accuracy",
    ]


def test_loss_curve_of_regressor_labels_r2_and_uses_given_axes():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, (60, 2))
    y = X[:, 0] - 2 * X[:, 1]
    reg = _fit(
        fastmlp.MLPRegressor(
            hidden_layer_sizes=(4,), max_iter=12, early_stopping=True, random_state=0
        ),
        X,
        y,
    )
    fig, (left, right) = plt.subplots(1, 2)
    ax = plotting.plot_loss_curve(reg, ax=right)
    assert ax is right and not left.lines
    np.testing.assert_array_equal(right.lines[0].get_ydata(), reg.loss_curve_)
    assert fig.axes[-1].get_ylabel() == "validation R²"
    np.testing.assert_array_equal(fig.axes[-1].lines[0].get_ydata(), reg.validation_scores_)


def test_loss_curve_accepts_scikit_learns_estimator():
    X, y = _blobs()
    clf = _fit(SklearnMLPClassifier(hidden_layer_sizes=(5,), max_iter=7, random_state=0), X, y)
    ax = plotting.plot_loss_curve(clf)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), clf.loss_curve_)


def test_loss_curve_of_lbfgs_fit_is_a_clear_error():
    X, y = _blobs()
    clf = _fit(
        fastmlp.MLPClassifier(
            hidden_layer_sizes=(5,), solver="lbfgs", max_iter=20, random_state=0
        ),
        X,
        y,
    )
    with pytest.raises(ValueError, match=r"no loss_curve_ .*solver='lbfgs'.*'adam' or 'sgd'"):
        plotting.plot_loss_curve(clf)


def test_loss_curve_of_unfitted_estimator_is_a_clear_error():
    with pytest.raises(NotFittedError, match="not fitted"):
        plotting.plot_loss_curve(fastmlp.MLPRegressor())
    assert not plt.get_fignums()  # failed before making a figure


# ---------------------------------------------------------------- plot_decision_regions


class _Quadrants(ClassifierMixin, BaseEstimator):
    """A classifier whose regions are known: the quadrant, 'a' to 'd', around (1, 2)."""

    def fit(self, X, y):
        self.classes_ = np.array(["a", "b", "c", "d"])
        self.n_features_in_ = 2
        return self

    def predict(self, X):
        X = np.asarray(X)
        return self.classes_[(X[:, 0] > 1).astype(int) + 2 * (X[:, 1] > 2)]


def _pixel(image, x0, x1):
    """The value of ``image`` (an AxesImage, origin lower) at the data point (x0, x1)."""
    left, right, bottom, top = image.get_extent()
    array = image.get_array()
    rows, cols = array.shape
    col = int((x0 - left) / (right - left) * cols)
    row = int((x1 - bottom) / (top - bottom) * rows)
    return array[row, col]


def test_decision_regions_image_shows_the_predicted_class_where_it_is_predicted():
    X = np.array([[-1.0, 0.0], [3.0, 0.0], [-1.0, 4.0], [3.0, 4.0], [0.0, 1.0]])
    y = np.array(["a", "b", "c", "d", "a"])
    clf = _Quadrants().fit(X, y)
    ax = plotting.plot_decision_regions(clf, X, y, resolution=41)
    (image,) = ax.images
    assert image.get_array().shape == (41, 41)
    # Extent: the data's box with a 5% margin, plus half a cell, so pixel centers are the grid.
    margin = 0.05 * 4
    dx = (4 + 2 * margin) / 40
    np.testing.assert_allclose(
        image.get_extent(),
        [-1 - margin - dx / 2, 3 + margin + dx / 2, 0 - margin - dx / 2, 4 + margin + dx / 2],
    )
    # Each quadrant shows its class index, read through the image's own geometry.
    for (x0, x1), index in [((0, 1), 0), ((2.5, 0.5), 1), ((-0.5, 3.5), 2), ((2, 3), 3)]:
        assert _pixel(image, x0, x1) == index
    # One scatter per class, holding that class's samples.
    assert len(ax.collections) == 4
    for collection, label in zip(ax.collections, clf.classes_, strict=True):
        np.testing.assert_array_equal(collection.get_offsets(), X[y == label])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c", "d"]


def test_decision_regions_of_fitted_mlp_match_its_predictions():
    X, y = _blobs()
    clf = _fit(
        fastmlp.MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0), X, y
    )
    assert clf.score(X, y) == 1.0
    fig, ax = plt.subplots()
    assert plotting.plot_decision_regions(clf, X, y, ax=ax, resolution=30) is ax
    regions = ax.images[0].get_array()
    low, high = X.min(axis=0), X.max(axis=0)
    xs = np.linspace(low[0] - 0.05 * (high - low)[0], high[0] + 0.05 * (high - low)[0], 30)
    ys = np.linspace(low[1] - 0.05 * (high - low)[1], high[1] + 0.05 * (high - low)[1], 30)
    for i, j in [(0, 0), (0, 29), (29, 0), (29, 29), (15, 7), (3, 22)]:
        assert regions[i, j] == clf.predict([[xs[j], ys[i]]])[0]
    assert set(np.unique(regions)) == {0, 1, 2}


class _Frame:
    """Just enough of a data frame (pandas is no dependency): an array with column names."""

    def __init__(self, array, columns):
        self.array, self.columns = array, columns

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.array, dtype=dtype)


def test_decision_regions_label_axes_with_feature_names_and_check_them():
    X, y = _blobs()
    clf = _fit(fastmlp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, y)
    clf.feature_names_in_ = np.array(["width", "height"], dtype=object)  # as a frame's fit sets
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # predicting on the bare grid must not warn
        ax = plotting.plot_decision_regions(clf, _Frame(X, ["width", "height"]), y, resolution=5)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("width", "height")
    with pytest.raises(
        ValueError,
        match=r"X's columns \['height', 'width'\] are not the "
        r"features the .* was fitted on, \['width', 'height'\]",
    ):
        plotting.plot_decision_regions(clf, _Frame(X, ["height", "width"]), y)


@pytest.mark.parametrize("shape", [(10, 1), (10, 3), (10,), (2, 5, 2)])
def test_decision_regions_need_two_columns(shape):
    clf = _Quadrants().fit(None, None)
    X = np.zeros(shape)
    message = re.escape(f"X must have shape (n_samples, 2), got shape {shape}")
    with pytest.raises(ValueError, match=message):
        plotting.plot_decision_regions(clf, X, np.zeros(len(X)))


def test_decision_regions_errors():
    X, y = _blobs()
    clf = _fit(fastmlp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0), X, y)
    with pytest.raises(ValueError, match="y must have shape"):
        plotting.plot_decision_regions(clf, X, y[:-1])
    with pytest.raises(ValueError, match=r"not classes of the classifier: \[7\]"):
        plotting.plot_decision_regions(clf, X, np.where(y == 2, 7, y))
    for resolution in (1, 2.5, True):
        with pytest.raises(ValueError, match="resolution must be an integer >= 2"):
            plotting.plot_decision_regions(clf, X, y, resolution=resolution)
    with pytest.raises(NotFittedError):
        plotting.plot_decision_regions(fastmlp.MLPClassifier(), X, y)
    wide = _fit(
        fastmlp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0),
        np.hstack([X, X]),
        y,
    )
    with pytest.raises(ValueError, match="fitted on 4 features, not 2"):
        plotting.plot_decision_regions(wide, X, y)
    reg = _fit(fastmlp.MLPRegressor(hidden_layer_sizes=(3,), max_iter=3), X, y.astype(float))
    with pytest.raises(ValueError, match="needs a classifier, got MLPRegressor"):
        plotting.plot_decision_regions(reg, X, y)
    multilabel = _fit(
        fastmlp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0),
        X,
        np.column_stack([y == 0, y == 1]).astype(int),
    )
    with pytest.raises(ValueError, match="single-target classifier"):
        plotting.plot_decision_regions(multilabel, X, np.zeros(len(X), dtype=int))
    assert not plt.get_fignums()  # every check comes before a figure is made


# ---------------------------------------------------------------- matplotlib missing


def test_clear_import_error_without_matplotlib(monkeypatch):
    X, y = _blobs()
    clf = _fit(fastmlp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0), X, y)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    # Importing the module needs no matplotlib...
    monkeypatch.delitem(sys.modules, "fastmlp.plotting")
    fresh = importlib.import_module("fastmlp.plotting")
    # ...calling it says how to get it.
    hint = r'needs matplotlib, which is not installed: pip install "fastmlp\[plot\]"'
    with pytest.raises(ImportError, match=hint):
        fresh.plot_loss_curve(clf)
    with pytest.raises(ImportError, match=hint):
        fresh.plot_decision_regions(clf, X, y)


def test_docstring_examples():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = doctest.testmod(plotting, verbose=False)
    assert result.attempted >= 2 and result.failed == 0
