"""Pictures of fitted estimators: the training loss curve and a classifier's decision regions.

matplotlib is an optional dependency (``pip install "fastmlp[plot]"``): it is imported when a
function here is called, never when this module is imported. The functions accept fastmlp's
estimators and scikit-learn's alike; each returns the matplotlib Axes it drew on.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

__all__ = ["plot_decision_regions", "plot_loss_curve"]

_INSTALL_HINT = 'pip install "fastmlp[plot]"'


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"fastmlp.plotting needs matplotlib, which is not installed: {_INSTALL_HINT}"
        ) from exc
    return plt


def _axes(ax):
    plt = _pyplot()  # checked even when ax is given, so that the message is always the same
    if ax is None:
        _, ax = plt.subplots()
    return ax


def _name(estimator):
    return type(estimator).__name__


def plot_loss_curve(estimator, ax=None):
    """Plot the training loss per epoch, and the validation score when there is one.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        Fitted with a stochastic solver ('sgd' or 'adam'), which records ``loss_curve_``.
        scikit-learn's MLP estimators work as well.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; None draws on a new figure.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes holding the loss curve (``ax.lines[0]``: epochs 1, 2, ... against
        ``loss_curve_``). When the estimator was fitted with ``early_stopping=True``, its
        ``validation_scores_`` (accuracy for a classifier, R² for a regressor) are drawn on a
        twin axis sharing the epochs, the last axes of ``ax.figure.axes``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If it has no loss curve: 'lbfgs' records none (its final loss is in ``loss_``).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_iris
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.plotting import plot_loss_curve
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(max_iter=50, early_stopping=True, random_state=0).fit(X, y)
    >>> ax = plot_loss_curve(clf)
    >>> len(ax.lines[0].get_ydata()) == clf.n_iter_
    True
    """
    check_is_fitted(estimator)
    loss_curve = getattr(estimator, "loss_curve_", None)
    if loss_curve is None:
        solver = getattr(estimator, "solver", None)
        raise ValueError(
            f"this {_name(estimator)} has no loss_curve_ to plot: solver={solver!r} records no "
            "loss per iteration (only the final loss_). Fit with solver='adam' or 'sgd' to get "
            "a loss curve."
        )
    if len(loss_curve) == 0:
        raise ValueError(f"this {_name(estimator)}'s loss_curve_ is empty: nothing to plot")
    ax = _axes(ax)
    epochs = np.arange(1, len(loss_curve) + 1)
    lines = ax.plot(epochs, loss_curve, color="C0", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"{_name(estimator)} (solver={getattr(estimator, 'solver', '?')!r})")

    scores = getattr(estimator, "validation_scores_", None)
    legend_ax = ax
    if scores is not None and len(scores) > 0:
        score_name = "validation accuracy" if is_classifier(estimator) else "validation R²"
        legend_ax = ax.twinx()  # drawn over ax: the legend goes there, or the lines hide it
        lines += legend_ax.plot(
            np.arange(1, len(scores) + 1), scores, color="C1", label=score_name
        )
        legend_ax.set_ylabel(score_name)
    legend_ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    return ax


def _class_colors(n_classes):
    plt = _pyplot()
    if n_classes <= 10:
        return plt.get_cmap("tab10").colors[:n_classes]
    if n_classes <= 20:
        return plt.get_cmap("tab20").colors[:n_classes]
    return plt.get_cmap("viridis")(np.linspace(0, 1, n_classes))


def plot_decision_regions(estimator, X, y, ax=None, resolution=200):
    """Color the plane by a fitted classifier's predicted class and scatter the samples on it.

    Parameters
    ----------
    estimator : MLPClassifier
        A classifier fitted on two features, with one target (``predict`` returns labels of
        shape (n_samples,)). scikit-learn's classifiers work as well.
    X : array-like of shape (n_samples, 2)
        Samples to scatter; the plotted region spans them, with a 5% margin.
    y : array-like of shape (n_samples,)
        Their labels, each one of ``estimator.classes_``; they set the points' colors.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; None draws on a new figure.
    resolution : int, default=200
        Grid points per axis at which the classifier is evaluated (at least 2).

    Returns
    -------
    ax : matplotlib.axes.Axes
        ``ax.images[0]`` holds the regions, an image of shape (resolution, resolution) whose
        pixel ``[i, j]`` is the index in ``classes_`` of the class predicted at the pixel's
        center (``x0 = xs[j]``, ``x1 = ys[i]``); ``ax.collections`` holds one scatter per class.

    Raises
    ------
    ValueError
        If X does not have exactly 2 columns, y does not match it, a label is not one of the
        classifier's classes, ``resolution`` is not an integer >= 2, or the estimator is not
        a single-target classifier fitted on 2 features.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import make_moons
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.plotting import plot_decision_regions
    >>> X, y = make_moons(n_samples=100, noise=0.1, random_state=0)
    >>> clf = MLPClassifier(hidden_layer_sizes=(20,), solver="lbfgs", random_state=0).fit(X, y)
    >>> ax = plot_decision_regions(clf, X, y, resolution=50)
    >>> ax.images[0].get_array().shape
    (50, 50)
    """
    if not is_classifier(estimator):
        raise ValueError(f"plot_decision_regions needs a classifier, got {_name(estimator)}")
    check_is_fitted(estimator)
    names = getattr(estimator, "feature_names_in_", None)
    columns = getattr(X, "columns", None)  # a data frame's
    if names is not None and columns is not None and list(columns) != list(names):
        raise ValueError(
            f"X's columns {list(columns)} are not the features the "
            f"{_name(estimator)} was fitted on, {list(names)}"
        )
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(
            "plot_decision_regions draws the plane of two features: X must have shape "
            f"(n_samples, 2), got shape {X.shape}"
        )
    n_features = getattr(estimator, "n_features_in_", 2)
    if n_features != 2:
        raise ValueError(f"the {_name(estimator)} was fitted on {n_features} features, not 2")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},) to match X, got {y.shape}")
    if len(X) == 0:
        raise ValueError("X is empty: nothing to plot")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinity")
    if (
        not isinstance(resolution, numbers.Integral)
        or isinstance(resolution, bool)
        or resolution < 2
    ):
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    classes = np.asarray(estimator.classes_)
    unknown = np.setdiff1d(y, classes)
    if len(unknown):
        raise ValueError(f"y has labels that are not classes of the classifier: {unknown}")
    _pyplot()  # before the predictions, which may take a while

    # Cell centers xs x ys; the image's extent reaches half a cell beyond them, so that each
    # pixel sits exactly on the point it shows.
    low, high = X.min(axis=0), X.max(axis=0)
    margin = np.where(high > low, 0.05 * (high - low), 0.5)
    xs = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    ys = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)  # each of shape (resolution, resolution): [i, j]
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])  # (resolution**2, 2)
    with warnings.catch_warnings():
        # The grid's columns are the fitted features in their order, but it has no names.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        labels = estimator.predict(grid)
    if np.ndim(labels) != 1:
        raise ValueError(
            "plot_decision_regions needs a single-target classifier; predict "
            f"returned shape {np.shape(labels)}"
        )
    regions = np.searchsorted(classes, labels).reshape(grid_x.shape)

    ax = _axes(ax)

    from matplotlib.colors import ListedColormap

    colors = _class_colors(len(classes))
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    ax.imshow(
        regions,
        origin="lower",
        interpolation="nearest",
        aspect="auto",
        alpha=0.35,
        cmap=ListedColormap(colors),
        vmin=-0.5,
        vmax=len(classes) - 0.5,
        extent=(xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2),
    )
    for index, label in enumerate(classes):
        mask = y == label
        ax.scatter(
            X[mask, 0],
            X[mask, 1],
            color=colors[index],
            edgecolors="black",
            linewidths=0.5,
            s=25,
            label=str(label),
        )
    ax.set_xlabel("feature 0" if names is None else str(names[0]))
    ax.set_ylabel("feature 1" if names is None else str(names[1]))
    ax.set_title(f"{_name(estimator)}: decision regions")
    ax.legend(title="class", loc="best")
    return ax
