"""The reference's optimizers, schedules and epoch (``fastmlp.reference``) on their own.

They are the oracle of the core's epoch (test_training_epoch.py), so here they are checked
against what does not depend on them: scikit-learn's optimizers and its own training epoch, and
steps worked out by hand. The product's between-epoch rules (``fastmlp._optimizers``) are then
held to the reference's.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

from fastmlp import _optimizers, reference


def random_params(seed):
    """Three parameter arrays of the shapes of a small network's W_1, W_2 and b_1."""
    rng = np.random.RandomState(seed)
    return [rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=4)]


def assert_all_equal(got, want):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------- update rules, by hand


@pytest.mark.parametrize("nesterov, expected", [(False, [-0.1, -0.29]), (True, [-0.19, -0.461])])
def test_sgd_steps_by_hand(nesterov, expected):
    # mu = 0.9, lr = 0.1, g = 1 twice, from p = v = 0.
    # classical: v1 = -0.1, p1 = -0.1;  v2 = 0.9 v1 - 0.1 = -0.19, p2 = p1 + v2 = -0.29
    # Nesterov:  p1 = 0.9 v1 - 0.1 = -0.19;  p2 = p1 + 0.9 v2 - 0.1 = -0.19 - 0.171 - 0.1
    p = np.zeros(1)
    sgd = reference.SGD([p], learning_rate_init=0.1, momentum=0.9, nesterov=nesterov)
    for want in expected:
        sgd.step([p], [np.ones(1)])
        assert p[0] == pytest.approx(want, rel=1e-14)


def test_first_adam_step_moves_each_parameter_by_the_rate():
    # Step 1: m = (1 - b1) g, s = (1 - b2) g^2 and lr_1 = lr sqrt(1 - b2) / (1 - b1), so the
    # step lr_1 m / (sqrt(s) + eps) is lr g / (|g| + eps / sqrt(1 - b2)): lr sign(g), nearly.
    p = np.zeros(3)
    g = np.array([3.0, -0.5, 1e-3])
    adam = reference.Adam([p], learning_rate_init=0.01)
    adam.step([p], [g])
    assert adam.t == 1
    eps = 1e-8 / np.sqrt(1 - 0.999)
    np.testing.assert_allclose(p, -0.01 * g / (np.abs(g) + eps), rtol=1e-12)
    assert adam.learning_rate == pytest.approx(0.01 * np.sqrt(0.001) / 0.1, rel=1e-14)


# ---------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("schedule", reference.SCHEDULES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_equals_scikit_learn(schedule, nesterov):
    ours, theirs = random_params(0), random_params(0)
    settings = dict(
        learning_rate_init=0.05,
        lr_schedule=schedule,
        momentum=0.8,
        nesterov=nesterov,
        power_t=0.3,
    )
    ref, sk = reference.SGD(ours, **settings), SGDOptimizer(theirs, **settings)
    rng = np.random.RandomState(1)
    for epoch in range(4):
        for _ in range(3):  # minibatches
            grads = [rng.normal(size=p.shape) for p in ours]
            ref.step(ours, grads)
            sk.update_params(theirs, grads)
        ref.iteration_ends(100 * (epoch + 1))
        sk.iteration_ends(100 * (epoch + 1))
        assert ref.learning_rate == sk.learning_rate
        assert_all_equal(ours + ref.velocities, theirs + sk.velocities)


def test_adam_equals_scikit_learn():
    ours, theirs = random_params(2), random_params(2)
    settings = dict(learning_rate_init=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    ref, sk = reference.Adam(ours, **settings), AdamOptimizer(theirs, **settings)
    rng = np.random.RandomState(3)
    for _ in range(6):
        grads = [rng.normal(size=p.shape) for p in ours]
        ref.step(ours, grads)
        sk.update_params(theirs, grads)
        assert ref.t == sk.t
        assert ref.learning_rate == sk.learning_rate
        assert_all_equal(ours + ref.ms + ref.vs, theirs + sk.ms + sk.vs)


@pytest.mark.parametrize("schedule", reference.SCHEDULES)
def test_stopping_rule_equals_scikit_learn(schedule):
    # "adaptive" divides the rate by 5 at each stall until it is <= 1e-6, then stops.
    ref = reference.SGD([np.zeros(1)], learning_rate_init=0.1, lr_schedule=schedule)
    sk = SGDOptimizer([np.zeros(1)], learning_rate_init=0.1, lr_schedule=schedule)
    decisions = []
    for _ in range(12):
        stop = ref.trigger_stopping()
        assert stop == sk.trigger_stopping("", verbose=False)
        assert ref.learning_rate == sk.learning_rate
        decisions.append(stop)
    expected = [False] * 8 + [True] * 4 if schedule == "adaptive" else [True] * 12
    assert decisions == expected  # 0.1 / 5**8 ~ 2.6e-7 <= 1e-6 < 0.1 / 5**7 ~ 1.3e-6
    adam = reference.Adam([np.zeros(1)])
    assert adam.trigger_stopping() is True
    adam.iteration_ends(1000)
    assert adam.learning_rate == 0.001


def test_invscaling_rate_is_the_formula():
    assert reference.invscaling_rate(0.1, 0.5, 99) == pytest.approx(0.01, rel=1e-15)
    assert reference.invscaling_rate(0.2, 1.0, 0) == 0.2


@pytest.mark.parametrize(
    "solver, nesterov", [("sgd", False), ("sgd", True), ("adam", False)], ids=str
)
@pytest.mark.parametrize("weighted", [False, True])
def test_epoch_equals_scikit_learn_first_epoch(solver, nesterov, weighted):
    # scikit-learn's fit with max_iter=1 and shuffle=False runs one epoch over rows 0..n-1.
    rng = np.random.RandomState(0)
    n = 45  # batches of 10 leave a short last one
    X, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    w = rng.uniform(0.2, 2.0, n) if weighted else None
    sk = MLPRegressor(
        hidden_layer_sizes=(6,),
        activation="tanh",
        solver=solver,
        alpha=0.01,
        batch_size=10,
        learning_rate_init=0.02,
        momentum=0.9,
        nesterovs_momentum=nesterov,
        max_iter=1,
        shuffle=False,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y, sample_weight=w)
    net = reference.MLP((3, 6, 1), "tanh", alpha=0.01, random_state=0)
    params = net.coefs + net.intercepts
    if solver == "sgd":
        opt = reference.SGD(params, 0.02, momentum=0.9, nesterov=nesterov)
    else:
        opt = reference.Adam(params, 0.02)
    accumulated = reference.epoch(net, X, y[:, None], w, np.arange(n), 10, opt)
    assert accumulated / n == pytest.approx(sk.loss_curve_[0], rel=1e-12)
    for got, want in zip(net.coefs + net.intercepts, sk.coefs_ + sk.intercepts_, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_one_full_batch_without_momentum_is_an_sgd_step():
    X = np.random.RandomState(0).normal(size=(12, 3))
    Y = np.sin(X[:, :2])
    net = reference.MLP((3, 5, 2), "tanh", random_state=1)
    twin = reference.MLP((3, 5, 2), "tanh", random_state=1)
    opt = reference.SGD(net.coefs + net.intercepts, 0.3, momentum=0.0)
    assert reference.epoch(net, X, Y, None, np.arange(12), 12, opt) / 12 == twin.sgd_step(
        X, Y, 0.3
    )
    assert_all_equal(net.coefs + net.intercepts, twin.coefs + twin.intercepts)


def test_a_batch_without_weight_contributes_nothing_but_the_step():
    # Weights 0 on the second batch: no loss from it, and a zero gradient, so SGD moves the
    # parameters by mu v alone (Nesterov: p <- p + mu (mu v)) and the velocity decays.
    X = np.random.RandomState(0).normal(size=(6, 2))
    Y = np.ones((6, 1))
    w = np.array([1.0, 2.0, 0.0, 0.0, 1.0, 1.0])
    net = reference.MLP((2, 1), "relu", random_state=0)
    opt = reference.SGD(net.coefs + net.intercepts, 0.1, momentum=0.5, nesterov=True)
    first = reference.epoch(net, X, Y, w, np.arange(2), 2, opt)
    before = [p.copy() for p in net.coefs + net.intercepts]
    v = [u.copy() for u in opt.velocities]
    assert reference.epoch(net, X, Y, w, np.arange(2, 4), 2, opt) == 0.0
    for p, p0, v0 in zip(net.coefs + net.intercepts, before, v, strict=True):
        np.testing.assert_allclose(p, p0 + 0.5 * (0.5 * v0), rtol=1e-15)
    assert first > 0.0


# ---------------------------------------------------------------- the product's rules


@pytest.mark.parametrize("schedule", reference.SCHEDULES)
def test_product_sgd_schedule_equals_the_reference(schedule):
    params = random_params(4)
    product = _optimizers.SGDState(params, 0.1, schedule, 0.9, True, 0.4)
    ref = reference.SGD(params, 0.1, schedule, 0.9, True, 0.4)
    for time_step in (50, 100, 150, 200):
        product.iteration_ends(time_step)
        ref.iteration_ends(time_step)
        assert product.learning_rate == ref.learning_rate
        assert product.trigger_stopping("", verbose=False) == ref.trigger_stopping()
        assert product.learning_rate == ref.learning_rate


def test_product_adam_rate_equals_the_reference():
    product = _optimizers.AdamState(random_params(5), 0.003, 0.85, 0.995, 1e-8)
    for t in (1, 2, 7, 100, 5000):
        product.epoch_done(t)
        want = reference.adam_step_rate(0.003, 0.85, 0.995, t)
        assert product.learning_rate == pytest.approx(want, rel=1e-15)
