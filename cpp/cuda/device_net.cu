// DeviceNet: see device_net.cuh. The unfused pass is, per layer, one GEMM with bias and
// activation in its epilogue (plus a softmax kernel at a softmax output); then one kernel for
// the loss and the output error; then per layer one GEMM for the weight and bias gradient sums
// and one for the next delta, the derivative in its epilogue. The fused pass replaces all but
// the gradient GEMMs with one launch (fused_mlp.cuh).
#include <algorithm>
#include <utility>
#include <vector>

#include "device_net.cuh"
#include "fused_mlp.cuh"
#include "gemm.cuh"

namespace fastmlp::cuda {

template <class T>
DeviceNet<T>::DeviceNet(int device, const NetworkSpec& spec, bool fused)
    : spec_(spec),
      fused_(fused && fits_fused_kernel(spec)),
      keep_pre_(needs_preactivation(spec.hidden)),
      scalars_(1) {
  FASTMLP_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  const std::int64_t L = spec_.n_layers();
  std::int64_t offset = 0;
  for (std::int64_t l = 0; l < L; ++l) {
    coef_offsets_.push_back(offset);
    offset += spec_.sizes[l] * spec_.sizes[l + 1];
  }
  for (std::int64_t l = 0; l < L; ++l) {
    intercept_offsets_.push_back(offset);
    offset += spec_.sizes[l + 1];
  }
}

template <class T>
void DeviceNet<T>::upload_layout(const std::vector<const T*>& arrays, T* dst) {
  const std::int64_t L = spec_.n_layers();
  for (std::int64_t l = 0; l < L; ++l) {
    copy_to_device(dst + coef_offsets_[l], arrays[l],
                   std::size_t(spec_.sizes[l] * spec_.sizes[l + 1]), stream());
    copy_to_device(dst + intercept_offsets_[l], arrays[L + l], std::size_t(spec_.sizes[l + 1]),
                   stream());
  }
}

template <class T>
void DeviceNet<T>::download_layout(const T* src, const std::vector<T*>& arrays) {
  const std::int64_t L = spec_.n_layers();
  for (std::int64_t l = 0; l < L; ++l) {
    copy_to_host(arrays[l], src + coef_offsets_[l],
                 std::size_t(spec_.sizes[l] * spec_.sizes[l + 1]), stream());
    copy_to_host(arrays[L + l], src + intercept_offsets_[l], std::size_t(spec_.sizes[l + 1]),
                 stream());
  }
  stream_.synchronize();
}

template <class T>
void DeviceNet<T>::reserve_rows(std::int64_t rows) {
  if (rows <= rows_) return;
  const std::int64_t L = spec_.n_layers();
  std::int64_t offset = 0;
  std::vector<std::int64_t> z_offsets, d_offsets, pre_offsets;
  for (std::int64_t l = 1; l <= L; ++l) {
    z_offsets.push_back(offset);
    offset += rows * spec_.sizes[l];
    d_offsets.push_back(offset);
    offset += rows * spec_.sizes[l];
  }
  if (keep_pre_) {
    // The hidden layers' pre-activations (gelu, silu): their derivative is taken from a.
    for (std::int64_t l = 1; l < L; ++l) {
      pre_offsets.push_back(offset);
      offset += rows * spec_.sizes[l];
    }
  }
  const std::int64_t x_offset = offset;
  offset += rows * spec_.sizes.front();
  const std::int64_t y_offset = offset;
  offset += rows * spec_.sizes.back();
  const std::int64_t w_offset = offset;
  offset += rows;
  // resize frees the old workspace first: should the new allocation fail (out of memory), the
  // object must not go on claiming `rows_` rows in a buffer it no longer has (the next call
  // would then run its kernels on a null workspace). Commit only after the allocation.
  rows_ = 0;
  stream_.synchronize();  // queued kernels may still use the workspace that resize frees
  ws_.resize(std::size_t(offset));
  z_offsets_ = std::move(z_offsets);
  d_offsets_ = std::move(d_offsets);
  pre_offsets_ = std::move(pre_offsets);
  x_offset_ = x_offset;
  y_offset_ = y_offset;
  w_offset_ = w_offset;
  rows_ = rows;
}

template <class T>
std::int64_t DeviceNet<T>::chunk_rows() const {
  std::int64_t per_row = spec_.sizes.front() + spec_.sizes.back() + 1;
  for (std::int64_t l = 1; l <= spec_.n_layers(); ++l) {
    per_row += (keep_pre_ && l < spec_.n_layers() ? 3 : 2) * spec_.sizes[l];
  }
  const std::int64_t budget = (std::int64_t(256) << 20) / (per_row * std::int64_t(sizeof(T)));
  return std::clamp<std::int64_t>(budget, 1024, 65536);
}

template <class T>
void DeviceNet<T>::forward_layers(const T* params, const T* x, std::int64_t rows, T* out,
                                  bool keep_pre) {
  const std::int64_t L = spec_.n_layers();
  for (std::int64_t l = 0; l < L; ++l) {
    const Activation f = spec_.activation_of(l);
    const T* in = l == 0 ? x : z(l);
    T* dst = l + 1 == L ? out : z(l + 1);
    T* a = keep_pre && l + 1 < L ? pre(l + 1) : nullptr;  // nullptr unless gelu or silu
    gemm_forward<T>(in, params + coef_offsets_[l], params + intercept_offsets_[l], dst, a, rows,
                    spec_.sizes[l], spec_.sizes[l + 1],
                    f == Activation::softmax ? Activation::identity : f, slope(), sm_count_,
                    stream());
    if (f == Activation::softmax) softmax_rows<T>(dst, rows, spec_.sizes[l + 1], stream());
  }
}

namespace {

// The fused kernel's view of the network at params, writing into the given buffers.
template <class T>
FusedArgs<T> fused_args(const NetworkSpec& spec, const T* params,
                        const std::vector<std::int64_t>& coef_offsets,
                        const std::vector<std::int64_t>& intercept_offsets) {
  FusedArgs<T> a{};
  a.n_layers = int(spec.n_layers());
  for (int l = 0; l < a.n_layers; ++l) {
    a.layer[l].W = params + coef_offsets[l];
    a.layer[l].b = params + intercept_offsets[l];
    a.layer[l].fan_in = int(spec.sizes[l]);
    a.layer[l].fan_out = int(spec.sizes[l + 1]);
  }
  a.hidden = spec.hidden;
  a.output = spec.output;
  a.loss = spec.loss;
  a.slope = T(spec.leaky_relu_slope);
  return a;
}

}  // namespace

template <class T>
void DeviceNet<T>::forward(const T* params, const T* x, std::int64_t rows, T* out) {
  if (!fused_) {
    forward_layers(params, x, rows, out, false);
    return;
  }
  FusedArgs<T> a = fused_args<T>(spec_, params, coef_offsets_, intercept_offsets_);
  a.X = x;
  a.rows = rows;
  a.out = out;
  fused_forward<T>(a, stream());
}

template <class T>
const T* DeviceNet<T>::train_pass(const T* params, const T* X, const T* Y, const T* w,
                                  const std::int64_t* order, std::int64_t rows, T* grads,
                                  bool accumulate) {
  const std::int64_t L = spec_.n_layers();
  const std::int64_t n_in = spec_.sizes.front(), n_out = spec_.sizes.back();
  T* const x_batch = ws_.get() + x_offset_;
  T* const y_batch = ws_.get() + y_offset_;
  T* const w_batch = ws_.get() + w_offset_;
  const T* x = X;
  const T* wb = w;
  if (fused_) {
    // One launch: gather, forward, loss, output error and every backward delta.
    FusedArgs<T> a = fused_args<T>(spec_, params, coef_offsets_, intercept_offsets_);
    for (std::int64_t l = 0; l < L; ++l) {
      a.layer[l].z_out = l + 1 < L ? z(l + 1) : nullptr;
      a.layer[l].pre_out = l + 1 < L ? pre(l + 1) : nullptr;  // nullptr unless gelu or silu
      a.layer[l].delta_out = delta(l + 1);
    }
    a.X = X;
    a.order = order;
    a.rows = rows;
    a.Y = Y;
    a.w = w;
    a.x_out = x_batch;
    a.w_out = w_batch;
    a.loss_sum = &scalars()->loss_sum;
    fused_train<T>(a, stream());
    x = x_batch;
    wb = w ? w_batch : nullptr;
  } else {
    const T* y = Y;
    if (order) {
      gather_rows<T>(X, n_in, order, rows, x_batch, stream());
      gather_rows<T>(Y, n_out, order, rows, y_batch, stream());
      if (w) gather_rows<T>(w, 1, order, rows, w_batch, stream());
      x = x_batch;
      y = y_batch;
      wb = w ? w_batch : nullptr;
    }
    forward_layers(params, x, rows, z(L), true);
    loss_and_output_delta<T>(spec_.loss, spec_.output, z(L), y, wb, rows, n_out, delta(L),
                             &scalars()->loss_sum, stream());
  }
  // Backward: the gradient sums of layer l from delta_{l+1} and its input, then (unfused) the
  // delta below: delta_l = f'(a_l) * (delta_{l+1} . W_l^T), f' read from z_l (from a_l for
  // gelu and silu).
  for (std::int64_t l = L - 1; l >= 0; --l) {
    const T* input = l == 0 ? x : z(l);
    gemm_weight_grad<T>(input, delta(l + 1), grads + coef_offsets_[l],
                        grads + intercept_offsets_[l], rows, spec_.sizes[l], spec_.sizes[l + 1],
                        accumulate, partial_, sm_count_, stream());
    if (!fused_ && l > 0) {
      gemm_backward_delta<T>(delta(l + 1), params + coef_offsets_[l], z(l), pre(l), delta(l), rows,
                             spec_.sizes[l + 1], spec_.sizes[l], spec_.hidden, slope(), sm_count_,
                             stream());
    }
  }
  return wb;
}

template <class T>
void DeviceNet<T>::predict_host(const T* params, const T* X, std::int64_t rows,
                                const std::vector<T*>& outputs) {
  if (rows == 0) return;
  const std::int64_t L = spec_.n_layers();
  const bool every_layer = outputs.size() > 1;
  const std::int64_t n_in = spec_.sizes.front();
  const std::int64_t chunk = std::min(rows, chunk_rows());
  reserve_rows(chunk);
  T* const x_dev = ws_.get() + x_offset_;
  for (std::int64_t start = 0; start < rows; start += chunk) {
    const std::int64_t n = std::min(chunk, rows - start);
    copy_to_device(x_dev, X + start * n_in, std::size_t(n * n_in), stream());
    if (every_layer) {
      // The fused kernel keeps hidden outputs in shared memory: the layer-by-layer pass leaves
      // each one in the workspace.
      forward_layers(params, x_dev, n, z(L), false);
      for (std::int64_t l = 1; l <= L; ++l) {
        copy_to_host(outputs[l - 1] + start * spec_.sizes[l], z(l), std::size_t(n * spec_.sizes[l]),
                     stream());
      }
    } else {
      forward(params, x_dev, n, z(L));
      copy_to_host(outputs[0] + start * spec_.n_outputs(), z(L), std::size_t(n * spec_.n_outputs()),
                   stream());
    }
  }
  stream_.synchronize();
}

template <class T>
double DeviceNet<T>::loss_and_gradient(const T* params, const T* X, const T* Y, const T* w,
                                       std::int64_t n, T alpha, T* grads,
                                       const HostLayers<T>* internals) {
  const std::int64_t L = spec_.n_layers();
  const std::int64_t n_in = spec_.sizes.front(), n_out = spec_.sizes.back();
  const std::int64_t n_params = spec_.n_params();
  const bool copy_internals =
      internals && (!internals->activations.empty() || !internals->deltas.empty());
  if (copy_internals && fused_) {
    throw CudaError("fastmlp CUDA: layer internals need the unfused pass");
  }
  PassScalars* s = scalars();
  FASTMLP_CUDA_CHECK(cudaMemsetAsync(s, 0, sizeof(PassScalars), stream()));
  FASTMLP_CUDA_CHECK(cudaMemsetAsync(grads, 0, sizeof(T) * std::size_t(n_params), stream()));
  add_sum<T>(w, n, false, &s->weight_sum, stream());
  if (alpha != T(0)) add_sum<T>(params, spec_.n_coefs(), true, &s->sq_norm, stream());
  const std::int64_t chunk = std::max<std::int64_t>(1, std::min(n, chunk_rows()));
  reserve_rows(chunk);
  for (std::int64_t start = 0; start < n; start += chunk) {
    const std::int64_t rows = std::min(chunk, n - start);
    train_pass(params, X + start * n_in, Y + start * n_out, w ? w + start : nullptr, nullptr, rows,
               grads, true);
    if (copy_internals) {
      // The next chunk overwrites the workspace: copy this one's layers out first (stream
      // order keeps the copies before the next chunk's kernels).
      for (std::int64_t l = 1; l <= L; ++l) {
        const std::size_t count = std::size_t(rows * spec_.sizes[l]);
        if (!internals->activations.empty()) {
          copy_to_host(internals->activations[l - 1] + start * spec_.sizes[l], z(l), count,
                       stream());
        }
        if (!internals->deltas.empty()) {
          copy_to_host(internals->deltas[l - 1] + start * spec_.sizes[l], delta(l), count,
                       stream());
        }
      }
    }
  }
  finish_gradients<T>(grads, params, n_params, spec_.n_coefs(), alpha, s, sm_count_, stream());
  PassScalars host{};
  copy_to_host(&host, s, 1, stream());
  stream_.synchronize();
  const double weight_sum = host.weight_sum;
  if (!(weight_sum > 0.0)) {
    // No weight at all: no loss and no gradient (not 0/0), as the CPU core.
    FASTMLP_CUDA_CHECK(cudaMemsetAsync(grads, 0, sizeof(T) * std::size_t(n_params), stream()));
    return 0.0;
  }
  double value = host.loss_sum / weight_sum;
  if (alpha != T(0)) value += 0.5 * double(alpha) * host.sq_norm / weight_sum;
  return value;
}

template class DeviceNet<float>;
template class DeviceNet<double>;

}  // namespace fastmlp::cuda
