"""The core's epoch loop (a backend ``Trainer``'s ``run``) against the reference's epoch.

``fastmlp.reference.epoch`` takes each batch's gradients from the reference network and applies
the reference's optimizers (``reference.SGD``, ``reference.Adam``), which state the rules:
  sgd:  v <- mu v - lr g;  p <- p + v   (Nesterov: p <- p + mu v - lr g)
  adam: t <- t+1; m <- b1 m + (1-b1) g; s <- b2 s + (1-b2) g^2;
        p <- p - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(s) + eps)
Those rules are checked against scikit-learn's in test_reference_optimizers.py.
"""

import numpy as np
import pytest
from core_calls import train_epoch
from threadpoolctl import threadpool_limits

from fastmlp import _core, reference

OPTIMIZERS = {
    "sgd": dict(
        solver="sgd",
        learning_rate=0.05,
        momentum=0.9,
        nesterov=False,
        beta_1=0.0,
        beta_2=0.0,
        epsilon=1.0,
    ),
    "nesterov": dict(
        solver="sgd",
        learning_rate=0.05,
        momentum=0.8,
        nesterov=True,
        beta_1=0.0,
        beta_2=0.0,
        epsilon=1.0,
    ),
    "adam": dict(
        solver="adam",
        learning_rate=0.01,
        momentum=0.0,
        nesterov=False,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
    ),
}


def reference_optimizer(name, params, t=0):
    """The reference's optimizer with the settings of OPTIMIZERS[name], at step count t."""
    opt = OPTIMIZERS[name]
    if opt["solver"] == "sgd":
        return reference.SGD(
            params, opt["learning_rate"], momentum=opt["momentum"], nesterov=opt["nesterov"]
        )
    adam = reference.Adam(
        params, opt["learning_rate"], opt["beta_1"], opt["beta_2"], opt["epsilon"]
    )
    adam.t = t
    return adam


def moments(optimizer):
    """The reference optimizer's moments in the core's layout: (first, second)."""
    if isinstance(optimizer, reference.Adam):
        return optimizer.ms, optimizer.vs
    return optimizer.velocities, []


def core_state(ref):
    """Copies of the reference network's parameters, for the core to train."""
    coefs = [c.copy() for c in ref.coefs]
    intercepts = [b.copy() for b in ref.intercepts]
    return coefs, intercepts


def assert_state_close(got, want, dtype):
    atol = 1e-10 if dtype == "float64" else 1e-4
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=atol * max(np.abs(w).max(), 1))


# Batches of 10 run on one thread; batches of 40 are split among the threads (two here), whose
# partial gradients are added up before one shared update.
@pytest.mark.parametrize("batch_size", [10, 40])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.01])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_epoch_matches_reference(batch_size, optimizer, weighted, alpha, dtype):
    opt = OPTIMIZERS[optimizer]
    rng = np.random.RandomState(0)
    n, shape = 133, (5, 12, 7, 3)
    X = rng.normal(size=(n, 5)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.randint(3, size=n)]
    w = rng.uniform(0, 2, n).astype(dtype) if weighted else None
    order = rng.permutation(n).astype(np.int64)  # shuffled; 133 leaves a short last batch
    ref = reference.MLP(shape, "tanh", "softmax", "log_loss", dtype, 1, alpha)
    coefs, intercepts = core_state(ref)
    t = 7  # adam resumes from an earlier step count
    ref_opt = reference_optimizer(optimizer, ref.coefs + ref.intercepts, t)
    first, second = ([np.zeros_like(m) for m in ms] for ms in moments(ref_opt))

    for _ in range(3):  # several epochs: the moments carry over
        with threadpool_limits(limits=2, user_api="openmp"):
            acc, t = train_epoch(
                _core.module, X, Y, w, order, batch_size, coefs, intercepts, first, second,
                "tanh", "softmax", "log_loss", alpha, t=t, batch_split="always", **opt,
            )  # fmt: skip
        acc_ref = reference.epoch(ref, X, Y, w, order, batch_size, ref_opt)
        if opt["solver"] == "adam":
            assert t == ref_opt.t
        assert acc == pytest.approx(acc_ref, rel=1e-10 if dtype == "float64" else 1e-4)
    ref_first, ref_second = moments(ref_opt)
    assert_state_close(
        coefs + intercepts + first + second,
        ref.coefs + ref.intercepts + ref_first + ref_second,
        dtype,
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_epoch_on_the_small_gemm_paths_matches_reference(dtype):
    # 128 rows per thread through 500 inputs: with float32 and AVX-512, the forward and weight
    # gradient products of the first layer take small_gemm's path for larger operands, and the
    # relu error passed down through the narrow second layer takes its fused path.
    opt = OPTIMIZERS["sgd"]
    rng = np.random.RandomState(5)
    n, shape = 600, (500, 64, 8)
    X = rng.normal(size=(n, 500)).astype(dtype)
    Y = np.eye(8, dtype=dtype)[rng.randint(8, size=n)]
    order = rng.permutation(n).astype(np.int64)
    ref = reference.MLP(shape, "relu", "softmax", "log_loss", dtype, 2, 0.0)
    coefs, intercepts = core_state(ref)
    first = [np.zeros_like(p) for p in coefs + intercepts]
    ref_opt = reference_optimizer("sgd", ref.coefs + ref.intercepts)
    with threadpool_limits(limits=2, user_api="openmp"):
        acc, _ = train_epoch(
            _core.module, X, Y, None, order, 256, coefs, intercepts, first, [],
            "relu", "softmax", "log_loss", 0.0, t=0, batch_split="always", **opt,
        )  # fmt: skip
    acc_ref = reference.epoch(ref, X, Y, None, order, 256, ref_opt)
    assert acc == pytest.approx(acc_ref, rel=1e-10 if dtype == "float64" else 1e-4)
    assert_state_close(
        coefs + intercepts + first, ref.coefs + ref.intercepts + ref_opt.velocities, dtype
    )


# Every (output activation, loss) pair whose local error is h - y, and one whose is not.
PAIRS = [
    ("identity", "squared_error"),
    ("logistic", "log_loss"),
    ("softmax", "log_loss"),
    ("exp", "poisson"),
    ("tanh", "squared_error"),
]


def targets(output, loss, n, rng):
    """Targets of shape (n, 3) that fit the loss."""
    if output == "softmax":
        return np.eye(3)[rng.randint(3, size=n)]
    if loss == "log_loss":
        return rng.randint(2, size=(n, 3)).astype(float)
    if loss == "poisson":
        return rng.poisson(1.0, size=(n, 3)).astype(float)
    return rng.normal(size=(n, 3))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("output, loss", PAIRS)
def test_epoch_matches_reference_for_every_pair(output, loss, optimizer, dtype):
    # Weighted, with one batch whose weights are all zero after the moments have built up: it
    # contributes no loss and a zero gradient, but the optimizer still steps.
    opt = OPTIMIZERS[optimizer]
    rng = np.random.RandomState(11)
    n, batch_size = 53, 8
    X = rng.normal(size=(n, 4)).astype(dtype)
    Y = targets(output, loss, n, rng).astype(dtype)
    order = rng.permutation(n).astype(np.int64)
    w = rng.uniform(0.2, 2.0, n).astype(dtype)
    w[order[16:24]] = 0.0  # the third batch
    ref = reference.MLP((4, 9, 3), "relu", output, loss, dtype, 4, 1e-3)
    coefs, intercepts = core_state(ref)
    ref_opt = reference_optimizer(optimizer, ref.coefs + ref.intercepts)
    first, second = ([np.zeros_like(m) for m in ms] for ms in moments(ref_opt))
    t = 0
    for _ in range(2):
        acc, t = train_epoch(
            _core.module, X, Y, w, order, batch_size, coefs, intercepts, first, second,
            "relu", output, loss, 1e-3, t=t, **opt,
        )  # fmt: skip
        acc_ref = reference.epoch(ref, X, Y, w, order, batch_size, ref_opt)
        assert acc == pytest.approx(acc_ref, rel=1e-10 if dtype == "float64" else 1e-4)
    if opt["solver"] == "adam":
        assert t == ref_opt.t == 2 * 7
    ref_first, ref_second = moments(ref_opt)
    assert_state_close(
        coefs + intercepts + first + second,
        ref.coefs + ref.intercepts + ref_first + ref_second,
        dtype,
    )


def test_epoch_with_all_zero_weights_in_a_batch_leaves_that_batch_out():
    # A batch whose weights sum to 0 has no defined mean: it contributes no loss and no gradient.
    X = np.ones((4, 2))
    Y = np.zeros((4, 1))
    coefs, intercepts = [np.full((2, 1), 0.5)], [np.zeros(1)]
    first = [np.zeros((2, 1)), np.zeros(1)]
    acc, _ = train_epoch(
        _core.module,
        X,
        Y,
        np.zeros(4),
        np.arange(4, dtype=np.int64),
        2,
        coefs,
        intercepts,
        first,
        [],
        "relu",
        "identity",
        "squared_error",
        0.0,
        t=0,
        **OPTIMIZERS["sgd"],
    )
    assert acc == 0.0
    np.testing.assert_array_equal(coefs[0], np.full((2, 1), 0.5))


@pytest.mark.parametrize("batch_size", [16, 64, 200])
def test_one_thread_and_two_threads_agree(batch_size):
    # Two threads add up partial gradients in another order: equal to rounding, not bitwise.
    rng = np.random.RandomState(3)
    X = rng.normal(size=(500, 8))
    Y = np.eye(4)[rng.randint(4, size=500)]
    order = rng.permutation(500).astype(np.int64)
    results = []
    for threads in (1, 2):
        net = reference.MLP((8, 32, 4), "relu", "softmax", "log_loss", "float64", 0, 1e-3)
        coefs, intercepts = net.coefs, net.intercepts
        moments = [np.zeros_like(p) for p in coefs + intercepts]
        with threadpool_limits(limits=threads, user_api="openmp"):
            acc, _ = train_epoch(
                _core.module,
                X,
                Y,
                None,
                order,
                batch_size,
                coefs,
                intercepts,
                moments,
                [],
                "relu",
                "softmax",
                "log_loss",
                1e-3,
                t=0,
                batch_split="always",
                **OPTIMIZERS["nesterov"],
            )
        results.append([np.array(acc)] + coefs + intercepts)
    for one, two in zip(*results, strict=True):
        np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-14)
