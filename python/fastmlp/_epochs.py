"""The epoch runner: an epoch's minibatches on the backend's trainer, whatever the device.

The estimator's epoch loop (shuffle, schedules, stopping, early stopping) hands each epoch's
sample order to :class:`EpochRunner`, which runs it on a trainer built once per fit by the
backend (``fastmlp._backend``). On the CPU the trainer works in the host arrays themselves; on a
GPU it holds device copies, and the host arrays are stale until :meth:`EpochRunner.to_host`.
"""


class EpochRunner:
    """Minibatch training of one fit on one backend.

    Parameters
    ----------
    backend : fastmlp._backend.Backend
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
    sample_weight : ndarray of shape (n_samples,) or None
    coefs, intercepts : lists of ndarray
        The parameters, updated in place (on a GPU, by ``to_host``).
    optimizer : SGDState or AdamState
        Its ``core_arguments()`` give the moments, the solver and its settings.
    network : dict
        ``activation``, ``output_activation``, ``loss`` and ``alpha``.
    batch_size : int

    All arrays are C-contiguous, writeable and of X's dtype.
    """

    def __init__(self, backend, X, Y, sample_weight, coefs, intercepts, optimizer, network,
                 batch_size):  # fmt: skip
        arguments = optimizer.core_arguments()
        first, second = arguments.pop("first"), arguments.pop("second")
        self._state = (coefs, intercepts, first, second)
        self._trainer = backend.trainer(
            X, Y, sample_weight, coefs, intercepts, first, second,
            batch_size=batch_size, **network, **arguments,
        )  # fmt: skip

    def train_epoch(self, order, optimizer):
        """Minibatches over ``order`` (int64 row indices) at the optimizer's current learning
        rate; returns (summed batch losses, Adam's step count)."""
        return self._trainer.run(order, optimizer.core_arguments()["learning_rate"])

    def to_host(self):
        """Bring the host's parameters and moments up to date (a no-op on the CPU)."""
        self._trainer.get_parameters(*self._state)
