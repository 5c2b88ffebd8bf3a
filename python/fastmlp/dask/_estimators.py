"""DaskMLPClassifier and DaskMLPRegressor: the local estimators' parameters plus ``client`` and
``sync_period``, trained on data spread over a Dask cluster (see ``fastmlp.dask``).

(About 470 lines, past the project's 400: two estimator classes with their numpydoc, the
client-side checks of dask inputs and the lazy predictions; the solvers live in ``_lbfgs`` and
``_sgd``.)
"""

import copy
import inspect
import time
from numbers import Integral

import numpy as np
from dask import delayed
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, clone
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted, validate_data

from fastmlp._arrays import aligned_copy, all_finite
from fastmlp._classifier import MLPClassifier
from fastmlp._lbfgs import fit_lbfgs
from fastmlp._regressor import MLPRegressor
from fastmlp._state import (
    BEST_PARAMETERS,
    CURVES,
    FEATURE_NAMES,
    OPTIMIZER,
    RANDOM_STATE,
    fitted_attributes,
)
from fastmlp._stochastic import NON_FINITE_WEIGHTS
from fastmlp.dask import _data, _worker
from fastmlp.dask._lbfgs import ClusterBackend
from fastmlp.dask._session import FitSession
from fastmlp.dask._sgd import fit_local_sgd

# Minibatches between two averages in local SGD (and at the end of every epoch).
DEFAULT_SYNC_PERIOD = 100
_OWN_PARAMS = ("client", "sync_period")
# Fitted state (fastmlp._state declares it) that predictions do not need: left out of the
# model sent to the workers.
_TRAINING_STATE = (*CURVES, *BEST_PARAMETERS, OPTIMIZER, RANDOM_STATE)


def _mirrored_init(local_class):
    """An ``__init__`` taking every parameter of ``local_class`` (read from its signature, so
    that parameters the local estimator gains later pass through) plus client and sync_period;
    it only stores them, as scikit-learn requires."""
    local = inspect.signature(local_class.__init__)
    own = [
        inspect.Parameter("client", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter(
            "sync_period", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_SYNC_PERIOD
        ),
    ]
    signature = local.replace(parameters=[*local.parameters.values(), *own])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


class _DaskMLP(BaseEstimator):
    _local_class: type = MLPClassifier

    @property
    def client_(self):
        """The Dask client that fit, predict and score use: ``client``, or the default one."""
        if self.client is not None:
            return self.client
        from distributed import default_client

        return default_client()

    # --- scikit-learn's protocols: a client is neither copied nor pickled --------------------

    def __sklearn_clone__(self):
        params = self.get_params(deep=False)
        client = params.pop("client")
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, client=client)

    def __getstate__(self):
        state = super().__getstate__()
        state["client"] = None  # a Client cannot be pickled; unpickled estimators use default
        return state

    # --- fitting ----------------------------------------------------------------------------

    def _local_params(self):
        return {k: v for k, v in self.get_params(deep=False).items() if k not in _OWN_PARAMS}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data spread over the cluster.

        Parameters
        ----------
        X : dask Array or DataFrame of shape (n_samples, n_features)
            float32 input trains in float32; anything else in float64.
        y : dask Array, Series or DataFrame of shape (n_samples,) or (n_samples, n_outputs)
            Chunked like X or not: blocks that do not line up are moved to X's.
        sample_weight : dask Array or Series of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        if getattr(self, "compute_dtype", None) is not None:
            # The workers' data, trainers and scorers all take X's dtype: bfloat16's float32
            # master weights for float64 X would need each of them to change.
            raise NotImplementedError(
                "compute_dtype='bfloat16' is not implemented in fastmlp.dask yet: fit the "
                "local estimator, or use compute_dtype=None"
            )
        began = time.perf_counter()
        client = self.client_
        params = self._local_params()
        model = self._local_class(**params)
        first_pass = not (self.warm_start and hasattr(self, "_model"))
        if not first_pass:
            model.__dict__.update(copy.deepcopy(self._fitted_state()))
        data = _data.persist_parts(
            client, X, y, sample_weight,
            classifier=isinstance(self, ClassifierMixin),
            poisson=getattr(model, "loss", None) == "poisson",
        )  # fmt: skip
        session = FitSession(client, data)
        try:
            validate_data(model, data.meta, skip_check_array=True, reset=first_pass)
            data_spec = self._data_spec(model, session, first_pass)
            hidden = model.hidden_layer_sizes
            hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
            if np.any(np.array(hidden) <= 0):
                raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
            layer_units = [data.n_features, *hidden, data_spec.n_outputs]
            dtype = data.dtype
            model._random_state = check_random_state(model.random_state)
            if first_pass:
                model._initialize(np.empty((0, data_spec.n_outputs)), layer_units, dtype)
            else:
                model._check_weights(layer_units)
            model.coefs_ = [aligned_copy(c, dtype) for c in model.coefs_]
            model.intercepts_ = [aligned_copy(b, dtype) for b in model.intercepts_]
            options = getattr(model, "_trainer_options", None)
            trainer_spec = _worker.TrainerSpec(
                layer_units,
                _network(model),
                model.device,
                dict(options()) if callable(options) else {},
            )
            prepared = time.perf_counter()
            if model.solver == "lbfgs":
                empty_X = np.empty((0, data.n_features), dtype)
                empty_Y = np.empty((0, data_spec.n_outputs), dtype)
                backend = ClusterBackend(session, data_spec, trainer_spec)
                fit_lbfgs(model, empty_X, empty_Y, None, backend)
            else:
                settings = dict(
                    sync_period=self.sync_period, batch_size=model.batch_size,
                    shuffle=model.shuffle,
                )  # fmt: skip
                scorer = self._predictor(model, names=False) if model.early_stopping else None
                fit_local_sgd(model, session, data_spec, trainer_spec, settings, scorer)
            if not all_finite(model.coefs_ + model.intercepts_):
                raise ValueError(NON_FINITE_WEIGHTS)
        finally:
            session.close()
        self._adopt(model, session)
        self._timings.update(
            prepare_seconds=prepared - began, train_seconds=time.perf_counter() - prepared
        )
        return self

    def _data_spec(self, model, session, first_pass):
        dtype = str(session.data.dtype)
        return _worker.DataSpec(dtype, n_outputs=session.data.n_outputs)

    def _fitted_state(self, names=None):
        """The fitted local estimator's state (the attributes ``fastmlp._state`` declares, or
        ``names`` of them), with the public ones as set on self (the user may assign coefs_)."""
        names = fitted_attributes() if names is None else names
        state = {k: getattr(self._model, k) for k in names if hasattr(self._model, k)}
        state.update({k: getattr(self, k) for k in names if k in vars(self)})
        return state

    def _adopt(self, model, session):
        for name in fitted_attributes():
            if name in vars(self):
                delattr(self, name)  # e.g. feature_names_in_ of an earlier fit
            if not name.startswith("_") and hasattr(model, name):
                setattr(self, name, getattr(model, name))
        self._model = model
        self._timings = dict(
            wait_seconds=session.wait_seconds,
            worker_seconds=session.worker_seconds,
            steps=session.steps,
            groups=len(session.data.groups),
            partition_groups=[g.parts for g in session.data.groups],
        )

    def to_local(self):
        """The equivalent fitted local estimator (fastmlp.MLPClassifier or MLPRegressor).

        Returns
        -------
        estimator : fastmlp.MLPClassifier or fastmlp.MLPRegressor
            The same parameters (without ``client`` and ``sync_period``) and copies of the
            fitted attributes and optimizer state: it predicts the same on in-memory data,
            saves with ``save``, converts with ``to_sklearn``, continues with ``partial_fit``.
        """
        check_is_fitted(self, ["coefs_", "intercepts_"])
        local = self._local_class(**self._local_params())
        local.__dict__.update(copy.deepcopy(self._fitted_state()))
        return local

    def _predictor(self, model=None, names=True):
        """A light copy of the fitted local estimator for the workers (no optimizer state)."""
        kept = [k for k in fitted_attributes() if k not in _TRAINING_STATE]
        if not names:
            kept.remove(FEATURE_NAMES)
        if model is None:
            state = self._fitted_state(kept)
            local = self._local_class(**self._local_params())
        else:
            state = {k: getattr(model, k) for k in kept if hasattr(model, k)}
            local = self._local_class(**model.get_params(deep=False))
        local.__dict__.update(copy.deepcopy(state))
        return local

    # --- predicting and scoring -------------------------------------------------------------

    def _map(self, X, method):
        """``method`` of the local estimator over the blocks of X, lazily."""
        check_is_fitted(self, ["coefs_", "intercepts_"])
        is_frame = _data.is_dask_collection(X) and not hasattr(X, "chunks")
        if not _data.is_dask_collection(X):
            raise TypeError(
                f"X must be a dask Array or DataFrame (got {type(X).__name__}); for in-memory "
                f"data use to_local().{method}(X)"
            )
        model = self._predictor(names=is_frame)
        n_features = X.shape[1]
        if isinstance(n_features, (int, np.integer)) and n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        # The output's shape and dtype, from one row predicted here (on the CPU: the device is
        # the workers').
        prober = self._predictor(names=False).set_params(device="cpu")
        probe = getattr(prober, method)(np.zeros((1, self.n_features_in_), self.coefs_[0].dtype))
        n_columns = None if probe.ndim == 1 else probe.shape[1]
        meta = np.empty((0,) if n_columns is None else (0, n_columns), probe.dtype)
        args = (delayed(model, pure=True), method, n_columns, probe.dtype)
        if is_frame:
            return X.map_partitions(_worker.predict_block, *args, meta=meta)
        X = X.rechunk({1: -1})
        if n_columns is None:
            return X.map_blocks(_worker.predict_block, *args, drop_axis=1, meta=meta)
        return X.map_blocks(
            _worker.predict_block, *args, chunks=(X.chunks[0], (n_columns,)), meta=meta
        )

    def predict(self, X):
        """Predict, lazily: a dask Array of shape (n_samples,) or (n_samples, n_outputs).

        Parameters
        ----------
        X : dask Array or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        y : dask Array
            Computed block by block (``map_blocks``, or ``map_partitions`` for frames) by the
            local estimator; frames give unknown chunk sizes.
        """
        return self._map(X, "predict")

    def score(self, X, y, sample_weight=None):
        """Accuracy (classifiers) or R^2 (regressors) over the cluster's data, as a float.

        Parameters
        ----------
        X : dask Array or DataFrame of shape (n_samples, n_features)
        y : dask Array, Series or DataFrame of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : dask Array or Series of shape (n_samples,), default=None

        Returns
        -------
        score : float
            scikit-learn's score on the whole data, computed from per-block sums (to
            rounding; exactly scikit-learn's where one block holds the data).
        """
        check_is_fitted(self, ["coefs_", "intercepts_"])
        client = self.client_
        X, y, sample_weight = _data.aligned_arrays(client, X, y, sample_weight)
        model = delayed(self._predictor(names=False), pure=True)
        spec = _worker.PartSpec(str(_data.model_dtype(X)), isinstance(self, ClassifierMixin))
        lazy = [
            delayed(_worker.score_block, pure=True)(model, x, yb, w, spec)
            for _, x, yb, w in _data.blocks(X, y, sample_weight)
        ]
        return float(_worker.combine_scores(client.gather(client.compute(lazy))))


_CLASS_DOC = """{summary}

    Data-parallel training of fastmlp's {local} on data spread over a Dask cluster
    (``dask.distributed``): the partitions stay on the workers that hold them, each worker
    trains on its own rows with fastmlp's core, and only parameters, moments and gradients
    travel. The interface follows ``lightgbm.DaskLGBM{kind}``.

    Parameters
    ----------
    **params
        Every parameter of :class:`fastmlp.{local}`, with the same defaults and meanings
        (``batch_size`` and ``shuffle`` apply on each worker; ``warm_start`` continues from the
        current weights; ``early_stopping`` holds out ``validation_fraction`` of each worker's
        rows and combines the workers' scores).
    client : distributed.Client, default=None
        The cluster to use; None means ``distributed.default_client()``. Not pickled: an
        unpickled estimator uses the default client.
    sync_period : int, default={sync}
        Local SGD ('sgd', 'adam'): minibatches each worker runs between two averages of the
        parameters and moments (there is one at the end of every epoch too).

    Notes
    -----
    - ``solver='lbfgs'`` is full-batch L-BFGS driven from the client: each evaluation's loss
      and gradient are the sums of the workers' (a tree reduction), equal to the local ones on
      the concatenated data to rounding, so the model equals the local L-BFGS fit to rounding.
      A worker lost in the middle reruns its evaluation on recomputed partitions: the same
      model.
    - ``solver='sgd'`` and ``'adam'`` run local SGD with model averaging (see ``sync_period``):
      *not* scikit-learn's sequential algorithm, so the model differs from the local fit's
      (one worker holding all the data gives the local fit's model). A worker lost in the middle
      fails the fit with an error naming it. Ctrl-C cancels the workers' tasks and keeps the
      last epoch's average, with the local fit's warning.
    - The model depends on how the partitions lie on the workers (which worker holds which).
    - There is no ``partial_fit``: for out-of-core streaming through one estimator, use dask-ml's
      ``Incremental`` with the local estimator.
    - ``predict``{proba} return dask Arrays, computed lazily block by block; ``score`` returns a
      float; :meth:`to_local` returns the equivalent local estimator.
    """


class DaskMLPClassifier(ClassifierMixin, _DaskMLP):
    _local_class = MLPClassifier
    _parameter_constraints: dict = {
        **MLPClassifier._parameter_constraints,
        "client": [None, HasMethods(["submit"])],
        "sync_period": [Interval(Integral, 1, None, closed="left")],
    }
    __init__ = _mirrored_init(MLPClassifier)
    score = _DaskMLP.score  # not ClassifierMixin's, which would pull predictions to the client

    def _data_spec(self, model, session, first_pass):
        ndim, n_columns, classes, counts = _data.discover_labels(session.client, session.data)
        if ndim == 2:
            binarizer = LabelBinarizer().fit(np.eye(n_columns, dtype=int))
        else:
            binarizer = LabelBinarizer().fit(classes)
            if len(binarizer.classes_) < 2:
                raise ValueError(
                    "DaskMLPClassifier needs samples of at least 2 classes in the data, but the "
                    f"data contains only one class: {binarizer.classes_[0]!r}"
                )
        if first_pass:
            model._label_binarizer = binarizer
            model.classes_ = binarizer.classes_
        elif set(binarizer.classes_) != set(model.classes_):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the previous "
                f"call to fit. Previously got {model.classes_}, `y` has {binarizer.classes_}"
            )
        binarizer = model._label_binarizer
        n_outputs = 1 if binarizer.y_type_ == "binary" else len(binarizer.classes_)
        class_weights = _class_weights(getattr(model, "class_weight", None), classes, counts)
        return _worker.DataSpec(str(session.data.dtype), binarizer, class_weights, n_outputs)

    def predict_proba(self, X):
        """Probability estimates, lazily: a dask Array of shape (n_samples, n_classes).

        Parameters
        ----------
        X : dask Array or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        y_prob : dask Array
        """
        return self._map(X, "predict_proba")

    def predict_log_proba(self, X):
        """Log of the probability estimates, lazily (see :meth:`predict_proba`).

        Parameters
        ----------
        X : dask Array or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        log_y_prob : dask Array
        """
        return self._map(X, "predict_log_proba")


def _network(model):
    """The network's settings as the local fits hand them to the backend's trainer: the
    estimator's own ``_network_config()`` where it has one, else the activations, loss and
    alpha (with the leaky-relu slope where the estimator has it)."""
    if callable(getattr(model, "_network_config", None)):
        return dict(model._network_config())
    network = dict(
        activation=model.activation,
        output_activation=model.out_activation_,
        loss=model._core_loss_name(),
        alpha=model.alpha,
    )
    if hasattr(model, "leaky_relu_slope"):
        network["leaky_relu_slope"] = model.leaky_relu_slope
    return network


def _class_weights(class_weight, classes, counts):
    """One weight per class (``class_weight``, as the local classifier takes it), 'balanced'
    from the counts over every partition; None without class weights."""
    if class_weight is None:
        return None
    if classes is None:
        raise ValueError("class_weight is not supported for multilabel targets (y is 2-D).")
    if class_weight == "balanced":
        return counts.sum() / (len(classes) * counts.astype(np.float64))
    unknown = [label for label in class_weight if label not in set(classes.tolist())]
    if unknown:
        raise ValueError(
            f"The classes, {unknown}, in class_weight are not among the classes of y, "
            f"{classes.tolist()}."
        )
    return compute_class_weight(class_weight, classes=classes, y=classes)


class DaskMLPRegressor(RegressorMixin, _DaskMLP):
    _local_class = MLPRegressor
    _parameter_constraints: dict = {
        **MLPRegressor._parameter_constraints,
        "client": [None, HasMethods(["submit"])],
        "sync_period": [Interval(Integral, 1, None, closed="left")],
    }
    __init__ = _mirrored_init(MLPRegressor)
    score = _DaskMLP.score  # not RegressorMixin's, which would pull predictions to the client


DaskMLPClassifier.__doc__ = _CLASS_DOC.format(
    summary="Multi-layer perceptron classifier trained on a Dask cluster.",
    local="MLPClassifier",
    kind="Classifier",
    sync=DEFAULT_SYNC_PERIOD,
    proba=", ``predict_proba`` and ``predict_log_proba``",
)
DaskMLPRegressor.__doc__ = _CLASS_DOC.format(
    summary="Multi-layer perceptron regressor trained on a Dask cluster.",
    local="MLPRegressor",
    kind="Regressor",
    sync=DEFAULT_SYNC_PERIOD,
    proba="",
)
