"""The core's epoch loop (``_core.train_epoch``) against the same epoch written in NumPy.

The NumPy epoch takes each batch's gradients from ``fastmlp.reference`` and applies the
optimizers' rules as the design states them:
  sgd:  v <- mu v - lr g;  p <- p + v   (Nesterov: p <- p + mu v - lr g)
  adam: t <- t+1; m <- b1 m + (1-b1) g; s <- b2 s + (1-b2) g^2;
        p <- p - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(s) + eps)
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


def numpy_epoch(net, X, Y, w, order, batch_size, opt, first, second, t):
    params = net.coefs + net.intercepts  # the reference's own arrays, updated in place
    accumulated = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        loss, gW, gb = net.backward(X[idx], Y[idx], None if w is None else w[idx])
        accumulated += loss * len(idx)
        if opt["solver"] == "adam":
            t += 1
            rate = (
                opt["learning_rate"] * np.sqrt(1 - opt["beta_2"] ** t) / (1 - opt["beta_1"] ** t)
            )
        for p, g, m, s in zip(params, gW + gb, first, second or first, strict=True):
            if opt["solver"] == "sgd":
                m[...] = opt["momentum"] * m - opt["learning_rate"] * g
                p += opt["momentum"] * m - opt["learning_rate"] * g if opt["nesterov"] else m
            else:
                m[...] = opt["beta_1"] * m + (1 - opt["beta_1"]) * g
                s[...] = opt["beta_2"] * s + (1 - opt["beta_2"]) * g**2
                p -= rate * m / (np.sqrt(s) + opt["epsilon"])
    return accumulated, t


# Batches of 10 run on one thread; batches of 40 are split among the threads (two here), whose
# partial gradients are added up before one shared update.
@pytest.mark.parametrize("batch_size", [10, 40])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.01])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_epoch_matches_numpy(batch_size, optimizer, weighted, alpha, dtype):
    opt = OPTIMIZERS[optimizer]
    rng = np.random.RandomState(0)
    n, shape = 133, (5, 12, 7, 3)
    X = rng.normal(size=(n, 5)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.randint(3, size=n)]
    w = rng.uniform(0, 2, n).astype(dtype) if weighted else None
    order = rng.permutation(n).astype(np.int64)  # shuffled; 133 leaves a short last batch
    kwargs = dict(
        activation="tanh",
        output_activation="softmax",
        loss="log_loss",
        dtype=dtype,
        random_state=1,
        alpha=alpha,
    )
    ref = reference.MLP(shape, **kwargs)
    coefs = [c.copy() for c in ref.coefs]
    intercepts = [b.copy() for b in ref.intercepts]
    zeros = lambda: [np.zeros_like(p) for p in coefs + intercepts]  # noqa: E731
    first, second = zeros(), zeros() if opt["solver"] == "adam" else []
    ref_first, ref_second = zeros(), zeros() if opt["solver"] == "adam" else []

    t = 7  # adam resumes from an earlier step count
    for _ in range(3):  # several epochs: the moments carry over
        with threadpool_limits(limits=2, user_api="openmp"):
            acc, t_core = train_epoch(
                _core.module,
                X,
                Y,
                w,
                order,
                batch_size,
                coefs,
                intercepts,
                first,
                second,
                "tanh",
                "softmax",
                "log_loss",
                alpha,
                t=t,
                batch_split="always",
                **opt,
            )
        acc_ref, t = numpy_epoch(ref, X, Y, w, order, batch_size, opt, ref_first, ref_second, t)
        assert t_core == t
        assert acc == pytest.approx(acc_ref, rel=1e-10 if dtype == "float64" else 1e-4)
    atol = 1e-10 if dtype == "float64" else 1e-4
    for got, want in zip(
        coefs + intercepts + first + second,
        ref.coefs + ref.intercepts + ref_first + ref_second,
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=atol * max(np.abs(want).max(), 1))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_epoch_on_the_small_gemm_paths_matches_numpy(dtype):
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
    coefs = [c.copy() for c in ref.coefs]
    intercepts = [b.copy() for b in ref.intercepts]
    first = [np.zeros_like(p) for p in coefs + intercepts]
    ref_first = [np.zeros_like(p) for p in coefs + intercepts]
    with threadpool_limits(limits=2, user_api="openmp"):
        acc, _ = train_epoch(
            _core.module,
            X,
            Y,
            None,
            order,
            256,
            coefs,
            intercepts,
            first,
            [],
            "relu",
            "softmax",
            "log_loss",
            0.0,
            t=0,
            batch_split="always",
            **opt,
        )
    acc_ref, _ = numpy_epoch(ref, X, Y, None, order, 256, opt, ref_first, None, 0)
    assert acc == pytest.approx(acc_ref, rel=1e-10 if dtype == "float64" else 1e-4)
    atol = 1e-10 if dtype == "float64" else 1e-4
    ours, theirs = coefs + intercepts + first, ref.coefs + ref.intercepts + ref_first
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=atol * max(np.abs(want).max(), 1))


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
