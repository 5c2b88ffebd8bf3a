"""Handwritten digits: fastmlp.MLPClassifier beside scikit-learn's, and its loss curve.

Run ``python examples/digits.py [--out DIR]``. scikit-learn's bundled digits (1797 images of
8 x 8 pixels, classes 0-9) are split 75/25; both libraries train the same MLPClassifier (one
hidden layer of 100 relu units, Adam, early stopping on a 10% validation split after 20
epochs without improvement) with the same ``random_state``, so they should build the same
model: the script prints each one's test accuracy and fit time, and writes
``digits_loss_curve.png`` with fastmlp's training loss and validation accuracy per epoch
(:func:`fastmlp.plotting.plot_loss_curve`).
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

import fastmlp

# Early stopping with a little more patience than the default 10 epochs, which stops this
# run at a noisy early dip of the validation accuracy.
PARAMS = dict(
    hidden_layer_sizes=(100,),
    early_stopping=True,
    n_iter_no_change=20,
    max_iter=300,
    random_state=0,
)


def fit_timed(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        estimator.fit(X, y)
        return time.perf_counter() - start


def plot(model, path):
    try:
        from matplotlib.figure import Figure

        from fastmlp.plotting import plot_loss_curve
    except ImportError:
        print('(matplotlib is not installed, so no picture: pip install "fastmlp[plot]")')
        return
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = plot_loss_curve(model, ax=fig.subplots())
    ax.set_title("fastmlp.MLPClassifier on digits: loss and validation accuracy per epoch")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("."), help="folder for digits_loss_curve.png"
    )
    parser.add_argument("--repeats", type=int, default=3, help="time the best of this many fits")
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities 0..16 scaled to [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    print(f"digits: {len(X_train)} training and {len(X_test)} test images, {X.shape[1]} pixels")
    print(f"MLPClassifier({', '.join(f'{k}={v!r}' for k, v in PARAMS.items())})")
    print(f"{'library':<14}{'test accuracy':>15}{'fit time':>11}{'epochs':>8}")
    models, seconds = {}, {}
    for name, cls in (("fastmlp", fastmlp.MLPClassifier), ("scikit-learn", SklearnMLPClassifier)):
        models[name] = cls(**PARAMS)
        # The best of a few fits, for a steadier time; every fit gives the same model.
        seconds[name] = min(fit_timed(models[name], X_train, y_train) for _ in range(args.repeats))
        accuracy = models[name].score(X_test, y_test)
        print(f"{name:<14}{accuracy:>15.4f}{seconds[name]:>10.3f}s{models[name].n_iter_:>8d}")
    same = all(
        np.allclose(a, b, rtol=1e-6, atol=1e-9)
        for a, b in zip(models["fastmlp"].coefs_, models["scikit-learn"].coefs_, strict=True)
    )
    print(
        f"fastmlp fit {seconds['scikit-learn'] / seconds['fastmlp']:.1f}x faster; "
        f"same weights as scikit-learn: {same}"
    )
    best = models["fastmlp"]
    print(
        f"best validation accuracy {best.best_validation_score_:.4f} after "
        f"{int(np.argmax(best.validation_scores_)) + 1} epochs (its weights are kept)"
    )

    args.out.mkdir(parents=True, exist_ok=True)
    plot(best, args.out / "digits_loss_curve.png")


if __name__ == "__main__":
    main()
