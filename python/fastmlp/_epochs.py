"""Epoch runners: where a fit's minibatches run, behind one interface.

The estimator's epoch loop (shuffle, schedules, stopping, early stopping) is the same for every
device; it hands each epoch's sample order to a runner:

- :class:`CpuEpochs` calls ``fastmlp._core.train_epoch`` on the host arrays, which it updates
  in place: the host always holds the current parameters and moments.
- :class:`CudaEpochs` uploads X, Y, the sample weights, the parameters and the optimizer's
  moments once, into a ``fastmlp._cuda_core.Trainer``, and runs each epoch there; only the
  order (n_samples int64) goes up per epoch. The host arrays are stale until
  :meth:`~CudaEpochs.to_host` copies the device's state into them, in place.
"""

from fastmlp import _core, _cuda

# Let narrow networks use the fully fused CUDA kernel. Tests switch it off to check the
# general kernels on small networks too.
use_fused_kernel = True


def epoch_runner(device, X, Y, sample_weight, coefs, intercepts, optimizer, network):
    """The runner for ``device`` (None: the CPU; an int: that CUDA device).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
    sample_weight : ndarray of shape (n_samples,) or None
    coefs, intercepts : lists of ndarray
        The parameters, updated (on the CPU at once, for CUDA by ``to_host``) in place.
    optimizer : SGDState or AdamState
        Its ``core_arguments()`` give the moments and the current learning rate.
    network : dict
        ``activation``, ``output_activation``, ``loss`` and ``alpha``, as the core takes them.

    All arrays are C-contiguous, writeable and of X's dtype.
    """
    runner = CpuEpochs if device is None else CudaEpochs
    return runner(device, X, Y, sample_weight, coefs, intercepts, optimizer, network)


class CpuEpochs:
    """Epochs on the CPU, in the C++ core, on the host arrays."""

    def __init__(self, device, X, Y, sample_weight, coefs, intercepts, optimizer, network):
        self._data = (X, Y, sample_weight)
        self._coefs, self._intercepts = coefs, intercepts
        self._network = network

    def train_epoch(self, order, batch_size, optimizer_arguments):
        """One epoch over ``order`` (int64 indices); returns (summed batch losses, adam's t)."""
        X, Y, sample_weight = self._data
        return _core.train_epoch(
            X,
            Y,
            sample_weight,
            order,
            batch_size,
            self._coefs,
            self._intercepts,
            **self._network,
            **optimizer_arguments,
        )

    def to_host(self):
        """Nothing to copy: the core updated the host arrays in place."""


class CudaEpochs:
    """Epochs on a CUDA device, with data, parameters and moments resident there."""

    def __init__(self, device, X, Y, sample_weight, coefs, intercepts, optimizer, network):
        arguments = optimizer.core_arguments()
        self._coefs, self._intercepts = coefs, intercepts
        self._optimizer = optimizer
        self._alpha = network["alpha"]
        self._trainer = _cuda.module().Trainer(
            X,
            Y,
            sample_weight,
            coefs,
            intercepts,
            arguments["first"],
            arguments["second"],
            network["activation"],
            network["output_activation"],
            network["loss"],
            arguments["solver"],
            device=device,
            fused=use_fused_kernel,
        )

    def train_epoch(self, order, batch_size, optimizer_arguments):
        """One epoch over ``order`` (int64 indices); returns (summed batch losses, adam's t)."""
        a = optimizer_arguments
        return self._trainer.train_epoch(
            order,
            batch_size,
            self._alpha,
            a["learning_rate"],
            a["momentum"],
            a["nesterov"],
            a["beta_1"],
            a["beta_2"],
            a["epsilon"],
            a["t"],
        )

    def to_host(self):
        """Copy the device's parameters and moments into the host arrays, in place."""
        arguments = self._optimizer.core_arguments()
        self._trainer.download(
            self._coefs, self._intercepts, arguments["first"], arguments["second"]
        )
