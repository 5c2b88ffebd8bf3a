"""The estimator machinery shared by MLPClassifier and MLPRegressor.

Python holds the state (``coefs_``, ``intercepts_``, optimizer moments: NumPy arrays) and the
per-epoch rules (shuffling with scikit-learn's random stream, schedules, stopping, early
stopping); the C++ core runs each epoch's minibatches, the forward pass and L-BFGS's loss and
gradient, on the CPU or, with ``device="cuda"``, on a GPU, through the one backend interface
(``fastmlp._backend``): nothing here forks on the device. Every rule
follows scikit-learn's ``sklearn/neural_network`` so that the same data, parameters and
``random_state`` give the same model.

(About 430 lines, past the project's 400: the parameter constraints and the constructor of 27
parameters take a quarter of it; the solvers' loops live in ``_stochastic`` and ``_lbfgs``.)
"""

import inspect
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from fastmlp import _sparse
from fastmlp._arrays import aligned_copy, all_finite, contiguous, dense
from fastmlp._backend import backend_for
from fastmlp._cuda import DeviceOptions
from fastmlp._finite import validate_finite_data
from fastmlp._lbfgs import fit_lbfgs
from fastmlp._persistence import save
from fastmlp._sklearn_internals import SklearnInternalsMixin
from fastmlp._sklearn_interop import to_sklearn
from fastmlp._stochastic import NON_FINITE_WEIGHTS, fit_stochastic
from fastmlp._validation import check_validation_set

_STOCHASTIC_SOLVERS = ("sgd", "adam")
# Multiply-adds per block of a long prediction: 0.1-0.3 s on the project's 2-core machines, few
# enough calls that their overhead does not show (2e9 cost 1.5x on 30,000 MNIST rows).
_PREDICT_BLOCK_MACS = 6_000_000_000
# bf16 products run about 3x as fast as float32 ones (2.7-3.7x predicting `wide` and MNIST): a
# bf16 block of 3x the multiply-adds takes a float32 block's time, and rounds and packs the
# weights a third as often (bf16 prediction, 15 interleaved runs: `wide` 1.04x with 2x the
# block, 1.06x with 4x; MNIST 1.07x and 1.08x).
_BF16_BLOCK_FACTOR = 3


class BaseMultilayerPerceptron(SklearnInternalsMixin, BaseEstimator, ABC):
    """Base class of the estimators; not for direct use."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [
            StrOptions({"identity", "logistic", "tanh", "relu", "leaky_relu", "gelu", "silu"})
        ],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "device": [DeviceOptions()],
        "leaky_relu_slope": [Interval(Real, 0, None, closed="neither")],
        "compute_dtype": [StrOptions({"bfloat16"}), None],
    }

    @abstractmethod
    def __init__(
        self,
        hidden_layer_sizes,
        activation,
        solver,
        alpha,
        batch_size,
        learning_rate,
        learning_rate_init,
        power_t,
        max_iter,
        loss,
        shuffle,
        random_state,
        tol,
        verbose,
        warm_start,
        momentum,
        nesterovs_momentum,
        early_stopping,
        validation_fraction,
        beta_1,
        beta_2,
        epsilon,
        n_iter_no_change,
        max_fun,
        device,
        leaky_relu_slope=0.01,
        compute_dtype=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.leaky_relu_slope = leaky_relu_slope
        self.compute_dtype = compute_dtype

    def __setstate__(self, state):
        # A pickle from before a parameter existed (class_weight, leaky_relu_slope,
        # compute_dtype) lacks it:
        # it gets the default, which is what that older estimator computed with.
        super().__setstate__(state)
        defaults = inspect.signature(type(self).__init__).parameters
        for name in self._get_param_names():
            if name not in self.__dict__ and defaults[name].default is not inspect.Parameter.empty:
                setattr(self, name, defaults[name].default)

    # --- what subclasses provide -------------------------------------------------------------

    @abstractmethod
    def _validate_input(self, X, y, incremental, reset):
        """Validated (X, y); y is 2-D or 1-D as the task needs."""

    @abstractmethod
    def _score(self, X, y, sample_weight=None):
        """The early-stopping score (accuracy or R^2)."""

    # --- the network --------------------------------------------------------------------------

    def _core_loss_name(self):
        return self.loss

    def _weighted_samples(self, Y, sample_weight, incremental):
        """The sample weights to train with, for targets Y as the network sees them (the
        classifier multiplies in its class weights)."""
        return sample_weight

    def _model_dtype(self):
        return np.float32 if self.coefs_[0].dtype == np.float32 else np.float64

    def _backend(self, fitting):
        """The backend of ``device`` in ``compute_dtype`` (see fastmlp._backend.backend_for)."""
        return backend_for(self.device, self.compute_dtype, fitting=fitting)

    def _forward(self, X, check_weights=True):
        """Output activations (n_samples, n_outputs) of validated X.

        A fit scores its own weights unchecked (``check_weights=False``): diverged weights
        score NaN, as in scikit-learn, and early stopping keeps the best finite ones.
        """
        if check_weights:
            hidden = self.hidden_layer_sizes
            hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
            self._check_weights([self.n_features_in_, *hidden, self.n_outputs_])
        backend = self._backend(fitting=False)
        dtype = self._model_dtype()
        if backend.bf16 and dtype == np.float64:
            raise ValueError(
                "compute_dtype='bfloat16' needs float32 weights, and this model's are float64 "
                "(it was fitted without it): refit with compute_dtype='bfloat16', or set "
                "compute_dtype=None"
            )
        X = dense(X, dtype)
        coefs = [contiguous(c, dtype) for c in self.coefs_]
        intercepts = [contiguous(b, dtype) for b in self.intercepts_]
        # Blocks of rows, each one call without the GIL, so that Ctrl-C interrupts a long
        # prediction within about one block (rows are independent: blocks change nothing).
        weights_per_row = sum(c.size for c in coefs)
        if _sparse.is_sparse(X):  # the first layer costs its stored values, not its width
            nnz_per_row = X.nnz / max(X.shape[0], 1)
            weights_per_row -= coefs[0].size - int(nnz_per_row * coefs[0].shape[1])
        block_macs = _PREDICT_BLOCK_MACS * (_BF16_BLOCK_FACTOR if backend.bf16 else 1)
        block = max(1024, block_macs // max(weights_per_row, 1))
        n_samples = X.shape[0]  # (len() is ambiguous for sparse X, which stays sparse)
        # Blocks of equal size, so that the core shares each one evenly among its threads.
        block = -(-n_samples // -(-n_samples // block))
        if n_samples <= block:
            return backend.forward(
                X, coefs, intercepts, self.activation, self.out_activation_,
                leaky_relu_slope=self.leaky_relu_slope,
            )  # fmt: skip
        out = np.empty((n_samples, self.n_outputs_), dtype)
        for start in range(0, n_samples, block):
            out[start : start + block] = backend.forward(
                X[start : start + block], coefs, intercepts, self.activation,
                self.out_activation_, leaky_relu_slope=self.leaky_relu_slope,
            )  # fmt: skip
        return out

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_finite_data(self, X)
        # Unchecked input comes from the fit's own scoring (see _forward).
        return self._forward(X, check_weights=check_input)

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        # Glorot-uniform draws in scikit-learn's order: W_0, b_0, W_1, b_1, ...
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:], strict=True):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            self.coefs_.append(coef.astype(dtype, copy=False))
            self.intercepts_.append(intercept.astype(dtype, copy=False))
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [b.copy() for b in self.intercepts_]
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.validation_scores_: list[float] | None
            self.best_validation_score_: float | None
            self.best_loss_: float | None
            self.validation_loss_curve_: list[float] | None
            if self.early_stopping:
                self.validation_scores_ = []
                self.validation_loss_curve_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.validation_loss_curve_ = None
                self.best_validation_score_ = None

    # --- fitting ------------------------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, incremental=False, validation=(None, None, None)):
        # A missing GPU (or bfloat16 kernel) fails the fit before any work, and before any
        # state changes.
        backend = self._backend(fitting=True)
        # What an interrupted L-BFGS fit puts back (it rebinds attributes, never mutates them).
        state_before = dict(self.__dict__)
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden_layer_sizes}.")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        # Sparse X on a backend without sparse kernels (the GPU's) is refused before anything
        # is validated or initialized: the estimator stays as it was.
        backend.check_input(X)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        # bfloat16 products keep float32 master weights, whatever X's dtype.
        dtype = np.float32 if X.dtype == np.float32 or backend.bf16 else np.float64
        X = dense(X, dtype)
        if sample_weight is not None:
            # Negative weights would make the loss unbounded below: refuse them.
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=dtype, ensure_non_negative=True
            )
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        sample_weight = self._weighted_samples(y, sample_weight, incremental)
        X_val, y_val, sample_weight_val = validation
        validation_set = check_validation_set(
            self, X_val, y_val, sample_weight_val, dtype, n_outputs=y.shape[1]
        )
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1], *hidden_layer_sizes, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, dtype)
        else:
            self._check_weights(layer_units)
        # The core updates the parameters in place: train on our own copies, never on arrays
        # the user assigned; aligned, for reproducible results (see fastmlp._arrays).
        self.coefs_ = [aligned_copy(c, dtype) for c in self.coefs_]
        self.intercepts_ = [aligned_copy(b, dtype) for b in self.intercepts_]

        if self.solver in _STOCHASTIC_SOLVERS:
            fit_stochastic(self, X, y, sample_weight, incremental, backend, validation_set)
        else:
            try:
                fit_lbfgs(self, X, y, sample_weight, backend)
            except KeyboardInterrupt:
                # L-BFGS has no usable point to stop at: Ctrl-C leaves the estimator as it was.
                self.__dict__.clear()
                self.__dict__.update(state_before)
                raise
        if not all_finite(self.coefs_ + self.intercepts_):
            raise ValueError(NON_FINITE_WEIGHTS)
        return self

    def _check_weights(self, layer_units):
        """Check that coefs_ and intercepts_ (perhaps assigned) fit the network of layer_units.

        Raises a ValueError naming the first array that is missing, of the wrong shape, not
        numeric, or not finite.
        """
        coef_shapes = list(zip(layer_units[:-1], layer_units[1:], strict=True))
        intercept_shapes = [(n,) for _, n in coef_shapes]
        for name, shapes in (("coefs_", coef_shapes), ("intercepts_", intercept_shapes)):
            arrays = getattr(self, name)
            if not isinstance(arrays, (list, tuple)) or len(arrays) != len(shapes):
                got = f"{len(arrays)} arrays" if isinstance(arrays, (list, tuple)) else "no list"
                raise ValueError(
                    f"{name} holds {got}, expected a list of {len(shapes)} (one per layer of "
                    "n_features_in_, hidden_layer_sizes, n_outputs_)"
                )
            for i, (array, shape) in enumerate(zip(arrays, shapes, strict=True)):
                array = np.asarray(array)
                if array.dtype.kind not in "biuf":
                    raise ValueError(f"{name}[{i}] has dtype {array.dtype}, expected numbers")
                if array.shape != shape:
                    raise ValueError(
                        f"{name}[{i}] has shape {array.shape}, expected {shape} (from "
                        "n_features_in_, hidden_layer_sizes and n_outputs_): refit without "
                        "warm_start, or assign weights of that shape"
                    )
                if not np.isfinite(array).all():
                    raise ValueError(f"{name}[{i}] contains NaN or infinity")

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        # Where early_stopping changed since the state was initialised (a warm start, or
        # partial_fit after fit), start its record here; scikit-learn fails with a TypeError.
        if early_stopping and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
        if early_stopping:
            assert self.validation_scores_ is not None  # set just above
            score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. float32 input trains in float32; anything else in float64 (with
            ``compute_dtype="bfloat16"``, always float32).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        X_val : {array-like, sparse matrix} of shape (n_val, n_features), default=None
            A validation set of one's own for early stopping (``early_stopping=True``, 'sgd'
            or 'adam'), used instead of holding out ``validation_fraction`` of X (which is
            then trained on whole), as in scikit-learn's HistGradientBoosting. Needs ``y_val``.
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            Its targets; a classifier's must be among the classes of y.
        sample_weight_val : array-like of shape (n_val,), default=None
            Its sample weights, for the validation score and loss.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        validation = (X_val, y_val, sample_weight_val)
        return self._fit(X, y, sample_weight, incremental=False, validation=validation)

    def save(self, path):
        """Write the fitted model to ``path`` in fastmlp's safe format (see :func:`fastmlp.load`).

        The file is a NumPy ``.npz`` archive of plain arrays and JSON metadata: loading it never
        runs code, unlike a pickle. It keeps the weights, the fitted attributes and the
        optimizer state, so a loaded model predicts the same and ``partial_fit`` continues.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (no suffix is appended).
        """
        save(self, path)

    def to_sklearn(self):
        """Return the equivalent scikit-learn estimator.

        Returns
        -------
        estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
            Same parameters and, if fitted, the same fitted attributes (copies), with the
            optimizer's moments in scikit-learn's optimizer class: it predicts the same and its
            ``partial_fit`` continues the training. :func:`fastmlp.from_sklearn` is the inverse.
        """
        return to_sklearn(self)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _check_fitted(self):
        check_is_fitted(self, ["coefs_", "intercepts_"])
