"""The backend interface (fastmlp._backend) on the CPU module: what every compiled module must
do, checked against fastmlp.reference and against itself (chunked vs whole epochs, flat vs
per-layer gradients, state handed over and back)."""

import numpy as np
import pytest

import fastmlp
from fastmlp import _backend, _core, reference
from fastmlp._arrays import aligned_copy

SHAPE = (6, 9, 5, 3)


def problem(dtype, n=57, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, SHAPE[0])).astype(dtype)
    Y = np.eye(SHAPE[-1], dtype=dtype)[rng.randint(SHAPE[-1], size=n)]
    w = rng.uniform(0.5, 2.0, size=n).astype(dtype)
    net = reference.MLP(SHAPE, "tanh", "softmax", "log_loss", dtype, seed, 0.01)
    return X, Y, w, net


def settings(solver="adam", batch_size=8, t=0):
    return dict(
        activation="tanh",
        output_activation="softmax",
        loss="log_loss",
        alpha=0.01,
        solver=solver,
        batch_size=batch_size,
        learning_rate=0.01,
        momentum=0.9,
        nesterov=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        t=t,
    )


def fresh_state(net, solver):
    """Parameters and moments as the estimators hand them to the core: aligned copies (where
    NumPy puts an array changes the last bits of the core's vectorised loops; see _arrays)."""
    coefs = [aligned_copy(c, c.dtype) for c in net.coefs]
    intercepts = [aligned_copy(b, b.dtype) for b in net.intercepts]
    params = coefs + intercepts

    def zeros():
        return [aligned_copy(np.zeros_like(p), p.dtype) for p in params]

    first = zeros() if solver in ("sgd", "adam") else []
    second = zeros() if solver == "adam" else []
    return coefs, intercepts, first, second


def tolerance(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_capabilities_name_the_device_and_dtypes(dtype):
    caps = _backend.backend_for("cpu").capabilities()
    assert caps["device"] == "cpu"
    assert np.dtype(dtype).name in caps["dtypes"]
    assert caps["sparse"] is True  # CSR X (issue #15)
    # bf16 where the module has a kernel for this CPU (issue #14): build_info names it.
    assert caps["bf16"] is (fastmlp.build_info()["bf16"]["kernel"] is not None)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_epoch_run_in_chunks_equals_the_epoch_run_at_once(solver, dtype):
    """Python runs an epoch in chunks of whole batches: the result must not depend on that."""
    X, Y, w, net = problem(dtype)
    order = np.random.RandomState(1).permutation(len(X)).astype(np.int64)
    results = []
    for cuts in ([0, len(X)], [0, 8, 24, 56, len(X)]):  # 57 rows, batches of 8
        state = fresh_state(net, solver)
        trainer = _core.module.Trainer(X, Y, w, *state, **settings(solver, t=3))
        total = 0.0
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            total, t = trainer.run(order[a:b], 0.01, total)
        results.append((total, t, state))
    (loss_a, t_a, state_a), (loss_b, t_b, state_b) = results
    assert t_a == t_b == (3 + 8 if solver == "adam" else 3)  # 8 batches; sgd keeps t as given
    assert loss_a == loss_b  # the same bits: the sum and ||W||^2 carry over between calls
    for a, b in zip(sum(state_a, []), sum(state_b, []), strict=True):
        np.testing.assert_array_equal(a, b)


def unsplit_problem():
    """Batches of 40 rows, too few to share among threads, through 300-256-256 layers, large
    enough for threaded products: one thread runs each batch, and the update of the parameters
    goes to a team of its own (issue #14)."""
    sizes = (300, 256, 256, 3)
    rng = np.random.RandomState(2)
    X = rng.normal(size=(120, sizes[0]))
    Y = np.eye(3)[rng.randint(3, size=120)]
    net = reference.MLP(sizes, "tanh", "softmax", "log_loss", np.float64, 0, 0.01)
    return X, Y, net, rng.permutation(120).astype(np.int64)


def unsplit_epoch(X, Y, net, order, cuts, solver="adam"):
    """One epoch of the core from net's weights, run in the chunks order[cuts[i]:cuts[i+1]]:
    (summed batch losses, the state arrays)."""
    state = fresh_state(net, solver)
    config = {**settings(solver, batch_size=40), "batch_split": "never"}
    trainer = _core.module.Trainer(X, Y, None, *state, **config)
    total = 0.0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        total, _ = trainer.run(order[a:b], 0.01, total)
    return total, state


def assert_same_run(run_a, run_b):
    (loss_a, state_a), (loss_b, state_b) = run_a, run_b
    assert loss_a == loss_b
    for a, b in zip(sum(state_a, []), sum(state_b, []), strict=True):
        np.testing.assert_array_equal(a, b)


def test_unsplit_batches_give_the_same_bits_on_any_number_of_threads():
    # The update's parts are fixed, not one per thread: losses and weights agree bitwise.
    from threadpoolctl import threadpool_limits

    X, Y, net, order = unsplit_problem()
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="openmp"):
            runs.append(unsplit_epoch(X, Y, net, order, [0, 120]))
    assert_same_run(*runs)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("threads", [1, 2])
def test_unsplit_batches_with_threaded_products_update_in_parts(threads, solver):
    # Chunks change no bit, and the steps (L2 term included) are the oracle's.
    from threadpoolctl import threadpool_limits

    X, Y, net, order = unsplit_problem()
    with threadpool_limits(limits=threads, user_api="openmp"):
        whole = unsplit_epoch(X, Y, net, order, [0, 120], solver)
        chunked = unsplit_epoch(X, Y, net, order, [0, 40, 120], solver)
    assert_same_run(whole, chunked)
    loss, (coefs, intercepts, _, _) = whole
    params = net.coefs + net.intercepts
    if solver == "adam":
        optimizer = reference.Adam(params, learning_rate_init=0.01)
    else:
        optimizer = reference.SGD(params, learning_rate_init=0.01, momentum=0.9)
    want = reference.epoch(net, X, Y, None, order, 40, optimizer)
    assert loss == pytest.approx(want, rel=1e-12)
    for a, b in zip(coefs + intercepts, net.coefs + net.intercepts, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_flat_loss_and_gradient_equal_the_reference(dtype):
    X, Y, w, net = problem(dtype)
    trainer = _core.module.Trainer(X, Y, w, *fresh_state(net, "lbfgs"), **settings("lbfgs"))
    params = np.concatenate([p.ravel() for p in net.coefs + net.intercepts])
    grad = np.full_like(params, np.nan)
    loss = trainer.loss_and_gradient(params, grad)
    want_loss, gW, gb = net.backward(X, Y, w)
    assert loss == pytest.approx(want_loss, **{"rel": tolerance(dtype)["rtol"]})
    want = np.concatenate([g.ravel() for g in gW + gb])
    np.testing.assert_allclose(grad, want, **tolerance(dtype))
    with pytest.raises(ValueError, match="no run"):
        trainer.run(np.arange(3, dtype=np.int64), 0.1)


def test_flat_vectors_are_checked():
    X, Y, w, net = problem(np.float64)
    trainer = _core.module.Trainer(X, Y, w, *fresh_state(net, "lbfgs"), **settings("lbfgs"))
    n = sum(p.size for p in net.coefs + net.intercepts)
    with pytest.raises(ValueError, match=rf"params has shape \({n - 1},\), expected \({n},\)"):
        trainer.loss_and_gradient(np.zeros(n - 1), np.zeros(n))
    with pytest.raises(TypeError, match="grad has dtype float32, expected float64"):
        trainer.loss_and_gradient(np.zeros(n), np.zeros(n, np.float32))
    both = np.zeros(2 * n)
    with pytest.raises(ValueError, match="must not overlap"):
        trainer.loss_and_gradient(both[:n], both[:n])


def test_set_parameters_maps_new_arrays_and_get_parameters_copies_out():
    X, Y, w, net = problem(np.float64)
    state = fresh_state(net, "sgd")
    trainer = _core.module.Trainer(X, Y, w, *state, **settings("sgd"))
    order = np.arange(len(X), dtype=np.int64)
    trainer.run(order, 0.01)
    # The trainer worked in the caller's arrays (zero-copy): they moved.
    assert not np.array_equal(state[0][0], net.coefs[0])
    # Rebinding (as restoring the best weights does) and refreshing the mapping.
    rebound = fresh_state(net, "sgd")
    trainer.set_parameters(*rebound)
    trainer.run(order, 0.01)
    assert not np.array_equal(rebound[0][0], net.coefs[0])
    out = fresh_state(net, "sgd")
    trainer.get_parameters(*out)
    for a, b in zip(sum(out, []), sum(rebound, []), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"coefs\[1\] has shape"):
        trainer.set_parameters([state[0][0], np.zeros((2, 2)), state[0][2]], *state[1:])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_activations_and_backward_internals_equal_the_reference(dtype):
    X, Y, w, net = problem(dtype)
    args = (net.coefs, net.intercepts, "tanh", "softmax")
    activations = _core.module.forward(X, *args, activations=True)
    # The reference's layer outputs, the lecture's z_l = f(z_{l-1} W_l + b_l).
    z = X
    for layer, (W, b) in enumerate(zip(net.coefs, net.intercepts, strict=True)):
        a = z @ W + b
        if layer + 1 < len(net.coefs):
            z = np.tanh(a)
        else:
            e = np.exp(a - a.max(axis=1, keepdims=True))
            z = e / e.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(activations[layer], z, **tolerance(dtype))
    grads = [np.empty_like(p) for p in net.coefs], [np.empty_like(p) for p in net.intercepts]
    loss, acts, deltas = _core.module.backward(
        X, Y, w, *args[:2], *grads, "tanh", "softmax", "log_loss", 0.01, internals=True
    )
    assert loss == pytest.approx(net.backward(X, Y, w)[0], rel=tolerance(dtype)["rtol"])
    # delta_L = (h - y) w_i for softmax/log_loss; delta_l = (1 - z_l^2) (delta_{l+1} W^T).
    delta = (acts[-1] - Y) * w[:, None]
    np.testing.assert_allclose(deltas[-1], delta, **tolerance(dtype))
    for layer in range(len(net.coefs) - 1, 0, -1):
        delta = (1 - acts[layer - 1] ** 2) * (delta @ net.coefs[layer].T)
        np.testing.assert_allclose(deltas[layer - 1], delta, **tolerance(dtype))


def test_the_cpu_is_device_zero():
    X, Y, w, net = problem(np.float64)
    with pytest.raises(ValueError, match="the CPU backend has one device, 0; got device=1"):
        _core.module.forward(X, net.coefs, net.intercepts, "tanh", "softmax", device=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_of_no_rows_is_empty(dtype):
    # The prediction's chunks are sized from the rows: none must give an empty result, not a
    # division by zero.
    net = reference.MLP((5, 7, 3), "relu", "softmax", "log_loss", dtype, 0, 0.0)
    out = _core.module.forward(
        np.zeros((0, 5), dtype), net.coefs, net.intercepts, "relu", "softmax"
    )
    assert out.shape == (0, 3) and out.dtype == dtype


def test_adam_step_rate_is_the_rule_of_the_design():
    # lr sqrt(1 - b2^t) / (1 - b1^t), at t = 1 and t = 10.
    for t in (1, 10):
        want = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        assert _core.module.adam_step_rate(0.01, 0.9, 0.999, t) == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize(
    "batch_split, width, sparse",
    [
        ("never", 64, False),
        ("always", 64, False),
        # One thread per batch with threaded products: the update (and ||W||^2) in 8 parts of
        # several 1024-long chunks each.
        ("never", 1100, False),
        # A sparse first layer, whose ||W||^2 is summed row by row.
        ("never", 64, True),
        ("always", 64, True),
    ],
)
def test_a_new_trainer_continues_with_the_same_bits(batch_split, width, sparse):
    """partial_fit builds a trainer per call, fit one for all epochs: the L2 term's ||W||^2,
    carried over from the last update in a fit and summed afresh by a new trainer, must agree
    to the bit (threads sharing the update sum it in shares). A strong L2 term in float32, so
    that a difference in ||W||^2's last bits shows in the loss."""
    import scipy.sparse as sp

    from fastmlp import _sparse

    rng = np.random.RandomState(3)
    X = rng.normal(size=(300, 200)).astype(np.float32)
    X[X < 0.5] = 0.0  # about a third of the values stored, where X is sparse
    X_in = _sparse.core_input(sp.csr_matrix(X)) if sparse else X
    Y = np.eye(3, dtype=np.float32)[rng.randint(3, size=300)]
    net = reference.MLP((200, width, 3), "tanh", "softmax", "log_loss", np.float32, 0, 5.0)
    order = rng.permutation(len(X)).astype(np.int64)
    options = dict(settings("adam", batch_size=150), alpha=5.0, batch_split=batch_split)
    losses = []
    for new_trainer in (False, True):
        state = fresh_state(net, "adam")
        trainer = _core.module.Trainer(X_in, Y, None, *state, **options)
        _, t = trainer.run(order, 0.01)
        if new_trainer:
            trainer = _core.module.Trainer(X_in, Y, None, *state, **dict(options, t=t))
        losses.append(trainer.run(order, 0.01)[0])
    assert losses[0] == losses[1]
