// Private functions of the compiled core for the fp32/fp64 GEMM kernels' tests and benchmarks:
// they call the seam's kernels directly, so that each can be checked and timed on any shape,
// and force the seam's choice for everything else (FASTMLP_GEMM_KERNEL sets it at import).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "array_checks.hpp"
#include "fastmlp/layer_products.hpp"
#include "fastmlp/packed_gemm.hpp"
#include "fastmlp/parallel.hpp"
#include "fastmlp/small_gemm.hpp"

namespace fastmlp::bindings {

namespace py = pybind11;

inline const char* kernel_name(Kernel kernel) {
  switch (kernel) {
    case Kernel::eigen: return "eigen";
    case Kernel::small_gemm: return "small_gemm";
    case Kernel::packed: return "packed";
    case Kernel::packed_transposed: return "packed_transposed";
  }
  return "?";
}

inline Kernel kernel_from_name(const std::string& name, const char* where) {
  if (name == "eigen") return Kernel::eigen;
  if (name == "small_gemm") return Kernel::small_gemm;
  if (name == "packed") return Kernel::packed;
  if (name == "packed_transposed") return Kernel::packed_transposed;
  throw py::value_error(std::string(where) + ": unknown GEMM kernel '" + name +
                        "', expected one of 'eigen', 'small_gemm', 'packed', 'packed_transposed'");
}

template <class T>
bool is_dtype(const py::dtype& dtype) {
  return dtype.normalized_num() == py::dtype::of<T>().normalized_num();
}

// A 2-D array's strides in elements (any sign or order: transposed and sliced views welcome).
template <class T>
StridedOperand<T> strided(const py::array& a, const char* name) {
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  const auto step = py::ssize_t(sizeof(T));
  if (a.strides(0) % step != 0 || a.strides(1) % step != 0) {
    throw py::value_error(std::string(name) + "'s strides must be whole elements");
  }
  return {static_cast<const T*>(a.data()), Index(a.strides(0) / step), Index(a.strides(1) / step)};
}

// C (m, n) <- [C +] A (m, k) B (k, n) [+ bias] with the named kernel; A and B may be any
// strided views, C must be C-contiguous (it may be misaligned).
template <class T>
void gemm_with(const std::string& kernel_name, const py::array& A, const py::array& B, py::array& C,
               const std::optional<py::array>& bias, bool accumulate, int threads) {
  const Kernel kernel = kernel_from_name(kernel_name, "_gemm");
  const StridedOperand<T> a = strided<T>(A, "A"), b = strided<T>(B, "B");
  const Index m = A.shape(0), k = A.shape(1), n = B.shape(1);
  if (B.shape(0) != k) throw py::value_error("_gemm: A and B do not chain");
  check_array<T>(C, "C", {m, n}, true);
  const T* bias_data = nullptr;
  if (bias) {
    check_array<T>(*bias, "bias", {n});
    bias_data = const_data<T>(*bias);
  }
  if (threads < 1) throw py::value_error("_gemm: threads must be at least 1");
  T* c = mutable_data<T>(C);
  py::gil_scoped_release release;
  ScopedEigenThreads eigen_threads(threads);
  switch (kernel) {
    case Kernel::packed:
      packed_gemm<T>(m, n, k, a, b, c, n, bias_data, accumulate, BlockEpilogue(), threads);
      return;
    case Kernel::packed_transposed:
      packed_gemm_transposed<T>(m, n, k, a, b, c, n, bias_data, accumulate, threads);
      return;
    case Kernel::small_gemm: {
      // small_gemm reads B by rows: a contiguous copy where B is not (so that timing it times
      // the kernel, not the copy, where B already is).
      const bool rows_contiguous = b.col_stride == 1 && b.row_stride == n;
      RowMatrix<T> b_rows(rows_contiguous ? 0 : k, rows_contiguous ? 0 : n);
      if (!rows_contiguous) {
        for (Index p = 0; p < k; ++p) {
          for (Index j = 0; j < n; ++j) b_rows(p, j) = b.data[p * b.row_stride + j * b.col_stride];
        }
      }
      RowMatrix<T> before = accumulate ? RowMatrix<T>(MatrixMap<T>(c, m, n)) : RowMatrix<T>();
      small_gemm<T>(m, n, k, a, rows_contiguous ? b.data : b_rows.data(), n, bias_data, c, n);
      if (accumulate) MatrixMap<T>(c, m, n) += before;
      return;
    }
    case Kernel::eigen: {
      using Stride = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
      using View = Eigen::Map<const RowMatrix<T>, 0, Stride>;
      const View av(a.data, m, k, Stride(a.row_stride, a.col_stride));
      const View bv(b.data, k, n, Stride(b.row_stride, b.col_stride));
      MatrixMap<T> cv(c, m, n);
      if (!accumulate) cv.setZero();
      if (bias_data) cv.rowwise() += ConstVectorMap<T>(bias_data, n).transpose();
      cv.noalias() += av * bv;
      return;
    }
  }
}

inline void add_packed_gemm_bindings(py::module_& m) {
  if (const char* env = std::getenv("FASTMLP_GEMM_KERNEL")) {
    const std::string name = env;
    if (!name.empty()) set_forced_kernel(kernel_from_name(name, "FASTMLP_GEMM_KERNEL"));
  }
  m.def(
      "_force_gemm_kernel",
      [](std::optional<std::string> name) {
        const std::optional<Kernel> previous = forced_kernel();
        set_forced_kernel(name
                              ? std::optional<Kernel>(kernel_from_name(*name, "_force_gemm_kernel"))
                              : std::nullopt);
        return previous ? std::optional<std::string>(kernel_name(*previous)) : std::nullopt;
      },
      py::arg("name"),
      "Private: every dense product of this module uses the named GEMM kernel ('eigen', "
      "'small_gemm', 'packed', 'packed_transposed'), or the seam's rules again for None. "
      "Returns the previous one.");
  m.def(
      "_gemm_kernel_for",
      [](Index rows, Index n, Index k, const py::object& dtype, int threads) {
        ScopedEigenThreads scoped(threads);
        const bool is_double = is_dtype<double>(py::dtype::from_args(dtype));
        return std::string(kernel_name(is_double ? choose_kernel<double>(rows, n, k)
                                                 : choose_kernel<float>(rows, n, k)));
      },
      py::arg("m"), py::arg("n"), py::arg("k"), py::arg("dtype"), py::arg("threads") = 1,
      "Private: the kernel the seam chooses for C (m, n) = A (m, k) B (k, n) at this thread "
      "count.");
  m.def(
      "_gemm",
      [](const py::array& A, const py::array& B, const std::string& kernel, int threads,
         std::optional<py::array> bias, std::optional<py::array> out, bool accumulate) {
        if (A.ndim() != 2 || B.ndim() != 2) throw py::value_error("_gemm: A and B must be 2-D");
        py::array C =
            out ? *out : py::array(A.dtype(), std::vector<py::ssize_t>{A.shape(0), B.shape(1)});
        if (!out && accumulate) throw py::value_error("_gemm: accumulate needs out");
        if (!is_dtype<float>(A.dtype()) && !is_dtype<double>(A.dtype())) {
          throw py::type_error("_gemm: A must be float32 or float64");
        }
        if (B.dtype().normalized_num() != A.dtype().normalized_num()) {
          throw py::type_error("_gemm: B must have A's dtype");
        }
        if (is_dtype<double>(A.dtype())) {
          gemm_with<double>(kernel, A, B, C, bias, accumulate, threads);
        } else {
          gemm_with<float>(kernel, A, B, C, bias, accumulate, threads);
        }
        return C;
      },
      py::arg("A"), py::arg("B"), py::kw_only(), py::arg("kernel") = "packed",
      py::arg("threads") = 1, py::arg("bias") = py::none(), py::arg("out") = py::none(),
      py::arg("accumulate") = false,
      "Private: C = [out +] A B [+ bias] with the named kernel on `threads` threads; A and B may "
      "be strided views (transposes, slices), out a C-contiguous (m, n) array.");
  m.def(
      "_gemm_blocking",
      [](const py::object& dtype) {
        const bool is_double = is_dtype<double>(py::dtype::from_args(dtype));
        const PackedGemmBlocking b =
            is_double ? packed_gemm_blocking<double>() : packed_gemm_blocking<float>();
        py::dict d;
        d["mr"] = b.mr;
        d["nr"] = b.nr;
        d["kc"] = b.kc;
        d["mc"] = b.mc;
        d["nc"] = b.nc;
        return d;
      },
      py::arg("dtype"), "Private: the packed kernel's register and cache blocks for dtype.");
}

}  // namespace fastmlp::bindings
