"""fastmlp.MLP: the low-level network, computed by the C++ core."""

import numpy as np

from fastmlp import _cuda, reference
from fastmlp._backend import backend_for


class MLP(reference.MLP):
    """A multilayer perceptron whose passes run in fastmlp's C++ core.

    The parameters, their checks, the initial weights and ``sgd_step`` are those of
    :class:`fastmlp.reference.MLP` (this class inherits them, so the two cannot drift apart);
    ``forward`` and ``backward`` call the core, on the CPU or on a GPU, and the tests hold them
    to the reference's results.

    Parameters
    ----------
    layer_sizes : sequence of int, length >= 2
        Units per layer: ``(n_features, hidden..., n_outputs)``.
    activation : {"identity", "logistic", "tanh", "relu", "step"}, default="relu"
        Activation of the hidden layers.
    output_activation : str, default="identity"
        One of those, "softmax" or "exp", accepted by ``loss``.
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
    ):
        super().__init__(
            layer_sizes, activation, output_activation, loss, dtype, random_state, alpha
        )
        _cuda.resolve_device(device)  # fail now rather than at the first pass
        self.device = device

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
        backend = backend_for(self.device)
        X = np.ascontiguousarray(self._check_X(X))
        return backend.forward(
            X, self._coefs, self._intercepts, self.activation, self.output_activation
        )

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
        backend = backend_for(self.device)
        self._check_trainable()
        X, Y, w = self._check_targets(X, Y, sample_weight)
        coef_grads = [np.empty_like(W) for W in self._coefs]
        intercept_grads = [np.empty_like(b) for b in self._intercepts]
        loss = backend.backward(
            np.ascontiguousarray(X),
            np.ascontiguousarray(Y),
            None if sample_weight is None else np.ascontiguousarray(w),
            self._coefs,
            self._intercepts,
            coef_grads,
            intercept_grads,
            self.activation,
            self.output_activation,
            self.loss,
            self.alpha,
        )
        return float(loss), coef_grads, intercept_grads
