"""The binding re-checks everything it receives and raises a Python exception naming it."""

import numpy as np
import pytest
from core_calls import train_epoch

from fastmlp import _core

forward = _core.module.forward


def network(dtype=np.float64):
    coefs = [np.zeros((3, 4), dtype), np.zeros((4, 2), dtype)]
    intercepts = [np.zeros(4, dtype), np.zeros(2, dtype)]
    return coefs, intercepts


def epoch(X, Y, order, coefs, intercepts, first=None, sample_weight=None, batch_size=2, **options):
    first = first if first is not None else [np.zeros_like(p) for p in coefs + intercepts]
    return train_epoch(
        _core.module,
        X,
        Y,
        sample_weight,
        order,
        batch_size,
        coefs,
        intercepts,
        first,
        [],
        "relu",
        "identity",
        "squared_error",
        0.0,
        solver="sgd",
        learning_rate=0.1,
        momentum=0.9,
        nesterov=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        t=0,
        **options,
    )


def test_forward_checks_its_arguments():
    coefs, intercepts = network()
    X = np.zeros((5, 3))
    with pytest.raises(TypeError, match="X has dtype int64"):
        forward(np.zeros((5, 3), np.int64), coefs, intercepts, "relu", "identity")
    with pytest.raises(TypeError, match=r"coefs\[0\] has dtype float32, expected float64"):
        forward(X, [coefs[0].astype(np.float32), coefs[1]], intercepts, "relu", "identity")
    with pytest.raises(ValueError, match=r"X has shape \(5, 4\), expected \(any, 3\)"):
        forward(np.zeros((5, 4)), coefs, intercepts, "relu", "identity")
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        forward(np.zeros((3, 5)).T, coefs, intercepts, "relu", "identity")
    with pytest.raises(ValueError, match=r"coefs\[1\] has shape \(5, 2\), expected \(4, 2\)"):
        forward(X, [coefs[0], np.zeros((5, 2))], intercepts, "relu", "identity")
    with pytest.raises(ValueError, match=r"intercepts\[0\] has shape \(3,\), expected \(4,\)"):
        forward(X, coefs, [np.zeros(3), intercepts[1]], "relu", "identity")
    with pytest.raises(ValueError, match="intercepts holds 1 arrays, expected 2"):
        forward(X, coefs, intercepts[:1], "relu", "identity")
    with pytest.raises(TypeError, match=r"coefs\[0\] must be a numpy.ndarray, got list"):
        forward(X, [coefs[0].tolist(), coefs[1]], intercepts, "relu", "identity")
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'"):
        forward(X, coefs, intercepts, "sigmoid", "identity")
    with pytest.raises(ValueError, match="'softmax' is an output activation"):
        forward(X, coefs, intercepts, "softmax", "identity")
    with pytest.raises(ValueError, match="coefs is empty"):
        forward(X, [], [], "relu", "identity")


def test_loss_and_gradients_checks_its_arguments():
    coefs, intercepts = network()
    grads = [np.zeros_like(c) for c in coefs], [np.zeros_like(b) for b in intercepts]
    X, Y = np.zeros((5, 3)), np.zeros((5, 2))

    def call(X=X, Y=Y, sample_weight=None, loss="squared_error", out="identity", g=grads):
        return _core.module.backward(
            X, Y, sample_weight, coefs, intercepts, g[0], g[1], "relu", out, loss, 0.0
        )

    assert call() == 0.0
    with pytest.raises(ValueError, match=r"Y has shape \(4, 2\), expected \(5, 2\)"):
        call(Y=np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"sample_weight has shape \(4,\), expected \(5,\)"):
        call(sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="loss 'log_loss' cannot be used with the output"):
        call(loss="log_loss")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        call(loss="hinge")
    readonly = [np.zeros_like(c) for c in coefs]
    readonly[1].flags.writeable = False
    with pytest.raises(ValueError, match=r"coef_grads\[1\] must be writeable"):
        call(g=(readonly, grads[1]))


def test_train_epoch_checks_its_arguments():
    coefs, intercepts = network()
    X, Y = np.zeros((5, 3)), np.zeros((5, 2))
    order = np.arange(5, dtype=np.int64)
    with pytest.raises(IndexError, match=r"order\[2\] = 7 is not a row of X"):
        epoch(X, Y, np.array([0, 1, 7], dtype=np.int64), coefs, intercepts)
    with pytest.raises(IndexError, match=r"order\[0\] = -1"):
        epoch(X, Y, np.array([-1], dtype=np.int64), coefs, intercepts)
    with pytest.raises(TypeError, match="order has dtype int32, expected int64"):
        epoch(X, Y, order.astype(np.int32), coefs, intercepts)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        epoch(X, Y, order, coefs, intercepts, batch_size=0)
    with pytest.raises(ValueError, match="first holds 3 arrays, expected 4"):
        epoch(X, Y, order, coefs, intercepts, first=[np.zeros((3, 4))] * 3)
    with pytest.raises(ValueError, match="batch_split is 'sometimes', expected 'auto'"):
        epoch(X, Y, order, coefs, intercepts, batch_split="sometimes")
    frozen = [coefs[0].copy(), coefs[1].copy()]
    frozen[0].flags.writeable = False
    with pytest.raises(ValueError, match=r"coefs\[0\] must be writeable"):
        epoch(X, Y, order, frozen, intercepts)


def test_failed_checks_leave_the_parameters_untouched():
    coefs, intercepts = network()
    coefs[0][...] = 1.0
    with pytest.raises(IndexError):
        epoch(np.ones((5, 3)), np.ones((5, 2)), np.array([0, 9], np.int64), coefs, intercepts)
    np.testing.assert_array_equal(coefs[0], np.ones((3, 4)))
