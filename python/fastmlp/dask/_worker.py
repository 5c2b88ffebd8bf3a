"""What runs on the Dask workers: partitions, each worker's data, L-BFGS evaluations, local-SGD
rounds and the scores' sufficient statistics.

A worker keeps the state of a fit (its partitions concatenated once, the backend's trainer, for
local SGD its parameters, moments, shuffle stream and place in the epoch) in a registry of this
process, keyed by (fit id, group). Tasks find it there; the client drops it at the end of the
fit (:func:`forget`). Why a registry and not a ``distributed`` actor: an actor dies with its
worker and cannot be rebuilt elsewhere, whereas an L-BFGS evaluation task that carries its
partitions as dependencies rebuilds the state from them on whichever worker it reruns (after
the scheduler recomputed the lost partitions), so that a lost worker costs one evaluation's
rerun, not the fit. Local SGD's state cannot be rebuilt (the updates since the last average
live only there), so its tasks refuse to run where the state is missing and say which worker
was lost.

Threads: a worker gives the core as many OpenMP threads as it has task threads
(``distributed`` sets ``OMP_NUM_THREADS=1`` in its worker processes).

(About 630 lines, past the project's 400: it is everything that runs on a worker, which must be
importable there as one unit; splitting it by solver is the next step.)
"""

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array
from sklearn.utils.validation import _check_sample_weight, column_or_1d

from fastmlp._arrays import aligned_copy, aligned_empty, contiguous
from fastmlp._backend import backend_for

# (fit id, group) -> the group's state on this worker.
_REGISTRY: dict[tuple[str, int], Any] = {}
_REGISTRY_LOCK = threading.Lock()
_CONTROLLER: list = []  # one threadpoolctl.ThreadpoolController per process, made on first use


class LostWorkerError(RuntimeError):
    """A worker that held a group's partitions and local-SGD state was lost."""


# --- specs: what the client tells the workers (small, pickled into the tasks) ----------------


@dataclass
class PartSpec:
    """How to validate a partition: the model's dtype, and the task."""

    dtype: str
    classifier: bool
    poisson: bool = False


@dataclass
class DataSpec:
    """How a group turns its partitions into training arrays."""

    dtype: str
    binarizer: Any = None  # LabelBinarizer (classifiers)
    class_weights: np.ndarray | None = None  # one weight per class of binarizer.classes_
    n_outputs: int = 1


@dataclass
class TrainerSpec:
    """The network and the backend trainer's settings (besides data and parameters)."""

    layer_units: list
    network: dict  # activation, output_activation, loss, alpha (and other network settings)
    device: str = "cpu"
    options: dict = field(default_factory=dict)  # backend switches passed through (bf16, ...)


@dataclass
class SGDSpec:
    """What a worker needs to start local SGD on its group."""

    data: DataSpec
    trainer: TrainerSpec
    optimizer: dict  # the optimizer's core_arguments() without the moments
    batch_size: Any  # the estimator's parameter: "auto" or an int
    shuffle: bool
    stream: np.random.RandomState  # this group's shuffles and early-stopping split
    early_stopping: bool
    validation_fraction: float
    stratify: bool
    scorer: Any  # a local estimator without weights: predicts for early-stopping scores


# --- partitions ------------------------------------------------------------------------------


def make_part(X, y, sample_weight, spec):
    """One validated partition: X (rows, n_features) of the model's dtype, y (rows,) or
    (rows, n_outputs), sample weights (rows,) or None. Copies only where a conversion needs."""
    X = check_array(X, dtype=spec.dtype, ensure_min_samples=0, order="C")
    if spec.classifier:
        y = check_array(y, ensure_2d=False, dtype=None, ensure_min_samples=0)
    else:
        y = check_array(y, ensure_2d=False, dtype="numeric", ensure_min_samples=0)
        y = y.astype(np.float64, copy=False) if y.dtype.kind not in "f" else y
        if spec.poisson and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative y.")
    if sample_weight is not None:
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.dtype(spec.dtype), ensure_non_negative=True
        )
    return X, y, sample_weight


def label_summary(part):
    """The labels of a partition: (ndim, n_columns, unique labels, their counts)."""
    y = part[1]
    if y.ndim == 2:
        return 2, y.shape[1], None, None
    labels, counts = np.unique(y, return_counts=True)
    return 1, 1, labels, counts


# --- a group: the partitions one worker holds, concatenated once -----------------------------


@dataclass
class GroupData:
    X: np.ndarray  # (n, n_features)
    Y: np.ndarray  # (n, n_outputs), the model's dtype (classifiers: binarized)
    sample_weight: np.ndarray | None  # (n,) or None


def concatenate(parts, spec):
    """The group's training arrays: X, Y and weights in aligned, C-contiguous arrays."""
    from fastmlp._classifier import _binarize

    dtype = np.dtype(spec.dtype)
    n = sum(len(p[0]) for p in parts)
    X = aligned_empty((n, parts[0][0].shape[1]), dtype)
    Y = aligned_empty((n, spec.n_outputs), dtype)
    weighted = spec.class_weights is not None or any(p[2] is not None for p in parts)
    w = aligned_empty(n, dtype) if weighted else None
    start = 0
    for X_part, y_part, w_part in parts:
        stop = start + len(X_part)
        X[start:stop] = X_part
        if spec.binarizer is not None:
            y_part = column_or_1d(y_part) if y_part.ndim == 2 and y_part.shape[1] == 1 else y_part
            Y[start:stop] = _binarize(spec.binarizer, y_part).reshape(stop - start, -1)
        else:
            Y[start:stop] = y_part.reshape(stop - start, -1)
        if w is not None:
            w[start:stop] = 1.0 if w_part is None else w_part
            if spec.class_weights is not None:
                index = np.searchsorted(spec.binarizer.classes_, y_part)
                w[start:stop] *= spec.class_weights[index]
        start = stop
    return GroupData(X, Y, w)


def _make_trainer(X, Y, w, coefs, intercepts, first, second, trainer_spec, **config):
    backend = backend_for(trainer_spec.device)
    return backend.trainer(
        X, Y, w, coefs, intercepts, first, second,
        **trainer_spec.network, **config, **trainer_spec.options,
    )  # fmt: skip


def _zeros_like_network(layer_units, dtype):
    shapes = list(zip(layer_units[:-1], layer_units[1:], strict=True))
    coefs = [aligned_empty(s, dtype) for s in shapes]
    intercepts = [aligned_empty(s[1], dtype) for s in shapes]
    for a in coefs + intercepts:
        a[...] = 0
    return coefs, intercepts


@contextlib.contextmanager
def core_threads():
    """Give the core the worker's thread count (outside a worker: leave it as it is)."""
    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        yield
        return
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    with _CONTROLLER[0].limit(limits=threads, user_api="openmp"):
        yield


def _address():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def forget(fit_id):
    """Drop every state of the fit ``fit_id`` held in this process."""
    with _REGISTRY_LOCK:
        for key in [k for k in _REGISTRY if k[0] == fit_id]:
            del _REGISTRY[key]


def forget_group(fit_id, group):
    """Drop one group's state of the fit ``fit_id`` held in this process."""
    with _REGISTRY_LOCK:
        _REGISTRY.pop((fit_id, group), None)


# --- L-BFGS ----------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """Summed (not averaged) loss and gradient over some groups, without the L2 term."""

    loss_sum: float
    grad_sum: np.ndarray  # float64, the flat layout of the parameters
    weight_sum: float
    where: dict  # group -> address of the worker that evaluated it
    seconds: float  # the slowest group's compute time


class _LBFGSGroup:
    def __init__(self, parts, data_spec, trainer_spec):
        data = concatenate(parts, data_spec)
        dtype = data.X.dtype
        coefs, intercepts = _zeros_like_network(trainer_spec.layer_units, dtype)
        n_params = sum(a.size for a in coefs + intercepts)
        self.flat = aligned_empty(n_params, dtype)
        self.grad = aligned_empty(n_params, dtype)
        self.weight_sum = float(len(data.X) if data.sample_weight is None else
                                np.sum(data.sample_weight, dtype=np.float64))  # fmt: skip
        self.data = data  # the trainer maps these arrays: keep them alive
        # alpha=0: the L2 term belongs to the whole data set, added once by the client.
        spec = TrainerSpec(
            trainer_spec.layer_units,
            {**trainer_spec.network, "alpha": 0.0},
            trainer_spec.device,
            trainer_spec.options,
        )
        with core_threads():
            self.trainer = _make_trainer(
                data.X, data.Y, data.sample_weight, coefs, intercepts, [], [], spec,
                solver="lbfgs", batch_size=max(len(data.X), 1), learning_rate=0.0,
                momentum=0.0, nesterov=False, beta_1=0.0, beta_2=0.0, epsilon=1.0, t=0,
            )  # fmt: skip


def lbfgs_evaluate(fit_id, group, data_spec, trainer_spec, flat, *parts):
    """The group's summed loss and gradient at ``flat`` (an :class:`Evaluation`).

    The trainer returns the weighted mean ``loss_sum / S`` and gradient ``sums / S`` over the
    group (S its weight total); multiplying back by S gives the sums, which add up across
    groups. Built from ``parts`` on first use on this worker, then kept for the fit.
    """
    began = time.perf_counter()
    key = (fit_id, group)
    with _REGISTRY_LOCK:
        state = _REGISTRY.get(key)
    if state is None:
        state = _LBFGSGroup(parts, data_spec, trainer_spec)
        with _REGISTRY_LOCK:
            _REGISTRY[key] = state
    state.flat[...] = flat
    with core_threads():
        mean_loss = state.trainer.loss_and_gradient(state.flat, state.grad)
    S = state.weight_sum
    return Evaluation(
        loss_sum=float(mean_loss) * S,
        grad_sum=state.grad.astype(np.float64) * S,
        weight_sum=S,
        where={group: _address()},
        seconds=time.perf_counter() - began,
    )


def add_evaluations(a, b):
    """Tree-reduction step: the sums of two evaluations."""
    return Evaluation(
        a.loss_sum + b.loss_sum,
        a.grad_sum + b.grad_sum,
        a.weight_sum + b.weight_sum,
        {**a.where, **b.where},
        max(a.seconds, b.seconds),
    )


# --- local SGD ---------------------------------------------------------------------------------


@dataclass
class RoundResult:
    """A round's parameters and moments, each group's scaled by its share of the round's rows
    (so that the reduction's sum is the weighted average), with loss and step counts."""

    arrays: list  # coefs, intercepts, first moments, second moments (flat list)
    epoch_losses: dict  # group -> its summed batch losses x lengths, this epoch so far
    rows: int
    t: int
    seconds: float


@dataclass
class Step:
    """One round on one group: where in the epoch, how many minibatches, at which rate."""

    new_epoch: bool
    first_batch: int
    n_batches: int
    learning_rate: float
    share: float


def split_sizes(n, validation_fraction, early_stopping):
    """(n_train, n_validation) as ``train_test_split(test_size=validation_fraction)`` splits n
    rows: the validation set has ceil(fraction * n) rows."""
    if not early_stopping:
        return n, 0
    n_val = int(np.ceil(validation_fraction * n))
    return n - n_val, n_val


def batch_size_for(batch_size, n_train):
    if batch_size == "auto":
        return min(200, n_train)
    return int(np.clip(batch_size, 1, n_train))


class _SGDGroup:
    """One worker's local-SGD state for a fit: its data (split for early stopping as the local
    fit splits), its own parameters and moments, its trainer, shuffle stream and epoch order."""

    def __init__(self, parts, spec, incoming, owner):
        self.owner = owner
        self.address = _address()
        data = concatenate(parts, spec.data)
        self.stream = spec.stream
        X, Y, w = data.X, data.Y, data.sample_weight
        self.X_val = self.y_val = self.w_val = self.Y_val = None
        self.trainer_spec = spec.trainer
        if spec.early_stopping:
            X, Y, w = self._split(spec, X, Y, w)
        dtype = X.dtype
        self.X, self.Y, self.w = contiguous(X, dtype), contiguous(Y, dtype), w
        if w is not None:
            self.w = contiguous(w, dtype)
        self.n = len(self.X)
        self.batch_size = batch_size_for(spec.batch_size, self.n)
        self.order = np.arange(self.n, dtype=np.int64)
        self.epoch_loss = 0.0
        self.shuffle = spec.shuffle
        self.scorer = spec.scorer
        self.classifier = spec.data.binarizer is not None
        # Own, aligned parameters and moments: each round starts them from the average.
        self.arrays = [aligned_copy(a, dtype) for a in incoming]
        L = len(spec.trainer.layer_units) - 1
        coefs, intercepts = self.arrays[:L], self.arrays[L : 2 * L]
        moments = self.arrays[2 * L :]
        n_first = 2 * L if moments else 0
        first, second = moments[:n_first], moments[n_first:]
        self.state = (coefs, intercepts, first, second)
        with core_threads():
            self.trainer = _make_trainer(
                self.X, self.Y, self.w, coefs, intercepts, first, second, spec.trainer,
                batch_size=self.batch_size, **spec.optimizer,
            )  # fmt: skip

    def _split(self, spec, X, Y, w):
        # As the local fit: one train_test_split of (X, Y[, w]) from the stream, stratified by
        # the binarized target where there is one output; the labels of the validation part
        # come back through the binarizer.
        arrays = (X, Y) if w is None else (X, Y, w)
        stratify = Y if spec.stratify else None
        state = spec.stream.get_state()
        try:
            parts = train_test_split(
                *arrays,
                random_state=spec.stream,
                test_size=spec.validation_fraction,
                stratify=stratify,
            )
        except ValueError:
            if stratify is None:
                raise
            # A class too rare on this worker to stratify (it may live on others): split
            # without stratifying, from the same point of the stream.
            spec.stream.set_state(state)
            parts = train_test_split(
                *arrays, random_state=spec.stream, test_size=spec.validation_fraction
            )
        X_train, X_val, Y_train, Y_val = parts[:4]
        w_train = w_val = None
        if w is not None:
            w_train, w_val = parts[4:]
        dtype = X.dtype
        self.X_val, self.Y_val = contiguous(X_val, dtype), contiguous(Y_val, dtype)
        self.w_val = None if w_val is None else contiguous(w_val, dtype)
        if spec.data.binarizer is not None:
            self.y_val = spec.data.binarizer.inverse_transform(Y_val)
        else:
            self.y_val = Y_val
        return X_train, Y_train, w_train

    def run(self, incoming, step):
        if step.new_epoch:
            self.epoch_loss = 0.0
            if self.shuffle:
                from fastmlp._stochastic import shuffled

                self.order = shuffled(self.order, self.stream)
        for own, new in zip(self.arrays, incoming, strict=True):
            np.copyto(own, new)
        self.trainer.set_parameters(*self.state)
        start = step.first_batch * self.batch_size
        stop = min(self.n, start + step.n_batches * self.batch_size)
        t = 0
        if stop > start:
            with core_threads():
                # The epoch's loss sum goes on in the trainer, as in the local fit's chunks.
                self.epoch_loss, t = self.trainer.run(
                    self.order[start:stop], step.learning_rate, self.epoch_loss
                )
        self.trainer.get_parameters(*self.state)
        share = step.share
        arrays = [a.copy() if share == 1.0 else a * a.dtype.type(share) for a in self.arrays]
        return arrays, float(self.epoch_loss), stop - start, int(t)


def _sgd_state(fit_id, group, owner):
    with _REGISTRY_LOCK:
        state = _REGISTRY.get((fit_id, group))
    if state is None or state.address != _address():
        raise LostWorkerError(
            f"fastmlp.dask: the worker {owner} that held partition group {group} was lost in "
            "the middle of a local-SGD fit; its updates since the last average are gone, so "
            "the fit stops rather than return a different model. Fit again."
        )
    return state


def sgd_round(fit_id, group, owner, spec, incoming, step, *parts):
    """One round of local SGD on the group: start from ``incoming`` (the average), run
    ``step.n_batches`` minibatches of the worker's epoch order, return a :class:`RoundResult`.
    ``spec`` and ``parts`` come with the fit's first round only (they build the state)."""
    began = time.perf_counter()
    if isinstance(incoming, RoundResult):  # the previous round's average
        incoming = incoming.arrays
    if spec is not None:
        state = _SGDGroup(parts, spec, incoming, owner)
        with _REGISTRY_LOCK:
            _REGISTRY[(fit_id, group)] = state
    else:
        state = _sgd_state(fit_id, group, owner)
    arrays, epoch_loss, rows, t = state.run(incoming, step)
    return RoundResult(arrays, {group: epoch_loss}, rows, t, time.perf_counter() - began)


def add_rounds(a, b):
    """Tree-reduction step: the sum of two scaled round results (their weighted average)."""
    return RoundResult(
        [x + y for x, y in zip(a.arrays, b.arrays, strict=True)],
        {**a.epoch_losses, **b.epoch_losses},
        a.rows + b.rows,
        max(a.t, b.t),
        max(a.seconds, b.seconds),
    )


def round_summary(result):
    """The scalars of a reduced round (what the client fetches without the arrays)."""
    return result.epoch_losses, result.rows, result.t, result.seconds


@dataclass
class ValidationLoss:
    """The loss (with its L2 term) on one group's validation rows, their weight total and the
    weights' squared norm, from which the client puts together the loss over every group."""

    loss: float
    weight: float
    sq_norm: float


def validation_stats(fit_id, group, owner, averaged, n_layers):
    """Early stopping: the score statistics and the validation loss (a ValidationLoss) of the
    averaged model on the group's validation rows (None where the group holds none)."""
    state = _sgd_state(fit_id, group, owner)
    if state.X_val is None or len(state.X_val) == 0:
        return None
    scorer = state.scorer
    dtype = state.X_val.dtype
    # Aligned, as the local fit's weights: the core's last bits depend on alignment.
    coefs = [aligned_copy(c, dtype) for c in averaged.arrays[:n_layers]]
    intercepts = [aligned_copy(b, dtype) for b in averaged.arrays[n_layers : 2 * n_layers]]
    scorer.coefs_, scorer.intercepts_ = coefs, intercepts
    spec = state.trainer_spec
    network = dict(spec.network)
    activation, output_activation, loss_name, alpha = (
        network.pop(k) for k in ("activation", "output_activation", "loss", "alpha")
    )
    with core_threads():
        stats = score_stats(scorer, state.X_val, state.y_val, state.w_val)
        # The loss as the local fit's validation_loss_curve_ has it: the core's backward pass.
        loss = backend_for(spec.device).backward(
            state.X_val, state.Y_val, state.w_val, coefs, intercepts,
            [aligned_empty(c.shape, dtype) for c in coefs],
            [aligned_empty(b.shape, dtype) for b in intercepts],
            activation, output_activation, loss_name, alpha, **network,
        )  # fmt: skip
    weight = len(state.X_val) if state.w_val is None else np.sum(state.w_val, dtype=np.float64)
    sq_norm = sum(float(np.dot(c.ravel(), c.ravel())) for c in coefs)
    return stats, ValidationLoss(float(loss), float(weight), sq_norm)


def combine_validation_losses(losses, alpha):
    """The loss over the union of the groups' validation rows: the one group's own where one
    group holds them all; else the groups' summed data losses, plus the L2 term once."""
    if len(losses) == 1:
        return losses[0].loss
    weight = sum(v.weight for v in losses)
    if not weight > 0:
        return 0.0
    l2 = 0.5 * alpha * losses[0].sq_norm
    data_sum = sum(v.loss * v.weight - l2 for v in losses if v.weight > 0)
    return (data_sum + l2) / weight


# --- scores ----------------------------------------------------------------------------------


@dataclass
class ScoreStats:
    """Sufficient statistics of accuracy (classifiers) or R^2 (regressors) over some rows, and
    the score of these rows alone (scikit-learn's own function)."""

    weight: float
    hits: float = 0.0  # classifiers: weighted count of exact matches
    mean: np.ndarray | None = None  # regressors, per output: weighted mean of y
    m2: np.ndarray | None = None  # sum of w (y - mean)^2
    sse: np.ndarray | None = None  # sum of w (y - prediction)^2
    score: float = np.nan
    finite: bool = True


def score_stats(model, X, y, sample_weight):
    """Score statistics of ``model`` (a fitted local estimator) on one block."""
    from sklearn.base import is_classifier

    prediction = model.predict(X)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if is_classifier(model):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1 and prediction.ndim == 1:
            y = y.ravel()
        match = prediction == y
        if match.ndim == 2:
            match = match.all(axis=1)
        return ScoreStats(
            weight=float(w.sum()),
            hits=float(np.dot(w, match)),
            score=float(accuracy_score(y, prediction, sample_weight=sample_weight)),
        )
    y = np.asarray(y, np.float64)
    y2 = y.reshape(len(y), -1)
    p2 = np.asarray(prediction, np.float64).reshape(len(y), -1)
    finite = bool(np.isfinite(p2).all())
    total = float(w.sum())
    mean = (w @ y2) / total if total > 0 else np.zeros(y2.shape[1])
    return ScoreStats(
        weight=total,
        mean=mean,
        m2=w @ (y2 - mean) ** 2,
        sse=w @ (y2 - p2) ** 2,
        score=float(r2_score(y, prediction, sample_weight=sample_weight)) if finite else np.nan,
        finite=finite,
    )


def combine_scores(stats):
    """Accuracy or R^2 over the union of the rows of ``stats`` (ScoreStats): scikit-learn's
    score where one block holds every row; else from the sums (R^2's spread by Chan's
    pairwise update), uniformly averaged over outputs with scikit-learn's rules for a
    constant target (1 if predicted exactly, else 0)."""
    if len(stats) == 1:
        return stats[0].score
    if stats[0].mean is None:
        weight = sum(s.weight for s in stats)
        return sum(s.hits for s in stats) / weight if weight > 0 else np.nan
    if not all(s.finite for s in stats):
        return np.nan
    weight = 0.0
    mean: Any = 0.0
    m2: Any = 0.0
    sse: Any = 0.0
    for s in stats:
        if s.weight == 0:
            continue
        total = weight + s.weight
        delta = s.mean - mean
        mean = mean + delta * (s.weight / total)
        m2 = m2 + s.m2 + delta**2 * (weight * s.weight / total)
        sse = sse + s.sse
        weight = total
    m2, sse = np.atleast_1d(m2), np.atleast_1d(sse)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(m2 > 0, 1.0 - sse / np.where(m2 > 0, m2, 1.0), np.where(sse == 0, 1.0, 0.0))
    return float(np.mean(r2))


def predict_block(X, model, method, n_columns, dtype):
    """``model.<method>(X)`` on one block or partition (of shape (rows,) where ``n_columns`` is
    None, else (rows, n_columns)); an empty block gives an empty result."""
    if len(X) == 0:
        return np.empty((0,) if n_columns is None else (0, n_columns), dtype)
    with core_threads():
        return getattr(model, method)(X)


def score_block(model, X, y, sample_weight, spec):
    X, y, sample_weight = make_part(X, y, sample_weight, spec)
    with core_threads():
        return score_stats(model, X, y, sample_weight)
