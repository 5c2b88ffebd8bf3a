// Private functions of the compiled core for the bfloat16 kernels' tests and benchmarks.
#pragma once

#include <pybind11/pybind11.h>

namespace fastmlp::bindings {

inline void add_bf16_bindings(pybind11::module_& m) { (void)m; }

}  // namespace fastmlp::bindings
