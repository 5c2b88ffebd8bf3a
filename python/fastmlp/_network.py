"""fastmlp.MLP: the low-level network, computed by the C++ core.

Everything here is written for the product and apart from :mod:`fastmlp.reference`, which it
never imports: the checks, the initial weights and ``sgd_step`` are this module's own, so that
the tests that hold the two to the same results can see a bug in either.
"""

import math
import numbers

import numpy as np
from sklearn.utils import check_random_state

from fastmlp import _arrays, _cuda, _sparse
from fastmlp._backend import backend_for

_OUTPUT = ("identity", "logistic", "tanh", "relu", "step", "softmax", "exp")
_HIDDEN = (*_OUTPUT[:5], "leaky_relu", "gelu", "silu")  # the last three: hidden layers only
_LOSSES = ("squared_error", "log_loss", "poisson")
# The output activations that each loss accepts.
_OUTPUTS_OF_LOSS = {
    "squared_error": tuple(f for f in _OUTPUT if f != "softmax"),
    "log_loss": ("logistic", "softmax"),
    "poisson": ("exp",),
}


def _check_choice(param, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{param} must be one of {choices}, got {value!r}")


def _finite_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _positive_int(n):
    return isinstance(n, numbers.Integral) and not isinstance(n, bool) and int(n) > 0


class MLP:
    """A multilayer perceptron whose passes run in fastmlp's C++ core.

    The same network as :class:`fastmlp.reference.MLP`, with the same parameters, checks and
    initial weights; ``forward`` and ``backward`` call the core, on the CPU or on a GPU. This
    class shares no code with the reference, and the tests hold the two to the same results.

    Parameters
    ----------
    layer_sizes : sequence of int, length >= 2
        Units per layer: ``(n_features, hidden..., n_outputs)``.
    activation : {"identity", "logistic", "tanh", "relu", "step", "leaky_relu", "gelu", \
"silu"}, default="relu"
        Activation of the hidden layers ("leaky_relu", "gelu" and "silu": hidden layers only,
        on the CPU and the GPU).
    output_activation : str, default="identity"
        One of the first five, "softmax" or "exp", accepted by ``loss``.
    loss : {"squared_error", "log_loss", "poisson"}, default="squared_error"
    dtype : {"float32", "float64"}, default="float64"
    random_state : None, int or numpy.random.RandomState, default=None
        Seeds scikit-learn's Glorot-uniform initial weights.
    alpha : float, default=0.0
        Strength of the L2 penalty on the weights.
    device : {"cpu", "cuda"} or "cuda:<index>", default="cpu"
        Where ``forward`` and ``backward`` (so ``sgd_step``) compute. The parameters stay
        NumPy arrays on the host; each call uploads them with X and downloads the result.
        "cuda" needs fastmlp built with CUDA and a CUDA device: checked here and at each call,
        with a RuntimeError that says which is missing.
    leaky_relu_slope : float, default=0.01
        The slope of "leaky_relu" below zero (positive); unused by the other activations.
    compute_dtype : {None, "bfloat16"}, default=None
        "bfloat16" (needs ``dtype="float32"``, the master weights' dtype): the products of the
        layers with at least 16 inputs and outputs and 128 x 128 weights run on bfloat16
        operands with float32
        accumulation, as :class:`fastmlp.reference.MLP` states. ``backward`` raises a
        RuntimeError on a CPU without AMX-BF16 or AVX512-BF16, where ``forward`` computes in
        float32 with a :class:`fastmlp.Bf16FallbackWarning`; the GPU raises
        NotImplementedError.

    Examples
    --------
    >>> import numpy as np, fastmlp
    >>> net = fastmlp.MLP((2, 3, 1), activation="tanh", random_state=0)
    >>> net.forward(np.zeros((4, 2))).shape
    (4, 1)
    """

    def __init__(
        self,
        layer_sizes,
        activation="relu",
        output_activation="identity",
        loss="squared_error",
        dtype="float64",
        random_state=None,
        alpha=0.0,
        device="cpu",
        leaky_relu_slope=0.01,
        compute_dtype=None,
    ):
        if (
            isinstance(layer_sizes, str)
            or not hasattr(layer_sizes, "__len__")
            or len(layer_sizes) < 2
            or not all(_positive_int(n) for n in layer_sizes)
        ):
            raise ValueError(
                f"layer_sizes must be a sequence of at least 2 positive ints, got {layer_sizes!r}"
            )
        _check_choice("activation", activation, _HIDDEN)
        _check_choice("output_activation", output_activation, _OUTPUT)
        _check_choice("loss", loss, _LOSSES)
        if output_activation not in _OUTPUTS_OF_LOSS[loss]:
            raise ValueError(
                f"loss={loss!r} cannot be used with output_activation="
                f"{output_activation!r}; it needs one of {_OUTPUTS_OF_LOSS[loss]}"
            )
        try:  # np.dtype(None) would mean float64: refuse it
            self.dtype = None if dtype is None else np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if not _finite_real(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        if not _finite_real(leaky_relu_slope) or leaky_relu_slope <= 0:
            raise ValueError(
                f"leaky_relu_slope must be a finite number > 0, got {leaky_relu_slope!r}"
            )
        try:
            rng = check_random_state(random_state)
        except ValueError as exc:
            raise ValueError(
                "random_state must be None, an int or a numpy.random.RandomState, "
                f"got {random_state!r}"
            ) from exc
        if compute_dtype not in (None, "bfloat16"):
            raise ValueError(f"compute_dtype must be None or 'bfloat16', got {compute_dtype!r}")
        if compute_dtype == "bfloat16" and self.dtype != np.float32:
            raise ValueError("compute_dtype='bfloat16' needs dtype='float32' (its master weights)")
        _cuda.resolve_device(device)  # fail now rather than at the first pass
        self.compute_dtype = compute_dtype
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.activation = activation
        self.output_activation = output_activation
        self.loss = loss
        self.alpha = float(alpha)
        self.leaky_relu_slope = float(leaky_relu_slope)
        self.random_state = random_state
        self.device = device

        # scikit-learn's Glorot-uniform draws, in its order W_0, b_0, W_1, b_1, ..., in float64
        # and then cast: the same random_state gives scikit-learn's weights. The arrays are
        # aligned like every other array that the core reads (fastmlp._arrays).
        factor = 2.0 if activation == "logistic" else 6.0
        self._coefs, self._intercepts = [], []
        for fan_in, fan_out in self._shapes():
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = rng.uniform(-bound, bound, (fan_in, fan_out))
            intercept = rng.uniform(-bound, bound, fan_out)
            self._coefs.append(_arrays.aligned_copy(coef, self.dtype))
            self._intercepts.append(_arrays.aligned_copy(intercept, self.dtype))

    def _shapes(self):
        """[(fan_in, fan_out)] per layer."""
        return list(zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True))

    @property
    def coefs(self):
        """list of ndarray of shape (fan_in, fan_out): the weights ``W_l``.

        Reading gives the stored arrays, which ``sgd_step`` updates in place; assigning checks
        the count, shapes and finiteness and stores copies cast to ``dtype``.
        """
        return list(self._coefs)

    @coefs.setter
    def coefs(self, values):
        self._coefs = self._checked_parameters("coefs", values, self._shapes())

    @property
    def intercepts(self):
        """list of ndarray of shape (fan_out,): the biases ``b_l``, handled like ``coefs``."""
        return list(self._intercepts)

    @intercepts.setter
    def intercepts(self, values):
        shapes = [(fan_out,) for _, fan_out in self._shapes()]
        self._intercepts = self._checked_parameters("intercepts", values, shapes)

    def _checked_parameters(self, name, values, shapes):
        # Every layer is checked before any is stored: a failed assignment changes nothing.
        values = list(values)
        if len(values) != len(shapes):
            raise ValueError(
                f"{name} must hold {len(shapes)} arrays (one per layer), got {len(values)}"
            )
        stored = []
        for layer, (value, shape) in enumerate(zip(values, shapes, strict=True)):
            if np.shape(value) != shape:
                raise ValueError(f"{name}[{layer}] must have shape {shape}, got {np.shape(value)}")
            value = _arrays.aligned_copy(value, self.dtype)  # always a copy
            if not np.isfinite(value).all():
                raise ValueError(f"{name}[{layer}] contains NaN or infinity")
            stored.append(value)
        return stored

    def _input(self, X):
        """X (n_samples, n_features) as a C-contiguous array of the network's dtype; sparse X
        (any SciPy format) as CSR of that dtype, never densified."""
        if _sparse.is_sparse(X):
            if len(X.shape) != 2 or X.shape[1] != self.layer_sizes[0] or X.shape[0] == 0:
                raise ValueError(
                    f"X must have shape (n_samples >= 1, {self.layer_sizes[0]}), got {X.shape}"
                )
            X = _sparse.as_csr(X, self.dtype)  # a copy where converted; the caller's untouched
            if not np.isfinite(X.data).all():
                raise ValueError("X contains NaN or infinity")
            return X
        X = np.asarray(X, dtype=self.dtype)  # converts, never modifies the caller's array
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0] or len(X) == 0:
            raise ValueError(
                f"X must have shape (n_samples >= 1, {self.layer_sizes[0]}), got {X.shape}"
            )
        return _arrays.contiguous(X, self.dtype)

    def _training_data(self, X, Y, sample_weight):
        """X, Y (n_samples, n_outputs) and the weights (n_samples,) or None, checked."""
        X = self._input(X)
        n_samples, n_outputs = X.shape[0], self.layer_sizes[-1]
        Y = np.asarray(Y, dtype=self.dtype)
        if Y.shape == (n_samples,) and n_outputs == 1:
            Y = Y[:, None]
        if Y.shape != (n_samples, n_outputs):
            raise ValueError(f"Y must have shape {(n_samples, n_outputs)}, got {Y.shape}")
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=self.dtype)
            if w.shape != (n_samples,):
                raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
            if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
                raise ValueError("sample_weight must be finite and non-negative, with a sum > 0")
            w = _arrays.contiguous(w, self.dtype)
        return X, _arrays.contiguous(Y, self.dtype), w

    def _check_trainable(self):
        hidden = [self.activation] if len(self.layer_sizes) > 2 else []
        if "step" in hidden + [self.output_activation]:
            raise ValueError(
                "the 'step' activation has no gradient (its derivative is 0 almost "
                "everywhere): a network with step units runs forward only"
            )

    def forward(self, X):
        """Compute the network's outputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        H : ndarray of shape (n_samples, n_outputs)
            Output activations, of the network's dtype.
        """
        backend = backend_for(self.device, self.compute_dtype, fitting=False)
        return backend.forward(
            self._input(X), self._coefs, self._intercepts, self.activation,
            self.output_activation, leaky_relu_slope=self.leaky_relu_slope,
        )  # fmt: skip

    def backward(self, X, Y, sample_weight=None):
        """Compute the loss and its gradients by backpropagation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        Y : array-like of shape (n_samples, n_outputs), or (n_samples,) if n_outputs == 1
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights with a positive sum; None weighs every sample 1.

        Returns
        -------
        loss : float
            Weighted mean loss plus the L2 penalty.
        coef_grads : list of ndarray of shape (fan_in, fan_out)
        intercept_grads : list of ndarray of shape (fan_out,)
        """
        backend = backend_for(self.device, self.compute_dtype)
        self._check_trainable()
        X, Y, w = self._training_data(X, Y, sample_weight)
        coef_grads = [_arrays.aligned_empty(W.shape, self.dtype) for W in self._coefs]
        intercept_grads = [_arrays.aligned_empty(b.shape, self.dtype) for b in self._intercepts]
        loss = backend.backward(
            X,
            Y,
            w,
            self._coefs,
            self._intercepts,
            coef_grads,
            intercept_grads,
            self.activation,
            self.output_activation,
            self.loss,
            self.alpha,
            leaky_relu_slope=self.leaky_relu_slope,
        )
        return float(loss), coef_grads, intercept_grads

    def sgd_step(self, X, Y, learning_rate):
        """Take one full-batch gradient-descent step, updating the parameters in place.

        ``W_l <- W_l - learning_rate * dloss/dW_l``, and likewise for every ``b_l``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        Y : array-like of shape (n_samples, n_outputs), or (n_samples,) if n_outputs == 1
        learning_rate : float
            Positive step size.

        Returns
        -------
        loss : float
            The loss before the step.
        """
        if not _finite_real(learning_rate) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
        loss, coef_grads, intercept_grads = self.backward(X, Y)
        grads = coef_grads + intercept_grads
        for param, grad in zip(self._coefs + self._intercepts, grads, strict=True):
            grad *= learning_rate  # the gradient arrays are this call's own
            param -= grad
        return loss
