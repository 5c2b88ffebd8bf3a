"""Central finite differences of a network's loss, the check every backward pass answers to."""

import itertools


def _default_close(numeric, analytic, tol):
    return abs(analytic - numeric) < tol * max(1, abs(numeric))


def assert_gradients_match_finite_differences(
    net, X, Y, w, eps=1e-6, tol=1e-6, limit=None, close=None
):
    """net.backward(X, Y, w)'s gradients against (loss(p + eps) - loss(p - eps)) / (2 eps) for
    every parameter p (float64 networks: the step and tolerance assume float64 rounding), or
    for the first `limit` of each array. close(numeric, analytic) replaces the default test,
    |analytic - numeric| < tol max(1, |numeric|), where given."""
    _, coef_grads, intercept_grads = net.backward(X, Y, w)
    for params, grads in ((net.coefs, coef_grads), (net.intercepts, intercept_grads)):
        for layer in range(len(params)):
            flat = params[layer].reshape(-1)  # a view: the network's own parameter
            for i in itertools.islice(range(flat.size), limit):
                keep = flat[i]
                flat[i] = keep + eps
                up = net.backward(X, Y, w)[0]
                flat[i] = keep - eps
                down = net.backward(X, Y, w)[0]
                flat[i] = keep
                numeric = (up - down) / (2 * eps)
                analytic = grads[layer].reshape(-1)[i]
                if close is None:
                    assert _default_close(numeric, analytic, tol), (layer, i, numeric, analytic)
                else:
                    assert close(numeric, analytic), (layer, i, numeric, analytic)
