"""The client's view of the training data: dask collections turned into validated partitions
persisted on the workers, grouped by the worker that holds them.

X, y and sample weights may come as dask arrays or dask DataFrames/Series, chunked differently:
frames become arrays (their partition lengths computed once, on persisted partitions), y and
the weights are rechunked to X's row blocks (only blocks that do not line up move), and X gets
one column block. Each row block becomes one *part*, ``(X, y, weights)`` validated on the
worker, persisted there (``client.compute``), then found with ``who_has``. Empty blocks are
dropped; workers that hold no part get no work.
"""

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from dask import delayed

from fastmlp.dask import _worker

try:  # dask.dataframe needs pandas (and pyarrow): optional
    import dask.dataframe as dd

    _FRAME_TYPES: tuple = (dd.DataFrame, dd.Series)
except ImportError:  # pragma: no cover - depends on the installation
    _FRAME_TYPES = ()

import dask.array as da


@dataclass
class Group:
    """The parts one worker holds: indices into ``ClusterData.parts``, in row order."""

    address: str
    parts: list


@dataclass
class ClusterData:
    parts: list  # futures of _worker.make_part results, non-empty blocks in row order
    rows: list  # their row counts
    groups: list  # Group, ordered by their first part
    n_samples: int
    n_features: int
    dtype: np.dtype
    meta: object  # zero rows like X (a pandas DataFrame for frames): for feature checks
    y_ndim: int
    n_outputs: int  # y's columns (1 for 1-D y)

    def group_parts(self, group):
        return [self.parts[i] for i in group.parts]

    def group_rows(self, group):
        return sum(self.rows[i] for i in group.parts)


def is_dask_collection(obj):
    return isinstance(obj, (da.Array, *_FRAME_TYPES))


def model_dtype(X):
    """float32 input trains in float32, anything else in float64 (as the local estimators)."""
    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)


def _check_type(name, obj, allow_none=False):
    if obj is None and allow_none:
        return
    if not is_dask_collection(obj):
        raise TypeError(
            f"{name} must be a dask Array, DataFrame or Series (got {type(obj).__name__}); for "
            "in-memory data use the local estimator (fastmlp.MLPClassifier, MLPRegressor)"
        )


def _frame_meta(X):
    return X._meta if isinstance(X, _FRAME_TYPES) else None


def _frames_to_arrays(client, collections):
    """Frames among ``collections`` as dask arrays with known row chunks (persisted first, so
    that counting their rows and training read the same computed partitions)."""
    frames = [i for i, c in enumerate(collections) if isinstance(c, _FRAME_TYPES)]
    if not frames:
        return list(collections)
    out = list(collections)
    persisted = client.persist([collections[i] for i in frames])
    for i, frame in zip(frames, persisted, strict=True):
        lengths = client.compute(frame.map_partitions(len, meta=(None, "int64"))).result()
        out[i] = frame.to_dask_array(lengths=tuple(int(n) for n in lengths))
    return out


def _known_rows(client, A):
    """``A`` with its row-chunk sizes known (computed on the persisted array if they are not)."""
    if not any(math.isnan(c) for c in A.chunks[0]):
        return A
    A = client.persist(A)
    blocks = A.to_delayed()
    blocks = blocks.reshape(-1) if A.ndim == 1 else blocks[:, 0]
    lengths = client.gather(client.compute([delayed(len)(b) for b in blocks]))
    chunks = (tuple(int(n) for n in lengths), *A.chunks[1:])
    return da.Array(A.dask, A.name, chunks=chunks, dtype=A.dtype, meta=A._meta)


def aligned_arrays(client, X, y, sample_weight=None):
    """X (dask array, one column block), y and weights rechunked to X's rows; checks shapes."""
    _check_type("X", X)
    _check_type("y", y)
    _check_type("sample_weight", sample_weight, allow_none=True)
    X, y, sample_weight = _frames_to_arrays(client, [X, y, sample_weight])
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array for X, got an array of shape {X.shape}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    X, y = _known_rows(client, X), _known_rows(client, y)
    lengths = [X.shape[0], y.shape[0]]
    if sample_weight is not None:
        sample_weight = _known_rows(client, sample_weight).reshape(-1)
        lengths.append(sample_weight.shape[0])
    if len(set(lengths)) > 1:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: {lengths}")
    X = X.rechunk({1: -1})
    y = y.rechunk({0: X.chunks[0], 1: -1} if y.ndim == 2 else {0: X.chunks[0]})
    if sample_weight is not None:
        sample_weight = sample_weight.rechunk({0: X.chunks[0]})
    return X, y, sample_weight


def blocks(X, y, sample_weight):
    """(rows, X block, y block, weight block or None) for each non-empty row block, as
    dask.delayed objects."""
    xs = X.to_delayed().reshape(-1)
    ys = y.to_delayed().reshape(-1)
    ws = sample_weight.to_delayed().reshape(-1) if sample_weight is not None else None
    out = []
    for i, rows in enumerate(X.chunks[0]):
        if rows > 0:
            out.append((int(rows), xs[i], ys[i], None if ws is None else ws[i]))
    return out


def persist_parts(client, X, y, sample_weight, classifier, poisson=False):
    """Validate and persist the training partitions and group them by the worker holding them."""
    meta = _frame_meta(X)
    X, y, sample_weight = aligned_arrays(client, X, y, sample_weight)
    part_spec = _worker.PartSpec(str(model_dtype(X)), classifier, poisson)
    if X.shape[0] == 0:
        raise ValueError("Found array with 0 sample(s) (shape=(0, ...)) while a minimum of 1 is "
                         "required.")  # fmt: skip
    if meta is None:
        meta = np.empty((0, X.shape[1]), model_dtype(X))
    made = blocks(X, y, sample_weight)
    # Keys of this fit's own: a key shared with an earlier fit's released parts could look
    # computed to the client while the scheduler is forgetting it.
    name = f"fastmlp-part-{uuid.uuid4().hex}"
    lazy = [
        delayed(_worker.make_part, pure=False)(x, yb, w, part_spec, dask_key_name=(name, i))
        for i, (_, x, yb, w) in enumerate(made)
    ]
    parts = client.compute(lazy)
    from distributed import wait

    wait(parts)
    for part in parts:
        if part.status == "error":
            part.result()  # raises the worker's validation error here
    who_has = client.who_has(parts)
    by_worker = defaultdict(list)
    for i, part in enumerate(parts):
        holders = sorted(who_has.get(part.key, ()))
        if not holders:
            raise RuntimeError(f"fastmlp.dask: no worker holds the partition {part.key}")
        by_worker[holders[0]].append(i)
    groups = sorted((Group(a, idx) for a, idx in by_worker.items()), key=lambda g: g.parts[0])
    return ClusterData(
        parts=parts,
        rows=[rows for rows, *_ in made],
        groups=groups,
        n_samples=int(X.shape[0]),
        n_features=int(X.shape[1]),
        dtype=model_dtype(X),
        meta=meta,
        y_ndim=y.ndim,
        n_outputs=int(y.shape[1]) if y.ndim == 2 else 1,
    )


def discover_labels(client, data):
    """The classes over every partition: (ndim, n_columns, sorted labels, counts per label)."""
    summaries = client.gather(client.map(_worker.label_summary, data.parts, pure=False))
    ndim, n_cols = summaries[0][0], summaries[0][1]
    if ndim == 2:
        return 2, n_cols, None, None
    labels = np.concatenate([s[2] for s in summaries])
    counts = np.concatenate([s[3] for s in summaries])
    classes, inverse = np.unique(labels, return_inverse=True)
    totals = np.zeros(len(classes), dtype=np.int64)
    np.add.at(totals, inverse.ravel(), counts)
    return 1, 1, classes, totals
