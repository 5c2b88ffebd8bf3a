"""scikit-learn's private training methods (_forward_pass, _backprop, _loss_grad_lbfgs) on
fastmlp's estimators give scikit-learn's numbers, computed by the core."""

import warnings

import numpy as np
import pytest
from sklearn import neural_network

import fastmlp

RNG = np.random.RandomState(1)
X = RNG.randn(25, 4)
Y_MULTI = RNG.randint(0, 3, 25)


def _pair(activation, sample_weight):
    params = dict(hidden_layer_sizes=(6, 5), activation=activation, solver="lbfgs", alpha=0.1,
                  max_iter=3, random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fastmlp.MLPClassifier(**params).fit(X, Y_MULTI, sample_weight=sample_weight)
        theirs = neural_network.MLPClassifier(**params).fit(
            X, Y_MULTI, sample_weight=sample_weight
        )
    theirs.coefs_ = [c.copy() for c in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    return ours, theirs


def _lists(est):
    n = est.n_layers_ - 1
    return [X] + [None] * n, [None] * n, [None] * n, [None] * n


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("weighted", [False, True])
def test_backprop_and_loss_grad_lbfgs_match_scikit_learn(activation, weighted):
    sample_weight = RNG.rand(25) + 0.5 if weighted else None
    ours, theirs = _pair(activation, sample_weight)
    Y = ours._label_binarizer.transform(Y_MULTI)
    got = ours._backprop(X, Y, sample_weight, *_lists(ours))
    want = theirs._backprop(X, Y, sample_weight, *_lists(theirs))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    for g, w in zip(got[1] + got[2], want[1] + want[2], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-14)
    packed = np.hstack([p.ravel() for p in ours.coefs_ + ours.intercepts_]) * 0.5
    loss, grad = ours._loss_grad_lbfgs(packed, X, Y, sample_weight, *_lists(ours))
    loss_sk, grad_sk = theirs._loss_grad_lbfgs(packed, X, Y, sample_weight, *_lists(theirs))
    np.testing.assert_allclose(loss, loss_sk, rtol=1e-12)
    np.testing.assert_allclose(grad, grad_sk, rtol=1e-10, atol=1e-14)
    # Like scikit-learn's, it leaves the estimator at the parameters it was given.
    np.testing.assert_array_equal(ours.coefs_[0].ravel(), packed[: ours.coefs_[0].size])


def test_forward_pass_fills_every_layer():
    ours, theirs = _pair("tanh", None)
    activations = ours._forward_pass(_lists(ours)[0])
    expected = theirs._forward_pass([X] + [None] * 3)
    assert len(activations) == 4 and activations[0] is X
    for a, b in zip(activations[1:], expected[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
