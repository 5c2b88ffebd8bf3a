// X as the CPU binding takes it wherever it takes X: a dense 2-D array, or a CSR triple
// (data, indices, indptr, n_cols) as a tuple (fastmlp._sparse makes it from any SciPy sparse
// matrix). The triple is checked completely before the core reads it: dtypes, shapes,
// contiguity, indptr starting at 0, never decreasing and within data, and every index in
// [0, n_cols). Values are not checked for finiteness here (Python gives scikit-learn's error).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "array_checks.hpp"
#include "fastmlp/sparse.hpp"
#include "network_args.hpp"

namespace fastmlp::bindings {

namespace py = pybind11;

inline bool is_sparse_input(const py::handle& X) { return py::isinstance<py::tuple>(X); }

// The array whose dtype is X's: X itself, or the triple's data.
inline py::array input_values(const py::object& X) {
  if (is_sparse_input(X)) {
    const py::tuple t = py::reinterpret_borrow<py::tuple>(X);
    if (t.size() != 4) {
      throw py::value_error("sparse X must be a tuple (data, indices, indptr, n_cols), got " +
                            std::to_string(t.size()) + " items");
    }
    return as_ndarray(t[0], "X.data");
  }
  py::array a = py::array::ensure(X);
  if (!a) throw py::type_error("X must be a numpy.ndarray or a CSR tuple");
  return a;
}

namespace detail {

template <class I>
void check_csr_indices(const py::array& indices, const py::array& indptr, Index rows, Index n_data,
                       std::int64_t n_cols) {
  const I* ptr = const_data<I>(indptr);
  const I* idx = const_data<I>(indices);
  if (ptr[0] != 0) {
    throw py::value_error("X.indptr[0] is " + std::to_string(ptr[0]) + ", expected 0");
  }
  for (Index i = 0; i < rows; ++i) {
    if (ptr[i + 1] < ptr[i]) {
      throw py::value_error("X.indptr decreases at row " + std::to_string(i) +
                            ": not a valid CSR matrix");
    }
  }
  if (Index(ptr[rows]) > n_data) {
    throw py::value_error("X.indptr[-1] is " + std::to_string(ptr[rows]) + ", but X.data holds " +
                          std::to_string(n_data) + " values");
  }
  for (Index p = 0; p < Index(ptr[rows]); ++p) {
    if (idx[p] < 0 || std::int64_t(idx[p]) >= n_cols) {
      throw py::value_error("X.indices[" + std::to_string(p) + "] = " + std::to_string(idx[p]) +
                            " is not a column of X (which has " + std::to_string(n_cols) +
                            " columns)");
    }
  }
}

}  // namespace detail

// The CSR view of a checked triple whose values are T and which has n_cols columns (-1: any).
// The tuple's arrays must outlive the view.
template <class T>
CsrMatrix<T> csr_matrix(const py::object& X, std::int64_t n_cols) {
  const py::tuple t = py::reinterpret_borrow<py::tuple>(X);
  py::array data = input_values(X);
  check_array<T>(data, "X.data", {-1});
  py::array indices = as_ndarray(t[1], "X.indices");
  py::array indptr = as_ndarray(t[2], "X.indptr");
  const auto num = indices.dtype().normalized_num();
  const bool wide = num == py::dtype::of<std::int64_t>().normalized_num();
  if (wide) {
    check_array<std::int64_t>(indices, "X.indices", {data.shape(0)});
    check_array<std::int64_t>(indptr, "X.indptr", {-1});
  } else {
    check_array<std::int32_t>(indices, "X.indices", {data.shape(0)});
    check_array<std::int32_t>(indptr, "X.indptr", {-1});
  }
  const std::int64_t cols = t[3].cast<std::int64_t>();
  if (cols < 0) throw py::value_error("sparse X has n_cols " + std::to_string(cols));
  if (n_cols >= 0 && cols != n_cols) {
    throw py::value_error("X has " + std::to_string(cols) + " features, but the network takes " +
                          std::to_string(n_cols));
  }
  if (indptr.shape(0) < 1) throw py::value_error("X.indptr is empty: expected rows + 1 values");
  const Index rows = indptr.shape(0) - 1;
  if (wide) {
    detail::check_csr_indices<std::int64_t>(indices, indptr, rows, data.shape(0), cols);
  } else {
    detail::check_csr_indices<std::int32_t>(indices, indptr, rows, data.shape(0), cols);
  }
  CsrMatrix<T> m;
  m.data = const_data<T>(data);
  m.indices = indices.data();
  m.indptr = indptr.data();
  m.int64_indices = wide;
  m.rows = rows;
  m.cols = cols;
  return m;
}

}  // namespace fastmlp::bindings
