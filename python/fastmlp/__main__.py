"""Command line: ``python -m fastmlp demo``, ``bench``, ``bench-gpu``, ``info``, ``train`` and
``predict``.

(About 410 lines, a little past the project's 400: six subcommands, each a short function that
reads as a whole; the data readers live in ``_cli_data``.)
"""

import argparse
import importlib.util
import os
import sys
import time
import warnings

from fastmlp._atomic_file import atomic_write
from fastmlp._cli_data import DataError

_DEMO_PLOT = "fastmlp_demo_loss_curve.png"


def _demo(args):
    """Train on scikit-learn's bundled digits, beside scikit-learn's own MLP on the same split."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

    from fastmlp import MLPClassifier, build_info

    if args.plot is None and not args.no_plot:
        if importlib.util.find_spec("matplotlib") is not None:
            args.plot = _DEMO_PLOT
        else:
            print('(pip install "fastmlp[plot]" to also get the loss-curve PNG)')
    if args.plot is not None:  # before the minutes of training, not after
        _check_plotting()
        _check_parent_folder(args.plot)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities 0..16 scaled to [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    print(f"digits: {len(X_train)} training and {len(X_test)} test samples, {X.shape[1]} features")
    print(
        f"fastmlp {build_info()['version']}, MLPClassifier(random_state={args.random_state}),"
        " default parameters otherwise"
    )
    print(f"{'engine':<14}{'accuracy':>10}{'fit time':>12}{'epochs':>8}")
    results = {}
    for name, cls in (("fastmlp", MLPClassifier), ("scikit-learn", SklearnMLPClassifier)):
        model = cls(random_state=args.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X_train, y_train)
            seconds = time.perf_counter() - start
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        results[name] = (model, seconds)
        print(f"{name:<14}{accuracy:>10.4f}{seconds:>11.3f}s{model.n_iter_:>8d}")
    speedup = results["scikit-learn"][1] / results["fastmlp"][1]
    same = all(
        np.allclose(a, b, rtol=1e-6, atol=1e-9)
        for a, b in zip(
            results["fastmlp"][0].coefs_, results["scikit-learn"][0].coefs_, strict=True
        )
    )
    print(f"fastmlp fit {speedup:.1f}x faster; same weights as scikit-learn: {same}")
    if args.plot is not None:
        _save_loss_curve(results["fastmlp"][0], args.plot)
        print(f"wrote fastmlp's loss curve to {args.plot}")
    return 0


def _check_plotting():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DataError('--plot needs matplotlib: pip install "fastmlp[plot]"') from None


def _check_parent_folder(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DataError(f"cannot write {path}: no folder {folder}")


def _save_loss_curve(model, path):
    # A Figure of its own, not pyplot's: no GUI backend, no global state.
    from matplotlib.figure import Figure

    from fastmlp._atomic_file import save_figure
    from fastmlp.plotting import plot_loss_curve

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    plot_loss_curve(model, ax=fig.subplots()).set_title("fastmlp.MLPClassifier on digits")
    try:
        save_figure(fig, path)
    except (OSError, ValueError) as exc:  # ValueError: an extension matplotlib cannot write
        raise DataError(f"cannot write {path}: {exc}") from None


def _bench(args):
    """Train and predict with fastmlp (fp32, bf16), scikit-learn and PyTorch (fp32, bf16
    autocast) side by side, interleaved; print and save the table."""
    from fastmlp._bench import run

    run(args.workloads, repeats=args.repeats, out_dir=args.out)
    return 0


def _bench_gpu(args):
    """Train fastmlp (device="cuda") and PyTorch on the same GPU; print and save the table."""
    from fastmlp._bench_gpu import run

    run(args.workloads, repeats=args.repeats, out_dir=args.out)
    return 0


def _info(args):
    """Print what was built and what this process would use."""
    import fastmlp

    for key, value in fastmlp.build_info().items():
        if key == "bf16":  # the kernel compute_dtype="bfloat16" would run, or why none
            value = value["kernel"] or f"none ({value['reason']})"
        print(f"{key}: {value}")
    return 0


_TRAIN_NOTES = (
    "Every column but the target is a feature and must hold numbers, used as they are: scale "
    "them beforehand (to [0, 1], or to mean 0 and variance 1), as MLPs train poorly on raw "
    "scales. The model file keeps the feature names; predict checks them."
)


def _short_list(names, limit=6):
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def _train(args):
    """Train an MLP on a CSV file (header row; numeric features) or sparse data (svmlight,
    libsvm or SciPy .npz, kept sparse) and save it."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from fastmlp import MLPClassifier, MLPRegressor
    from fastmlp._cli_data import is_sparse_file, parse_hidden

    hidden = parse_hidden(args.hidden)
    _check_parent_folder(args.out)
    if is_sparse_file(args.data):
        X, y, features = _sparse_training_data(args)
    else:
        X, y, features = _table_training_data(args)

    cls = MLPRegressor if args.regression else MLPClassifier
    model = cls(hidden_layer_sizes=hidden, max_iter=args.max_iter, random_state=args.random_state)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        try:
            model.fit(X, y)
        except ValueError as exc:  # parameters (--max-iter 0) or data scikit-learn refuses
            raise DataError(f"cannot train: {str(exc).splitlines()[0]}") from None
        seconds = time.perf_counter() - start
    score = model.score(X, y)  # before the names are set: X has none
    # The column names travel inside the model, in the attribute scikit-learn keeps them in
    # when it fits a data frame: predict checks them, and so does the estimator itself when it
    # is given a data frame in Python.
    if features is not None:
        model.feature_names_in_ = np.array(features, dtype=object)
    n_features = X.shape[1] if features is None else len(features)
    shown = f"({_short_list(features)})" if features is not None else "(sparse)"
    try:
        model.save(args.out)
    except OSError as exc:
        raise DataError(f"cannot write {args.out}: {exc.strerror or exc}") from None

    if args.regression:
        kind = "regression"
    else:
        kind = f"{len(model.classes_)} classes ({_short_list([str(c) for c in model.classes_])})"
    print(
        f"{args.data}: {X.shape[0]} rows, {n_features} features {shown}; "
        f"target {args.target or 'labels'!r}: {kind}"
    )
    score_name = "R^2" if args.regression else "accuracy"
    print(
        f"{cls.__name__}(hidden_layer_sizes={hidden}): {model.n_iter_} iterations in "
        f"{seconds:.2f} s, training {score_name} {score:.4f}"
    )
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        print(
            f"note: training stopped at --max-iter {args.max_iter} before converging",
            file=sys.stderr,
        )
    print(f"wrote {args.out}")
    return 0


def _table_training_data(args):
    """X (n_samples, n_features), y and the feature names of a CSV table."""
    import numpy as np

    from fastmlp._cli_data import read_table

    if args.target is None:
        raise DataError(f"--target is required for a CSV file ({args.data})")
    table = read_table(args.data)
    if args.target not in table.columns:
        raise DataError(
            f"{args.data} has no column {args.target!r} (--target); its columns "
            f"are {_short_list(table.columns)}"
        )
    features = [name for name in table.columns if name != args.target]
    if not features:
        raise DataError(f"{args.data} has no feature columns besides the target {args.target!r}")
    X = table.numeric(features)  # (n_samples, n_features)
    if args.regression:
        y = table.numeric([args.target])[:, 0]
    else:
        y = np.array(table.column(args.target))  # class labels: any text
        if "" in y:
            line = table.line_numbers[int(np.flatnonzero(y == "")[0])]
            raise DataError(f"{args.data}, line {line}, column {args.target!r}: empty label")
    return X, y, features


def _sparse_training_data(args):
    """Sparse X (CSR, never densified), y and no feature names: an svmlight/libsvm file (its
    labels in its rows) or a SciPy .npz matrix (its labels from --labels)."""
    import numpy as np

    from fastmlp._cli_data import read_labels, read_sparse

    X, y = read_sparse(args.data)
    if y is None:
        if args.labels is None:
            raise DataError(f"{args.data} holds no labels: give them with --labels FILE")
        y = read_labels(args.labels, X.shape[0])
        if args.regression:
            try:
                y = y.astype(np.float64)
            except ValueError:
                raise DataError(
                    f"{args.labels}: the --regression targets must be numbers"
                ) from None
    return X, y, None


def _load_model(path):
    import fastmlp

    if not os.path.isfile(path):
        raise DataError(f"no such file: {path}")
    try:
        return fastmlp.load(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load the model in {path}: {str(exc).splitlines()[0]}") from None


def _predict(args):
    """Predict with a model saved by train, on the rows of a CSV file."""
    from fastmlp._cli_data import is_sparse_file, read_sparse, read_table

    if args.out is not None:
        _check_parent_folder(args.out)
    model = _load_model(args.model)
    if is_sparse_file(args.data):
        X, _ = read_sparse(args.data, n_features=model.n_features_in_)  # by position
        return _write_predictions(args, model, X)
    table = read_table(args.data)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:  # check and pick the columns by name
        names = [str(name) for name in names]
        missing = [name for name in names if name not in table.columns]
        if missing:
            raise DataError(
                f"{args.data} lacks the model's feature columns {missing}; it was "
                f"trained on {_short_list(names)}"
            )
        unused = [name for name in table.columns if name not in names]
        if unused:
            print(
                f"note: ignoring the columns the model does not use: {_short_list(unused)}",
                file=sys.stderr,
            )
    else:  # a model fitted on a bare array, in Python: columns by position
        names = table.columns
        if len(names) != model.n_features_in_:
            raise DataError(
                f"{args.data} has {len(names)} columns, but the model takes "
                f"{model.n_features_in_} features"
            )
    X = table.numeric(names)  # (n_samples, n_features), in the model's order
    return _write_predictions(args, model, X)


def _write_predictions(args, model, X):
    from fastmlp._cli_data import write_columns

    with warnings.catch_warnings():
        # Fitted with names, given an array: the names were checked above.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        predictions = model.predict(X)
    predictions = predictions.reshape(X.shape[0], -1)  # (n_samples, n_outputs)
    header = (
        ["prediction"]
        if predictions.shape[1] == 1
        else [f"prediction_{k}" for k in range(predictions.shape[1])]
    )
    if args.out is None:
        write_columns(sys.stdout, header, predictions)
        return 0
    try:
        with atomic_write(args.out, "w", newline="", encoding="utf-8") as file:
            write_columns(file, header, predictions)
    except OSError as exc:
        raise DataError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {len(predictions)} predictions to {args.out}")
    return 0


def main(argv=None):
    """Entry point of ``python -m fastmlp`` and the ``fastmlp`` console script."""
    parser = argparse.ArgumentParser(prog="fastmlp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help=_demo.__doc__)
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument(
        "--plot",
        metavar="PATH",
        default=None,
        help=f"write fastmlp's loss curve to this PNG (needs matplotlib; default {_DEMO_PLOT}"
        " where matplotlib is installed)",
    )
    demo.add_argument("--no-plot", action="store_true", help="write no loss-curve PNG")
    demo.set_defaults(run=_demo)
    bench = commands.add_parser("bench", help=_bench.__doc__)
    bench.add_argument(
        "--workloads",
        nargs="+",
        default=["small", "mnist", "wide"],
        choices=["small", "mnist", "wide", "sparse"],
        help="sparse: 20,000 x 100,000 CSR input, fastmlp against scikit-learn only, each in "
        "its own process (heavy: minutes)",
    )
    bench.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="interleaved runs per engine; medians and ranges are taken over them (default 5)",
    )
    bench.add_argument("--out", default=None, help="folder for results.json and results.png")
    bench.set_defaults(run=_bench)
    bench_gpu = commands.add_parser("bench-gpu", help=_bench_gpu.__doc__)
    bench_gpu.add_argument(
        "--workloads", nargs="+", default=["wide", "narrow"], choices=["wide", "narrow"]
    )
    bench_gpu.add_argument("--repeats", type=int, default=5)
    bench_gpu.add_argument("--out", default=None, help="folder for gpu_results.json")
    bench_gpu.set_defaults(run=_bench_gpu)
    info = commands.add_parser("info", help=_info.__doc__)
    info.set_defaults(run=_info)

    train = commands.add_parser(
        "train", help=_train.__doc__, description=f"{_train.__doc__} {_TRAIN_NOTES}"
    )
    train.add_argument(
        "data",
        help="CSV file with a header row, or sparse data: an svmlight/libsvm file (.svm, "
        ".svmlight, .libsvm) or a SciPy sparse matrix (.npz, with --labels)",
    )
    train.add_argument("--target", help="name of the column to predict (CSV files)")
    train.add_argument(
        "--labels", help="text file of one label per row, for a .npz matrix", default=None
    )
    train.add_argument(
        "--hidden",
        default="100",
        metavar="SIZES",
        help="hidden layer sizes, comma-separated (default: 100)",
    )
    train.add_argument(
        "--regression",
        action="store_true",
        help="numeric target, MLPRegressor (default: classes, MLPClassifier)",
    )
    train.add_argument("--max-iter", type=int, default=200, help="epochs (default: 200)")
    train.add_argument(
        "--random-state", type=int, default=None, help="seed, for the same model every time"
    )
    train.add_argument("--out", required=True, help="model file to write, e.g. model.npz")
    train.set_defaults(run=_train)

    predict = commands.add_parser("predict", help=_predict.__doc__, description=_predict.__doc__)
    predict.add_argument("model", help="model file written by train")
    predict.add_argument(
        "data",
        help="CSV file with the model's feature columns, or an svmlight/libsvm or .npz "
        "sparse matrix with the model's number of columns",
    )
    predict.add_argument(
        "--out", default=None, help="CSV file to write (default: print to standard output)"
    )
    predict.set_defaults(run=_predict)

    args = parser.parse_args(argv)
    if args.command == "train" and args.target is None:
        from fastmlp._cli_data import is_sparse_file

        if not is_sparse_file(args.data):  # a CSV table needs it; sparse files carry labels
            train.error("the following arguments are required: --target")
    try:
        return args.run(args)
    except DataError as exc:  # the user's input: one line, no traceback
        print(f"fastmlp {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
