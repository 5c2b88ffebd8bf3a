"""Property tests: the core agrees with the NumPy reference on random networks and data."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmlp
from fastmlp import reference

HIDDEN = ["identity", "logistic", "tanh", "relu"]
PAIRS = [
    ("identity", "squared_error"),
    ("logistic", "log_loss"),
    ("softmax", "log_loss"),
    ("exp", "poisson"),
    ("tanh", "squared_error"),
]


@st.composite
def problems(draw):
    n_in = draw(st.integers(1, 12))
    hidden = draw(st.lists(st.integers(1, 24), min_size=0, max_size=3))
    output, loss = draw(st.sampled_from(PAIRS))
    n_out = draw(st.integers(2 if output == "softmax" else 1, 5))
    n_samples = draw(st.integers(1, 70))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    rng = np.random.RandomState(seed)
    # float32 problems keep to inputs of scale <= 1. At scale 5 a logistic output came within
    # 4e-6 of 1, where float32 holds 1 - p to two significant bits: log(1 - p), and so the
    # loss, then differs by a few percent per sample between any two correct float32
    # implementations (the float64 value lay between the core's and the reference's).
    scales = [0.1, 1.0, 5.0] if dtype == "float64" else [0.1, 1.0]
    X = rng.normal(scale=draw(st.sampled_from(scales)), size=(n_samples, n_in))
    if output == "softmax":
        Y = np.eye(n_out)[rng.randint(n_out, size=n_samples)]
    elif loss == "log_loss":
        Y = rng.randint(2, size=(n_samples, n_out)).astype(float)
    elif loss == "poisson":
        Y = rng.poisson(2.0, size=(n_samples, n_out)).astype(float)
    else:
        Y = rng.normal(size=(n_samples, n_out))
    weights = rng.uniform(0.0, 3.0, n_samples) if draw(st.booleans()) else None
    if weights is not None and weights.sum() == 0:
        weights[0] = 1.0
    return dict(
        sizes=(n_in, *hidden, n_out),
        activation=draw(st.sampled_from(HIDDEN)),
        output=output,
        loss=loss,
        alpha=draw(st.sampled_from([0.0, 1e-4, 0.5])),
        dtype=dtype,
        seed=seed,
        X=X,
        Y=Y,
        weights=weights,
    )


def close(actual, expected, dtype):
    # float32 keeps ~7 digits; through a few layers and sums, 1e-4 of the array's scale.
    tol = 1e-10 if dtype == "float64" else 1e-4
    scale = max(float(np.max(np.abs(expected))), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


@settings(max_examples=150, deadline=None)
@given(problems())
def test_core_matches_reference(p):
    kwargs = dict(
        activation=p["activation"],
        output_activation=p["output"],
        loss=p["loss"],
        dtype=p["dtype"],
        random_state=p["seed"],
        alpha=p["alpha"],
    )
    core = fastmlp.MLP(p["sizes"], **kwargs)
    ref = reference.MLP(p["sizes"], **kwargs)
    close(core.forward(p["X"]), ref.forward(p["X"]), p["dtype"])
    loss_c, gW_c, gb_c = core.backward(p["X"], p["Y"], p["weights"])
    loss_r, gW_r, gb_r = ref.backward(p["X"], p["Y"], p["weights"])
    close(np.array(loss_c), np.array(loss_r), p["dtype"])
    for got, want in zip(gW_c + gb_c, gW_r + gb_r, strict=True):
        assert got.dtype == want.dtype == np.dtype(p["dtype"])
        close(got, want, p["dtype"])
