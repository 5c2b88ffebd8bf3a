"""The C++ core (fastmlp.MLP) against the NumPy reference and against finite differences."""

import ast
from pathlib import Path

import numpy as np
import pytest
from gradient_check import assert_gradients_match_finite_differences

import fastmlp
from fastmlp import reference

HIDDEN = ("identity", "logistic", "tanh", "relu")
OUTPUT_LOSS = (
    ("identity", "squared_error"),
    ("logistic", "squared_error"),
    ("tanh", "squared_error"),
    ("relu", "squared_error"),
    ("exp", "squared_error"),
    ("logistic", "log_loss"),
    ("softmax", "log_loss"),
    ("exp", "poisson"),
)
SHAPES = ((3, 1), (4, 5, 2), (7, 16, 9, 3), (2, 3, 4, 5, 6, 3))
# float64 agrees to rounding; float32 to its ~1e-7 epsilon, amplified through a few layers.
RTOL = {"float64": 1e-10, "float32": 1e-4}


def make_data(shape, output, loss, n_samples, dtype, seed):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, shape[0])).astype(dtype)
    n_out = shape[-1]
    if loss == "log_loss" and output == "softmax":
        Y = np.eye(n_out)[rng.randint(n_out, size=n_samples)]
    elif loss == "log_loss":
        Y = rng.randint(2, size=(n_samples, n_out))
    elif loss == "poisson":
        Y = rng.poisson(1.0, size=(n_samples, n_out))
    else:
        Y = rng.normal(size=(n_samples, n_out))
    return X, Y.astype(dtype), rng.uniform(0.1, 2.0, n_samples).astype(dtype)


def assert_close(actual, expected, rtol):
    # Relative to the array's scale: single entries near 0 carry only absolute rounding.
    scale = max(np.abs(expected).max(), 1e-12)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def pair(shape, hidden, output, loss, dtype, alpha=0.0, seed=0):
    kwargs = dict(
        activation=hidden,
        output_activation=output,
        loss=loss,
        dtype=dtype,
        random_state=seed,
        alpha=alpha,
    )
    return fastmlp.MLP(shape, **kwargs), reference.MLP(shape, **kwargs)


# softmax over a single output is the constant 1: that network is left out, not skipped.
NETWORKS = [
    (shape, output, loss)
    for shape in SHAPES
    for output, loss in OUTPUT_LOSS
    if not (output == "softmax" and shape[-1] == 1)
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("shape,output,loss", NETWORKS, ids=str)
def test_forward_and_backward_match_reference(dtype, shape, hidden, output, loss):
    core, ref = pair(shape, hidden, output, loss, dtype, alpha=0.01)
    X, Y, w = make_data(shape, output, loss, 37, dtype, seed=1)
    assert core.forward(X).dtype == np.dtype(dtype)
    assert_close(core.forward(X), ref.forward(X), RTOL[dtype])
    for sample_weight in (None, w):
        loss_c, gW_c, gb_c = core.backward(X, Y, sample_weight)
        loss_r, gW_r, gb_r = ref.backward(X, Y, sample_weight)
        assert loss_c == pytest.approx(loss_r, rel=RTOL[dtype])
        for got, want in zip(gW_c + gb_c, gW_r + gb_r, strict=True):
            assert got.dtype == np.dtype(dtype) and got.shape == want.shape
            assert_close(got, want, RTOL[dtype])


# Widths that take every path of the core's own GEMM kernel (fastmlp/small_gemm.hpp), for any
# vector width: strips of several packets (128, 68), single and half packets (20, 12), the
# narrowest packet (4), and batches that leave 1, 2 or 3 rows after its blocks of 4. The deep
# first layer (2100 inputs) runs on it for a few rows and on Eigen's GEMM for 130, whose
# operands outgrow the kernel's cache bound; 500 inputs with 130 rows take the kernel's path
# for larger operands (float32 with AVX-512; Eigen's GEMM elsewhere).
SMALL_GEMM_SHAPES = ((37, 128, 68, 20, 12, 4), (2100, 8, 4), (500, 64, 4))


@pytest.mark.parametrize("n_samples", [1, 2, 3, 7, 130])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", ["relu", "tanh"])
@pytest.mark.parametrize("shape", SMALL_GEMM_SHAPES, ids=str)
def test_small_gemm_paths_match_reference(shape, hidden, dtype, n_samples):
    core, ref = pair(shape, hidden, "softmax", "log_loss", dtype, alpha=0.01)
    X, Y, w = make_data(shape, "softmax", "log_loss", n_samples, dtype, seed=5)
    assert_close(core.forward(X), ref.forward(X), RTOL[dtype])
    loss_c, gW_c, gb_c = core.backward(X, Y, w)
    loss_r, gW_r, gb_r = ref.backward(X, Y, w)
    assert loss_c == pytest.approx(loss_r, rel=RTOL[dtype])
    for got, want in zip(gW_c + gb_c, gW_r + gb_r, strict=True):
        assert_close(got, want, RTOL[dtype])


@pytest.mark.parametrize("n_samples", [1, 2, 63, 64, 65, 5000])
def test_forward_chunking_matches_reference(n_samples):
    # predict splits rows into chunks spread over threads; every chunk boundary must be exact.
    core, ref = pair((6, 11, 4), "tanh", "softmax", "log_loss", "float64")
    X, _, _ = make_data((6, 11, 4), "softmax", "log_loss", n_samples, "float64", seed=2)
    assert_close(core.forward(X), ref.forward(X), 1e-12)


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output,loss", OUTPUT_LOSS)
def test_core_gradients_match_finite_differences(hidden, output, loss):
    shape = (3, 4, 3)
    core, _ = pair(shape, hidden, output, loss, "float64", alpha=0.05, seed=3)
    X, Y, w = make_data(shape, output, loss, 9, "float64", seed=4)
    # The first 6 of each array. The kink of relu makes a central difference wrong only if a
    # pre-activation sits within eps of 0, which these random draws do not.
    assert_gradients_match_finite_differences(
        core, X, Y, w, eps=1e-6, limit=6,
        close=lambda numeric, analytic: numeric == pytest.approx(analytic, rel=1e-5, abs=1e-8),
    )  # fmt: skip


def test_sgd_step_matches_reference_over_many_steps():
    core, ref = pair((2, 8, 1), "tanh", "identity", "squared_error", "float64", alpha=1e-3)
    X = np.linspace(-2, 2, 40)[:, None] * np.ones((1, 2))
    Y = np.sin(X[:, :1])
    for _ in range(200):
        assert core.sgd_step(X, Y, 0.1) == pytest.approx(ref.sgd_step(X, Y, 0.1), rel=1e-10)
    for got, want in zip(core.coefs + core.intercepts, ref.coefs + ref.intercepts, strict=True):
        assert_close(got, want, 1e-9)


def test_step_units_run_forward_only_in_the_core():
    core, ref = pair((2, 2, 1), "step", "step", "squared_error", "float64")
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(core.forward(X), ref.forward(X))
    with pytest.raises(ValueError, match="step"):
        core.backward(X, np.zeros((4, 1)))


REFERENCE_MODULES = {"fastmlp.reference", "fastmlp._reference_optim"}


def fastmlp_imports(path):
    """The fastmlp modules that a source file imports ("from fastmlp import x" names x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "fastmlp"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fastmlp":
            names.add(node.module)
            if node.module == "fastmlp":
                names |= {f"fastmlp.{a.name}" for a in node.names}
    return names


def test_the_reference_and_the_product_share_no_code():
    # An oracle that shares a helper with the product cannot see that helper's bugs. Only the
    # package's __init__ may name the reference (it does not import it: that is the user's).
    package = Path(fastmlp.__file__).parent
    for path in sorted(package.glob("*.py")):
        module = f"fastmlp.{path.stem}"
        imported = fastmlp_imports(path)
        if module in REFERENCE_MODULES:
            assert imported <= REFERENCE_MODULES, f"{path.name} imports {imported}"
        else:
            assert not imported & REFERENCE_MODULES, f"{path.name} imports the reference"
    assert not issubclass(fastmlp.MLP, reference.MLP)
