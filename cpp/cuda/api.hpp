// The host interface of fastmlp's CUDA kernels: plain C++ (no CUDA, Eigen or pybind11 header),
// so that the pybind11 binding, compiled by the host compiler, can call into code that nvcc
// compiled. The network's spec, the enums and the optimizer's settings are the shared
// definitions every backend uses (cpp/include/fastmlp/shared/definitions.hpp): nothing here
// mirrors them. Every function throws fastmlp::cuda::CudaError (a std::runtime_error) naming the
// failed CUDA call; arguments are assumed checked by the caller (the binding checks them all
// before any of these runs).
//
// Parameters live on the device in ONE contiguous buffer laid out as the flat parameter vector
// of the shared definitions: W_0 .. W_{L-1} (each (sizes[l], sizes[l+1]) row-major), then
// b_0 .. b_{L-1}. The optimizer moments and gradients use the same layout, so one kernel launch
// updates everything, and L-BFGS's flat vectors go up and down in one copy each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastmlp/shared/definitions.hpp"

namespace fastmlp::cuda {

// A failed CUDA runtime call: "fastmlp CUDA: <call> failed: <cudaGetErrorString>".
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Widest layer (input and output included) and most weight layers that the fully fused kernel
// takes.
constexpr int kFusedMaxWidth = 128;
constexpr int kFusedMaxLayers = 16;

// Whether the fully fused kernel can run this network.
inline bool fits_fused_kernel(const NetworkSpec& spec) {
  if (spec.n_layers() > kFusedMaxLayers) return false;
  for (std::int64_t s : spec.sizes) {
    if (s > kFusedMaxWidth) return false;
  }
  return true;
}

// Number of usable devices; 0, never an error, without a driver or a GPU.
int device_count();
// "" when device_count() > 0, else cudaGetErrorString of cudaGetDeviceCount's error.
std::string device_status();

struct DeviceProperties {
  std::string name;
  int major = 0;
  int minor = 0;
  std::size_t total_memory = 0;
  int multiprocessors = 0;
};
// index must be in [0, device_count()).
DeviceProperties device_properties(int index);

// The CUDA runtime compiled in (statically linked), e.g. "13.0".
std::string runtime_version();

// Host arrays of the network's parameters: coefs[l] (sizes[l], sizes[l+1]), intercepts[l]
// (sizes[l+1],), row-major and contiguous. Moments are passed as 2L pointers in the same order
// (coefs' shapes, then intercepts'): scikit-learn's order of its params.
template <class T>
struct HostParams {
  std::vector<const T*> coefs;
  std::vector<const T*> intercepts;
};
template <class T>
struct HostParamsOut {
  std::vector<T*> coefs;
  std::vector<T*> intercepts;
};

// Every layer's output z_l and local error delta_l (l = 1..L), each (rows, sizes[l]) on the
// host, to be written; empty vectors: not wanted.
template <class T>
struct HostLayers {
  std::vector<T*> activations;
  std::vector<T*> deltas;
};

// The network's output activations for X (rows, n_inputs): outputs holds either one host array
// (rows, n_outputs), or L arrays, every layer's output z_1..z_L (rows, sizes[l]).
template <class T>
void forward(int device, const NetworkSpec& spec, const HostParams<T>& params, const T* X,
             std::int64_t rows, const std::vector<T*>& outputs);

// The weighted mean loss of (X, Y) plus its L2 term, the gradients written into grads. w is
// (rows,) or nullptr. With `internals` non-empty, also every layer's output and local error
// (the errors weighted by the sample weights, not divided by their sum).
template <class T>
double backward(int device, const NetworkSpec& spec, const HostParams<T>& params, const T* X,
                const T* Y, const T* w, std::int64_t rows, T alpha, const HostParamsOut<T>& grads,
                const HostLayers<T>& internals);

// Data, parameters and optimizer moments resident on one device for a whole fit, with one CUDA
// stream of its own. Built once per fit with the network, the optimizer's settings, alpha, the
// batch size and Adam's step count so far; first/second: 2L host arrays each, as many as
// moment_count(config.solver) asks (sgd: first only; lbfgs: none).
template <class T>
class Trainer {
 public:
  Trainer(int device, const NetworkSpec& spec, const OptimizerConfig& config, double alpha,
          std::int64_t batch_size, std::int64_t t, bool fused, const T* X, const T* Y, const T* w,
          std::int64_t n_samples, const HostParams<T>& params, const std::vector<const T*>& first,
          const std::vector<const T*>& second);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Minibatches of batch_size over X[order[0..n)] (the last one may be short; order's entries
  // in [0, n_samples)), each followed by an optimizer step at `learning_rate` (sgd's current
  // rate, adam's learning_rate_init). Returns the sum over batches of batch loss * batch
  // length; adam's step count (t()) advances by the number of batches. One host sync, at the
  // end. sgd and adam only.
  double run(const std::int64_t* order, std::int64_t n, double learning_rate,
             double loss_sum = 0.0);
  std::int64_t t() const;

  // L-BFGS: the full-batch loss at the flat parameter vector `params` (host, n_params), its
  // gradient written into `grad` (host, n_params). The trained parameters stay as they are.
  double loss_and_gradient(const T* params, T* grad);

  // Replace the device's parameters and moments with these host arrays / copy them to these.
  void set_parameters(const HostParams<T>& params, const std::vector<const T*>& first,
                      const std::vector<const T*>& second);
  void get_parameters(const HostParamsOut<T>& params, const std::vector<T*>& first,
                      const std::vector<T*>& second);

  // Whether the fully fused kernel is in use (asked for, and fits_fused_kernel).
  bool fused() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastmlp::cuda
