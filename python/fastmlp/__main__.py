"""Command line: ``python -m fastmlp demo``, ``bench`` and ``info``."""

import argparse
import sys
import time
import warnings


def _demo(args):
    """Train on scikit-learn's bundled digits, beside scikit-learn's own MLP on the same split."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

    from fastmlp import MLPClassifier, build_info

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities 0..16 scaled to [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    print(f"digits: {len(X_train)} training and {len(X_test)} test samples, {X.shape[1]} features")
    print(f"fastmlp {build_info()['version']}, MLPClassifier(random_state={args.random_state}),"
          " default parameters otherwise")  # fmt: skip
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
        for a, b in zip(results["fastmlp"][0].coefs_, results["scikit-learn"][0].coefs_)
    )
    print(f"fastmlp fit {speedup:.1f}x faster; same weights as scikit-learn: {same}")
    return 0


def _bench(args):
    """Train fastmlp, scikit-learn and PyTorch side by side; print and save the table."""
    from fastmlp._bench import run

    run(args.workloads, repeats=args.repeats, out_dir=args.out)
    return 0


def _info(args):
    """Print what was built and what this process would use."""
    import fastmlp

    for key, value in fastmlp.build_info().items():
        print(f"{key}: {value}")
    return 0


def main(argv=None):
    """Entry point of ``python -m fastmlp`` and the ``fastmlp`` console script."""
    parser = argparse.ArgumentParser(prog="fastmlp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help=_demo.__doc__)
    demo.add_argument("--random-state", type=int, default=0)
    demo.set_defaults(run=_demo)
    bench = commands.add_parser("bench", help=_bench.__doc__)
    bench.add_argument("--workloads", nargs="+", default=["small", "mnist", "wide"],
                       choices=["small", "mnist", "wide"])  # fmt: skip
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--out", default=None, help="folder for results.json and results.png")
    bench.set_defaults(run=_bench)
    info = commands.add_parser("info", help=_info.__doc__)
    info.set_defaults(run=_info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
