"""Pure-NumPy reference implementation of fastmlp's low-level network.

This module is the oracle that the C++ core is tested against, and a readable statement of the
math. ``MLP`` here has the same signature as ``fastmlp.MLP`` and gives the same results up to
rounding; it favours clarity over speed. The optimizers' update rules (SGD with momentum and
Nesterov's, Adam), the learning-rate schedules and a training ``epoch`` are here as well,
written in ``fastmlp._reference_optim`` (a second file only so that each reads in one sitting)
and re-exported.

The reference shares no code with the product in either direction: it imports only NumPy,
SciPy, scikit-learn's ``check_random_state`` and its own second file, and neither
``fastmlp.MLP`` nor the estimators import it. An oracle that shared a helper with the product
could not see that helper's bugs.

(At about 500 lines this file is longer than the project's rule of 400: the network, its
checks and the lecture's equations beside the code read best in one piece, and the comments are
most of the length.)

Conventions
-----------
* Samples are rows. Dense layer ``l = 1..L`` computes::

      a_l = z_{l-1} @ W_l + b_l        z_0 = X, shape (n_samples, n_features)
      z_l = f_l(a_l)                   z_L = h, the output, shape (n_samples, n_outputs)

  ``W_l`` has shape ``(fan_in, fan_out)``, like scikit-learn's ``coefs_[l-1]``. The lecture
  writes ``w_ji`` (target unit ``j``, source unit ``i``): that matrix is ``W_l.T``.
* Hidden layers use ``activation``, the last layer ``output_activation``. Derivatives are
  taken from the layer's output ``z``: logistic ``z (1 - z)``, tanh ``1 - z**2``, relu
  ``[z > 0]``, identity ``1``, exp ``z``, leaky_relu ``[z > 0] + slope [z <= 0]``; gelu's and
  silu's only from the pre-activation ``a`` (neither is monotonic, so ``z`` does not determine
  ``a``). ``step`` (threshold unit: 1 where ``a >= 0``, else 0) has no gradient, so networks
  using it run forward only. leaky_relu, gelu and silu are hidden-only.
* Losses are weighted means over samples (weights ``w_i``, ``S = sum_i w_i``) of a sum over
  outputs ``k`` of:

  - squared_error: ``1/2 (h - y)**2``
  - log_loss, logistic output: ``-[y log p + (1 - y) log(1 - p)]``
  - log_loss, softmax output: ``-y log p`` (each row of ``Y`` should sum to 1)
  - poisson, exp output: ``y log(y / h) - y + h``

  where ``p`` is ``h`` clipped to ``[eps, 1 - eps]``, plus the L2 penalty
  ``alpha / 2 * sum_l ||W_l||_F**2 / S`` (weights only, not intercepts).
* Initial weights follow scikit-learn's Glorot rule and draw order, so the same
  ``random_state`` gives the same weights as scikit-learn's MLP.
* ``compute_dtype="bfloat16"`` (float32 parameters): the three products of every layer with
  at least ``BF16_MIN_UNITS`` inputs and outputs and ``BF16_MIN_WEIGHTS`` weights (narrower
  ones gain no speed), ``z_{l-1} @ W_l``, ``z_{l-1}.T @ delta_l``
  and ``delta_l @ W_l.T``, take both operands rounded to bfloat16 (round to nearest, ties to
  even: ``round_to_bfloat16``) and sum exactly (here in float64; the product in float32);
  everything else is float32 as without it.
"""

import math
import numbers

import numpy as np
from scipy.special import erf, xlogy
from sklearn.utils import check_random_state

from fastmlp._reference_optim import (
    SCHEDULES,
    SGD,
    Adam,
    adam_step_rate,
    epoch,
    invscaling_rate,
)

__all__ = [
    "BF16_MIN_UNITS",
    "BF16_MIN_WEIGHTS",
    "HIDDEN_ACTIVATIONS",
    "LOSSES",
    "MLP",
    "OUTPUT_ACTIVATIONS",
    "SCHEDULES",
    "SGD",
    "VALID_OUTPUTS",
    "Adam",
    "activate",
    "adam_step_rate",
    "derivative",
    "epoch",
    "invscaling_rate",
    "round_to_bfloat16",
    "sample_losses",
]

OUTPUT_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "step", "softmax", "exp")
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "step", "leaky_relu", "gelu", "silu")
LOSSES = ("squared_error", "log_loss", "poisson")
#: The output activations that each loss accepts.
VALID_OUTPUTS = {
    "squared_error": tuple(f for f in OUTPUT_ACTIVATIONS if f != "softmax"),
    "log_loss": ("logistic", "softmax"),
    "poisson": ("exp",),
}
# (output activation, loss) pairs whose output local error dloss/da_L is just h - y: the
# activation is the loss's canonical inverse link, so f'(a_L) cancels.
_MATCHING = {
    ("identity", "squared_error"),
    ("logistic", "log_loss"),
    ("softmax", "log_loss"),
    ("exp", "poisson"),
}


def _sigmoid(a):
    # 1 / (1 + e^-a) = e^a / (1 + e^a), written with e^-|a| so no exponential overflows.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1, e) / (1 + e)


def activate(name, a, slope=0.01):
    """Return ``z = f(a)`` for activation ``name``, of ``OUTPUT_ACTIVATIONS`` or
    ``HIDDEN_ACTIVATIONS``.

    Parameters
    ----------
    name : str
    a : ndarray of shape (n_samples, n_units)
    slope : float, default=0.01
        leaky_relu's slope below zero; the other activations ignore it.

    Returns
    -------
    z : ndarray of shape (n_samples, n_units), of ``a``'s dtype
    """
    if name == "identity":
        return a
    if name == "logistic":
        return _sigmoid(a)
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0)
    if name == "leaky_relu":
        # f(a) = a for a > 0, slope * a for a <= 0: relu whose negative side still learns.
        return np.where(a > 0, a, slope * a).astype(a.dtype)
    if name == "gelu":
        # Gaussian error linear unit, the exact form: f(a) = a Phi(a), Phi the standard normal
        # CDF, Phi(a) = 1/2 (1 + erf(a / sqrt 2)): a weighted by how likely a N(0,1) is below it.
        return (0.5 * a * (1 + erf(a / np.sqrt(2)))).astype(a.dtype)
    if name == "silu":
        # Sigmoid linear unit (swish): f(a) = a sigma(a), sigma the logistic function.
        return (a * _sigmoid(a)).astype(a.dtype)
    if name == "step":
        return (a >= 0).astype(a.dtype)
    if name == "exp":
        return np.exp(a)
    if name == "softmax":
        # e^a_k / sum_j e^a_j; subtracting the row max changes nothing but keeps exponents <= 0.
        e = np.exp(a - a.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}")


def derivative(name, z, a=None, slope=0.01):
    """Return ``f'(a)``, computed from the layer's output ``z = f(a)`` (gelu, silu: from ``a``).

    Parameters
    ----------
    name : str
        "identity", "logistic", "tanh", "relu", "exp", "leaky_relu", "gelu" or "silu" (not
        "step" nor "softmax").
    z : ndarray of shape (n_samples, n_units)
    a : ndarray of shape (n_samples, n_units), default=None
        The pre-activations; needed by gelu and silu only.
    slope : float, default=0.01
        leaky_relu's slope below zero.

    Returns
    -------
    fprime : ndarray of shape (n_samples, n_units)
    """
    if name == "identity":
        return np.ones_like(z)
    if name == "logistic":
        return z * (1 - z)
    if name == "tanh":
        return 1 - z**2
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "exp":
        return z
    if name == "leaky_relu":
        # f'(a) = 1 for a > 0, slope below; slope > 0, so z > 0 exactly where a > 0.
        return np.where(z > 0, 1, slope).astype(z.dtype)
    if name == "gelu":
        # f(a) = a Phi(a)  =>  f'(a) = Phi(a) + a phi(a), phi(a) = e^(-a^2/2) / sqrt(2 pi) the
        # standard normal density (the product rule, with Phi' = phi).
        cdf = 0.5 * (1 + erf(a / np.sqrt(2)))
        pdf = np.exp(-0.5 * a**2) / np.sqrt(2 * np.pi)
        return (cdf + a * pdf).astype(z.dtype)
    if name == "silu":
        # f(a) = a s, s = sigma(a), sigma' = s (1 - s)  =>  f'(a) = s + a s (1 - s)
        #                                                        = s (1 + a (1 - s)).
        s_ = _sigmoid(a)
        return (s_ * (1 + a * (1 - s_))).astype(z.dtype)
    raise ValueError(f"no elementwise derivative for activation {name!r}")


def sample_losses(loss, output_activation, H, Y):
    """Return each sample's loss, summed over outputs (unweighted, without the L2 term).

    Parameters
    ----------
    loss, output_activation : str
        The loss and the output activation that produced ``H``.
    H, Y : ndarray of shape (n_samples, n_outputs)
        Network outputs and targets.

    Returns
    -------
    losses : ndarray of shape (n_samples,)
    """
    if loss == "squared_error":
        return 0.5 * ((H - Y) ** 2).sum(axis=1)
    if loss == "poisson":
        # xlogy makes y log(y / h) exactly 0 where y = 0.
        return (xlogy(Y, Y / H) - Y + H).sum(axis=1)
    # Clipping keeps the logs finite, so the y = 0 terms 0 * log(p) are exactly 0.
    eps = np.finfo(H.dtype).eps
    P = np.clip(H, eps, 1 - eps)
    if output_activation == "softmax":
        return -(Y * np.log(P)).sum(axis=1)
    return -(Y * np.log(P) + (1 - Y) * np.log(1 - P)).sum(axis=1)


def _check_choice(param, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{param} must be one of {choices}, got {value!r}")


def _is_finite_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


#: Layers with fewer inputs or outputs than this keep float32 products under bfloat16,
BF16_MIN_UNITS = 16
#: as do layers with fewer weights than this.
BF16_MIN_WEIGHTS = 128 * 128


def round_to_bfloat16(x):
    """Round to the nearest bfloat16, ties to even, keeping the float32 type.

    The top 16 bits of each float32 after adding just under half of the dropped part's unit,
    plus one where the kept part is odd (so that ties go to even). NaN stays NaN; infinities
    stay; numbers past bfloat16's largest round to infinity.

    Parameters
    ----------
    x : array-like
        Converted to float32 first.

    Returns
    -------
    rounded : ndarray of float32
        Every element a bfloat16 value.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    keep_odd = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + keep_odd) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, out)


class MLP:
    """A multilayer perceptron: forward pass, backpropagation and gradient-descent steps.

    Parameters
    ----------
    layer_sizes : sequence of int, length >= 2
        Units per layer: ``(n_features, hidden..., n_outputs)``.
    activation : str, default="relu"
        Activation of the hidden layers, one of ``HIDDEN_ACTIVATIONS``.
    output_activation : str, default="identity"
        One of ``OUTPUT_ACTIVATIONS`` that ``loss`` accepts (see ``VALID_OUTPUTS``).
    loss : {"squared_error", "log_loss", "poisson"}, default="squared_error"
    dtype : {"float32", "float64"} or numpy float type, default="float64"
        Dtype of the parameters, the computations and the results.
    random_state : None, int or numpy.random.RandomState, default=None
        Seeds the initial weights, as in scikit-learn.
    alpha : float, default=0.0
        Strength of the L2 penalty on the weights.
    leaky_relu_slope : float, default=0.01
        The slope of "leaky_relu" below zero (positive); unused by the other activations.
    compute_dtype : {None, "bfloat16"}, default=None
        "bfloat16" (with dtype float32): the products of the layers of at least
        ``BF16_MIN_UNITS`` inputs and outputs and ``BF16_MIN_WEIGHTS`` weights on
        bfloat16-rounded operands (see Conventions).
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
        leaky_relu_slope=0.01,
        compute_dtype=None,
    ):
        if (
            isinstance(layer_sizes, str)
            or not hasattr(layer_sizes, "__len__")
            or len(layer_sizes) < 2
            or not all(
                isinstance(n, numbers.Integral) and not isinstance(n, bool) and int(n) > 0
                for n in layer_sizes
            )
        ):
            raise ValueError(
                f"layer_sizes must be a sequence of at least 2 positive ints, got {layer_sizes!r}"
            )
        _check_choice("activation", activation, HIDDEN_ACTIVATIONS)
        _check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
        _check_choice("loss", loss, LOSSES)
        if output_activation not in VALID_OUTPUTS[loss]:
            raise ValueError(
                f"loss={loss!r} cannot be used with output_activation="
                f"{output_activation!r}; it needs one of {VALID_OUTPUTS[loss]}"
            )
        try:  # np.dtype(None) would mean float64: refuse it
            self.dtype = None if dtype is None else np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if not _is_finite_real(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        if not _is_finite_real(leaky_relu_slope) or leaky_relu_slope <= 0:
            raise ValueError(
                f"leaky_relu_slope must be a finite number > 0, got {leaky_relu_slope!r}"
            )
        if compute_dtype not in (None, "bfloat16"):
            raise ValueError(f"compute_dtype must be None or 'bfloat16', got {compute_dtype!r}")
        if compute_dtype == "bfloat16" and self.dtype != np.float32:
            raise ValueError("compute_dtype='bfloat16' needs dtype='float32' (its master weights)")
        self.compute_dtype = compute_dtype
        self.leaky_relu_slope = float(leaky_relu_slope)
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.activation = activation
        self.output_activation = output_activation
        self.loss = loss
        self.alpha = float(alpha)
        self.random_state = random_state
        n_hidden = len(self.layer_sizes) - 2
        self._activations = [activation] * n_hidden + [output_activation]

        # Glorot uniform in scikit-learn's order (W_1, b_1, W_2, b_2, ...), drawn in float64.
        try:
            rng = check_random_state(random_state)
        except ValueError as exc:
            raise ValueError(
                "random_state must be None, an int or a numpy.random.RandomState, "
                f"got {random_state!r}"
            ) from exc
        factor = 2.0 if activation == "logistic" else 6.0
        self._coefs, self._intercepts = [], []
        for fan_in, fan_out in self._shapes():
            bound = np.sqrt(factor / (fan_in + fan_out))
            W = rng.uniform(-bound, bound, (fan_in, fan_out))
            b = rng.uniform(-bound, bound, fan_out)
            self._coefs.append(W.astype(self.dtype))
            self._intercepts.append(b.astype(self.dtype))

    def _shapes(self):
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
        self._coefs = self._check_params("coefs", values, self._shapes())

    @property
    def intercepts(self):
        """list of ndarray of shape (fan_out,): the biases ``b_l``, handled like ``coefs``."""
        return list(self._intercepts)

    @intercepts.setter
    def intercepts(self, values):
        shapes = [(fan_out,) for _, fan_out in self._shapes()]
        self._intercepts = self._check_params("intercepts", values, shapes)

    def _check_params(self, name, values, shapes):
        # Check every layer before storing any, so a failed assignment changes nothing.
        values = list(values)
        if len(values) != len(shapes):
            raise ValueError(
                f"{name} must hold {len(shapes)} arrays (one per layer), got {len(values)}"
            )
        checked = []
        for layer, (value, shape) in enumerate(zip(values, shapes, strict=True)):
            value = np.array(value, dtype=self.dtype, order="C")  # always a copy
            if value.shape != shape:
                raise ValueError(f"{name}[{layer}] must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name}[{layer}] contains NaN or infinity")
            checked.append(value)
        return checked

    def _check_X(self, X):
        X = np.asarray(X, dtype=self.dtype)  # converts, never modifies the caller's array
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0] or len(X) == 0:
            raise ValueError(
                f"X must have shape (n_samples >= 1, {self.layer_sizes[0]}), got {X.shape}"
            )
        return X

    def _check_targets(self, X, Y, sample_weight):
        X = self._check_X(X)
        n_samples, n_outputs = len(X), self.layer_sizes[-1]
        Y = np.asarray(Y, dtype=self.dtype)
        if Y.shape != (n_samples, n_outputs) and not (n_outputs == 1 and Y.shape == (n_samples,)):
            raise ValueError(f"Y must have shape {(n_samples, n_outputs)}, got {Y.shape}")
        if sample_weight is None:
            w = np.ones(n_samples, dtype=self.dtype)
        else:
            w = np.asarray(sample_weight, dtype=self.dtype)
            if w.shape != (n_samples,):
                raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
                raise ValueError("sample_weight must be finite and non-negative, with a sum > 0")
        return X, Y.reshape(n_samples, n_outputs), w

    def _check_trainable(self):
        if "step" in self._activations:
            raise ValueError(
                "the 'step' activation has no gradient (its derivative is 0 almost "
                "everywhere): a network with step units runs forward only"
            )

    def _product(self, a, b, W):
        """a @ b, one of the products of the layer whose weights are W: on bfloat16-rounded
        operands, summed exactly, where that layer computes in bfloat16."""
        if (
            self.compute_dtype != "bfloat16"
            or min(W.shape) < BF16_MIN_UNITS
            or W.size < BF16_MIN_WEIGHTS
        ):
            return a @ b
        exact = round_to_bfloat16(a).astype(np.float64) @ round_to_bfloat16(b).astype(np.float64)
        return exact.astype(np.float32)

    def _forward_pass(self, X, pre=None):
        """Return ``[z_0 = X, z_1, ..., z_L = h]``, each of shape (n_samples, n_units); where
        ``pre`` is a list, append ``a_1, ..., a_L`` to it."""
        Z = [X]
        for W, b, f in zip(self._coefs, self._intercepts, self._activations, strict=True):
            a = self._product(Z[-1], W, W) + b  # a_l = z_{l-1} @ W_l + b_l
            if pre is not None:
                pre.append(a)
            Z.append(activate(f, a, self.leaky_relu_slope))  # z_l = f_l(a_l)
        return Z

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
        return self._forward_pass(self._check_X(X))[-1]

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
            ``dloss/dW_l``.
        intercept_grads : list of ndarray of shape (fan_out,)
            ``dloss/db_l``.
        """
        self._check_trainable()
        X, Y, w = self._check_targets(X, Y, sample_weight)
        S = w.sum()
        A = [None]  # A[l] = a_l, the pre-activations (gelu's and silu's derivatives need them)
        Z = self._forward_pass(X, A)
        h, out = Z[-1], self.output_activation

        penalty = 0.5 * self.alpha * sum((W**2).sum() for W in self._coefs)
        loss = (w @ sample_losses(self.loss, out, h, Y) + penalty) / S

        # delta_L = h - y for the matching pairs, else (h - y) * f'(a_L); then row i times w_i.
        delta = h - Y
        if (out, self.loss) not in _MATCHING:
            delta = delta * derivative(out, h)
        delta = delta * w[:, None]

        n_layers = len(self._coefs)
        coef_grads, intercept_grads = [None] * n_layers, [None] * n_layers
        for layer in range(n_layers, 0, -1):  # the lecture's l, counted from 1
            W = self._coefs[layer - 1]
            # dloss/dW_l = (z_{l-1}.T @ delta_l + alpha W_l) / S
            coef_grads[layer - 1] = (self._product(Z[layer - 1].T, delta, W) + self.alpha * W) / S
            # dloss/db_l = sum_i delta_l / S
            intercept_grads[layer - 1] = delta.sum(axis=0) / S
            if layer > 1:
                # delta_{l-1} = f'(a_{l-1}) * (delta_l @ W_l.T), f' from z_{l-1} (or a_{l-1})
                fprime = derivative(
                    self.activation, Z[layer - 1], A[layer - 1], self.leaky_relu_slope
                )
                delta = fprime * self._product(delta, W.T, W)
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
        if not _is_finite_real(learning_rate) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
        loss, coef_grads, intercept_grads = self.backward(X, Y)
        params = self._coefs + self._intercepts
        for param, grad in zip(params, coef_grads + intercept_grads, strict=True):
            param -= learning_rate * grad
        return loss
