// The host interface of fastmlp's CUDA kernels: plain C++ (no CUDA, Eigen or pybind11 header),
// so that the pybind11 binding, compiled by the host compiler, can call into code that nvcc
// compiled. Every function throws fastmlp::cuda::CudaError (a std::runtime_error) naming the
// failed CUDA call; arguments are assumed checked by the caller (the binding checks them all
// before any of these runs).
//
// Parameters live on the device in ONE contiguous buffer laid out as the CPU core orders its
// arrays: W_0 .. W_{L-1} (each (sizes[l], sizes[l+1]) row-major), then b_0 .. b_{L-1}. The
// optimizer moments and gradients use the same layout, so one kernel launch updates everything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace fastmlp::cuda {

// The same values, in the same order, as fastmlp::Activation, fastmlp::Loss, fastmlp::Solver:
// the binding converts with static_cast and static_asserts the correspondence.
enum class Act : int { identity, logistic, tanh, relu, step, softmax, exp };
enum class LossKind : int { squared_error, log_loss, poisson };
enum class SolverKind : int { sgd, adam };

// A failed CUDA runtime call: "fastmlp CUDA: <call> failed: <cudaGetErrorString>".
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Widest layer (input and output included) that the fully fused kernel takes.
constexpr int kFusedMaxWidth = 128;

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

// A network's shape: sizes = input, hidden..., output (at least two, each >= 1).
struct NetSpec {
  std::vector<std::int64_t> sizes;
  Act hidden = Act::relu;
  Act output = Act::identity;
  LossKind loss = LossKind::squared_error;

  std::int64_t n_layers() const { return std::int64_t(sizes.size()) - 1; }
  // Weights of all layers.
  std::int64_t n_coefs() const {
    std::int64_t n = 0;
    for (std::int64_t l = 0; l < n_layers(); ++l) n += sizes[l] * sizes[l + 1];
    return n;
  }
  // Weights and intercepts.
  std::int64_t n_params() const {
    std::int64_t n = n_coefs();
    for (std::int64_t l = 0; l < n_layers(); ++l) n += sizes[l + 1];
    return n;
  }
  // Every size <= kFusedMaxWidth.
  bool is_narrow() const {
    for (std::int64_t s : sizes) {
      if (s > kFusedMaxWidth) return false;
    }
    return true;
  }
};

// Host arrays in the CPU core's layout: coefs[l] (sizes[l], sizes[l+1]), intercepts[l]
// (sizes[l+1],), row-major and contiguous.
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

// The stochastic solvers' settings for one epoch (see cpp/include/fastmlp/optimizer.hpp).
struct StepConfig {
  double learning_rate = 0.001;  // sgd: the current rate; adam: learning_rate_init
  double momentum = 0.9;
  bool nesterov = true;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-8;
};

// out (rows, n_outputs) <- the network's output activations for X (rows, n_inputs).
template <class T>
void forward(int device, const NetSpec& spec, const HostParams<T>& params, const T* X,
             std::int64_t rows, T* out);

// fastmlp::loss_and_gradients on the device: returns the weighted mean loss plus its L2 term
// and writes the gradients into grads. w is (rows,) or nullptr.
template <class T>
double loss_and_gradients(int device, const NetSpec& spec, const HostParams<T>& params, const T* X,
                          const T* Y, const T* w, std::int64_t rows, T alpha,
                          const HostParamsOut<T>& grads);

// Data, parameters and optimizer moments resident on one device for a whole fit, with one
// CUDA stream of its own. first/second: 2L host arrays each (coefs' shapes, then intercepts'),
// second empty for sgd.
template <class T>
class Trainer {
 public:
  Trainer(int device, const NetSpec& spec, SolverKind solver, bool fused, const T* X, const T* Y,
          const T* w, std::int64_t n_samples, const HostParams<T>& params,
          const std::vector<const T*>& first, const std::vector<const T*>& second);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One epoch over X[order] in batches of batch_size (order's entries in [0, n_samples)):
  // returns sum over batches of batch loss * batch length; t is adam's step count, advanced
  // by the number of batches (sgd leaves it). Nothing syncs with the host until the end.
  double train_epoch(const std::int64_t* order, std::int64_t n_order, std::int64_t batch_size,
                     T alpha, const StepConfig& config, std::int64_t& t);
  void download(const HostParamsOut<T>& params, const std::vector<T*>& first,
                const std::vector<T*>& second);
  void upload(const HostParams<T>& params);
  // The loss and gradients of all resident rows at these parameters (held apart from the
  // trained ones, which stay as they were).
  double loss_and_gradients(const HostParams<T>& params, T alpha, const HostParamsOut<T>& grads);
  // out (rows, n_outputs) <- forward pass of host X (rows, n_inputs) with the resident weights.
  void predict(const T* X, std::int64_t rows, T* out);

  std::int64_t n_samples() const;
  // Whether the fully fused kernel is in use (asked for, and the network is narrow).
  bool fused() const;

  struct Impl;

 private:
  void upload_all(const T* X, const T* Y, const T* w, std::int64_t n_samples,
                  const HostParams<T>& params, const std::vector<const T*>& first,
                  const std::vector<const T*>& second);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastmlp::cuda
