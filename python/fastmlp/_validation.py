"""Early stopping's validation set: one of the user's own (``fit(..., X_val=, y_val=)``, as in
scikit-learn's HistGradientBoosting, scikit-learn issue 18748), or scikit-learn's internal split.

A validation set is ``ValidationSet(X, y, w, Y)``: X of the model's dtype, y as the score
compares it (class labels, or the regression targets), w its sample weights (or None) and Y the
targets as the network sees them (binarized labels), for the validation loss that
``validation_loss_curve_`` records (scikit-learn issue 18507). The loss is computed by the core
(the backend's ``backward``), so that it is the very loss ``loss_curve_`` reports for training,
L2 term included.
"""

from typing import NamedTuple

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import _check_sample_weight, check_consistent_length, validate_data

from fastmlp._arrays import aligned_empty, contiguous, dense


class ValidationSet(NamedTuple):
    X: np.ndarray
    y: np.ndarray
    w: np.ndarray | None
    Y: np.ndarray


def check_validation_set(est, X_val, y_val, sample_weight_val, dtype, n_outputs):
    """The user's validation set, validated as HistGradientBoosting does, or None.

    Raises ValueError for one of X_val and y_val without the other, a validation set given
    with ``early_stopping=False`` or to the 'lbfgs' solver (which does not stop early), X_val
    with another number of features than X, y_val with labels the classifier has not seen,
    and lengths that differ.
    """
    if X_val is None and y_val is None:
        if sample_weight_val is not None:
            raise ValueError("sample_weight_val is provided, but X_val and y_val were not.")
        return None
    if y_val is None:
        raise ValueError("X_val is provided, but y_val was not provided.")
    if X_val is None:
        raise ValueError("y_val is provided, but X_val was not provided.")
    if not est.early_stopping:
        raise ValueError(
            "X_val and y_val are passed to fit while at the same time early_stopping is False. "
            "When passing X_val and y_val to fit, early_stopping should be set to True."
        )
    if est.solver == "lbfgs":
        raise ValueError(
            "X_val and y_val are used for early stopping, which the 'lbfgs' solver does not do: "
            "use solver='sgd' or 'adam'."
        )
    X_val = validate_data(
        est, X_val, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False
    )
    X_val = dense(X_val, dtype)
    y_score, Y = est._validate_y_val(y_val)
    Y = Y.reshape(len(Y), -1)
    if Y.shape[1] != n_outputs:
        raise ValueError(
            f"y_val has {Y.shape[1]} outputs, but {type(est).__name__} is fitted to y with "
            f"{n_outputs}"
        )
    check_consistent_length(X_val, y_score)
    if sample_weight_val is not None:
        sample_weight_val = _check_sample_weight(
            sample_weight_val, X_val, dtype=dtype, ensure_non_negative=True
        )
    # class_weight applies to the validation samples too ('balanced': their own class counts).
    sample_weight_val = est._weighted_samples(Y, sample_weight_val, incremental=False)
    if sample_weight_val is not None:
        sample_weight_val = contiguous(sample_weight_val, dtype)
    return ValidationSet(X_val, y_score, sample_weight_val, contiguous(Y, dtype))


def validation_split(est, X, y, sample_weight, given=None):
    """((X, y, w) to train on, the ValidationSet to score, or None without early stopping).

    ``given`` (from :func:`check_validation_set`) replaces scikit-learn's internal split.
    """
    if not est.early_stopping:
        return (X, y, sample_weight), None
    if given is not None:
        return (X, y, sample_weight), given
    # The same split as scikit-learn: same function, same random stream, same stratify.
    stratify = y if is_classifier(est) and est.n_outputs_ == 1 else None
    arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
    parts = train_test_split(
        *arrays, random_state=est._random_state, test_size=est.validation_fraction,
        stratify=stratify,
    )  # fmt: skip
    X_train, X_val, y_train, y_val = parts[:4]
    w_train, w_val = parts[4:] if sample_weight is not None else (None, None)
    if X_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or the size of "
            "your dataset."
        )
    Y_val = contiguous(y_val, X.dtype)
    if is_classifier(est):
        y_val = est._label_binarizer.inverse_transform(y_val)
    if w_val is not None:
        w_val = contiguous(w_val, X.dtype)
    validation = ValidationSet(contiguous(X_val, X.dtype), y_val, w_val, Y_val)
    return (X_train, y_train, w_train), validation


def validation_loss(est, backend, validation):
    """The loss (with its L2 term) of the current weights on the validation set, by the core."""
    dtype = validation.X.dtype
    coefs = [contiguous(c, dtype) for c in est.coefs_]
    intercepts = [contiguous(b, dtype) for b in est.intercepts_]
    coef_grads = [aligned_empty(c.shape, dtype) for c in coefs]
    intercept_grads = [aligned_empty(b.shape, dtype) for b in intercepts]
    Y = validation.Y.reshape(validation.X.shape[0], -1)  # (X may be sparse)
    return float(
        backend.backward(
            validation.X,
            Y,
            validation.w,
            coefs,
            intercepts,
            coef_grads,
            intercept_grads,
            est.activation,
            est.out_activation_,
            est._core_loss_name(),
            est.alpha,
            leaky_relu_slope=est.leaky_relu_slope,
        )  # fmt: skip
    )
