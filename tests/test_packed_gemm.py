"""The seam's GEMM kernels (eigen, small_gemm, packed, packed_transposed) against a float64
product, and the packed kernel's fused epilogues against the NumPy reference (fastmlp.reference).

The packed kernel (cpp/src/packed_gemm.cpp) packs A into panels of MR rows and B into panels of
NR columns and blocks k by KC: the shapes below straddle every one of those (1 row, primes,
k > KC, m > MC), and the operands come in the three stride patterns of a layer's products
(Z W, Z^T Delta, Delta W^T). Its results must not depend on the thread count nor on where the
operands lie in memory: those checks are bitwise, for packed_transposed (the packed kernel on the
transposed product, its operands' strides swapped) as well.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastmlp
from fastmlp import _core, reference
from fastmlp._arrays import aligned_copy

core = _core.module
KERNELS = ("eigen", "small_gemm", "packed", "packed_transposed")
# Relative to sqrt(k) * max|a| * max|b|, the scale of a k-term sum's rounding: float32's
# products agree with float64's to its epsilon, float64's to rounding.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def blocking(dtype):
    return core._gemm_blocking(dtype)


def product_shapes(dtype):
    b = blocking(dtype)
    mr, nr, kc, mc = b["mr"], b["nr"], b["kc"], b["mc"]
    return [
        (1, 1, 1),
        (1, 7, 13),
        (7, 13, 1),
        (13, 97, 7),
        (97, 257, 13),
        (mr, nr, kc),  # exactly one register block and one KC block
        (mr + 1, nr + 1, kc + 1),  # one past each
        (2 * mr - 1, 3 * nr - 1, 2 * kc + 7),  # k over several KC blocks, short last one
        (mc + 3, 2 * nr + 5, 37),  # m over MC
        (257, 97, 3 * kc // 2),
    ]


def operands(m, n, k, pattern, dtype, seed=0):
    """A (m, k) and B (k, n) in the layout of one of a layer's products."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (m, k))
    b = rng.uniform(-1, 1, (k, n))
    if pattern == "forward":  # Z W: both row-major
        return aligned_copy(a, dtype), aligned_copy(b, dtype)
    if pattern == "weight_gradient":  # Z^T Delta: A the transpose of a row-major Z (k, m)
        return aligned_copy(a.T, dtype).T, aligned_copy(b, dtype)
    if pattern == "error":  # Delta W^T: B the transpose of a row-major W (n, k)
        return aligned_copy(a, dtype), aligned_copy(b.T, dtype).T
    raise ValueError(pattern)


def assert_product(C, A, B, bias=None, start=None):
    dtype = C.dtype.type
    expected = A.astype(np.float64) @ B.astype(np.float64)
    if bias is not None:
        expected += bias.astype(np.float64)
    if start is not None:
        expected += start.astype(np.float64)
    k = A.shape[1]
    largest = max(np.abs(A).max(initial=0), 1) * max(np.abs(B).max(initial=0), 1)
    scale = np.sqrt(max(k, 1)) * largest
    np.testing.assert_allclose(C, expected, rtol=0, atol=RTOL[dtype] * scale)


@pytest.fixture
def forced_kernel():
    """Force the seam's kernel for one test; gives the previous choice back after."""
    previous = []

    def force(name):
        previous.append(core._force_gemm_kernel(name))

    yield force
    if previous:
        core._force_gemm_kernel(previous[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pattern", ["forward", "weight_gradient", "error"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_computes_the_product(kernel, pattern, dtype):
    for m, n, k in product_shapes(dtype):
        A, B = operands(m, n, k, pattern, dtype, seed=m + n + k)
        C = core._gemm(A, B, kernel=kernel)
        assert C.dtype == dtype and C.shape == (m, n)
        assert_product(C, A, B)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", KERNELS)
def test_bias_and_accumulate(kernel, dtype):
    rng = np.random.default_rng(3)
    for m, n, k in [(1, 1, 1), (13, 97, 7), (45, 70, 900), (3, 5, 0)]:
        A, B = operands(m, n, k, "forward", dtype, seed=k)
        bias = aligned_copy(rng.uniform(-1, 1, n), dtype)
        assert_product(core._gemm(A, B, kernel=kernel, bias=bias), A, B, bias=bias)
        start = aligned_copy(rng.uniform(-1, 1, (m, n)), dtype)
        C = start.copy()
        core._gemm(A, B, kernel=kernel, out=C, accumulate=True)
        assert_product(C, A, B, start=start)


PACKED = ("packed", "packed_transposed")


@pytest.mark.parametrize("kernel", PACKED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pattern", ["forward", "weight_gradient", "error"])
def test_packed_is_bitwise_the_same_on_one_two_and_three_threads(pattern, dtype, kernel):
    b = blocking(dtype)
    # (700, 720, 1600): on two threads, A's rows over 4 MiB pack in two or three shared blocks.
    # (40, 65 panels, 50): the threads split n into blocks of shrinking size (16, 13, 9, ...
    # panels on two threads, the last one cut short; 10, 10, 8, ... on three).
    shapes = [
        (512, 300, b["kc"] + 9),
        (37, 2 * b["nr"] * 9 + 5, 2 * b["kc"] + 1),
        (5, 3, 700),
        (700, 720, 1600),
        (40, 64 * b["nr"] + 3, 50),
    ]
    for m, n, k in shapes:
        A, B = operands(m, n, k, pattern, dtype, seed=n)
        bias = aligned_copy(np.linspace(-1, 1, n), dtype)
        one = core._gemm(A, B, kernel=kernel, threads=1, bias=bias)
        for threads in (2, 3):
            # Into NaNs: a block of columns that no thread computed cannot pass as zeros.
            many = np.full((m, n), np.nan, dtype)
            core._gemm(A, B, kernel=kernel, threads=threads, bias=bias, out=many)
            np.testing.assert_array_equal(one, many)
        assert_product(one, A, B, bias=bias)


def misaligned(a):
    """A copy of a (same strides pattern) one element past a 64-byte boundary."""
    base = aligned_copy(np.zeros(a.size + 1), a.dtype)[1:]
    if a.flags.c_contiguous:
        out = base.reshape(a.shape)
    else:  # a transposed view: keep it one
        out = base.reshape(a.shape[::-1]).T
    out[...] = a
    assert out.ctypes.data % 64 != 0
    return out


@pytest.mark.parametrize("kernel", PACKED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pattern", ["forward", "weight_gradient", "error"])
def test_packed_is_bitwise_the_same_wherever_the_operands_lie(pattern, dtype, kernel):
    m, n, k = 61, 149, blocking(dtype)["kc"] + 31
    A, B = operands(m, n, k, pattern, dtype, seed=7)
    bias = aligned_copy(np.linspace(-2, 2, n), dtype)
    aligned = core._gemm(A, B, kernel=kernel, bias=bias)
    out = misaligned(np.zeros((m, n), dtype))
    core._gemm(misaligned(A), misaligned(B), kernel=kernel, bias=misaligned(bias), out=out)
    np.testing.assert_array_equal(out, aligned)


def test_kernel_names_and_the_forced_kernel(forced_kernel):
    assert core._gemm_kernel_for(32, 64, 64, np.float32) in KERNELS
    forced_kernel("packed")
    assert core._gemm_kernel_for(1, 1, 1, np.float32) == "packed"
    assert core._gemm_kernel_for(4096, 4096, 4096, np.float64, threads=2) == "packed"
    core._force_gemm_kernel("eigen")
    assert core._gemm_kernel_for(32, 64, 64, np.float32) == "eigen"
    with pytest.raises(ValueError, match="unknown GEMM kernel"):
        core._force_gemm_kernel("mkl")
    with pytest.raises(ValueError, match="unknown GEMM kernel"):
        core._gemm(np.ones((2, 2)), np.ones((2, 2)), kernel="mkl")


def test_the_rules_pick_packed_for_the_wide_layers_only():
    # The wide network's products (1024-2048-2048, batch 512) go to the packed kernel in the
    # builds where it beats Eigen (AVX-512, AVX2); the small network's stay on small_gemm,
    # and narrow outputs (10 classes) go to packed_transposed there, to Eigen elsewhere.
    fast = _core.variant in ("avx512", "avx2")
    expected = "packed" if fast else "eigen"
    narrow = "packed_transposed" if fast else "eigen"
    for threads in (1, 2):
        assert core._gemm_kernel_for(512, 2048, 2048, np.float32, threads=threads) == expected
        assert core._gemm_kernel_for(2048, 2048, 512, np.float64, threads=threads) == expected
        assert core._gemm_kernel_for(512, 10, 2048, np.float32, threads=threads) == narrow
        assert core._gemm_kernel_for(2048, 10, 512, np.float64, threads=threads) == narrow
    assert core._gemm_kernel_for(32, 64, 64, np.float32) == "small_gemm"
    # 16 columns are no longer narrow; 16 rows are too few (Eigen won there).
    assert core._gemm_kernel_for(512, 16, 2048, np.float32) != "packed_transposed"
    assert core._gemm_kernel_for(16, 10, 256, np.float32) == "eigen"


@pytest.mark.skipif(_core.variant != "avx512", reason="small_gemm's large shapes: AVX-512 only")
def test_the_rules_give_long_products_to_packed_and_short_ones_to_small_gemm():
    # One thread, as prediction's chunks and the split trainer run them: 3,750 rows of MNIST
    # into 256 outputs (small_gemm would read the rows again for each 64 columns) and the
    # 784-row weight gradient go to packed; the split trainer's 64-row forward products and
    # 128-wide outputs stay on small_gemm.
    assert core._gemm_kernel_for(3750, 256, 784, np.float32) == "packed"
    assert core._gemm_kernel_for(784, 256, 64, np.float32) == "packed"
    assert core._gemm_kernel_for(64, 256, 784, np.float32) == "small_gemm"
    assert core._gemm_kernel_for(3750, 128, 256, np.float32) == "small_gemm"
    assert core._gemm_kernel_for(256, 256, 64, np.float32) == "small_gemm"
    # The edges: 256 rows and 32K elements of A.
    assert core._gemm_kernel_for(256, 256, 128, np.float32) == "packed"
    assert core._gemm_kernel_for(256, 256, 127, np.float32) == "small_gemm"
    assert core._gemm_kernel_for(255, 256, 784, np.float32) == "small_gemm"


HIDDEN = ("identity", "logistic", "tanh", "relu", "leaky_relu", "gelu", "silu")


def network_pair(shape, hidden, dtype, seed=0):
    kwargs = dict(
        activation=hidden, output_activation="softmax", loss="log_loss", dtype=dtype,
        random_state=seed, alpha=0.01,
    )  # fmt: skip
    return fastmlp.MLP(shape, **kwargs), reference.MLP(shape, **kwargs)


def assert_close(actual, expected, rtol):
    scale = max(np.abs(expected).max(), 1e-12)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


# As tests/test_core_vs_reference.py: float32 to its epsilon amplified through a few layers.
NET_RTOL = {"float64": 1e-10, "float32": 1e-4}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("kernel", KERNELS)
def test_fused_epilogues_match_the_reference(kernel, hidden, dtype, forced_kernel):
    # Every layer's three products on the forced kernel: bias + activation (+ pre-activations
    # for gelu and silu) fused into the forward product, f' into the error product.
    forced_kernel(kernel)
    shape = (37, 97, 45, 7)
    core_net, ref = network_pair(shape, hidden, dtype)
    rng = np.random.default_rng(1)
    for rows in (1, 13, 130):
        X = rng.normal(size=(rows, shape[0])).astype(dtype)
        Y = np.eye(shape[-1], dtype=dtype)[rng.integers(shape[-1], size=rows)]
        assert_close(core_net.forward(X), ref.forward(X), NET_RTOL[dtype])
        loss_c, gW_c, gb_c = core_net.backward(X, Y)
        loss_r, gW_r, gb_r = ref.backward(X, Y)
        assert loss_c == pytest.approx(loss_r, rel=NET_RTOL[dtype])
        for got, want in zip(gW_c + gb_c, gW_r + gb_r, strict=True):
            assert_close(got, want, NET_RTOL[dtype])


@pytest.mark.parametrize("kernel", ["packed", "packed_transposed"])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_fused_epilogues_are_bitwise_the_same_on_one_and_two_threads(
    hidden, kernel, forced_kernel
):
    # Rows enough that the passes thread their GEMMs (their work passes kMinParallelGemmWork),
    # a width whose blocks split unevenly between the threads.
    forced_kernel(kernel)
    shape = (300, 1500, 3)
    core_net, _ = network_pair(shape, hidden, "float32")
    rng = np.random.default_rng(2)
    X = aligned_copy(rng.normal(size=(256, shape[0])), np.float32)
    Y = aligned_copy(np.eye(3)[rng.integers(3, size=256)], np.float32)
    results = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="openmp"):
            forward = core_net.forward(X)
            _, gW, gb = core_net.backward(X, Y)
        results.append([forward, *gW, *gb])
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


def test_every_variant_in_one_process_runs_its_own_kernel():
    # The instruction-set modules share one process: none may bind to another's kernels (an
    # AVX-512 copy of the micro-kernel called from the AVX2 module crashed it on aligned loads).
    import importlib

    A, B = operands(300, 33, 20, "forward", np.float64)
    for variant in _core.available_variants():
        module = importlib.import_module(f"fastmlp._core_{variant}")
        for threads in (1, 2):
            assert_product(module._gemm(A, B, kernel="packed", threads=threads), A, B)
