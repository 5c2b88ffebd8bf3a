"""The stochastic solvers' fit (sgd, adam) for the estimators: scikit-learn's epoch loop, whose
minibatches run in the backend's trainer (fastmlp._epochs).

:func:`fit_stochastic` reads in five steps: the optimizer (new, or continued by ``partial_fit``
and warm starts), early stopping's validation split, the batch size, the epochs, and the end of
the fit (weights back on the host, the best weights restored). Every rule is scikit-learn's
(``sklearn/neural_network/_multilayer_perceptron.py``), so that the same data, parameters and
``random_state`` give the same model.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from fastmlp._arrays import aligned_copy, all_finite, contiguous, is_aligned
from fastmlp._epochs import EpochRunner
from fastmlp._optimizers import AdamState, SGDState
from fastmlp._progress import EpochProgress
from fastmlp._validation import validation_loss, validation_split

# Frames from warnings.warn up to the user's line: fit_stochastic, the estimator's _fit, fit or
# partial_fit, scikit-learn's _fit_context wrapper; one more from inside _run_epochs.
_USER_STACKLEVEL = 5
NON_FINITE_WEIGHTS = (
    "Solver produced non-finite parameter weights. The input data may contain large values and "
    "need to be preprocessed."
)


def fit_stochastic(est, X, y, sample_weight, incremental, backend, validation_set=None):
    """Fit est (a BaseMultilayerPerceptron) by sgd or adam on backend; X, y validated, the
    parameters initialized (coefs_, intercepts_: aligned, writeable, of X's dtype);
    validation_set, the user's (fastmlp._validation), replaces the internal split."""
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    _prepare_optimizer(est, incremental)
    (X_train, y_train, w_train), validation = validation_split(
        est, X, y, sample_weight, validation_set
    )
    X_train, Y_train = contiguous(X_train, X.dtype), contiguous(y_train, X.dtype)
    if w_train is not None:
        w_train = contiguous(w_train, X.dtype)
    n_samples = X_train.shape[0]
    batch_size = _batch_size(est, n_samples)
    network = dict(
        activation=est.activation,
        output_activation=est.out_activation_,
        loss=est._core_loss_name(),
        alpha=est.alpha,
        leaky_relu_slope=est.leaky_relu_slope,
    )
    # On a GPU, the host's coefs_, intercepts_ and moments are stale until to_host().
    epochs = EpochRunner(
        backend, X_train, Y_train, w_train, est.coefs_, est.intercepts_, est._optimizer,
        network, batch_size,
    )  # fmt: skip
    progress = EpochProgress(1 if incremental else est.max_iter, n_samples, type(est).__name__)
    try:
        _run_epochs(est, epochs, n_samples, validation, incremental, progress, backend)
    except KeyboardInterrupt:
        # scikit-learn's behaviour: keep the weights reached, warn, return a usable estimator.
        warnings.warn("Training interrupted by user.", stacklevel=_USER_STACKLEVEL)
    finally:
        progress.close()
    epochs.to_host()
    if validation is not None:
        est.coefs_, est.intercepts_ = est._best_coefs, est._best_intercepts


def _prepare_optimizer(est, incremental):
    """A new optimizer, or the one partial_fit and warm starts continue, its moments ready for
    the core to update in place."""
    params = est.coefs_ + est.intercepts_
    if not incremental or not hasattr(est, "_optimizer"):
        if est.solver == "sgd":
            est._optimizer = SGDState(
                params, est.learning_rate_init, est.learning_rate, est.momentum,
                est.nesterovs_momentum, est.power_t,
            )  # fmt: skip
        else:
            est._optimizer = AdamState(
                params, est.learning_rate_init, est.beta_1, est.beta_2, est.epsilon
            )
    est._optimizer = _optimizer_for_params(est._optimizer, params)


def _batch_size(est, n_samples):
    if est.batch_size == "auto":
        return min(200, n_samples)
    if est.batch_size > n_samples:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
            stacklevel=_USER_STACKLEVEL + 1,
        )
    return int(np.clip(est.batch_size, 1, n_samples))


def _run_epochs(est, epochs, n_samples, validation, incremental, progress, backend):
    """Up to max_iter epochs (one for partial_fit), each followed by scikit-learn's
    bookkeeping and stopping rule."""
    early_stopping = validation is not None
    if early_stopping and getattr(est, "validation_loss_curve_", None) is None:
        est.validation_loss_curve_ = []
    sample_idx = np.arange(n_samples, dtype=np.int64)
    est.n_iter_ = 0
    for _ in range(est.max_iter):
        if est.shuffle:
            sample_idx = shuffled(sample_idx, est._random_state)
        accumulated_loss = epochs.train_epoch(sample_idx, est._optimizer, progress)
        est.n_iter_ += 1
        est.loss_ = accumulated_loss / n_samples
        est.t_ += n_samples
        est.loss_curve_.append(est.loss_)
        progress.update(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_:d}, loss = {est.loss_:.8f}")
        if not (early_stopping or np.isfinite(est.loss_)):
            # A non-finite weight stays non-finite, and scikit-learn raises this error after
            # the last epoch: raise it now. (With early stopping, the best finite weights come
            # back at the end, so training goes on as in scikit-learn.)
            epochs.to_host()
            if not all_finite(est.coefs_ + est.intercepts_):
                raise ValueError(NON_FINITE_WEIGHTS)
        if early_stopping:
            epochs.to_host()  # scored, and perhaps kept as the best, on the host
            est.validation_loss_curve_.append(validation_loss(est, backend, validation))
        X_val, y_val, w_val = validation[:3] if early_stopping else (None, None, None)
        est._update_no_improvement_count(early_stopping, X_val, y_val, w_val)
        est._optimizer.iteration_ends(est.t_)
        if _stalled(est, early_stopping):
            break
        if incremental:
            break
        if est.n_iter_ == est.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({est.max_iter:d}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=_USER_STACKLEVEL + 1,
            )


def _stalled(est, early_stopping):
    """scikit-learn's stopping rule after n_iter_no_change epochs without improvement: stop,
    or (sgd's 'adaptive' schedule) divide the learning rate by 5 and go on."""
    if est._no_improvement_count <= est.n_iter_no_change:
        return False
    what = "Validation score" if early_stopping else "Training loss"
    msg = (
        f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change:d} "
        "consecutive epochs."
    )
    if est._optimizer.trigger_stopping(msg, est.verbose):
        return True
    est._no_improvement_count = 0
    return False


def shuffled(order, random_state):
    """order permuted as ``sklearn.utils.shuffle(order, random_state=random_state)`` does it.

    The same draw (``random_state.shuffle`` of ``arange(n)``, then indexing), without shuffle's
    input checks and dispatch, which took longer than the draw itself on short epochs.
    """
    permutation = np.arange(order.shape[0])
    random_state.shuffle(permutation)
    return order[permutation]


def _optimizer_for_params(optimizer, params):
    """The optimizer, its moments ready for the core to update in place.

    Moments of another dtype, not C-contiguous, read-only (as after ``joblib.load(...,
    mmap_mode="r")``) or not aligned (see fastmlp._arrays) are replaced by aligned copies.
    """
    for name in ("velocities", "ms", "vs"):
        moments = getattr(optimizer, name, None)
        if moments is not None:
            moments = [_moment_for(m, p) for m, p in zip(moments, params, strict=True)]
            setattr(optimizer, name, moments)
    return optimizer


def _moment_for(moment, param):
    moment = np.asarray(moment)
    if (
        moment.dtype == param.dtype
        and moment.flags.c_contiguous
        and moment.flags.writeable
        and is_aligned(moment)
    ):
        return contiguous(moment, param.dtype)  # the same memory, NumPy's own dtype object
    return aligned_copy(moment, param.dtype)
