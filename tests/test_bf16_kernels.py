"""The bfloat16 GEMM kernels (AMX and AVX512-BF16) against NumPy, through private bindings.

The oracle is a float64 NumPy product of the operands rounded to bf16, so the only difference
left is fp32 accumulation. The bound, derived rather than guessed: a product of two bf16 values
(8-bit significands) is exact in fp32 (24 bits), so each element of C is an fp32 sum of k exact
terms (k + 1 with an accumulated C), which in any summation order is off by at most
gamma_k * sum|terms|, gamma_k = k u / (1 - k u), u = 2^-24 (Higham, Accuracy and Stability of
Numerical Algorithms, 2nd ed., eq. 4.4), plus at most u |C| for the final rounding of the sum,
which gamma_{k+1} covers. The float64 oracle's own error is some 1e-16 relative, negligible.

The rounding helper is checked against a brute-force oracle written here: of the two bf16
neighbours of x (truncation and the next one up), the nearer, ties to the even one.
"""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

from fastmlp import _core

core = _core.module
KERNELS = ["amx", "avx512_bf16"]
U = 2.0**-24


def kernel_or_skip(kernel):
    if not core._bf16_kernel_available(kernel):
        pytest.skip(f"{kernel} cannot run here: {core._bf16_unavailable_reason() or 'see CPU'}")
    return kernel


@pytest.fixture(params=KERNELS)
def kernel(request):
    return kernel_or_skip(request.param)


# --- the rounding helper --------------------------------------------------------------------


def round_bf16_oracle(x):
    """Nearest bf16 of each float32 in x, ties to even; NaN stays NaN (as float32)."""
    with np.errstate(invalid="ignore"):  # NaN's float32 -> float64 casts
        return _round_bf16_oracle(np.asarray(x, np.float32))


def _round_bf16_oracle(x):
    bits = x.view(np.uint32)
    down = bits & np.uint32(0xFFFF0000)  # toward zero
    up = down + np.uint32(0x10000)  # away from zero (may carry into the exponent: still right)
    mag = np.abs(x.astype(np.float64))

    def magnitude(b):
        # |value| of bf16 bits b; the bits of infinity stand for 2^128, as IEEE's overflow rule
        # rounds as if the exponent range were unbounded.
        b = b & np.uint32(0x7FFFFFFF)
        v = np.abs(b.view(np.float32).astype(np.float64))
        return np.where(b == np.uint32(0x7F800000), 2.0**128, v)

    d_down = mag - magnitude(down)
    d_up = magnitude(up) - mag
    down_even = ((down >> np.uint32(16)) & np.uint32(1)) == 0
    take_up = (d_up < d_down) | ((d_up == d_down) & ~down_even & (d_up > 0))
    out = np.where(take_up, up, down).view(np.float32)
    out = np.where(np.isinf(x), x, out)
    return np.where(np.isnan(x), np.float32(np.nan), out).astype(np.float32)


def test_round_to_bf16_worked_examples():
    # bf16 keeps 7 fraction bits: near 1 its step is 2^-7, half a step 2^-8.
    x = np.array(
        [
            1.0 + 2.0**-8,  # tie between 1 and 1 + 2^-7: to even, 1
            1.0 + 3 * 2.0**-8,  # tie between 1 + 2^-7 (odd) and 1 + 2^-6: up
            1.0 + 2.0**-8 + 2.0**-20,  # just above the tie: up
            -(1.0 + 2.0**-8),  # sign is symmetric
            2.0**-149,  # smallest float32 denormal: bf16's smallest is 2^-133, so 0
            2.0**-133,  # bf16's smallest denormal, exact
            2.0**-133 * 1.5,  # tie between 2^-133 (odd) and 2^-132: up
            3.3895313892515355e38,  # largest bf16, exact
            3.4e38,  # past the largest bf16 + half a step: infinity
            np.inf,
            -np.inf,
            -0.0,
        ],
        np.float32,
    )
    expected = np.array(
        [
            1.0,
            1.0 + 2.0**-6,
            1.0 + 2.0**-7,
            -1.0,
            0.0,
            2.0**-133,
            2.0**-132,
            3.3895313892515355e38,
            np.inf,
            np.inf,
            -np.inf,
            -0.0,
        ],
        np.float32,
    )
    got = core._round_to_bf16(x)
    np.testing.assert_array_equal(got, expected)
    assert np.signbit(got[-1])
    np.testing.assert_array_equal(round_bf16_oracle(x), expected)


def test_round_to_bf16_all_kinds_of_bits():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    # Add exact ties and their neighbours, denormals, NaNs with low payload bits only.
    ties = (bits & np.uint32(0xFFFF0000)) | np.uint32(0x8000)
    extra = np.concatenate([ties, ties + np.uint32(1), ties - np.uint32(1)])
    extra = np.concatenate([extra, np.arange(0, 70000, dtype=np.uint32)])  # denormals
    extra = np.concatenate([extra, np.array([0x7F800001, 0xFF800001, 0x7FC00000], np.uint32)])
    x = np.concatenate([bits, extra]).view(np.float32)
    got = core._round_to_bf16(x)
    want = round_bf16_oracle(x)
    nan = np.isnan(x)
    assert np.isnan(got[nan]).all()  # NaN stays NaN, even one whose payload is in the low bits
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    assert (got.view(np.uint32) & np.uint32(0xFFFF) == 0).all()


# --- the products ---------------------------------------------------------------------------


def operands(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(
        np.float32
    )


def check_product(c, a, b, c0=None):
    """c against the float64 product of bf16(a) and bf16(b) (+ c0), within the derived bound."""
    ar = round_bf16_oracle(a).astype(np.float64)
    br = round_bf16_oracle(b).astype(np.float64)
    k = a.shape[1]
    want = ar @ br
    scale = np.abs(ar) @ np.abs(br)
    terms = k
    if c0 is not None:
        want += c0
        scale += np.abs(c0)
        terms += 1
    gamma = terms * U / (1 - terms * U)
    err = np.abs(c.astype(np.float64) - want)
    bound = gamma * scale
    worst = np.max(err - bound) if err.size else 0.0
    assert worst <= 0, f"error exceeds the bound by {worst}"


SHAPES = [
    (1, 1, 1),
    (1, 37, 5),
    (37, 1, 3),
    (17, 33, 1),  # k = 1
    (31, 47, 33),  # k odd, nothing a multiple of a tile
    (64, 64, 64),
    (100, 70, 131),
    (13, 53, 1100),  # k past the AVX512-BF16 kernel's pass (256)
    (37, 21, 2100),  # k past the AMX kernel's pass (2048)
    (300, 50, 40),  # several row blocks
    (129, 257, 65),
]


@pytest.mark.parametrize("m,n,k", SHAPES)
def test_product_matches_rounded_oracle(kernel, m, n, k):
    a, b = operands(m, n, k)
    check_product(core._bf16_gemm(a, b, kernel=kernel), a, b)


def test_kernel_really_rounds_to_bf16(kernel):
    # Differences between x and bf16(x) show: the fp32 product is outside the bound.
    a, b = operands(40, 40, 200, seed=3)
    c = core._bf16_gemm(a, b, kernel=kernel)
    exact32 = a.astype(np.float64) @ b.astype(np.float64)
    assert np.max(np.abs(c - exact32)) > 1e-3


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(45, 70, 77), (130, 33, 300)])
def test_transposed_operands(kernel, trans_a, trans_b, m, n, k):
    a, b = operands(m, n, k, seed=1)
    a_in = np.ascontiguousarray(a.T) if trans_a else a
    b_in = np.ascontiguousarray(b.T) if trans_b else b
    c = core._bf16_gemm(a_in, b_in, kernel=kernel, trans_a=trans_a, trans_b=trans_b)
    check_product(c, a, b)
    # The stride patterns change only how operands are read: the bits are the same.
    np.testing.assert_array_equal(c, core._bf16_gemm(a, b, kernel=kernel))


@pytest.mark.parametrize("m,n,k", [(19, 23, 41), (70, 40, 90)])
def test_general_strides(kernel, m, n, k):
    # Neither stride 1 (every third or second element of a bigger array), negative strides.
    a, b = operands(m, n, k, seed=2)
    big_a = np.zeros((2 * m, 3 * k), np.float32)
    big_a[::2, ::3] = a
    big_b = np.zeros((3 * k, 2 * n), np.float32)
    big_b[::3, ::2] = b
    want = core._bf16_gemm(a, b, kernel=kernel)
    np.testing.assert_array_equal(
        core._bf16_gemm(big_a[::2, ::3], big_b[::3, ::2], kernel=kernel), want
    )
    np.testing.assert_array_equal(
        core._bf16_gemm(a[::-1], b[:, ::-1], kernel=kernel), want[::-1, ::-1]
    )
    # Reversing k reverses the summation order: other bits, the same bound.
    check_product(core._bf16_gemm(a[:, ::-1], b[::-1], kernel=kernel), a, b)


@pytest.mark.parametrize("m,n,k", [(33, 47, 29), (200, 70, 600)])
def test_accumulate_into_strided_c(kernel, m, n, k):
    a, b = operands(m, n, k, seed=4)
    c0 = np.random.default_rng(5).standard_normal((m, n)).astype(np.float32)
    storage = np.full((m, n + 9), 7.0, np.float32)  # ldc = n + 9; the padding must survive
    storage[:, :n] = c0
    out = core._bf16_gemm(a, b, kernel=kernel, c=storage[:, :n])
    assert np.shares_memory(out, storage)
    check_product(storage[:, :n], a, b, c0=c0.astype(np.float64))
    assert (storage[:, n:] == 7.0).all()


# 3 threads: three shares of tasks, which the threads may take from each other (on this 2-core
# machine they often do). Products under 2^21 multiply-adds run on one thread whatever is asked.
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (45, 70, 77), (300, 130, 700), (20, 600, 40)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_epilogue_sees_every_element_once_when_final(kernel, m, n, k, threads):
    a, b = operands(m, n, k, seed=6)
    c, counts, seen = core._bf16_gemm(a, b, kernel=kernel, threads=threads, check_epilogue=True)
    np.testing.assert_array_equal(counts, np.ones((m, n), np.int32))
    np.testing.assert_array_equal(seen, c)


@pytest.mark.parametrize(
    "m,n,k", [(512, 300, 200), (20, 700, 100), (129, 257, 2100), (1000, 10, 64)]
)
def test_threads_give_identical_bits(kernel, m, n, k):
    a, b = operands(m, n, k, seed=7)
    one = core._bf16_gemm(a, b, kernel=kernel, threads=1)
    for threads in (2, 3):  # whichever thread computes a task, the same bits
        np.testing.assert_array_equal(core._bf16_gemm(a, b, kernel=kernel, threads=threads), one)
    check_product(one, a, b)


def test_zero_sizes(kernel):
    a, b = operands(5, 6, 0)
    np.testing.assert_array_equal(core._bf16_gemm(a, b, kernel=kernel), np.zeros((5, 6)))
    c0 = np.ones((5, 6), np.float32)
    core._bf16_gemm(a, b, kernel=kernel, c=c0)
    np.testing.assert_array_equal(c0, np.ones((5, 6)))
    assert core._bf16_gemm(*operands(0, 6, 4), kernel=kernel).shape == (0, 6)


def test_bad_arguments():
    a, b = operands(4, 5, 6)
    with pytest.raises(ValueError, match="kernel must be"):
        core._bf16_gemm(a, b, kernel="sse")
    if core._bf16_kernel() == "none":
        pytest.skip("no bf16 kernel here")
    with pytest.raises(ValueError, match="inner dimensions"):
        core._bf16_gemm(a, b[:5])
    with pytest.raises(TypeError, match="float32"):
        core._bf16_gemm(a.astype(np.float64), b)


# --- which kernel runs ----------------------------------------------------------------------


def run_python(code, **env):
    full_env = {**os.environ, **env}
    out = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, check=False
    )
    return out


def test_default_is_the_best_available():
    name = core._bf16_kernel()
    if core._bf16_kernel_available("amx"):
        assert name == "amx"
    elif core._bf16_kernel_available("avx512_bf16"):
        assert name == "avx512_bf16"
    else:
        assert name == "none"
        assert core._bf16_unavailable_reason()


@pytest.mark.parametrize("kernel_name", KERNELS)
def test_a_share_without_its_own_thread_is_computed_by_the_others(kernel_name):
    # OMP_THREAD_LIMIT=2 gives a team of two where three threads are asked for: the third share
    # of tasks has no thread of its own and must be taken, once, by the other two.
    kernel_or_skip(kernel_name)
    code = f"""
import numpy as np
from fastmlp import _core
core = _core.module
rng = np.random.default_rng(8)
a = rng.standard_normal((600, 300)).astype(np.float32)
b = rng.standard_normal((300, 500)).astype(np.float32)
one = core._bf16_gemm(a, b, kernel="{kernel_name}", threads=1)
three, counts, seen = core._bf16_gemm(a, b, kernel="{kernel_name}", threads=3, check_epilogue=True)
assert (counts == 1).all(), np.unique(counts)
assert np.array_equal(three, one) and np.array_equal(seen, three)
print("ok")
"""
    out = run_python(code, OMP_THREAD_LIMIT="2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_env_forces_avx512_bf16():
    kernel_or_skip("avx512_bf16")
    code = "from fastmlp import _core; print(_core.module._bf16_kernel())"
    out = run_python(code, FASTMLP_BF16_KERNEL="avx512_bf16")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "avx512_bf16"


def test_env_unknown_value_raises():
    code = "from fastmlp import _core; _core.module._bf16_kernel()"
    out = run_python(code, FASTMLP_BF16_KERNEL="fastest")
    assert out.returncode != 0
    assert "FASTMLP_BF16_KERNEL=fastest is not one of" in out.stderr


def test_env_none_gives_reason():
    code = (
        "from fastmlp import _core; m = _core.module;"
        "print(m._bf16_kernel()); print(m._bf16_unavailable_reason())"
    )
    out = run_python(code, FASTMLP_BF16_KERNEL="none")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["none", "FASTMLP_BF16_KERNEL=none"]


@pytest.mark.parametrize("variant", ["avx2", "baseline"])
def test_variants_without_bf16_say_why(variant):
    try:
        module = importlib.import_module(f"fastmlp._core_{variant}")
    except ImportError:
        pytest.skip(f"the {variant} variant is not built here")
    assert module._bf16_kernel() == "none"
    assert (
        f"this build variant ({variant}) has no bf16 kernels" in module._bf16_unavailable_reason()
    )
    with pytest.raises(RuntimeError, match="no bf16 kernel runs here"):
        module._bf16_gemm(*operands(2, 2, 2))
    # The rounding helper works in every variant.
    x = np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8], np.float32)
    np.testing.assert_array_equal(module._round_to_bf16(x), round_bf16_oracle(x))


def test_fastmlp_arch_avx2_has_no_bf16():
    try:
        importlib.import_module("fastmlp._core_avx2")
    except ImportError:
        pytest.skip("the avx2 variant is not built here")
    code = (
        "from fastmlp import _core; m = _core.module;"
        "print(m._bf16_kernel()); print(m._bf16_unavailable_reason())"
    )
    out = run_python(code, FASTMLP_ARCH="avx2")
    if out.returncode != 0 and "lacks the instructions" in out.stderr:
        pytest.skip("this CPU cannot run the avx2 variant")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "none"
    assert "this build variant (avx2) has no bf16 kernels" in lines[1]
