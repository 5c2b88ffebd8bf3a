"""Every instruction-set build of the core gives the same results, and the choice is honest."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
from core_calls import train_epoch

import fastmlp
from fastmlp import _core

VARIANTS = _core.available_variants()


# Odd widths run Eigen's GEMMs; multiples of 4 the core's own kernel (fastmlp/small_gemm.hpp),
# whose vector width differs by variant; 500 inputs over 300 rows its path for larger operands
# (AVX-512 float32 only).
SHAPES = ((20, 33, 17, 5), (20, 64, 36, 8), (500, 64, 8))


def run_all(module, dtype, shape):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, shape[0])).astype(dtype)
    Y = np.eye(shape[-1], dtype=dtype)[rng.randint(shape[-1], size=300)]
    net = fastmlp.reference.MLP(shape, "tanh", "softmax", "log_loss", dtype, 0, 0.01)
    coefs, intercepts = [c.copy() for c in net.coefs], [b.copy() for b in net.intercepts]
    grads = [np.empty_like(p) for p in coefs], [np.empty_like(p) for p in intercepts]
    loss = module.backward(
        X, Y, None, coefs, intercepts, *grads, "tanh", "softmax", "log_loss", 0.01
    )
    moments = [np.zeros_like(p) for p in coefs + intercepts]
    second = [np.zeros_like(p) for p in coefs + intercepts]
    order = rng.permutation(300).astype(np.int64)
    train_epoch(
        module,
        X,
        Y,
        None,
        order,
        32,
        coefs,
        intercepts,
        moments,
        second,
        "tanh",
        "softmax",
        "log_loss",
        0.01,
        solver="adam",
        learning_rate=1e-3,
        momentum=0.0,
        nesterov=False,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        t=0,
    )
    out = module.forward(X, coefs, intercepts, "tanh", "softmax")
    return [np.array(loss)] + grads[0] + grads[1] + coefs + intercepts + [out]


def test_the_fastest_supported_variant_is_loaded():
    assert VARIANTS, "no variant can run on this CPU"
    info = fastmlp.build_info()
    if "FASTMLP_ARCH" not in os.environ:
        assert info["variant"] == VARIANTS[0]
    assert info["module"] == f"_core_{info['variant']}"


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_variants_agree(variant, dtype, shape):
    # FMA and wider vectors change the rounding, never the math: agreement to rounding.
    baseline = run_all(importlib.import_module("fastmlp._core_baseline"), dtype, shape)
    other = run_all(importlib.import_module(f"fastmlp._core_{variant}"), dtype, shape)
    atol = 1e-11 if dtype == "float64" else 2e-4
    for a, b in zip(other, baseline, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol * max(1.0, np.abs(b).max()))


def arch_info(value):
    env = dict(os.environ, FASTMLP_ARCH=value)
    code = "import fastmlp; i = fastmlp.build_info(); print(i['variant'], i['variant_chosen_by'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.slow
def test_fastmlp_arch_overrides_the_choice(variant):
    result = arch_info(variant)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [variant, "FASTMLP_ARCH"]


@pytest.mark.slow
def test_unknown_fastmlp_arch_is_a_clear_error():
    result = arch_info("sse9")
    assert result.returncode != 0
    assert "FASTMLP_ARCH='sse9' is not one of" in result.stderr
