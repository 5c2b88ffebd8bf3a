// The arguments that describe a network and its training state, checked and converted the same
// way for fastmlp._core (the CPU) and fastmlp._cuda_core (the GPU), so that both raise the same
// exceptions with the same messages. Each function raises before anything is computed. Eigen-free:
// it needs only the shared definitions (cpp/include/fastmlp/shared/).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "array_checks.hpp"
#include "fastmlp/shared/definitions.hpp"

namespace fastmlp::bindings {

namespace py = pybind11;

inline py::array as_ndarray(const py::handle& obj, const std::string& name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(name + " must be a numpy.ndarray, got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
  return py::reinterpret_borrow<py::array>(obj);
}

// By type number: a dtype from pickle or a memory map equals NumPy's but is another object.
inline bool is_float32(const py::array& X) {
  return X.dtype().normalized_num() == py::dtype::of<float>().normalized_num();
}

inline void check_floating(const py::array& X) {
  if (!is_float32(X) && X.dtype().normalized_num() != py::dtype::of<double>().normalized_num()) {
    throw py::type_error("X has dtype " + std::string(py::str(X.dtype())) +
                         ", expected float32 or float64");
  }
}

// Per-layer arrays of one list (coefs, intercepts, gradients, optimizer moments), checked
// against the layer sizes: matrices (sizes[l], sizes[l+1]), vectors (sizes[l+1],). Items are
// named from first_index on. The caller's list keeps the arrays alive for the whole call.
template <class T>
std::vector<T*> layer_pointers(const py::list& arrays, const std::string& name,
                               const std::vector<std::int64_t>& sizes, bool matrices,
                               bool writeable, std::size_t first_index = 0) {
  const std::size_t n_layers = sizes.size() - 1;
  if (arrays.size() != n_layers) {
    throw py::value_error(name + " holds " + std::to_string(arrays.size()) + " arrays, expected " +
                          std::to_string(n_layers) + " (one per layer)");
  }
  std::vector<T*> pointers;
  for (std::size_t l = 0; l < n_layers; ++l) {
    const std::string item = name + "[" + std::to_string(first_index + l) + "]";
    py::array a = as_ndarray(arrays[l], item);
    if (matrices) {
      check_array<T>(a, item, {sizes[l], sizes[l + 1]}, writeable);
    } else {
      check_array<T>(a, item, {sizes[l + 1]}, writeable);
    }
    pointers.push_back(static_cast<T*>(const_cast<void*>(a.data())));
  }
  return pointers;
}

// Optimizer moments, as scikit-learn orders its params: `count` arrays, the coefs' shapes then
// the intercepts' (count is 2 L, or 0 where the solver keeps none, as sgd's second moments).
template <class T>
std::vector<T*> moment_pointers(const py::list& arrays, const std::string& name,
                                const std::vector<std::int64_t>& sizes, std::size_t count,
                                bool writeable) {
  const std::size_t L = sizes.size() - 1;
  if (arrays.size() != count) {
    throw py::value_error(name + " holds " + std::to_string(arrays.size()) + " arrays, expected " +
                          std::to_string(count) +
                          (count ? " (coefs' shapes, then intercepts')" : " for this solver"));
  }
  if (count == 0) return {};
  py::list coef_part, intercept_part;
  for (std::size_t l = 0; l < L; ++l) {
    coef_part.append(arrays[l]);
    intercept_part.append(arrays[L + l]);
  }
  std::vector<T*> out = layer_pointers<T>(coef_part, name, sizes, true, writeable);
  for (T* p : layer_pointers<T>(intercept_part, name, sizes, false, writeable, L)) {
    out.push_back(p);
  }
  return out;
}

// The network whose layers coefs[l] (fan_in, fan_out) describe: its sizes, activations, loss and
// leaky_relu slope, checked by the shared rules (check_spec).
inline NetworkSpec network_spec(const py::list& coefs, const std::string& activation,
                                const std::string& output_activation, Loss loss,
                                double leaky_relu_slope) {
  if (coefs.size() == 0) throw py::value_error("coefs is empty: a network needs a layer");
  if (!(leaky_relu_slope > 0.0) || !std::isfinite(leaky_relu_slope)) {
    throw py::value_error("leaky_relu_slope must be a float in the range (0.0, inf), got " +
                          std::string(py::str(py::float_(leaky_relu_slope))));
  }
  NetworkSpec net;
  net.leaky_relu_slope = leaky_relu_slope;
  net.hidden = parse_activation(activation);
  net.output = parse_activation(output_activation);
  net.loss = loss;
  for (std::size_t l = 0; l < coefs.size(); ++l) {
    py::array a = as_ndarray(coefs[l], "coefs[" + std::to_string(l) + "]");
    if (a.ndim() != 2) {
      throw py::value_error("coefs[" + std::to_string(l) + "] has shape " + shape_string(a) +
                            ", expected a 2-D (fan_in, fan_out) array");
    }
    if (l == 0) net.sizes.push_back(a.shape(0));
    net.sizes.push_back(a.shape(1));
  }
  check_spec(net);
  return net;
}

// Forward passes need no loss, but the spec's check asks for one that fits the output:
// squared_error takes every output but softmax, which takes log_loss.
inline Loss any_loss_for(const std::string& output_activation) {
  return output_activation == "softmax" ? Loss::log_loss : Loss::squared_error;
}

// A flat parameter vector (L-BFGS's): 1-D, n_params long, of dtype T.
template <class T>
T* flat_pointer(const py::array& a, const std::string& name, std::int64_t n_params,
                bool writeable) {
  check_array<T>(a, name, {n_params}, writeable);
  return static_cast<T*>(const_cast<void*>(a.data()));
}

template <class T>
const T* sample_weight_pointer(const py::object& sample_weight, py::ssize_t n_samples) {
  if (sample_weight.is_none()) return nullptr;
  py::array w = as_ndarray(sample_weight, "sample_weight");
  check_array<T>(w, "sample_weight", {n_samples});
  return const_data<T>(w);
}

// The epoch's sample order (int64, 1-D), every index checked to be a row of X (n_rows rows).
inline const std::int64_t* order_pointer(const py::array& order, std::int64_t n_rows) {
  check_array<std::int64_t>(order, "order", {-1});
  const std::int64_t* idx = const_data<std::int64_t>(order);
  for (py::ssize_t i = 0; i < order.shape(0); ++i) {
    if (idx[i] < 0 || idx[i] >= n_rows) {
      throw py::index_error("order[" + std::to_string(i) + "] = " + std::to_string(idx[i]) +
                            " is not a row of X (which has " + std::to_string(n_rows) + " rows)");
    }
  }
  return idx;
}

}  // namespace fastmlp::bindings
