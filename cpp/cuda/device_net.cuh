// A network's passes on one device: the parameter layout, the workspace sized for a number of
// rows, and forward / training / gradient passes over device-resident data. The Trainer and the
// one-call functions of api.hpp are built on it. Not thread-safe: one caller at a time (the
// binding serializes the calls on each Trainer).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "api.hpp"
#include "check.cuh"
#include "kernels.cuh"

namespace fastmlp::cuda {

template <class T>
class DeviceNet {
 public:
  // The device must be current (a DeviceGuard held) for the object's whole life.
  DeviceNet(int device, const NetworkSpec& spec, bool fused);

  const NetworkSpec& spec() const { return spec_; }
  cudaStream_t stream() const { return stream_.get(); }
  int sm_count() const { return sm_count_; }
  bool fused() const { return fused_; }
  PassScalars* scalars() const { return scalars_.get(); }

  // Offsets into a buffer with the parameters' layout: W_0..W_{L-1}, then b_0..b_{L-1}.
  std::int64_t coef_offset(std::int64_t l) const { return coef_offsets_[l]; }
  std::int64_t intercept_offset(std::int64_t l) const { return intercept_offsets_[l]; }
  // The 2L arrays of that layout (coefs' shapes, then intercepts'), host <-> device.
  void upload_layout(const std::vector<const T*>& arrays, T* dst);
  void download_layout(const T* src, const std::vector<T*>& arrays);

  // Grows the workspace to passes of `rows` rows (a sync point when it grows).
  void reserve_rows(std::int64_t rows);
  // Rows per chunk for passes over many rows: a workspace of about 256 MiB at most.
  std::int64_t chunk_rows() const;

  // out (rows, n_out) <- forward pass of x (rows, n_in) at params; rows <= reserved rows.
  void forward(const T* params, const T* x, std::int64_t rows, T* out);

  // One training pass over `rows` rows, row i being X[order[i]] (X[i] when order is nullptr),
  // with targets Y and weights w (nullptr: unit) indexed the same way: the weighted loss sum
  // is added to scalars()->loss_sum and the gradient SUMS (no L2 term, no 1/S) written into
  // grads (added, with accumulate). Returns the batch's weights as a device array of `rows`
  // (nullptr when w is), for the batch's weight sum.
  const T* train_pass(const T* params, const T* X, const T* Y, const T* w,
                      const std::int64_t* order, std::int64_t rows, T* grads, bool accumulate);

  // Forward pass of host X (rows, n_in), in chunks: outputs holds one host array (rows, n_out)
  // for the output, or L host arrays for every layer's output z_1..z_L (rows, sizes[l]).
  void predict_host(const T* params, const T* X, std::int64_t rows, const std::vector<T*>& outputs);

  // The full-batch loss and gradient over device data X (n, n_in), Y (n, n_out), w (n,) or
  // nullptr: grads (device, parameter layout) <- the finished gradients (mean over the weights,
  // L2 term included); returns the loss with its L2 term. With `internals` (unfused only), also
  // copies every layer's output and weighted local error to those host arrays. Synchronizes
  // once, at the end (and per chunk when copying internals).
  double loss_and_gradient(const T* params, const T* X, const T* Y, const T* w, std::int64_t n,
                           T alpha, T* grads, const HostLayers<T>* internals = nullptr);

 private:
  T* z(std::int64_t l) const { return ws_.get() + z_offsets_[l - 1]; }      // (rows, sizes[l])
  T* delta(std::int64_t l) const { return ws_.get() + d_offsets_[l - 1]; }  // (rows, sizes[l])
  // The pre-activations a_l of hidden layer l (1 <= l < L), (rows, sizes[l]), kept only where
  // the hidden activation needs_preactivation (gelu, silu): nullptr otherwise.
  T* pre(std::int64_t l) const { return keep_pre_ ? ws_.get() + pre_offsets_[l - 1] : nullptr; }
  T slope() const { return T(spec_.leaky_relu_slope); }
  // keep_pre: also write the hidden layers' pre-activations (a training pass's forward part).
  void forward_layers(const T* params, const T* x, std::int64_t rows, T* out, bool keep_pre);

  NetworkSpec spec_;
  bool fused_;
  bool keep_pre_;  // needs_preactivation(spec_.hidden)
  int sm_count_ = 1;
  Stream stream_;
  std::vector<std::int64_t> coef_offsets_, intercept_offsets_;
  std::int64_t rows_ = 0;  // the workspace holds passes of this many rows
  DeviceBuffer<T> ws_;     // z_1..z_L, delta_1..delta_L, [a_1..a_{L-1}], x, y, w of one pass
  std::vector<std::int64_t> z_offsets_, d_offsets_, pre_offsets_;
  std::int64_t x_offset_ = 0, y_offset_ = 0, w_offset_ = 0;
  DeviceBuffer<T> partial_;  // split-K partial sums of the weight gradients
  DeviceBuffer<PassScalars> scalars_;
};

}  // namespace fastmlp::cuda
