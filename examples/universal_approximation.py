"""Three tanh units approximate x², sin(πx), |x| and a step function (after Bishop's figure 5.3).

Run ``python examples/universal_approximation.py [--out DIR]``. For each function, 50 evenly
spaced points on [-1, 1] train a network with one hidden layer of 3 tanh units and a linear
output, ``fastmlp.MLPRegressor(hidden_layer_sizes=(3,), activation="tanh", solver="lbfgs")``,
the best of 5 random starts (L-BFGS can stop in a poorer local minimum). It prints each final
mean squared error and writes ``universal_approximation.png``: the data, the network's function
and, dashed, the outputs ``tanh(w_j x + b_j)`` of the three hidden units that the output adds up.

Bishop's caption says sin(x); on [-1, 1] that is nearly a straight line, so this example
fits a full period, sin(πx), which shows more.
"""

import argparse
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastmlp

FUNCTIONS = {
    "x²": np.square,
    "sin(πx)": lambda x: np.sin(np.pi * x),
    "|x|": np.abs,
    "step H(x)": lambda x: np.heaviside(x, 1.0),
}


def fit(x, y, n_starts=5):
    """The best of ``n_starts`` L-BFGS fits of a 1-3-1 tanh network, and its MSE."""
    best, best_mse = None, np.inf
    for seed in range(n_starts):
        model = fastmlp.MLPRegressor(
            hidden_layer_sizes=(3,),
            activation="tanh",
            solver="lbfgs",
            alpha=0.0,
            tol=1e-10,
            max_iter=2000,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x[:, None], y)
        mse = float(np.mean((model.predict(x[:, None]) - y) ** 2))
        if mse < best_mse:
            best, best_mse = model, mse
    return best, best_mse


def hidden_outputs(model, x):
    """z_j = tanh(x w_j + b_j) for the hidden units j: shape (len(x), 3)."""
    return np.tanh(x[:, None] @ model.coefs_[0] + model.intercepts_[0])


def plot(results, x, path):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print('(matplotlib is not installed, so no picture: pip install "fastmlp[plot]")')
        return
    fine = np.linspace(-1, 1, 401)
    fig = Figure(figsize=(9, 7), layout="constrained")
    for ax, (name, (model, mse, y)) in zip(
        fig.subplots(2, 2).ravel(), results.items(), strict=True
    ):
        ax.plot(x, y, "o", color="C0", markersize=4, label="data")
        ax.plot(fine, model.predict(fine[:, None]), color="C3", linewidth=2, label="network")
        for j, z in enumerate(hidden_outputs(model, fine).T):
            ax.plot(fine, z, "--", linewidth=1, color=f"C{j + 4}", label=f"hidden unit {j + 1}")
        ax.set(title=f"f(x) = {name}   (MSE {mse:.1e})", xlabel="x", ylim=(-1.15, 1.15))
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=5)
    fig.suptitle("One hidden layer of 3 tanh units, linear output (fastmlp.MLPRegressor, L-BFGS)")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("."), help="folder for universal_approximation.png"
    )
    args = parser.parse_args(argv)

    x = np.linspace(-1, 1, 50)
    print("50 points on [-1, 1]; 1-3-1 network, tanh hidden units, identity output; best of 5")
    print(f"{'function':<12}{'final MSE':>12}{'L-BFGS iterations':>20}")
    results = {}
    for name, f in FUNCTIONS.items():
        y = f(x)
        model, mse = fit(x, y)
        results[name] = (model, mse, y)
        print(f"{name:<12}{mse:>12.2e}{model.n_iter_:>20d}")

    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, x, args.out / "universal_approximation.png")


if __name__ == "__main__":
    main()
