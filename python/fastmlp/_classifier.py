"""MLPClassifier: scikit-learn's multilayer-perceptron classifier on fastmlp's core.

(About 470 lines, past the project's 400: the numpydoc of its 29 parameters and its deliberate
differences from scikit-learn are half of it; the code is the label handling.)
"""

import numpy as np
from sklearn import neural_network
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import check_array, column_or_1d, validate_data

from fastmlp import _cuda
from fastmlp._base import BaseMultilayerPerceptron
from fastmlp._state import estimator_class


@estimator_class(neural_network.MLPClassifier)
class MLPClassifier(ClassifierMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron classifier, a drop-in for ``sklearn.neural_network.MLPClassifier``.

    It takes the same parameters with the same defaults and meanings, follows the same update
    rules, schedules and stopping rule, and draws its initial weights, shuffles and
    early-stopping split from ``random_state`` as scikit-learn does, so that the same data and
    parameters give the same model; the epochs run in fastmlp's C++ core. The output layer is
    logistic for binary and multilabel targets (binary cross-entropy per output) and softmax for
    multiclass targets (categorical cross-entropy). float32 input trains and predicts in
    float32; other input in float64.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu', 'leaky_relu', 'gelu', 'silu'}, \
default='relu'
        Activation of the hidden layers. 'leaky_relu' is ``a`` for ``a > 0`` and
        ``leaky_relu_slope * a`` below; 'gelu' is the exact ``a * Phi(a)`` (``Phi`` the standard
        normal CDF, written with erf); 'silu' is ``a * sigmoid(a)``. The last three are
        fastmlp's own: scikit-learn has none of them, so ``to_sklearn()`` refuses such models
        (the ONNX export takes them).
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'lbfgs' is SciPy's L-BFGS-B on the full batch; 'sgd' minibatch SGD; 'adam' Adam.
    alpha : float, default=0.0001
        Strength of the L2 penalty, ``0.5 * alpha * sum ||W||^2 / n_samples`` added to the loss.
    batch_size : int or 'auto', default='auto'
        Minibatch size of the stochastic solvers; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule of the 'sgd' solver.
    learning_rate_init : float, default=0.001
        Initial learning rate of 'sgd' and 'adam'.
    power_t : float, default=0.5
        Exponent of the 'invscaling' schedule.
    max_iter : int, default=200
        Epochs of the stochastic solvers; iterations of 'lbfgs'.
    shuffle : bool, default=True
        Whether to shuffle the samples every epoch (stochastic solvers).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffles and the early-stopping split.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no improvement.
    verbose : bool, default=False
        Print the loss of every epoch (and the validation score), in scikit-learn's format.
    warm_start : bool, default=False
        Start ``fit`` from the current ``coefs_`` and ``intercepts_``.
    momentum : float, default=0.9
        Momentum of 'sgd'.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum in 'sgd'.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified) and stop when its accuracy
        stops improving; the best weights are restored.
    validation_fraction : float, default=0.1
        Share of the data held out for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of Adam's first and second moment estimates.
    epsilon : float, default=1e-8
        Adam's numerical stability term.
    n_iter_no_change : int, default=10
        Epochs without improvement of at least ``tol`` before stopping.
    max_fun : int, default=15000
        Maximum number of loss evaluations of 'lbfgs'.
    device : {'cpu', 'cuda'} or 'cuda:<index>', default='cpu'
        Where training and prediction run; 'cuda' is 'cuda:0'. A GPU needs fastmlp built with
        CUDA (``pip install . -C cmake.define.FASTMLP_CUDA=ON``) and a CUDA device, else
        ``fit`` and ``predict`` raise a RuntimeError saying which is missing (see
        :func:`fastmlp.cuda_available`). The data goes to the GPU once per ``fit`` call and the
        weights and optimizer state come back to ``coefs_``, ``intercepts_`` at its end, so
        pickling, ``save`` and ``partial_fit`` work as on the CPU, and a model moves between
        devices with ``set_params(device=...)``. The GPU sums in another order than the CPU:
        its models agree with the CPU's to rounding, not bitwise. scikit-learn's MLP lacks it:
        ``to_sklearn`` drops it.
    leaky_relu_slope : float, default=0.01
        The slope of 'leaky_relu' below zero (positive); unused by the other activations.
    compute_dtype : {None, 'bfloat16'}, default=None
        The precision of the matrix products (as Keras's ``compute_dtype`` and PyTorch's
        autocast). None: the parameters' dtype (X's: float32, else float64). 'bfloat16': the
        products of the wide layers (at least 16 inputs and outputs, 128 x 128 weights; not a
        sparse first layer) run on bfloat16 operands with float32 accumulation, 2-3x
        faster on CPUs with AMX (Intel Sapphire Rapids and later) or AVX512-BF16 (AMD Zen 4 and
        later), while the weights, the optimizer's moments, the loss, softmax and the sums stay
        float32 (so ``coefs_`` are float32 whatever X's dtype). Test accuracy stays within
        about a point of float32's. Fitting on a CPU with neither raises a RuntimeError;
        predicting there runs in float32 with a :class:`fastmlp.Bf16FallbackWarning`; the GPU
        raises NotImplementedError. ``FASTMLP_BF16_KERNEL=amx|avx512_bf16`` forces a kernel.
        scikit-learn's MLP lacks it: ``to_sklearn`` drops it (its model computes in float32).
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, ``{label: weight}`` (labels not given weigh 1), multiplying
        the sample weights as in scikit-learn's other classifiers (scikit-learn issue 9113).
        'balanced' weighs each class ``n_samples / (n_classes * count)`` from the labels of
        the ``fit`` call (``partial_fit`` refuses it: one batch's counts are not the data's).
        A validation set is weighed too. Not for multilabel targets. scikit-learn's MLP lacks
        it: ``to_sklearn`` drops it (the fitted model is the same).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    loss_ : float
        The loss of the last epoch (with its L2 term).
    best_loss_ : float or None
    loss_curve_ : list of float
    validation_scores_ : list of float or None
    validation_loss_curve_ : list of float or None
        With early stopping, the loss (with its L2 term, as ``loss_curve_``) on the
        validation set after each epoch; None without.
    best_validation_score_ : float or None
    t_ : int
        Training samples seen by the solver.
    coefs_ : list of ndarray of shape (n_units[i], n_units[i + 1])
        Weight matrices, in scikit-learn's layout; assigning them sets the weights.
    intercepts_ : list of ndarray of shape (n_units[i + 1],)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str

    See Also
    --------
    MLPRegressor : The regressor.
    fastmlp.from_sklearn : Convert a scikit-learn MLP into fastmlp's.

    Notes
    -----
    Where fastmlp differs from scikit-learn 1.9 on purpose:

    - float32 input keeps the model in float32 with every solver (scikit-learn's 'lbfgs'
      returns float64 weights), and a float32 model predicts in float32 whatever the input.
    - A warm-started ``fit`` with ``early_stopping=True`` that does not beat the best validation
      score keeps the best weights; scikit-learn trains its restored best weights in place and
      returns the last epoch's.
    - Changing ``early_stopping`` between calls (``fit`` with it, then ``partial_fit``; or a
      warm start with it switched on) works; scikit-learn raises a TypeError.
    - Without early stopping, training stops with scikit-learn's "non-finite parameter
      weights" error as soon as the weights become non-finite, rather than after ``max_iter``
      epochs. (With early stopping, as in scikit-learn, diverged weights score NaN and the
      best finite weights are kept.)
    - Assigned ``coefs_`` and ``intercepts_`` are checked before use (count, shapes from
      ``n_features_in_``, ``hidden_layer_sizes`` and ``n_outputs_``, numbers, finite), with a
      ValueError naming the array; scikit-learn fails inside NumPy or predicts NaN.
    - L-BFGS runs with one BLAS thread (much faster on small problems) and gradient buffers
      at a fixed alignment, so that identical fits give identical models.
    - Negative ``sample_weight`` values are refused.
    - The extra parameter ``device`` (default 'cpu') trains and predicts on a GPU;
      ``class_weight`` weighs the classes; ``fit`` takes a validation set of one's own
      (``X_val``, ``y_val``, ``sample_weight_val``) for early stopping; and
      ``validation_loss_curve_`` records the validation loss. Their defaults change nothing.

    :meth:`save` writes the model in a safe format that :func:`fastmlp.load` reads back;
    :meth:`to_sklearn` returns the equivalent scikit-learn estimator.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from fastmlp import MLPClassifier
    >>> X, y = make_classification(n_samples=100, random_state=1)
    >>> clf = MLPClassifier(random_state=1, max_iter=300).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 2)
    """

    def __init__(
        self,
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
        class_weight=None,
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
            loss="log_loss",
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
        self.class_weight = class_weight

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            # One class trains as scikit-learn's does: a logistic output whose target is always
            # 0, so that predict gives that class and predict_proba two columns (1 - p, p).
            binarizer = _fitted_label_binarizer(y)
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return X, _binarize(self._label_binarizer, y)

    def predict(self, X):
        """Predict with the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        self._check_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    def _weighted_samples(self, Y, sample_weight, incremental):
        """sample_weight times the weight of each sample's class (``class_weight``); Y is
        the indicator matrix (n_samples, n_outputs) of the labels."""
        if self.class_weight is None:
            return sample_weight
        binarizer = self._label_binarizer
        if binarizer.y_type_ == "multilabel-indicator":
            raise ValueError("class_weight is not supported for multilabel targets (y is 2-D).")
        if incremental and self.class_weight == "balanced":
            # scikit-learn's SGDClassifier's message: one batch's counts are not the data's.
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In order to use "
                "'balanced' weights, use compute_class_weight('balanced', classes=classes, y=y). "
                "In place of y you can use a large enough sample of the full training set "
                "target to properly estimate the class frequency distributions. Pass the "
                "resulting weights as the class_weight parameter."
            )
        classes = self.classes_
        if isinstance(self.class_weight, dict):
            unknown = [label for label in self.class_weight if label not in set(classes.tolist())]
            if unknown:
                raise ValueError(
                    f"The classes, {unknown}, in class_weight are not among the classes of y, "
                    f"{classes.tolist()}."
                )
        # Each sample's class: its column of a multiclass indicator; 0/1 for binary targets.
        index = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0].astype(np.intp)
        labels = classes[index]
        present = classes if self.class_weight != "balanced" else np.unique(labels)
        weights = compute_class_weight(self.class_weight, classes=present, y=labels)
        per_class = np.ones(len(classes))
        per_class[np.searchsorted(classes, present)] = weights
        class_weights = per_class[index]
        if sample_weight is None:
            return class_weights
        return (sample_weight * class_weights).astype(sample_weight.dtype, copy=False)

    def _validate_y_val(self, y_val):
        """(y_val's labels as the score compares them, their indicator matrix)."""
        y_val = check_array(y_val, ensure_2d=False, dtype=None, input_name="y_val")
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        unseen = np.setdiff1d(unique_labels(y_val), self.classes_)
        if self._label_binarizer.y_type_ != "multilabel-indicator" and len(unseen):
            raise ValueError(f"y_val contains previously unseen labels: {unseen.tolist()}")
        return y_val, _binarize(self._label_binarizer, y_val)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            All the classes that calls may see: required on the first call; later calls may
            repeat it (it must then be the same) or leave it out.

        Returns
        -------
        self : object
        """
        _cuda.resolve_device(self.device)  # a missing GPU fails before the classes are set
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """Log of the probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``, classes in the order of ``classes_``.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The probability of each class, in the order of ``classes_``.
        """
        self._check_fitted()
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


def _fitted_label_binarizer(y):
    """``LabelBinarizer().fit(y)``, with a short cut for the commonest labels.

    For a non-empty 1-D integer array, the ``type_of_target`` and ``unique_labels`` that fit
    runs come down to one ``np.unique``: "binary" for at most two distinct labels, else
    "multiclass". Fit's own checks took three times as long, a twentieth of the fit of a small
    network on 20000 samples. The tests hold the short cut to the real fit's attributes.
    """
    if isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu" and len(y):
        binarizer = LabelBinarizer()
        binarizer.classes_ = _unique_integers(y)
        binarizer.y_type_ = "binary" if len(binarizer.classes_) <= 2 else "multiclass"
        binarizer.sparse_input_ = False
        return binarizer
    return LabelBinarizer().fit(y)


def _are_first_integers(classes):
    """Whether classes (sorted, distinct) are 0, 1, ..., K-1."""
    return classes.dtype.kind in "iu" and classes[0] == 0 and classes[-1] == len(classes) - 1


def _unique_integers(y):
    """``np.unique(y)`` of a non-empty 1-D integer array.

    Labels 0..K-1 (or any small non-negative integers) are counted with ``np.bincount``, a
    ninth of ``np.unique``'s time on 20000 labels; others go to ``np.unique``.
    """
    if int(y.min()) >= 0 and int(y.max()) <= 2 * len(y):
        # (Bounded by 2 len(y), the labels fit in intp, as bincount wants, whatever y's dtype.)
        return np.flatnonzero(np.bincount(y.astype(np.intp, copy=False))).astype(y.dtype)
    return np.unique(y)


def _binarize(binarizer, y):
    """The indicator matrix (n_samples, n_outputs) of y, as ``binarizer.transform(y)``.

    For 1-D binary and multiclass labels it is built directly from sorted-class indices: the
    same matrix, without transform()'s second pass of label-type checks, which cost as much as
    a whole epoch of a small network.
    """
    classes = binarizer.classes_
    if y.ndim == 1 and binarizer.y_type_ in ("binary", "multiclass") and len(y):
        if (
            _are_first_integers(classes)
            and y.dtype.kind in "iu"
            and 0 <= y.min() <= y.max() < len(classes)
        ):
            index = y  # the classes are 0..K-1: each label is its own index
        else:
            index = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
        if index is y or np.array_equal(classes[index], y):  # every label is one of the classes
            if binarizer.y_type_ == "binary":
                return (index == 1)[:, np.newaxis]
            indicator = np.zeros((len(y), len(classes)), dtype=bool)
            indicator[np.arange(len(y)), index] = True
            return indicator
    return binarizer.transform(y).astype(bool)
