"""Conversion between fastmlp's estimators and scikit-learn's.

fastmlp keeps its state in the attributes, and under the names, that scikit-learn's MLP uses
(``coefs_``, ``_label_binarizer``, ``_no_improvement_count``, ``_best_coefs``, ...); only the
optimizer differs in class, and it holds the same fields (``velocities``; ``t``, ``ms``, ``vs``;
``learning_rate``...). So a conversion copies the parameters and every fitted attribute, and
rebuilds the optimizer as the other library's class with the same moments: the converted
estimator predicts the same and, with ``partial_fit`` or a warm-started ``fit``, goes on
training from the same state.

fastmlp's extra parameters ``device``, ``class_weight`` and ``compute_dtype`` have no
counterpart: ``to_sklearn`` drops them, and ``from_sklearn`` gives the defaults ('cpu', None,
None; the fitted state lives on the host either way, and a bfloat16-trained model's float32
weights are scikit-learn's model in float32). ``leaky_relu_slope`` changes the model, but only
with ``activation='leaky_relu'``: ``to_sklearn`` drops it for the activations scikit-learn has,
and refuses a model whose hidden activation scikit-learn cannot compute ('leaky_relu', 'gelu',
'silu').

Two values keep the meaning of the library that computed them: for multi-output squared-error
regression, fastmlp's ``loss_``, ``loss_curve_`` and ``best_loss_`` are the loss whose gradient
both libraries follow, scikit-learn's are that loss's data term divided by the number of outputs
(scikit-learn issue 8349). The L2 term of each epoch is not kept, so they are copied unchanged.
"""

import copy

from sklearn.neural_network import _stochastic_optimizers as sk_optimizers

from fastmlp._optimizers import AdamState, SGDState
from fastmlp._state import OPTIMIZER, SKLEARN_COUNTERPARTS, TRAINING_ONLY_PARAMS, fitted_attributes

# fastmlp's hidden activations that scikit-learn's MLP lacks.
FASTMLP_ONLY_ACTIVATIONS = ("leaky_relu", "gelu", "silu")

# fastmlp's optimizer classes and scikit-learn's, both ways.
_TO_SKLEARN_OPTIMIZER = {
    SGDState: sk_optimizers.SGDOptimizer,
    AdamState: sk_optimizers.AdamOptimizer,
}
_FROM_SKLEARN_OPTIMIZER = {sk: ours for ours, sk in _TO_SKLEARN_OPTIMIZER.items()}


def to_sklearn(estimator):
    """Return the scikit-learn estimator equivalent to a fastmlp estimator.

    Parameters
    ----------
    estimator : fastmlp.MLPClassifier or fastmlp.MLPRegressor
        Fitted or not. It is not modified; the result shares no array with it.

    Returns
    -------
    sklearn_estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
        With the same parameters and, if ``estimator`` is fitted, the same fitted attributes,
        including the optimizer's state as scikit-learn's own optimizer class, so that its
        ``partial_fit`` continues where fastmlp's would.

    Raises
    ------
    ValueError
        If the hidden activation is one scikit-learn's MLP does not have ('leaky_relu',
        'gelu', 'silu'): export such a model with :func:`fastmlp.onnx.to_onnx` instead.
    """
    target = _target_class(estimator, SKLEARN_COUNTERPARTS)
    if estimator.activation in FASTMLP_ONLY_ACTIVATIONS:
        raise ValueError(
            f"activation={estimator.activation!r} has no counterpart in scikit-learn's "
            f"{target.__name__} (which takes 'identity', 'logistic', 'tanh' or 'relu'): "
            "this model cannot be converted; fastmlp.onnx.to_onnx exports it"
        )
    # leaky_relu_slope is unused by every activation scikit-learn has.
    # compute_dtype: scikit-learn computes the same model in float32 (or float64).
    dropped = (*TRAINING_ONLY_PARAMS, "leaky_relu_slope", "compute_dtype")
    result = _convert(estimator, target, _TO_SKLEARN_OPTIMIZER, dropped)
    if hasattr(result, "coefs_") and result.solver == "lbfgs":
        # scikit-learn's L-BFGS bookkeeping, which fastmlp's state has no use for.
        result._coef_indptr, result._intercept_indptr = _lbfgs_index(result.coefs_)
    return result


def from_sklearn(estimator):
    """Return the fastmlp estimator equivalent to a scikit-learn MLP.

    Parameters
    ----------
    estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
        Fitted or not. It is not modified; the result shares no array with it.

    Returns
    -------
    fastmlp_estimator : fastmlp.MLPClassifier or fastmlp.MLPRegressor
        With the same parameters and fitted attributes; the optimizer's moments become
        fastmlp's, so that ``partial_fit`` continues where scikit-learn's would.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neural_network import MLPRegressor
    >>> from fastmlp import from_sklearn
    >>> X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
    >>> sk = MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(X, y)
    >>> est = from_sklearn(sk)
    >>> bool(np.allclose(est.predict(X), sk.predict(X)))
    True
    """
    classes = {sk: ours for ours, sk in SKLEARN_COUNTERPARTS.items()}
    target = _target_class(estimator, classes)
    return _convert(estimator, target, _FROM_SKLEARN_OPTIMIZER)


def _target_class(estimator, classes):
    for source, target in classes.items():
        if type(estimator) is source:
            return target
    raise TypeError(
        f"expected one of {', '.join(c.__name__ for c in classes)} from "
        f"{next(iter(classes)).__module__.split('.')[0]}, got {type(estimator).__name__}"
    )


def _convert(estimator, target, optimizer_classes, dropped_params=()):
    params = estimator.get_params(deep=False)
    result = target(
        **{name: value for name, value in params.items() if name not in dropped_params}
    )
    # The declared fitted state (fastmlp._state), deeply copied.
    for name in fitted_attributes():
        if not hasattr(estimator, name):
            continue
        value = getattr(estimator, name)
        if name == OPTIMIZER:
            value = _convert_optimizer(value, optimizer_classes)
        else:
            value = copy.deepcopy(value)
        setattr(result, name, value)
    return result


def _convert_optimizer(optimizer, optimizer_classes):
    """The optimizer as the other library's class, with copies of the same fields."""
    target = optimizer_classes.get(type(optimizer))
    if target is None:
        raise TypeError(f"cannot convert an optimizer of type {type(optimizer).__name__}")
    result = target.__new__(target)
    result.__dict__.update(copy.deepcopy(vars(optimizer)))
    return result


def _lbfgs_index(coefs):
    """scikit-learn's ``_coef_indptr`` and ``_intercept_indptr`` for these layer shapes."""
    coef_indptr, intercept_indptr, start = [], [], 0
    for coef in coefs:
        end = start + coef.size
        coef_indptr.append((start, end, coef.shape))
        start = end
    for coef in coefs:
        end = start + coef.shape[1]
        intercept_indptr.append((start, end))
        start = end
    return coef_indptr, intercept_indptr
