"""The lecture's examples, run on the NumPy reference and on the C++ core alike.

The lecture writes weights as ``w_ji`` (row ``j`` = target unit, column ``i`` = source unit);
fastmlp's ``coefs`` have shape ``(fan_in, fan_out)``, so they are the transposes. Expected
values are computed here with plain Python ``math`` from the lecture's equations, written out
unit by unit, not through the library.
"""

import math

import numpy as np
import pytest

# ---------------------------------------------------------------- the worked example
# A 2-2-2 network of logistic units trained on one sample with the squared error.
# The lecture rounds its intermediate values and has slips: its squared error 0.79 and its
# gradient entries -13.2 and -12.8 are wrong. The exact values are tested below, and the
# lecture's correctly rounded ones (h = (0.7514, 0.7729), squared error 0.5968) as well.
W1 = [[0.25, 0.30], [0.15, 0.20]]  # w_ji: input i -> hidden j
B1 = [0.35, 0.35]
W2 = [[0.45, 0.40], [0.50, 0.55]]  # w_kj: hidden j -> output k
B2 = [0.60, 0.60]
X = [0.05, 0.10]
Y = [0.01, 0.99]
LEARNING_RATE = 0.5


def sigma(a):
    return 1.0 / (1.0 + math.exp(-a))


def by_hand():
    """Forward pass, local errors, gradients and one SGD step, unit by unit."""
    r = range(2)
    # hidden: z_j = sigma(sum_i w_ji x_i + b_j); output: h_k = sigma(sum_j w_kj z_j + b_k)
    z = [sigma(sum(W1[j][i] * X[i] for i in r) + B1[j]) for j in r]
    h = [sigma(sum(W2[k][j] * z[j] for j in r) + B2[k]) for k in r]
    squared_error = sum((h[k] - Y[k]) ** 2 for k in r)  # ||h - y||^2
    # The loss is E = 1/2 ||h - y||^2, so dE/dh_k = h_k - y_k.
    # Output local errors: delta_k = (h_k - y_k) h_k (1 - h_k)
    delta2 = [(h[k] - Y[k]) * h[k] * (1 - h[k]) for k in r]
    # Hidden local errors: delta_j = z_j (1 - z_j) sum_k w_kj delta_k
    delta1 = [z[j] * (1 - z[j]) * sum(W2[k][j] * delta2[k] for k in r) for j in r]
    # dE/dw_kj = delta_k z_j, dE/dw_ji = delta_j x_i, dE/db = delta
    grad_W2 = [[delta2[k] * z[j] for j in r] for k in r]
    grad_W1 = [[delta1[j] * X[i] for i in r] for j in r]
    # One step: w <- w - lr * dE/dw
    new_W2 = [[W2[k][j] - LEARNING_RATE * grad_W2[k][j] for j in r] for k in r]
    new_W1 = [[W1[j][i] - LEARNING_RATE * grad_W1[j][i] for i in r] for j in r]
    new_B2 = [B2[k] - LEARNING_RATE * delta2[k] for k in r]
    new_B1 = [B1[j] - LEARNING_RATE * delta1[j] for j in r]
    return {
        "z": z,
        "h": h,
        "squared_error": squared_error,
        "delta2": delta2,
        "delta1": delta1,
        "grad_W2": grad_W2,
        "grad_W1": grad_W1,
        "new_W2": new_W2,
        "new_W1": new_W1,
        "new_B2": new_B2,
        "new_B1": new_B1,
    }


def lecture_network(mlp_class):
    net = mlp_class(
        [2, 2, 2],
        activation="logistic",
        output_activation="logistic",
        loss="squared_error",
        dtype="float64",
    )
    net.coefs = [np.array(W1).T, np.array(W2).T]  # (fan_in, fan_out) = w_ji transposed
    net.intercepts = [np.array(B1), np.array(B2)]
    return net


def test_worked_example_forward(mlp_class):
    expected = by_hand()
    # The hidden layer's outputs: the first layer alone, as a network of its own.
    hidden = mlp_class([2, 2], output_activation="logistic")
    hidden.coefs, hidden.intercepts = [np.array(W1).T], [np.array(B1)]
    z = hidden.forward(np.array([X]))
    np.testing.assert_allclose(z[0], expected["z"], rtol=1e-14)
    np.testing.assert_array_equal(np.round(z[0], 4), [0.5969, 0.5933])

    h = lecture_network(mlp_class).forward(np.array([X]))
    assert h.shape == (1, 2)
    np.testing.assert_allclose(h[0], expected["h"], rtol=1e-14)
    np.testing.assert_array_equal(np.round(h[0], 4), [0.7514, 0.7729])  # the lecture's h


def test_worked_example_loss(mlp_class):
    expected = by_hand()
    loss, _, _ = lecture_network(mlp_class).backward(np.array([X]), np.array([Y]))
    assert round(expected["squared_error"], 4) == 0.5968  # the lecture's ||h - y||^2
    # fastmlp's squared_error loss carries the 1/2: E = 1/2 ||h - y||^2.
    assert loss == pytest.approx(expected["squared_error"] / 2, rel=1e-14)
    assert round(loss, 4) == 0.2984


def test_worked_example_local_errors(mlp_class):
    expected = by_hand()
    # With one sample the intercept gradients are the local errors themselves: dE/db = delta.
    _, _, intercept_grads = lecture_network(mlp_class).backward(np.array([X]), np.array([Y]))
    np.testing.assert_allclose(intercept_grads[1], expected["delta2"], rtol=1e-13)
    np.testing.assert_allclose(intercept_grads[0], expected["delta1"], rtol=1e-13)
    np.testing.assert_array_equal(np.round(intercept_grads[1], 4), [0.1385, -0.0381])
    np.testing.assert_array_equal(np.round(intercept_grads[0], 4), [0.0104, 0.0083])


def test_worked_example_gradients(mlp_class):
    expected = by_hand()
    _, coef_grads, _ = lecture_network(mlp_class).backward(np.array([X]), np.array([Y]))
    assert [g.shape for g in coef_grads] == [(2, 2), (2, 2)]
    np.testing.assert_allclose(coef_grads[1].T, expected["grad_W2"], rtol=1e-13)
    np.testing.assert_allclose(coef_grads[0].T, expected["grad_W1"], rtol=1e-13)
    np.testing.assert_array_equal(
        np.round(coef_grads[1].T, 4), [[0.0827, 0.0822], [-0.0227, -0.0226]]
    )


def test_worked_example_sgd_step(mlp_class):
    expected = by_hand()
    net = lecture_network(mlp_class)
    loss = net.sgd_step(np.array([X]), np.array([Y]), LEARNING_RATE)
    assert loss == pytest.approx(expected["squared_error"] / 2, rel=1e-14)  # before the step
    np.testing.assert_allclose(net.coefs[1].T, expected["new_W2"], rtol=1e-14)
    np.testing.assert_allclose(net.coefs[0].T, expected["new_W1"], rtol=1e-14)
    np.testing.assert_allclose(net.intercepts[1], expected["new_B2"], rtol=1e-14)
    np.testing.assert_allclose(net.intercepts[0], expected["new_B1"], rtol=1e-14)
    np.testing.assert_array_equal(
        np.round(net.coefs[1].T, 4), [[0.4087, 0.3589], [0.5114, 0.5613]]
    )
    # The step lowers the error.
    assert net.backward(np.array([X]), np.array([Y]))[0] < loss


# ---------------------------------------------------------------- XOR

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])


def test_xor_of_threshold_units(mlp_class):
    # h1 = Th(x1 + x2 - 0.5) (OR), h2 = Th(x1 + x2 - 1.5) (AND), y = Th(h1 - h2 - 0.5).
    net = mlp_class([2, 2, 1], activation="step", output_activation="step")
    net.coefs = [
        np.array(
            [
                [1.0, 1.0],  # x1 -> (h1, h2)
                [1.0, 1.0],
            ]
        ),  # x2 -> (h1, h2)
        np.array([[1.0], [-1.0]]),
    ]
    net.intercepts = [np.array([-0.5, -1.5]), np.array([-0.5])]
    np.testing.assert_array_equal(net.forward(XOR_X), XOR_Y[:, None])


def test_logistic_network_learns_xor(mlp_class):
    # Gradient descent on the cross-entropy finds XOR from Glorot's random start; with 4
    # hidden units, 2000 full-batch steps of size 2 succeed for every random_state 0..19.
    net = mlp_class(
        [2, 4, 1],
        activation="logistic",
        output_activation="logistic",
        loss="log_loss",
        random_state=0,
    )
    first = net.sgd_step(XOR_X, XOR_Y, 2.0)
    for _ in range(1999):
        last = net.sgd_step(XOR_X, XOR_Y, 2.0)
    assert last < first
    h = net.forward(XOR_X)[:, 0]
    np.testing.assert_array_equal(h > 0.5, XOR_Y == 1.0)


# ---------------------------------------------------------------- universal approximation


def test_tanh_network_fits_sine(mlp_class):
    # One hidden layer of 8 tanh units fits sin on [-pi, pi]: a small instance of the
    # universal approximation theorem. 3000 full-batch steps bring the mean squared error from
    # about 0.7 to below 0.001 for this random_state (below 0.002 for random_state 0..4).
    x = np.linspace(-np.pi, np.pi, 64)[:, None]
    y = np.sin(x)
    net = mlp_class(
        [1, 8, 1],
        activation="tanh",
        output_activation="identity",
        loss="squared_error",
        random_state=0,
    )
    assert np.mean((net.forward(x) - y) ** 2) > 0.1
    for _ in range(3000):
        net.sgd_step(x, y, 0.2)
    assert np.mean((net.forward(x) - y) ** 2) < 0.01
