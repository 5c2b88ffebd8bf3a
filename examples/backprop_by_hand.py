"""Backpropagation worked step by step on the lecture's 2-2-2 network of sigmoid units.

Run ``python examples/backprop_by_hand.py``. The lecture writes weights as ``w_ji`` (row
``j`` = target unit, column ``i`` = source unit), so its layer is ``a = W x + b``; fastmlp's
``coefs`` have shape ``(fan_in, fan_out)``, the transposes. Each step below is one line of
NumPy in the lecture's notation, with the sigmoid and its derivative taken from
:mod:`fastmlp.reference`; at the end the same gradients and updated weights are taken from
``fastmlp.reference.MLP`` and from ``fastmlp.MLP`` (the C++ core) and compared.

The squared error of the lecture is ``||h - y||^2``; fastmlp's ``squared_error`` loss is
``E = 1/2 ||h - y||^2`` (per sample), whose gradient ``dE/dh = h - y`` starts the backward pass.
This example writes no files (``--out`` is accepted, like the other examples', and unused).
"""

import argparse

import numpy as np

import fastmlp
from fastmlp import reference

# The lecture's network: rows are target units.
W1 = np.array([[0.25, 0.30], [0.15, 0.20]])  # w_ji: input i -> hidden j
b1 = np.array([0.35, 0.35])
W2 = np.array([[0.45, 0.40], [0.50, 0.55]])  # w_kj: hidden j -> output k
b2 = np.array([0.60, 0.60])
x = np.array([0.05, 0.10])
y = np.array([0.01, 0.99])
LEARNING_RATE = 0.5


def sigma(a):
    return reference.activate("logistic", a[None, :])[0]


def sigma_prime_from_output(z):
    return reference.derivative("logistic", z[None, :])[0]  # z (1 - z)


def _number(v):
    return f"{v:.4f}" if abs(v) >= 0.001 else f"{v:.2e}"  # 4 decimals, as the lecture


def show(name, value, note=""):
    value = np.asarray(value)
    if value.ndim == 0:
        text = _number(value)
    elif value.ndim == 1:
        text = "(" + ", ".join(map(_number, value)) + ")"
    else:
        text = "[" + ", ".join("[" + ", ".join(map(_number, row)) + "]" for row in value) + "]"
    print(f"  {name:<29}= {text}" + (f"    {note}" if note else ""))


def by_hand():
    print("Forward pass")
    a1 = W1 @ x + b1
    show("a1 = W1 x + b1", a1)
    z = sigma(a1)
    show("z = sigma(a1)", z, "hidden outputs")
    a2 = W2 @ z + b2
    show("a2 = W2 z + b2", a2)
    h = sigma(a2)
    show("h = sigma(a2)", h, "network outputs")
    squared_error = float(np.sum((h - y) ** 2))
    show("||h - y||^2", squared_error, f"E = 1/2 ||h - y||^2 = {squared_error / 2:.4f}")

    print("Backward pass: local errors delta = dE/da")
    delta2 = (h - y) * sigma_prime_from_output(h)
    show("delta2 = (h-y) h(1-h)", delta2, "output units")
    delta1 = sigma_prime_from_output(z) * (W2.T @ delta2)
    show("delta1 = z(1-z) W2^T delta2", delta1, "hidden units")

    print("Gradients: dE/dw_ji = delta_j z_i, dE/db_j = delta_j")
    grad_W2, grad_W1 = np.outer(delta2, z), np.outer(delta1, x)
    show("dE/dW2 = delta2 z^T", grad_W2)
    show("dE/db2 = delta2", delta2)
    show("dE/dW1 = delta1 x^T", grad_W1)
    show("dE/db1 = delta1", delta1)

    lr = LEARNING_RATE
    print(f"One gradient-descent step, learning rate {lr}: w <- w - {lr} dE/dw")
    new = {
        "W1": W1 - LEARNING_RATE * grad_W1,
        "b1": b1 - LEARNING_RATE * delta1,
        "W2": W2 - LEARNING_RATE * grad_W2,
        "b2": b2 - LEARNING_RATE * delta2,
    }
    for name, value in new.items():
        show(f"new {name}", value)
    grads = {"W1": grad_W1, "b1": delta1, "W2": grad_W2, "b2": delta2}
    return squared_error / 2, grads, new


def lecture_network(mlp_class):
    net = mlp_class(
        (2, 2, 2), activation="logistic", output_activation="logistic", loss="squared_error"
    )
    net.coefs = [W1.T, W2.T]  # (fan_in, fan_out): the transposes of the lecture's w_ji
    net.intercepts = [b1, b2]
    return net


def check(mlp_class, loss, grads, new):
    """Largest difference between the library's loss, gradients and step and the hand's."""
    net = lecture_network(mlp_class)
    got_loss, coef_grads, intercept_grads = net.backward(x[None, :], y[None, :])
    net.sgd_step(x[None, :], y[None, :], LEARNING_RATE)
    pairs = [
        (got_loss, loss),
        (coef_grads[0].T, grads["W1"]),
        (intercept_grads[0], grads["b1"]),
        (coef_grads[1].T, grads["W2"]),
        (intercept_grads[1], grads["b2"]),
        (net.coefs[0].T, new["W1"]),
        (net.intercepts[0], new["b1"]),
        (net.coefs[1].T, new["W2"]),
        (net.intercepts[1], new["b2"]),
    ]
    return max(float(np.max(np.abs(np.subtract(a, b)))) for a, b in pairs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="unused: this example writes no files")
    parser.parse_args(argv)

    print("The lecture's 2-2-2 sigmoid network, x = (0.05, 0.10), y = (0.01, 0.99)")
    loss, grads, new = by_hand()
    print("Checked against the library (loss, gradients and updated weights):")
    ok = True
    for label, mlp_class in [
        ("fastmlp.reference.MLP", reference.MLP),
        ("fastmlp.MLP", fastmlp.MLP),
    ]:
        difference = check(mlp_class, loss, grads, new)
        ok &= difference < 1e-12
        print(f"  {label:<22}largest difference {difference:.1e}")
    print("all agree" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
