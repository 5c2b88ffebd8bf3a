"""A safe model format: ``est.save(path)`` and ``fastmlp.load(path)``.

A model file is one NumPy ``.npz`` archive holding only numeric and text arrays (loaded with
``allow_pickle=False``, so loading never runs code) plus a JSON metadata string with a format
version. Loading validates everything it reads (format and version, estimator kind, every
parameter, layer shapes, dtypes, finiteness, the class labels, the optimizer state) and turns a
truncated, corrupted or hostile file into a :class:`ModelFormatError` that says what is wrong.
"""

import json
import math
import os
import zipfile

import numpy as np
from sklearn.preprocessing import LabelBinarizer

from fastmlp import _optimizers
from fastmlp._atomic_file import atomic_write
from fastmlp._state import (
    BEST_PARAMETERS,
    CURVES,
    ESTIMATORS,
    OPTIMIZER,
    OPTIMIZERS,
    OPTIONAL_SCALARS,
    OUTPUT_ACTIVATIONS,
    REQUIRED_SCALARS,
)

FORMAT_NAME = "fastmlp-model"
FORMAT_VERSION = 1
_METADATA = "__metadata__"


class ModelFormatError(ValueError):
    """A file is not a valid fastmlp model: truncated, corrupted, from a newer format, or
    inconsistent."""


def save(estimator, path):
    """Write a fitted MLPClassifier or MLPRegressor to ``path`` (an ``.npz`` file).

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        A fitted estimator.
    path : str or os.PathLike
        Where to write; ``.npz`` is not appended.
    """
    from fastmlp import __version__

    estimator._check_fitted()
    arrays = {}
    for i, (coef, intercept) in enumerate(
        zip(estimator.coefs_, estimator.intercepts_, strict=True)
    ):
        arrays[f"coef_{i}"] = np.asarray(coef)
        arrays[f"intercept_{i}"] = np.asarray(intercept)
    for i, (coef, intercept) in enumerate(
        zip(
            *(getattr(estimator, name, []) for name in BEST_PARAMETERS),
            strict=True,
        )
    ):
        arrays[f"best_coef_{i}"] = np.asarray(coef)
        arrays[f"best_intercept_{i}"] = np.asarray(intercept)
    kind = type(estimator).__name__
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastmlp_version": __version__,
        "estimator": kind,
        "params": _json_params(estimator.get_params()),
        "fitted": {
            name: _plain(getattr(estimator, name))
            for name in (*REQUIRED_SCALARS, *OPTIONAL_SCALARS, *CURVES)
            if hasattr(estimator, name)
        },
        "dtype": str(np.asarray(estimator.coefs_[0]).dtype),
    }
    if kind == "MLPClassifier":
        classes = np.asarray(estimator.classes_)
        if classes.dtype == object:
            if not all(isinstance(c, str) for c in classes):
                raise TypeError("only numeric or string class labels can be saved")
            classes = classes.astype(str)
        arrays["classes"] = classes
        meta["label_type"] = estimator._label_binarizer.y_type_
    if hasattr(estimator, "feature_names_in_"):
        arrays["feature_names_in"] = np.asarray(estimator.feature_names_in_).astype(str)
    optimizer = getattr(estimator, OPTIMIZER, None)
    if optimizer is not None:
        scalars, lists = OPTIMIZERS[type(optimizer).__name__]
        meta["optimizer"] = {
            "kind": type(optimizer).__name__,
            **{name: _plain(getattr(optimizer, name)) for name in scalars},
        }
        for name in lists:
            for i, moment in enumerate(getattr(optimizer, name)):
                arrays[f"optimizer_{name}_{i}"] = np.asarray(moment)
    arrays[_METADATA] = np.array(json.dumps(meta))
    # A file object, so that the path is exactly the given one (np.savez would append ".npz");
    # written beside it and renamed, so that a failed save keeps the model already there.
    with atomic_write(path) as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # NumPy's stub misreads **kwds


def load(path):
    """Read a model written by ``estimator.save(path)``, validating every part of it.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    estimator : MLPClassifier or MLPRegressor
        The fitted estimator, ready to predict and to continue training. Its ``device`` is the
        one it was saved with: a model saved with ``device="cuda"`` loads anywhere (its state
        is plain arrays), but predicts and trains only where a GPU is usable, and raises a
        RuntimeError that says so elsewhere; ``set_params(device="cpu")`` moves it to the CPU.

    Raises
    ------
    ModelFormatError
        If the file is not a complete, consistent fastmlp model of a supported format version.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ModelFormatError(f"{path} is not a readable fastmlp model file: {error}") from error
    try:
        return _build(arrays)
    except ModelFormatError as error:
        raise ModelFormatError(f"{path}: {error}") from None


def _build(arrays):
    meta = _metadata(arrays)
    kind = meta.get("estimator")
    if kind not in ESTIMATORS:
        raise ModelFormatError(f"unknown estimator {kind!r}")
    estimator = ESTIMATORS[kind]()
    params = _require(meta, "params", dict)
    unknown = set(params) - set(estimator.get_params())
    if unknown:
        raise ModelFormatError(f"unknown parameters {sorted(unknown)}")
    for name, value in params.items():
        if isinstance(value, dict):
            pairs = value.get("pairs")
            if set(value) != {"pairs"} or not isinstance(pairs, list):
                raise ModelFormatError(f"parameter {name!r} is a dict without its 'pairs'")
            if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
                raise ModelFormatError(f"parameter {name!r} holds pairs that are not (key, value)")
            params[name] = {key: weight for key, weight in pairs}
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    estimator.set_params(**params)
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as error:
        raise ModelFormatError(f"invalid parameters: {error}") from None

    if meta.get("dtype") not in ("float32", "float64"):
        raise ModelFormatError(f"dtype must be float32 or float64, got {meta.get('dtype')!r}")
    dtype = np.dtype(meta["dtype"])
    fitted = _require(meta, "fitted", dict)
    for name, types in (*REQUIRED_SCALARS.items(), *OPTIONAL_SCALARS.items()):
        if name not in fitted and name in OPTIONAL_SCALARS:
            continue
        value = fitted.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and _accepts_float(types):
            value = float(value)
        if not isinstance(value, types) or isinstance(value, bool):
            raise ModelFormatError(f"{name} is {value!r}, of the wrong type")
        # best_loss_ starts at infinity before the first epoch is scored.
        if isinstance(value, float) and (
            math.isnan(value) or (name == "loss_" and not math.isfinite(value))
        ):
            raise ModelFormatError(f"{name} is not finite")
        setattr(estimator, name, value)

    n_layers = estimator.n_layers_
    if not 2 <= n_layers <= 10_000:
        raise ModelFormatError(f"n_layers_ = {n_layers} is out of range")
    coefs = [_array(arrays, f"coef_{i}", dtype, 2) for i in range(n_layers - 1)]
    intercepts = [_array(arrays, f"intercept_{i}", dtype, 1) for i in range(n_layers - 1)]
    sizes = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
    hidden = params.get("hidden_layer_sizes", estimator.hidden_layer_sizes)
    hidden = [hidden] if np.isscalar(hidden) else list(hidden)
    for i, (coef, intercept) in enumerate(zip(coefs, intercepts, strict=True)):
        if coef.shape[0] != sizes[i] or intercept.shape != (sizes[i + 1],):
            raise ModelFormatError(
                f"coef_{i} has shape {coef.shape} and intercept_{i} {intercept.shape}: layer {i} "
                f"takes {sizes[i]} inputs, so they must be ({sizes[i]}, n) and (n,)"
            )
    if (
        sizes[1:-1] != hidden
        or sizes[0] != estimator.n_features_in_
        or (sizes[-1] != estimator.n_outputs_)
    ):
        raise ModelFormatError(
            f"layer sizes {sizes} do not match hidden_layer_sizes={hidden}, "
            f"n_features_in_ and n_outputs_"
        )
    estimator.coefs_, estimator.intercepts_ = coefs, intercepts
    if f"best_coef_{0}" in arrays:
        estimator._best_coefs = [
            _array(arrays, f"best_coef_{i}", dtype, 2, c.shape) for i, c in enumerate(coefs)
        ]
        estimator._best_intercepts = [
            _array(arrays, f"best_intercept_{i}", dtype, 1, b.shape)
            for i, b in enumerate(intercepts)
        ]
    if estimator.out_activation_ not in OUTPUT_ACTIVATIONS[kind]:
        raise ModelFormatError(
            f"out_activation_ {estimator.out_activation_!r} is not one of "
            f"{OUTPUT_ACTIVATIONS[kind]}"
        )

    for name in CURVES:
        if name not in fitted:
            continue
        curve = fitted[name]
        if curve is not None and (
            not isinstance(curve, list)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in curve)
        ):
            raise ModelFormatError(f"{name} must be a list of numbers")
        setattr(estimator, name, None if curve is None else [float(v) for v in curve])
    if "feature_names_in" in arrays:
        names = arrays["feature_names_in"]
        if names.dtype.kind != "U" or names.shape != (estimator.n_features_in_,):
            raise ModelFormatError("feature_names_in must be n_features_in_ strings")
        estimator.feature_names_in_ = names.astype(object)
    if kind == "MLPClassifier":
        _restore_labels(estimator, arrays, meta)
    if "optimizer" in meta:
        _restore_optimizer(estimator, arrays, _require(meta, "optimizer", dict))
    return estimator


def _restore_labels(estimator, arrays, meta):
    classes = arrays.get("classes")
    if classes is None or classes.ndim != 1 or classes.dtype.kind not in "biufU":
        raise ModelFormatError("a classifier needs a 1-D numeric or string 'classes' array")
    if classes.dtype.kind in "fc" and not np.isfinite(classes).all():
        raise ModelFormatError("classes contains NaN or infinity")
    if len(np.unique(classes)) != len(classes) or not np.array_equal(np.sort(classes), classes):
        raise ModelFormatError("classes must be sorted and distinct")
    label_type = meta.get("label_type")
    n_classes, n_outputs = len(classes), estimator.n_outputs_
    expected = {
        # One class is "binary" to LabelBinarizer: one output, always trained towards 0.
        "binary": (1, min(n_classes, 2) if n_classes else 2),
        "multiclass": (n_classes, max(n_classes, 3)),
        "multilabel-indicator": (n_classes, n_classes),
    }
    if label_type not in expected or expected[label_type] != (n_outputs, n_classes):
        raise ModelFormatError(
            f"label_type {label_type!r} with {n_classes} classes does not fit {n_outputs} outputs"
        )
    binarizer = LabelBinarizer()
    if label_type == "multilabel-indicator":
        binarizer.fit(np.vstack([np.eye(n_classes, dtype=int), np.zeros(n_classes, dtype=int)]))
        if not np.array_equal(classes, np.arange(n_classes)):
            raise ModelFormatError("multilabel classes must be 0 .. n_classes - 1")
    else:
        binarizer.fit(classes)
    if (
        label_type == "binary"
        and estimator.out_activation_ != "logistic"
        or (label_type == "multiclass" and estimator.out_activation_ != "softmax")
    ):
        raise ModelFormatError(f"out_activation_ does not fit label_type {label_type!r}")
    estimator._label_binarizer = binarizer
    estimator.classes_ = binarizer.classes_


def _restore_optimizer(estimator, arrays, state):
    kind = state.get("kind")
    if kind not in OPTIMIZERS:
        raise ModelFormatError(f"unknown optimizer {kind!r}")
    if kind != {"sgd": "SGDState", "adam": "AdamState"}.get(estimator.solver):
        raise ModelFormatError(f"optimizer {kind} does not match solver={estimator.solver!r}")
    optimizer = object.__new__(getattr(_optimizers, kind))
    scalars, lists = OPTIMIZERS[kind]
    for name in scalars:
        value = state.get(name)
        ok = (
            isinstance(value, str)
            if name == "lr_schedule"
            else (isinstance(value, (int, float)) and np.isfinite(value))
        )
        if not ok:
            raise ModelFormatError(f"optimizer {name} is {value!r}")
        setattr(optimizer, name, value)
    params = estimator.coefs_ + estimator.intercepts_
    for name in lists:
        setattr(
            optimizer,
            name,
            [
                _array(arrays, f"optimizer_{name}_{i}", p.dtype, p.ndim, p.shape)
                for i, p in enumerate(params)
            ],
        )
    setattr(estimator, OPTIMIZER, optimizer)


def _metadata(arrays):
    raw = arrays.get(_METADATA)
    if raw is None or raw.shape != () or raw.dtype.kind != "U":
        raise ModelFormatError("no metadata: not a fastmlp model file")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise ModelFormatError(f"corrupted metadata: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFormatError("not a fastmlp model file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ModelFormatError(
            f"format version {version!r} is not supported by this fastmlp "
            f"(it reads versions 1 to {FORMAT_VERSION})"
        )
    return meta


def _accepts_float(types):
    return types is float or (isinstance(types, tuple) and float in types)


def _require(meta, key, kind):
    value = meta.get(key)
    if not isinstance(value, kind):
        raise ModelFormatError(f"metadata {key!r} is missing or malformed")
    return value


def _array(arrays, name, dtype, ndim, shape=None):
    a = arrays.get(name)
    if a is None:
        raise ModelFormatError(f"array {name!r} is missing")
    if a.dtype != dtype or a.ndim != ndim or (shape is not None and a.shape != shape):
        raise ModelFormatError(
            f"array {name!r} has dtype {a.dtype} and shape {a.shape}, "
            f"expected {dtype} with {ndim} dimensions"
        )
    if not np.isfinite(a).all():
        raise ModelFormatError(f"array {name!r} contains NaN or infinity")
    return np.ascontiguousarray(a)


def _plain(value):
    """value as JSON-serializable Python data (NumPy scalars and lists converted)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _json_params(params):
    out = {}
    for name, value in params.items():
        value = _plain(value)
        if name == "random_state" and not (value is None or isinstance(value, int)):
            value = None  # a RandomState object is not data; it only seeded the fit
        if isinstance(value, dict):
            # class_weight: JSON's keys are strings, so its labels are written as pairs.
            value = {"pairs": [[_plain(k), _plain(v)] for k, v in value.items()]}
        out[name] = value  # n_iter_no_change=inf is written as JSON's Infinity
    return out
