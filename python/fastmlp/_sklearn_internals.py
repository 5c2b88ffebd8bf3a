"""scikit-learn 1.9's private training methods of its MLP, computed by fastmlp's core.

scikit-learn's own tests (``test_gradient``) and some of its users' code call
``_forward_pass``, ``_backprop`` and ``_loss_grad_lbfgs`` on a fitted MLP. These take the same
arguments and fill the same lists as scikit-learn's (its lists are filled by assignment, so
their items may be placeholders of any shape), but the passes run in the C++ core through the
backend interface (``fastmlp._backend``): the numbers are the ones fastmlp trains with.
"""

from collections.abc import Callable

import numpy as np

from fastmlp._arrays import aligned_empty, contiguous, dense


class SklearnInternalsMixin:
    """``_forward_pass``, ``_backprop``, ``_loss_grad_lbfgs``, ``_unpack`` as in scikit-learn."""

    # What the estimator (BaseMultilayerPerceptron) provides.
    coefs_: list
    intercepts_: list
    activation: str
    out_activation_: str
    alpha: float
    leaky_relu_slope: float
    device: str
    _backend: Callable
    _model_dtype: Callable[[], type]
    _core_loss_name: Callable[[], str]

    def _network_arrays(self):
        """The backend, the model's dtype and its parameters as the core takes them."""
        dtype = self._model_dtype()
        coefs = [contiguous(c, dtype) for c in self.coefs_]
        intercepts = [contiguous(b, dtype) for b in self.intercepts_]
        return self._backend(fitting=False), dtype, coefs, intercepts

    def _forward_pass(self, activations):
        """Fill ``activations[1:]`` with every layer's output for ``X = activations[0]``.

        Parameters
        ----------
        activations : list, length = n_layers_
            ``activations[0]`` is X (n_samples, n_features); items ``1..n_layers_ - 1`` are
            replaced by the layers' outputs (n_samples, n_units[i]).

        Returns
        -------
        activations : list
            The same list.
        """
        backend, dtype, coefs, intercepts = self._network_arrays()
        X = dense(activations[0], dtype)
        layers = backend.forward(
            X, coefs, intercepts, self.activation, self.out_activation_, activations=True,
            leaky_relu_slope=self.leaky_relu_slope,
        )  # fmt: skip
        for i, z in enumerate(layers):
            activations[i + 1] = z
        return activations

    def _backprop(self, X, y, sample_weight, activations, deltas, coef_grads, intercept_grads):
        """The loss (with its L2 term) and its gradients, as scikit-learn's ``_backprop``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The targets as the network sees them (a classifier's binarized labels).
        sample_weight : array-like of shape (n_samples,) or None
        activations : list, length = n_layers_
            Items ``1..`` are replaced by the layers' outputs.
        deltas : list, length = n_layers_ - 1
            Replaced by the layers' local errors dloss/da (weighted by the sample weights, not
            yet divided by their sum, as scikit-learn's).
        coef_grads, intercept_grads : list, length = n_layers_ - 1
            Replaced by the gradients.

        Returns
        -------
        loss : float
        coef_grads : list
        intercept_grads : list
        """
        backend, dtype, coefs, intercepts = self._network_arrays()
        X = dense(X, dtype)
        Y = contiguous(np.asarray(y).reshape(X.shape[0], -1), dtype)
        if sample_weight is not None:
            sample_weight = contiguous(sample_weight, dtype)
        cgrads = [aligned_empty(c.shape, dtype) for c in coefs]
        igrads = [aligned_empty(b.shape, dtype) for b in intercepts]
        loss, layers, layer_deltas = backend.backward(
            X, Y, sample_weight, coefs, intercepts, cgrads, igrads, self.activation,
            self.out_activation_, self._core_loss_name(), self.alpha, internals=True,
            leaky_relu_slope=self.leaky_relu_slope,
        )  # fmt: skip
        for i in range(len(coefs)):
            activations[i + 1] = layers[i]
            deltas[i] = layer_deltas[i]
            coef_grads[i] = cgrads[i]
            intercept_grads[i] = igrads[i]
        return float(loss), coef_grads, intercept_grads

    def _unpack(self, packed_parameters):
        """Set ``coefs_`` and ``intercepts_`` from the flat vector (W_0..W_L-1, b_0..b_L-1)."""
        dtype = self._model_dtype()
        packed = np.asarray(packed_parameters)
        start = 0
        for name in ("coefs_", "intercepts_"):
            arrays = getattr(self, name)
            for i, array in enumerate(arrays):
                end = start + array.size
                arrays[i] = contiguous(packed[start:end].reshape(array.shape), dtype)
                start = end

    def _loss_grad_lbfgs(
        self, packed_coef_inter, X, y, sample_weight, activations, deltas, coef_grads,
        intercept_grads,
    ):  # fmt: skip
        """The loss at the flat parameters and its flat gradient, as scikit-learn's.

        Sets ``coefs_`` and ``intercepts_`` to ``packed_coef_inter`` (as scikit-learn does),
        then runs :meth:`_backprop`.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_params,)
            The gradients packed as the parameters are.
        """
        self._unpack(packed_coef_inter)
        loss, coef_grads, intercept_grads = self._backprop(
            X, y, sample_weight, activations, deltas, coef_grads, intercept_grads
        )
        grad = np.hstack([g.ravel() for g in coef_grads + intercept_grads])
        return loss, grad
