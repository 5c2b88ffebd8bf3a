// Private functions of the compiled core for the fp32/fp64 GEMM kernels' tests and benchmarks:
// they call the seam's kernels directly, so that each can be checked and timed on any shape.
#pragma once

#include <pybind11/pybind11.h>

namespace fastmlp::bindings {

inline void add_packed_gemm_bindings(pybind11::module_& m) { (void)m; }

}  // namespace fastmlp::bindings
