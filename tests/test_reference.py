"""Tests of the pure-NumPy reference network, ``fastmlp.reference``, on its own.

The reference is the oracle of every other test, so here it is checked against things that do
not depend on it: finite differences of its own loss, scikit-learn's initial weights and loss
functions, and formulas written out in the tests.

The tests of the contract that both networks keep on their own (initial weights, parameter and
input checks, ``sgd_step``) take the ``mlp_class`` fixture and run on ``fastmlp.MLP`` too: the
two share no code, so a bug in either one's copy fails here.
"""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss, mean_poisson_deviance, mean_squared_error
from sklearn.neural_network import MLPRegressor

from fastmlp.reference import MLP, OUTPUT_ACTIVATIONS, VALID_OUTPUTS, activate, derivative

HIDDEN = ("identity", "logistic", "tanh", "relu")  # the hidden activations with a gradient
# Every (output activation, loss) pair that backward accepts: all valid pairs but step.
PAIRS = [(out, loss) for loss, outs in VALID_OUTPUTS.items() for out in outs if out != "step"]


def make_data(n_samples, n_features, n_outputs, output_activation, loss, seed=0):
    """Return X (n_samples, n_features) and targets Y (n_samples, n_outputs) that fit the loss."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1.0, 1.0, (n_samples, n_features))
    shape = (n_samples, n_outputs)
    if loss == "log_loss" and output_activation == "softmax":
        Y = rng.dirichlet(np.ones(n_outputs), n_samples)  # rows sum to 1
    elif loss == "log_loss":
        Y = rng.uniform(0.0, 1.0, shape)  # soft labels exercise both log terms
    elif loss == "poisson":
        Y = rng.poisson(1.5, shape).astype(float)  # counts, zeros included
    else:
        Y = rng.normal(0.0, 1.0, shape)
    return X, Y


def pre_activations(mlp, X):
    """Return every layer's a_l = z_{l-1} @ W_l + b_l, written out independently of ``mlp``."""
    acts = [mlp.activation] * (len(mlp.coefs) - 1) + [mlp.output_activation]
    z, out = X, []
    for W, b, f in zip(mlp.coefs, mlp.intercepts, acts, strict=True):
        a = z @ W + b
        out.append(a)
        z = activate(f, a)
    return out


def numerical_gradients(mlp, X, Y, sample_weight, step=1e-6):
    """Central differences (L(p + step) - L(p - step)) / (2 step) for every parameter p."""
    coefs = [W.copy() for W in mlp.coefs]
    intercepts = [b.copy() for b in mlp.intercepts]

    def loss():
        mlp.coefs, mlp.intercepts = coefs, intercepts
        return mlp.backward(X, Y, sample_weight)[0]

    grads = []
    for param in coefs + intercepts:
        grad = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + step
            plus = loss()
            param[idx] = saved - step
            minus = loss()
            param[idx] = saved
            grad[idx] = (plus - minus) / (2 * step)
        grads.append(grad)
    mlp.coefs, mlp.intercepts = coefs, intercepts
    return grads[: len(coefs)], grads[len(coefs) :]


def gradient_cases():
    for hidden, (out, loss), n_outputs, n_hidden, alpha, weighted in itertools.product(
        HIDDEN, PAIRS, (1, 3), (1, 2), (0.0, 0.3), (False, True)
    ):
        if out == "softmax":
            n_outputs = max(n_outputs, 2)  # a 1-unit softmax is the constant 1
        case_id = f"{hidden}-{out}-{loss}-out{n_outputs}-hid{n_hidden}-a{alpha}-w{int(weighted)}"
        yield pytest.param(hidden, out, loss, n_outputs, n_hidden, alpha, weighted, id=case_id)


@pytest.mark.parametrize(
    "hidden, out, loss, n_outputs, n_hidden, alpha, weighted", list(gradient_cases())
)
def test_gradients_match_finite_differences(
    hidden, out, loss, n_outputs, n_hidden, alpha, weighted
):
    layer_sizes = [3] + [4, 3][:n_hidden] + [n_outputs]
    mlp = MLP(
        layer_sizes,
        activation=hidden,
        output_activation=out,
        loss=loss,
        alpha=alpha,
        random_state=1,
    )
    X, Y = make_data(7, 3, n_outputs, out, loss, seed=2)
    sample_weight = None
    if weighted:
        sample_weight = np.random.RandomState(3).uniform(0.5, 2.0, 7)
        sample_weight[0] = 0.0  # a zero weight must drop the sample out
    # The data must keep finite differences valid: no relu kink within reach of the step,
    # no clipped probability (clipping flattens the loss).
    for a, f in zip(pre_activations(mlp, X), [hidden] * n_hidden + [out], strict=True):
        if f == "relu":
            assert np.abs(a).min() > 1e-4
    if loss == "log_loss":
        H = mlp.forward(X)
        assert H.min() > 1e-6 and H.max() < 1 - 1e-6

    _, coef_grads, intercept_grads = mlp.backward(X, Y, sample_weight)
    num_coef_grads, num_intercept_grads = numerical_gradients(mlp, X, Y, sample_weight)
    numerical = num_coef_grads + num_intercept_grads
    # Rounding in the loss makes the differences' error absolute (~1e-10 here), so entries far
    # smaller than the gradient's largest are held to 1e-6 of that largest.
    scale = max(np.abs(g).max() for g in numerical)
    assert scale > 1e-3
    for analytic, expected in zip(coef_grads + intercept_grads, numerical, strict=True):
        np.testing.assert_allclose(analytic, expected, rtol=1e-6, atol=1e-6 * scale)


def test_sample_weight_zero_equals_dropping_and_integer_weight_equals_repeating():
    mlp = MLP([3, 4, 2], activation="tanh", alpha=0.1, random_state=0)
    X, Y = make_data(5, 3, 2, "identity", "squared_error")
    w = np.array([0.0, 1.0, 2.0, 1.0, 1.0])
    loss, cg, ig = mlp.backward(X, Y, w)
    rows = [1, 2, 2, 3, 4]
    loss2, cg2, ig2 = mlp.backward(X[rows], Y[rows])
    assert loss == pytest.approx(loss2, rel=1e-12)
    for a, b in zip(cg + ig, cg2 + ig2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- initial weights


def replay_glorot(layer_sizes, factor, seed):
    """scikit-learn's draws: per layer W then b, uniform in +-sqrt(factor / (fan_in + fan_out))."""
    rng = np.random.RandomState(seed)
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        bound = np.sqrt(factor / (fan_in + fan_out))
        coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(rng.uniform(-bound, bound, fan_out))
    return coefs, intercepts


@pytest.mark.parametrize(
    "activation, factor", [("identity", 6), ("logistic", 2), ("tanh", 6), ("relu", 6)]
)
def test_init_replays_glorot_draws(mlp_class, activation, factor):
    layer_sizes = [4, 6, 5, 3]
    mlp = mlp_class(layer_sizes, activation=activation, random_state=7)
    coefs, intercepts = replay_glorot(layer_sizes, factor, seed=7)
    for got, expected in zip(mlp.coefs + mlp.intercepts, coefs + intercepts, strict=True):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("activation", HIDDEN)
def test_init_equals_scikit_learn(mlp_class, activation):
    X, Y = make_data(20, 3, 2, "identity", "squared_error")
    # One SGD step with a learning rate of 1e-300 leaves scikit-learn's initial weights as
    # they were, so its fitted coefs_ are its initial ones.
    sk = MLPRegressor(
        hidden_layer_sizes=(5, 4),
        activation=activation,
        solver="sgd",
        learning_rate_init=1e-300,
        momentum=0.0,
        max_iter=1,
        shuffle=False,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, Y)
    mlp = mlp_class([3, 5, 4, 2], activation=activation, random_state=0)
    for got, expected in zip(mlp.coefs + mlp.intercepts, sk.coefs_ + sk.intercepts_, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_init_random_state_semantics(mlp_class):
    layer_sizes = [3, 4, 2]
    expected = mlp_class(layer_sizes, random_state=5).coefs
    # A RandomState instance is used (and advanced) as is.
    rng = np.random.RandomState(5)
    np.testing.assert_array_equal(mlp_class(layer_sizes, random_state=rng).coefs[0], expected[0])
    assert not np.array_equal(mlp_class(layer_sizes, random_state=rng).coefs[0], expected[0])
    # None draws from NumPy's global RandomState.
    global_rng = np.random.mtrand._rand
    state = global_rng.get_state()
    try:
        global_rng.seed(5)
        np.testing.assert_array_equal(mlp_class(layer_sizes).coefs[1], expected[1])
    finally:
        global_rng.set_state(state)


def test_init_float32_is_float64_cast(mlp_class):
    mlp64 = mlp_class([3, 4, 2], random_state=0)
    mlp32 = mlp_class([3, 4, 2], dtype="float32", random_state=0)
    for a, b in zip(mlp32.coefs + mlp32.intercepts, mlp64.coefs + mlp64.intercepts, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b.astype(np.float32))


# ---------------------------------------------------------------- losses


def weights_or_none(weighted, n_samples):
    return np.random.RandomState(9).uniform(0.1, 3.0, n_samples) if weighted else None


@pytest.mark.parametrize("weighted", [False, True])
def test_squared_error_is_half_mse(weighted):
    mlp = MLP([3, 5, 1], activation="tanh", random_state=0)
    X, Y = make_data(30, 3, 1, "identity", "squared_error")
    w = weights_or_none(weighted, 30)
    expected = mean_squared_error(Y, mlp.forward(X), sample_weight=w) / 2
    assert mlp.backward(X, Y, w)[0] == pytest.approx(expected, rel=1e-12)


def test_squared_error_sums_over_outputs():
    # scikit-learn's MLP reports this loss divided by n_outputs (its issue #8349); the
    # gradient it follows is that of the sum over outputs, which is what backward returns.
    mlp = MLP([3, 5, 4], activation="tanh", random_state=0)
    X, Y = make_data(30, 3, 4, "identity", "squared_error")
    expected = 4 * mean_squared_error(Y, mlp.forward(X)) / 2
    assert mlp.backward(X, Y)[0] == pytest.approx(expected, rel=1e-12)


def test_squared_error_matches_scikit_learn_loss_curve():
    X, Y = make_data(20, 3, 1, "identity", "squared_error")
    sk = MLPRegressor(
        hidden_layer_sizes=(5,),
        activation="tanh",
        solver="sgd",
        alpha=0.5,
        learning_rate_init=1e-300,
        momentum=0.0,
        max_iter=1,
        shuffle=False,
        batch_size=20,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, Y[:, 0])
    mlp = MLP([3, 5, 1], activation="tanh", alpha=0.5, random_state=0)
    assert mlp.backward(X, Y)[0] == pytest.approx(sk.loss_curve_[0], rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_log_loss_matches_scikit_learn(weighted):
    mlp = MLP(
        [3, 5, 1], activation="relu", output_activation="logistic", loss="log_loss", random_state=0
    )
    X, _ = make_data(30, 3, 1, "identity", "squared_error")
    y = (np.random.RandomState(4).uniform(size=30) < 0.5).astype(float)
    w = weights_or_none(weighted, 30)
    expected = log_loss(y, mlp.forward(X)[:, 0], sample_weight=w)
    assert mlp.backward(X, y, w)[0] == pytest.approx(expected, rel=1e-12)


def test_logistic_log_loss_sums_over_outputs():
    mlp = MLP([3, 5, 3], output_activation="logistic", loss="log_loss", random_state=0)
    X, _ = make_data(30, 3, 1, "identity", "squared_error")
    Y = (np.random.RandomState(4).uniform(size=(30, 3)) < 0.5).astype(float)
    H = mlp.forward(X)
    expected = sum(log_loss(Y[:, k], H[:, k]) for k in range(3))
    assert mlp.backward(X, Y)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_log_loss_matches_scikit_learn(weighted):
    mlp = MLP(
        [3, 5, 4],
        activation="logistic",
        output_activation="softmax",
        loss="log_loss",
        random_state=0,
    )
    X, _ = make_data(30, 3, 1, "identity", "squared_error")
    labels = np.random.RandomState(4).randint(0, 4, 30)
    w = weights_or_none(weighted, 30)
    expected = log_loss(labels, mlp.forward(X), labels=[0, 1, 2, 3], sample_weight=w)
    assert mlp.backward(X, np.eye(4)[labels], w)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_poisson_is_half_mean_poisson_deviance(weighted):
    mlp = MLP(
        [3, 5, 1], activation="tanh", output_activation="exp", loss="poisson", random_state=0
    )
    X, y = make_data(30, 3, 1, "exp", "poisson")
    assert np.any(y == 0)  # the y log(y / h) = 0 convention is exercised
    w = weights_or_none(weighted, 30)
    expected = mean_poisson_deviance(y[:, 0], mlp.forward(X)[:, 0], sample_weight=w) / 2
    assert mlp.backward(X, y, w)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_l2_penalty(weighted):
    X, Y = make_data(10, 3, 2, "identity", "squared_error")
    w = weights_or_none(weighted, 10)
    S = 10.0 if w is None else w.sum()
    plain = MLP([3, 4, 3, 2], activation="tanh", random_state=0)
    ridge = MLP([3, 4, 3, 2], activation="tanh", random_state=0, alpha=0.7)
    penalty = 0.5 * 0.7 * sum((W**2).sum() for W in plain.coefs) / S
    loss0, cg0, ig0 = plain.backward(X, Y, w)
    loss1, cg1, ig1 = ridge.backward(X, Y, w)
    assert loss1 == pytest.approx(loss0 + penalty, rel=1e-12)
    for W, g0, g1 in zip(plain.coefs, cg0, cg1, strict=True):
        np.testing.assert_allclose(g1, g0 + 0.7 * W / S, rtol=1e-12, atol=1e-15)
    for g0, g1 in zip(ig0, ig1, strict=True):  # intercepts are not penalised
        np.testing.assert_allclose(g1, g0, rtol=1e-12, atol=1e-15)


def test_log_loss_clips_saturated_probabilities():
    mlp = MLP([1, 1], output_activation="logistic", loss="log_loss")
    mlp.coefs, mlp.intercepts = [[[1.0]]], [[0.0]]
    X = np.array([[-800.0], [800.0]])  # outputs exactly 0 and 1
    np.testing.assert_array_equal(mlp.forward(X), [[0.0], [1.0]])
    eps = np.finfo(np.float64).eps
    # The wrong label on both samples: each costs -log(eps) rather than infinity.
    assert mlp.backward(X, [1.0, 0.0])[0] == pytest.approx(-np.log(eps), rel=1e-12)
    assert mlp.backward(X, [0.0, 1.0])[0] == pytest.approx(-np.log1p(-eps), rel=1e-6)


def test_poisson_zero_target_costs_h():
    mlp = MLP([2, 3, 1], output_activation="exp", loss="poisson", random_state=0)
    X = np.random.RandomState(0).normal(size=(6, 2))
    assert mlp.backward(X, np.zeros(6))[0] == pytest.approx(mlp.forward(X).mean(), rel=1e-12)


# ---------------------------------------------------------------- forward and activations


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


FORMULAS = {
    "identity": lambda a: a,
    "logistic": sigmoid,
    "tanh": np.tanh,
    "relu": lambda a: np.where(a > 0, a, 0.0),
    "step": lambda a: np.where(a >= 0, 1.0, 0.0),
    "exp": np.exp,
    "softmax": lambda a: np.exp(a) / np.exp(a).sum(axis=1, keepdims=True),
}


@pytest.mark.parametrize("out", OUTPUT_ACTIVATIONS)
def test_forward_composes_layers(out):
    loss = "log_loss" if out == "softmax" else "squared_error"
    mlp = MLP([3, 4, 5, 3], activation="tanh", output_activation=out, loss=loss, random_state=0)
    X = np.random.RandomState(1).normal(size=(8, 3))
    W1, W2, W3 = mlp.coefs
    b1, b2, b3 = mlp.intercepts
    expected = FORMULAS[out](np.tanh(np.tanh(X @ W1 + b1) @ W2 + b2) @ W3 + b3)
    np.testing.assert_allclose(mlp.forward(X), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ["identity", "logistic", "tanh", "relu", "exp"])
def test_derivative_from_output(name):
    a = np.linspace(-3, 3, 12).reshape(3, 4) + 0.05  # avoids relu's kink at 0
    step = 1e-6
    expected = (activate(name, a + step) - activate(name, a - step)) / (2 * step)
    np.testing.assert_allclose(derivative(name, activate(name, a)), expected, rtol=1e-7, atol=1e-9)


def test_logistic_and_softmax_are_stable():
    a = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        z = activate("logistic", a)
        p = activate("softmax", a)
        p_shifted = activate("softmax", a - 1e4)
    np.testing.assert_allclose(z[:, 1:4], sigmoid(a[:, 1:4]), rtol=1e-15, atol=0)
    assert z[0, 0] == 0.0 and z[0, -1] == 1.0
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0) and p[0, -1] == 1.0
    np.testing.assert_array_equal(p, p_shifted)


def test_step_forward_thresholds():
    mlp = MLP([1, 2, 1], activation="step", output_activation="step")
    # hidden: Th(x), Th(x - 1); output: Th(h1 + h2 - 2), 1 exactly where x >= 1.
    mlp.coefs = [[[1.0, 1.0]], [[1.0], [1.0]]]
    mlp.intercepts = [[0.0, -1.0], [-2.0]]
    X = np.array([[-1.0], [-1e-300], [0.0], [0.5], [1.0 - 1e-12], [1.0], [3.0]])
    np.testing.assert_array_equal(mlp.forward(X)[:, 0], [0, 0, 0, 0, 0, 1, 1])
    hidden_only = MLP([1, 2], output_activation="step")
    hidden_only.coefs, hidden_only.intercepts = mlp.coefs[:1], mlp.intercepts[:1]
    np.testing.assert_array_equal(
        hidden_only.forward(X), [[0, 0], [0, 0], [1, 0], [1, 0], [1, 0], [1, 1], [1, 1]]
    )


@pytest.mark.parametrize(
    "activation, out", [("step", "identity"), ("relu", "step"), ("step", "step")]
)
def test_step_has_no_gradient(mlp_class, activation, out):
    mlp = mlp_class([2, 3, 1], activation=activation, output_activation=out, random_state=0)
    X, y = np.ones((4, 2)), np.ones(4)
    with pytest.raises(ValueError, match="'step' activation has no gradient"):
        mlp.backward(X, y)
    with pytest.raises(ValueError, match="'step' activation has no gradient"):
        mlp.sgd_step(X, y, 0.1)


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", ["float32", np.float32, "float64", np.float64])
def test_dtype_flows_through(mlp_class, dtype):
    mlp = mlp_class(
        [3, 4, 2],
        activation="logistic",
        output_activation="softmax",
        loss="log_loss",
        dtype=dtype,
        random_state=0,
    )
    ref = mlp_class(
        [3, 4, 2],
        activation="logistic",
        output_activation="softmax",
        loss="log_loss",
        random_state=0,
    )
    X, Y = make_data(6, 3, 2, "softmax", "log_loss")
    H = mlp.forward(X)
    loss, cg, ig = mlp.backward(X, Y)
    assert type(loss) is float
    assert H.dtype == np.dtype(dtype)
    assert all(g.dtype == np.dtype(dtype) for g in cg + ig + mlp.coefs + mlp.intercepts)
    np.testing.assert_allclose(H, ref.forward(X), rtol=1e-5)
    ref_loss, ref_cg, ref_ig = ref.backward(X, Y)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for g, r in zip(cg + ig, ref_cg + ref_ig, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
    mlp.sgd_step(X, Y, 0.1)
    assert all(p.dtype == np.dtype(dtype) for p in mlp.coefs + mlp.intercepts)


# ---------------------------------------------------------------- sgd_step


def test_sgd_step_follows_backward(mlp_class):
    mlp = mlp_class([3, 4, 3, 2], activation="tanh", alpha=0.2, random_state=0)
    X, Y = make_data(9, 3, 2, "identity", "squared_error")
    coefs = [W.copy() for W in mlp.coefs]
    intercepts = [b.copy() for b in mlp.intercepts]
    loss, cg, ig = mlp.backward(X, Y)
    assert mlp.sgd_step(X, Y, 0.3) == loss  # the loss before the step
    for new, old, grad in zip(
        mlp.coefs + mlp.intercepts, coefs + intercepts, cg + ig, strict=True
    ):
        np.testing.assert_allclose(new, old - 0.3 * grad, rtol=1e-14, atol=1e-16)
    assert mlp.backward(X, Y)[0] < loss  # a small step downhill lowers the loss


@pytest.mark.parametrize("learning_rate", [0.0, -0.1, np.nan, np.inf, "0.1", None])
def test_sgd_step_rejects_bad_learning_rate(mlp_class, learning_rate):
    mlp = mlp_class([2, 1])
    with pytest.raises(ValueError, match="learning_rate"):
        mlp.sgd_step(np.ones((3, 2)), np.ones(3), learning_rate)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layer_sizes": [3]}, "layer_sizes"),
        ({"layer_sizes": []}, "layer_sizes"),
        ({"layer_sizes": [3, 0]}, "layer_sizes"),
        ({"layer_sizes": [3, -2, 1]}, "layer_sizes"),
        ({"layer_sizes": [3, 2.5]}, "layer_sizes"),
        ({"layer_sizes": [3, True]}, "layer_sizes"),
        ({"layer_sizes": "32"}, "layer_sizes"),
        ({"layer_sizes": 3}, "layer_sizes"),
        ({"activation": "softmax"}, "activation"),
        ({"activation": "exp"}, "activation"),
        ({"activation": "sigmoid"}, "activation"),
        ({"activation": None}, "activation"),
        ({"output_activation": "sigmoid"}, "output_activation"),
        ({"loss": "mse"}, "loss"),
        ({"dtype": "float16"}, "dtype"),
        ({"dtype": np.int64}, "dtype"),
        ({"dtype": None}, "dtype"),
        ({"dtype": "bogus"}, "dtype"),
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": np.nan}, "alpha"),
        ({"alpha": "0.1"}, "alpha"),
        ({"random_state": "seed"}, "random_state"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_rejects_bad_parameters(mlp_class, kwargs, match):
    params = {"layer_sizes": [3, 4, 2], **kwargs}
    with pytest.raises(ValueError, match=match):
        mlp_class(**params)


INVALID_PAIRS = [
    ("softmax", "squared_error"),
    *[(out, "log_loss") for out in OUTPUT_ACTIVATIONS if out not in ("logistic", "softmax")],
    *[(out, "poisson") for out in OUTPUT_ACTIVATIONS if out != "exp"],
]


@pytest.mark.parametrize("out, loss", INVALID_PAIRS)
def test_rejects_invalid_loss_output_pair(mlp_class, out, loss):
    with pytest.raises(ValueError, match="loss"):
        mlp_class([3, 2], output_activation=out, loss=loss)


def test_valid_pairs_construct(mlp_class):
    for loss, outs in VALID_OUTPUTS.items():
        for out in outs:
            assert mlp_class([3, 2], output_activation=out, loss=loss).loss == loss
    # The valid pairs (PAIRS and step + squared_error) and INVALID_PAIRS cover every pair.
    assert len(PAIRS) + 1 + len(INVALID_PAIRS) == len(VALID_OUTPUTS) * len(OUTPUT_ACTIVATIONS)


@pytest.mark.parametrize(
    "X", [np.ones((4, 2)), np.ones((4, 4)), np.ones(3), np.ones((1, 4, 3)), np.ones((0, 3))]
)
def test_rejects_bad_X(mlp_class, X):
    mlp = mlp_class([3, 2], random_state=0)
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples >= 1, 3\)"):
        mlp.forward(X)
    with pytest.raises(ValueError, match="X"):
        mlp.backward(X, np.ones((len(X), 2)))
    with pytest.raises(ValueError, match="X"):
        mlp.sgd_step(X, np.ones((len(X), 2)), 0.1)


@pytest.mark.parametrize(
    "n_outputs, Y",
    [
        (2, np.ones((4, 3))),
        (2, np.ones((5, 2))),
        (2, np.ones(4)),
        (2, np.ones((4, 2, 1))),
        (1, np.ones(5)),
        (1, np.ones((4, 2))),
    ],
)
def test_rejects_bad_Y(mlp_class, n_outputs, Y):
    mlp = mlp_class([3, n_outputs], random_state=0)
    with pytest.raises(ValueError, match=rf"Y must have shape \(4, {n_outputs}\), got"):
        mlp.backward(np.ones((4, 3)), Y)
    with pytest.raises(ValueError, match="Y must have shape"):
        mlp.sgd_step(np.ones((4, 3)), Y, 0.1)


def test_accepts_1d_Y_for_one_output(mlp_class):
    mlp = mlp_class([3, 4, 1], random_state=0)
    X, Y = make_data(5, 3, 1, "identity", "squared_error")
    loss, cg, ig = mlp.backward(X, Y[:, 0])
    loss2, cg2, ig2 = mlp.backward(X, Y)
    assert loss == loss2
    for a, b in zip(cg + ig, cg2 + ig2, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "sample_weight",
    [
        np.ones(3),
        np.ones((4, 1)),
        -np.ones(4),
        np.array([2.0, -1.0, 1.0, 1.0]),  # a negative weight in a positive sum
        np.zeros(4),
        np.array([1.0, np.nan, 1.0, 1.0]),
    ],
)
def test_rejects_bad_sample_weight(mlp_class, sample_weight):
    mlp = mlp_class([3, 2], random_state=0)
    with pytest.raises(ValueError, match="sample_weight"):
        mlp.backward(np.ones((4, 3)), np.ones((4, 2)), sample_weight)


@pytest.mark.parametrize(
    "attr, value, match",
    [
        ("coefs", [np.ones((3, 4))], r"coefs must hold 2 arrays"),
        (
            "coefs",
            [np.ones((3, 4)), np.ones((4, 2)), np.ones((2, 2))],
            r"coefs must hold 2 arrays",
        ),
        (
            "coefs",
            [np.ones((4, 3)), np.ones((4, 2))],
            r"coefs\[0\] must have shape \(3, 4\), got "
            r"\(4, 3\)",
        ),
        (
            "coefs",
            [np.ones((3, 4)), np.ones(8)],
            r"coefs\[1\] must have shape \(4, 2\), got \(8,\)",
        ),
        ("coefs", [np.ones((3, 4)), np.full((4, 2), np.inf)], r"coefs\[1\]"),
        ("intercepts", [np.ones(4)], "intercepts must hold 2 arrays"),
        (
            "intercepts",
            [np.ones(4), np.ones((2, 1))],
            r"intercepts\[1\] must have shape \(2,\), "
            r"got \(2, 1\)",
        ),
        ("intercepts", [np.ones(4), [1.0, np.nan]], r"intercepts\[1\]"),
    ],
)
def test_rejects_bad_parameter_assignment(mlp_class, attr, value, match):
    mlp = mlp_class([3, 4, 2], random_state=0)
    before = [p.copy() for p in getattr(mlp, attr)]
    with pytest.raises(ValueError, match=match):
        setattr(mlp, attr, value)
    for p, q in zip(getattr(mlp, attr), before, strict=True):  # nothing was stored
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameter_assignment_stores_cast_copies(mlp_class, dtype):
    mlp = mlp_class([2, 3, 1], dtype=dtype, random_state=0)
    coefs = [np.full((2, 3), 0.1), np.full((3, 1), 0.2)]
    intercepts = [[0.1, 0.2, 0.3], np.array([0.4])]
    mlp.coefs, mlp.intercepts = coefs, intercepts
    coefs[0][:] = 5.0  # changing the assigned arrays afterwards changes nothing
    intercepts[1][:] = 5.0
    assert all(p.dtype == np.dtype(dtype) for p in mlp.coefs + mlp.intercepts)
    np.testing.assert_array_equal(mlp.coefs[0], np.full((2, 3), 0.1, dtype=dtype))
    np.testing.assert_array_equal(mlp.intercepts[1], np.array([0.4], dtype=dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inputs_are_not_modified(mlp_class, dtype):
    mlp = mlp_class([3, 4, 2], activation="relu", alpha=0.1, dtype=dtype, random_state=0)
    X, Y = make_data(6, 3, 2, "identity", "squared_error")
    X, Y = X.astype(dtype), Y.astype(dtype)
    w = np.linspace(0.5, 1.5, 6).astype(dtype)
    saved = X.copy(), Y.copy(), w.copy()
    mlp.forward(X)
    mlp.backward(X, Y, w)
    mlp.sgd_step(X, Y, 0.1)
    for now, before in zip((X, Y, w), saved, strict=True):
        np.testing.assert_array_equal(now, before)
