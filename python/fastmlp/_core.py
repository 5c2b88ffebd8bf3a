"""The compiled core, in the best instruction-set build this CPU supports.

The same C++ sources are built into ``_core_baseline`` (x86-64 / any CPU), ``_core_avx2``
(AVX2 + FMA) and ``_core_avx512`` (AVX-512 F/VL/BW/DQ), each a separate shared library. This
module imports the fastest one the CPU can run as :data:`module`, which exports the backend
interface (see ``fastmlp._backend``). The environment
variable ``FASTMLP_ARCH`` (``baseline``, ``avx2``, ``avx512``) overrides the choice;
``fastmlp.build_info()`` says which one loaded and why.
"""

import importlib
import os
from typing import TYPE_CHECKING

# Fastest first: each variant with the CPU features it needs.
_VARIANTS = (
    ("avx512", ("AVX512F", "AVX512VL", "AVX512BW", "AVX512DQ", "AVX2", "FMA3")),
    ("avx2", ("AVX2", "FMA3")),
    ("baseline", ()),
)


def _cpu_features():
    """The CPU features NumPy detected at its import (runtime detection, any OS)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__  # type: ignore[no-redef]
    return {name for name, present in __cpu_features__.items() if present}


def _import_variant(name):
    try:
        return importlib.import_module(f"fastmlp._core_{name}")
    except ImportError:
        return None  # not built for this platform (e.g. only baseline off x86-64)


# FASTMLP_GEMM_KERNEL forces the seam's GEMM kernel (tests and comparisons; cpp/README.md). The
# module reads it as it loads; a misspelling is named here, not lost in "could not be imported".
_GEMM_KERNELS = ("eigen", "small_gemm", "packed", "packed_transposed")


def _load():
    gemm_kernel = os.environ.get("FASTMLP_GEMM_KERNEL", "")
    if gemm_kernel and gemm_kernel not in _GEMM_KERNELS:
        raise ImportError(
            f"FASTMLP_GEMM_KERNEL={gemm_kernel!r} is not one of {list(_GEMM_KERNELS)}"
        )
    features = _cpu_features()
    supported = [name for name, needs in _VARIANTS if all(f in features for f in needs)]
    forced = os.environ.get("FASTMLP_ARCH", "").strip().lower()
    if forced:
        known = [name for name, _ in _VARIANTS]
        if forced not in known:
            raise ImportError(f"FASTMLP_ARCH={forced!r} is not one of {known}")
        if forced not in supported:
            raise ImportError(f"FASTMLP_ARCH={forced!r}: this CPU lacks the instructions it needs")
        module = _import_variant(forced)
        if module is None:
            raise ImportError(f"FASTMLP_ARCH={forced!r}: that variant was not built here")
        return module, forced, "FASTMLP_ARCH"
    for name in supported:
        module = _import_variant(name)
        if module is not None:
            return module, name, "CPU features"
    raise ImportError("no fastmlp core module could be imported; reinstall fastmlp")


_module, variant, _chosen_by = _load()

if TYPE_CHECKING:  # every variant has the baseline's signatures (see _core_baseline.pyi)
    import fastmlp._core_baseline as module
else:
    module = _module


def available_variants():
    """Names of the built variants that this CPU can run, fastest first."""
    features = _cpu_features()
    return [
        name
        for name, needs in _VARIANTS
        if all(f in features for f in needs) and _import_variant(name) is not None
    ]


def build_info():
    """What was built and loaded: version, variant, OpenMP, threads, CUDA, Eigen and its SIMD."""
    from fastmlp import _cuda

    info = dict(_module.build_info())
    # The CPU modules know nothing of the separate CUDA module: ask it (see fastmlp._cuda).
    info["cuda"] = _cuda.build_info()
    info["variant"] = variant
    info["variant_chosen_by"] = _chosen_by
    info["variants_available"] = available_variants()
    return info
