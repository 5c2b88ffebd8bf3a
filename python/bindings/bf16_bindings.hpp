// Private functions of the compiled core for the bfloat16 kernels' tests and benchmarks
// (tests/test_bf16_kernels.py, bench/): which kernel runs and why not, the rounding helper, and
// the kernels themselves on any float32 operands, strided or transposed, by strides alone.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

#include "array_checks.hpp"
#include "fastmlp/bf16_gemm.hpp"

namespace fastmlp::bindings {

namespace bf16_args {

inline Bf16Kernel kernel_from(const std::optional<std::string>& name) {
  if (!name) {
    const Bf16Kernel k = bf16_kernel();
    if (k == Bf16Kernel::none) {
      throw std::runtime_error("no bf16 kernel runs here: " + bf16_unavailable_reason());
    }
    return k;
  }
  if (*name == "amx") return Bf16Kernel::amx;
  if (*name == "avx512_bf16") return Bf16Kernel::avx512_bf16;
  throw py::value_error("kernel must be 'amx', 'avx512_bf16' or None, not '" + *name + "'");
}

// A 2-D float32 array of any strides (in whole elements) as the operand x or, transposed, x.T.
inline StridedOperand<float> operand(const py::array& x, const char* name, bool transposed,
                                     Index& rows, Index& cols) {
  if (x.dtype().normalized_num() != py::dtype::of<float>().normalized_num() || x.ndim() != 2) {
    throw py::type_error(std::string(name) + " must be a 2-D float32 array");
  }
  if (x.strides(0) % py::ssize_t(sizeof(float)) || x.strides(1) % py::ssize_t(sizeof(float))) {
    throw py::value_error(std::string(name) + " has strides that are not whole elements");
  }
  const Index s0 = x.strides(0) / py::ssize_t(sizeof(float));
  const Index s1 = x.strides(1) / py::ssize_t(sizeof(float));
  const auto* data = static_cast<const float*>(x.data());
  rows = transposed ? x.shape(1) : x.shape(0);
  cols = transposed ? x.shape(0) : x.shape(1);
  return transposed ? StridedOperand<float>{data, s1, s0} : StridedOperand<float>{data, s0, s1};
}

// C (m, n): rows may be strided (ldc >= n), columns contiguous.
inline float* output(py::array& c, Index m, Index n, Index& ldc) {
  if (c.dtype().normalized_num() != py::dtype::of<float>().normalized_num() || c.ndim() != 2 ||
      c.shape(0) != m || c.shape(1) != n) {
    throw py::value_error("c must be a float32 array of shape (" + std::to_string(m) + ", " +
                          std::to_string(n) + ")");
  }
  if (m == 0 || n == 0) {
    ldc = n;
    return static_cast<float*>(c.mutable_data());
  }
  if (!c.writeable() || (n > 1 && c.strides(1) != py::ssize_t(sizeof(float))) ||
      c.strides(0) % py::ssize_t(sizeof(float)) || (m > 1 && c.strides(0) < py::ssize_t(4 * n))) {
    throw py::value_error("c must be writeable with contiguous rows");
  }
  ldc = m > 1 ? c.strides(0) / py::ssize_t(sizeof(float)) : n;
  return static_cast<float*>(c.mutable_data());
}

}  // namespace bf16_args

inline void add_bf16_bindings(py::module_& m) {
  m.def(
      "_bf16_kernel", [] { return std::string(bf16_kernel_name(bf16_kernel())); },
      "The bf16 kernel that runs here: 'amx', 'avx512_bf16' or 'none'.");
  m.def("_bf16_unavailable_reason", &bf16_unavailable_reason,
        "Why _bf16_kernel() is 'none'; empty when a kernel runs.");
  m.def(
      "_bf16_kernel_available",
      [](const std::string& name) { return bf16_kernel_available(bf16_args::kernel_from(name)); },
      py::arg("kernel"));
  m.def(
      "_round_to_bf16",
      [](const py::array& a) {
        check_array<float>(a, "a", std::vector<py::ssize_t>(std::size_t(a.ndim()), -1));
        py::array_t<float> out(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
        round_to_bf16(static_cast<const float*>(a.data()), out.mutable_data(), Index(a.size()));
        return out;
      },
      py::arg("a"),
      "a (float32, C-contiguous) rounded to bf16 (nearest, ties to even), as float32.");
  m.def(
      "_bf16_gemm",
      [](const py::array& a, const py::array& b, std::optional<std::string> kernel_name,
         bool trans_a, bool trans_b, std::optional<py::array> c, int threads,
         bool check_epilogue) -> py::object {
        const Bf16Kernel kernel = bf16_args::kernel_from(kernel_name);
        Index m, k, kb, n, ldc;
        const auto A = bf16_args::operand(a, "a", trans_a, m, k);
        const auto B = bf16_args::operand(b, "b", trans_b, kb, n);
        if (kb != k) {
          throw py::value_error("inner dimensions differ: " + std::to_string(k) + " and " +
                                std::to_string(kb));
        }
        const bool accumulate = c.has_value();
        py::array out = accumulate ? *c : py::array_t<float>({m, n});
        float* C = bf16_args::output(out, m, n, ldc);
        // With check_epilogue: how often the epilogue saw each element, and C as it saw it.
        py::array_t<std::int32_t> counts({check_epilogue ? m : 0, check_epilogue ? n : 0});
        py::array_t<float> seen({check_epilogue ? m : 0, check_epilogue ? n : 0});
        std::int32_t* cnt = counts.mutable_data();
        float* sn = seen.mutable_data();
        auto record = [&](Index row, Index col, Index rows, Index cols) {
          for (Index i = row; i < row + rows; ++i) {
            for (Index j = col; j < col + cols; ++j) {
              cnt[i * n + j] += 1;
              sn[i * n + j] = C[i * ldc + j];
            }
          }
        };
        if (check_epilogue) {
          std::fill(cnt, cnt + m * n, 0);
        }
        {
          py::gil_scoped_release release;
          bf16_gemm(kernel, m, n, k, A, B, C, ldc, accumulate,
                    check_epilogue ? BlockEpilogue(record) : BlockEpilogue(), threads);
        }
        if (check_epilogue) return py::make_tuple(out, counts, seen);
        return out;
      },
      py::arg("a"), py::arg("b"), py::arg("kernel") = py::none(), py::arg("trans_a") = false,
      py::arg("trans_b") = false, py::arg("c") = py::none(), py::arg("threads") = 0,
      py::arg("check_epilogue") = false,
      "op(a) @ op(b) on bf16-rounded operands with fp32 accumulation (op: transpose if trans_*); "
      "with c, adds into c in place and returns it; with check_epilogue, returns (C, counts, "
      "seen): how many times the epilogue saw each element and its value then.");
  m.def(
      "_bf16_gemm_timed",
      [](const py::array& a, const py::array& b, py::array out,
         std::optional<std::string> kernel_name, bool trans_a, bool trans_b, int threads,
         bool prepacked_b) {
        const Bf16Kernel kernel = bf16_args::kernel_from(kernel_name);
        Index m, k, kb, n, ldc;
        const auto A = bf16_args::operand(a, "a", trans_a, m, k);
        const auto B = bf16_args::operand(b, "b", trans_b, kb, n);
        if (kb != k) throw py::value_error("inner dimensions differ");
        float* C = bf16_args::output(out, m, n, ldc);
        py::gil_scoped_release release;
        Bf16PackedB packed;
        if (prepacked_b) pack_bf16_b(kernel, k, n, B, packed);
        // One thread: the calling thread's CPU time, which a shared machine's other processes
        // do not inflate; more: wall time.
        const clockid_t clock = threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
        timespec start, end;
        clock_gettime(clock, &start);
        if (prepacked_b) {
          bf16_gemm(kernel, m, n, k, A, packed, C, ldc, false, {}, threads);
        } else {
          bf16_gemm(kernel, m, n, k, A, B, C, ldc, false, {}, threads);
        }
        clock_gettime(clock, &end);
        return double(end.tv_sec - start.tv_sec) + 1e-9 * double(end.tv_nsec - start.tv_nsec);
      },
      py::arg("a"), py::arg("b"), py::arg("out"), py::arg("kernel") = py::none(),
      py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("threads") = 0,
      py::arg("prepacked_b") = false,
      "Seconds one product takes (B's packing included unless prepacked_b), written into out: "
      "CPU time of the calling thread when threads == 1, else wall time.");
}

}  // namespace fastmlp::bindings
