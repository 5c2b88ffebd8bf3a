"""XOR: first with threshold units whose weights are set by hand, then learned by a logistic net.

Run ``python examples/xor.py [--out DIR]``. It prints the truth table of the hand-built
2-2-1 network of threshold units

    h1 = Th(x1 + x2 - 0.5)      (x1 OR x2)
    h2 = Th(x1 + x2 - 1.5)      (x1 AND x2)
    y  = Th(h1 - h2 - 0.5)      (OR and not AND: XOR)

where ``Th(a) = 1 if a >= 0 else 0``, then trains a logistic 2-4-1 network on the same four
points by full-batch gradient descent (``MLP.sgd_step``), and writes ``xor.png``: the plane as
each network divides it.
"""

import argparse
import itertools
from pathlib import Path

import numpy as np

import fastmlp

X = np.array(list(itertools.product([0.0, 1.0], repeat=2)))  # (4, 2): 00, 01, 10, 11
Y = np.logical_xor(X[:, 0], X[:, 1]).astype(float)  # (4,)


def threshold_network():
    """The hand-set 2-2-1 network of threshold (step) units."""
    net = fastmlp.MLP((2, 2, 1), activation="step", output_activation="step")
    # coefs are (fan_in, fan_out): row i holds unit i's outgoing weights, column j the
    # weights into unit j.
    W1 = np.array([[1.0, 1.0], [1.0, 1.0]])  # x1 -> (h1, h2); x2 -> (h1, h2)
    W2 = np.array([[1.0], [-1.0]])  # h1 -> y; h2 -> y
    net.coefs = [W1, W2]
    net.intercepts = [np.array([-0.5, -1.5]), np.array([-0.5])]
    return net


def hidden_layer(net):
    """The first layer of ``net`` alone, as a network of its own, to show h1 and h2."""
    layer = fastmlp.MLP(net.layer_sizes[:2], output_activation=net.activation)
    layer.coefs, layer.intercepts = net.coefs[:1], net.intercepts[:1]
    return layer


def train_logistic_network(steps=3000, learning_rate=2.0, random_state=0):
    """A logistic 2-4-1 network trained on the four points by full-batch gradient descent."""
    net = fastmlp.MLP(
        (2, 4, 1),
        activation="logistic",
        output_activation="logistic",
        loss="log_loss",
        random_state=random_state,
    )
    for step in range(steps + 1):
        if step % 500 == 0:
            loss, _, _ = net.backward(X, Y)
            print(f"  step {step:5d}: log loss {loss:.4f}")
        if step < steps:
            net.sgd_step(X, Y, learning_rate)
    return net


def print_table(title, columns, rows):
    print(title)
    print("  " + "  ".join(f"{c:>5}" for c in columns))
    for row in rows:
        print("  " + "  ".join(f"{v:>5}" for v in row))


def plot(threshold_net, logistic_net, path):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print('(matplotlib is not installed, so no picture: pip install "fastmlp[plot]")')
        return
    # Cell centers of a 201 x 201 grid over [-0.5, 1.5]^2; row i is x2 = grid[i].
    grid = np.linspace(-0.5, 1.5, 201)
    points = np.array([(x1, x2) for x2 in grid for x1 in grid])
    step = grid[1] - grid[0]
    extent = (grid[0] - step / 2, grid[-1] + step / 2) * 2
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = [
        (threshold_net, "hand-set threshold units: y = Th(h1 - h2 - 0.5)"),
        (logistic_net, "logistic 2-4-1 trained by gradient descent"),
    ]
    for ax, (net, title) in zip(axes, panels, strict=True):
        out = net.forward(points).reshape(len(grid), len(grid))
        image = ax.imshow(
            out, origin="lower", extent=extent, cmap="RdBu_r", vmin=0, vmax=1, alpha=0.6
        )
        if net.output_activation != "step":  # a step surface has its edge drawn already
            ax.contour(grid, grid, out, levels=[0.5], colors="black", linewidths=1)
        ax.scatter(X[:, 0], X[:, 1], c=Y, cmap="RdBu_r", vmin=0, vmax=1, s=120, edgecolors="black")
        ax.set(title=title, xlabel="x1", ylabel="x2")
    fig.colorbar(image, ax=axes, label="network output (decision boundary at 0.5)")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for xor.png")
    args = parser.parse_args(argv)

    threshold_net = threshold_network()
    H = hidden_layer(threshold_net).forward(X)
    y = threshold_net.forward(X)[:, 0]
    print_table(
        "Threshold units set by hand (Th(a) = 1 if a >= 0 else 0):",
        ["x1", "x2", "h1", "h2", "y"],
        [(*map(int, x), *map(int, h), int(out)) for x, h, out in zip(X, H, y, strict=True)],
    )
    print(f"XOR reproduced: {np.array_equal(y, Y)}")

    print("\nA logistic 2-4-1 network learning XOR (log loss, learning rate 2.0, full batch):")
    logistic_net = train_logistic_network()
    h = logistic_net.forward(X)[:, 0]
    print_table(
        "Its outputs:",
        ["x1", "x2", "h", "y"],
        [(*map(int, x), f"{p:.3f}", int(t)) for x, p, t in zip(X, h, Y, strict=True)],
    )
    print(f"XOR learned (h > 0.5 exactly where y = 1): {np.array_equal(h > 0.5, Y == 1)}")

    args.out.mkdir(parents=True, exist_ok=True)
    plot(threshold_net, logistic_net, args.out / "xor.png")


if __name__ == "__main__":
    main()
