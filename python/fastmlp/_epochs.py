"""The epoch runner: an epoch's minibatches on the backend's trainer, whatever the device, in
chunks of about 0.1 s.

The estimator's epoch loop (shuffle, schedules, stopping, early stopping) hands each epoch's
sample order to :class:`EpochRunner`, which runs it on a trainer built once per fit by the
backend (``fastmlp._backend``). On the CPU the trainer works in the host arrays themselves; on a
GPU it holds device copies, and the host arrays are stale until :meth:`EpochRunner.to_host`.

Each chunk is one call into the compiled trainer with the GIL released; between chunks Python
runs, so Ctrl-C raises KeyboardInterrupt within about one chunk and the progress bar moves
within an epoch. The chunking changes nothing in the result: a chunk is a run of whole
minibatches, and the trainer's state carries over from one call to the next.
"""

import time

# A chunk should take about this long: long enough that the call costs nothing measurable,
# short enough that Ctrl-C and the progress bar answer at once.
CHUNK_SECONDS = 0.1


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
        self._batch_size = batch_size
        self._batches_per_chunk = 1  # measured on the first chunk, then kept near CHUNK_SECONDS
        self._trainer = backend.trainer(
            X, Y, sample_weight, coefs, intercepts, first, second,
            batch_size=batch_size, **network, **arguments,
        )  # fmt: skip

    def train_epoch(self, order, optimizer, progress=None):
        """Minibatches over ``order`` (int64 row indices) at the optimizer's current learning
        rate, in chunks; returns the summed batch losses times batch lengths.

        The optimizer takes the trainer's step count after every chunk, so that an interrupted
        epoch leaves it consistent with the parameters. ``progress`` (an EpochProgress) hears
        of every chunk.
        """
        accumulated = 0.0
        start, n = 0, len(order)
        while start < n:
            stop = min(n, start + self._batches_per_chunk * self._batch_size)
            began = time.perf_counter()
            # The sum goes on in the trainer: the same bits wherever the epoch is cut.
            accumulated, t = self._trainer.run(
                order[start:stop], optimizer.core_arguments()["learning_rate"], accumulated
            )
            self._adapt(time.perf_counter() - began, stop - start)
            optimizer.epoch_done(t)
            start = stop
            if progress is not None:
                progress.within_epoch(start, accumulated)
        return accumulated

    def _adapt(self, seconds, rows):
        batches = max(1, -(-rows // self._batch_size))
        per_batch = max(seconds, 1e-9) / batches
        self._batches_per_chunk = max(1, int(CHUNK_SECONDS / per_batch))

    def to_host(self):
        """Bring the host's parameters and moments up to date (a no-op on the CPU)."""
        self._trainer.get_parameters(*self._state)
