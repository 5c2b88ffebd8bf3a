"""Data-parallel training on a Dask cluster: :class:`DaskMLPClassifier` and
:class:`DaskMLPRegressor`.

The estimators take the local estimators' parameters plus ``client`` and ``sync_period``, fit
on dask arrays and DataFrames whose partitions stay on the workers (``dask.distributed``'s real
scheduler and workers), predict lazily, and give the equivalent local estimator with
``to_local()``. ``solver='lbfgs'`` is full-batch L-BFGS over the sum of the workers' losses and
gradients (the local fit's model, to rounding); ``'sgd'`` and ``'adam'`` run local SGD with
model averaging every ``sync_period`` minibatches. Needs ``pip install "fastmlp[dask]"``.

How it is built: ``_data`` (partitions, persisted and grouped by worker), ``_worker`` (what
runs on the workers and the state they keep per fit), ``_session`` (one fit seen from the
client: waiting, Ctrl-C, lost workers, tree reductions), ``_lbfgs`` and ``_sgd`` (the two
training schemes), ``_estimators`` (the scikit-learn estimators).
"""

try:
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        'fastmlp.dask needs dask and distributed: pip install "fastmlp[dask]"'
    ) from error

from fastmlp.dask._estimators import DaskMLPClassifier, DaskMLPRegressor

__all__ = ["DaskMLPClassifier", "DaskMLPRegressor"]
