"""MLPRegressor: scikit-learn's multilayer-perceptron regressor on fastmlp's core."""

import numpy as np
from sklearn import neural_network
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, column_or_1d, validate_data

from fastmlp._base import BaseMultilayerPerceptron
from fastmlp._state import estimator_class


@estimator_class(neural_network.MLPRegressor)
class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron regressor, a drop-in for ``sklearn.neural_network.MLPRegressor``.

    Same parameters, defaults, update rules and random draws as scikit-learn's (see
    :class:`fastmlp.MLPClassifier` for the parameters they share), with two documented
    differences where scikit-learn has a known bug:

    - With several outputs, scikit-learn reports a squared-error loss divided by the number of
      outputs while it follows the gradient of the undivided loss (scikit-learn issue 8349).
      fastmlp reports the loss whose gradient it follows,
      ``0.5 * sum_outputs mean_samples (h - y)^2``, in ``loss_``, ``loss_curve_`` and for
      L-BFGS. Single-output losses are the same.
    - ``partial_fit`` exists only for the stochastic solvers ('sgd', 'adam'), as on the
      classifier: scikit-learn's regressor passes its check function to ``available_if``
      without calling it, so it offers ``partial_fit`` with 'lbfgs' too.
    - ``loss='poisson'`` refuses negative targets with a ValueError (scikit-learn trains on
      them and gets NaN losses).

    The differences listed in the Notes of :class:`fastmlp.MLPClassifier` apply as well, and
    :meth:`to_sklearn` returns the equivalent scikit-learn estimator.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        'squared_error' trains an identity output; 'poisson' an exponential output with the
        half Poisson deviance, for non-negative targets.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, \
momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon, \
n_iter_no_change, max_fun, device, leaky_relu_slope, compute_dtype
        As in :class:`fastmlp.MLPClassifier`; early stopping scores with R^2 on an unstratified
        split.

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, validation_loss_curve_, \
best_validation_score_, t_, coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, \
n_layers_, n_outputs_, out_activation_
        As in :class:`fastmlp.MLPClassifier`; ``out_activation_`` is 'identity' or 'exp'.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLPRegressor
    >>> X = np.linspace(0, 1, 50).reshape(-1, 1)
    >>> reg = MLPRegressor(hidden_layer_sizes=(10,), solver="lbfgs", random_state=0)
    >>> reg.fit(X, 2 * X.ravel()).predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="cpu",
        leaky_relu_slope=0.01,
        compute_dtype=None,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss=loss,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            device=device,
            leaky_relu_slope=leaky_relu_slope,
            compute_dtype=compute_dtype,
        )

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        self._check_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative y.")
        return X, y

    def _validate_y_val(self, y_val):
        """(y_val as the score compares it, as the network sees it)."""
        y_val = check_array(
            y_val, ensure_2d=False, dtype=(np.float64, np.float32), input_name="y_val"
        )
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        if self.loss == "poisson" and np.any(y_val < 0):
            raise ValueError("loss='poisson' requires non-negative y_val.")
        return y_val, y_val

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
