// Elementwise and reduction kernels (see kernels.cuh). Grid-stride loops over 64-bit indices
// with grids capped well below the launch limits, so any size is covered.
#include <algorithm>

#include "check.cuh"
#include "device_math.cuh"
#include "kernels.cuh"

namespace fastmlp::cuda {

namespace {

constexpr int kThreads = 256;

int grid_for(std::int64_t n, std::int64_t cap = 65535) {
  return int(std::max<std::int64_t>(1, std::min<std::int64_t>((n + kThreads - 1) / kThreads, cap)));
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const T* __restrict__ src, std::int64_t cols,
                  const std::int64_t* __restrict__ order, std::int64_t rows, T* __restrict__ dst) {
  const std::int64_t n = rows * cols;
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t i = e / cols, c = e % cols;
    dst[e] = src[order[i] * cols + c];
  }
}

// One warp per row: the maximum, then exp(v - max) and its sum, then the division.
template <class T>
__global__ void __launch_bounds__(kThreads)
    softmax_kernel(T* __restrict__ z, std::int64_t rows, std::int64_t cols) {
  const int lane = threadIdx.x % 32;
  const std::int64_t warps_per_grid = std::int64_t(gridDim.x) * (blockDim.x / 32);
  for (std::int64_t r = std::int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
       r += warps_per_grid) {
    T* row = z + r * cols;
    T top = row[0];
    for (std::int64_t c = lane; c < cols; c += 32) top = row[c] > top ? row[c] : top;
    for (int offset = 16; offset > 0; offset /= 2) {
      const T other = __shfl_xor_sync(0xffffffffu, top, offset);
      top = other > top ? other : top;
    }
    T sum = T(0);
    for (std::int64_t c = lane; c < cols; c += 32) {
      const T e = scalar::exp_of(T(row[c] - top));
      row[c] = e;
      sum += e;
    }
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    for (std::int64_t c = lane; c < cols; c += 32) row[c] /= sum;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    loss_delta_kernel(Loss loss, Activation output, const T* __restrict__ h,
                      const T* __restrict__ y, const T* __restrict__ w, std::int64_t rows,
                      std::int64_t cols, T* __restrict__ delta, double* loss_sum) {
  double local = 0.0;
  const std::int64_t n = rows * cols;
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t i = e / cols;
    const double l = scalar::loss_term(loss, output, h[e], y[e]);
    local += w ? double(w[i]) * l : l;
    delta[e] = weighted_output_error(loss, output, h[e], y[e], w, i);
  }
  local = block_sum(local);
  if (threadIdx.x == 0) atomicAdd(loss_sum, local);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    sum_kernel(const T* __restrict__ x, std::int64_t n, bool square, double* out) {
  double local = 0.0;
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const double v = x ? double(x[e]) : 1.0;
    local += square ? v * v : v;
  }
  local = block_sum(local);
  if (threadIdx.x == 0) atomicAdd(out, local);
}

// One block: the batch's weight sum, then thread 0 does the bookkeeping, in the CPU's order:
// batch loss = loss_sum / S + alpha/2 * ||W||^2 / S, accumulated * batch length.
template <class T>
__global__ void __launch_bounds__(kThreads)
    finish_batch_kernel(const T* __restrict__ w, std::int64_t rows, double alpha, bool want_sq_norm,
                        PassScalars* s) {
  double local = 0.0;
  if (w) {
    for (std::int64_t i = threadIdx.x; i < rows; i += blockDim.x) local += double(w[i]);
  }
  local = block_sum(local);
  if (threadIdx.x == 0) {
    const double weight_sum = w ? local : double(rows);
    double batch_loss = 0.0;
    if (weight_sum > 0.0) {
      batch_loss = s->loss_sum / weight_sum;
      if (want_sq_norm) batch_loss += 0.5 * alpha * s->sq_norm / weight_sum;
      s->scale = double(T(1) / T(weight_sum));
    } else {
      s->scale = 0.0;  // a batch without weight: no loss, no gradient (not 0/0)
    }
    s->accumulated += batch_loss * double(rows);
    s->weight_sum = weight_sum;
    s->loss_sum = 0.0;
    if (want_sq_norm) s->sq_norm = 0.0;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    update_kernel(OptimizerConfig config, double adam_rate, T* __restrict__ p,
                  const T* __restrict__ g_sums, T* __restrict__ m, T* __restrict__ s,
                  std::int64_t n, std::int64_t n_coefs, T alpha, const PassScalars* scalars,
                  double* sq_norm) {
  const T scale = T(scalars->scale);
  const T mu = T(config.momentum), lr = T(config.learning_rate);
  const T b1 = T(config.beta_1), b2 = T(config.beta_2), eps = T(config.epsilon);
  const T adam_lr = T(adam_rate);
  double local = 0.0;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const bool is_coef = i < n_coefs;
    T g = g_sums[i];
    if (is_coef && alpha != T(0)) g += alpha * p[i];
    g *= scale;
    T pi = p[i];
    if (config.solver == Solver::sgd) {
      const T mi = mu * m[i] - lr * g;
      m[i] = mi;
      pi = config.nesterov ? T(pi + (mu * mi - lr * g)) : T(pi + mi);
    } else {
      const T mi = b1 * m[i] + (T(1) - b1) * g;
      const T si = b2 * s[i] + (T(1) - b2) * (g * g);
      m[i] = mi;
      s[i] = si;
      pi -= adam_lr * mi / (sqrt(si) + eps);
    }
    p[i] = pi;
    if (is_coef) local += double(pi) * double(pi);
  }
  if (sq_norm) {  // the same for the whole grid: the barrier inside is uniform
    local = block_sum(local);
    if (threadIdx.x == 0) atomicAdd(sq_norm, local);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    finish_gradients_kernel(T* __restrict__ g, const T* __restrict__ p, std::int64_t n,
                            std::int64_t n_coefs, T alpha, const PassScalars* scalars) {
  const double weight_sum = scalars->weight_sum;
  const T scale = weight_sum > 0.0 ? T(1) / T(weight_sum) : T(0);
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    T v = g[i];
    if (i < n_coefs && alpha != T(0)) v += alpha * p[i];
    g[i] = v * scale;
  }
}

}  // namespace

template <class T>
void gather_rows(const T* src, std::int64_t cols, const std::int64_t* order, std::int64_t rows,
                 T* dst, cudaStream_t stream) {
  if (rows * cols == 0) return;
  gather_kernel<T><<<grid_for(rows * cols), kThreads, 0, stream>>>(src, cols, order, rows, dst);
  FASTMLP_CUDA_CHECK_LAUNCH("gather_rows");
}

template <class T>
void softmax_rows(T* z, std::int64_t rows, std::int64_t cols, cudaStream_t stream) {
  if (rows == 0) return;
  constexpr int kWarps = kThreads / 32;
  const int blocks = int(std::min<std::int64_t>((rows + kWarps - 1) / kWarps, 65535));
  softmax_kernel<T><<<blocks, kThreads, 0, stream>>>(z, rows, cols);
  FASTMLP_CUDA_CHECK_LAUNCH("softmax_rows");
}

template <class T>
void loss_and_output_delta(Loss loss, Activation output, const T* h, const T* y, const T* w,
                           std::int64_t rows, std::int64_t cols, T* delta, double* loss_sum,
                           cudaStream_t stream) {
  if (rows * cols == 0) return;
  // Few blocks: each ends with one double atomicAdd.
  loss_delta_kernel<T><<<grid_for(rows * cols, 1024), kThreads, 0, stream>>>(
      loss, output, h, y, w, rows, cols, delta, loss_sum);
  FASTMLP_CUDA_CHECK_LAUNCH("loss_and_output_delta");
}

template <class T>
void add_sum(const T* x, std::int64_t n, bool square, double* out, cudaStream_t stream) {
  if (n == 0) return;
  sum_kernel<T><<<grid_for(n, 1024), kThreads, 0, stream>>>(x, n, square, out);
  FASTMLP_CUDA_CHECK_LAUNCH("add_sum");
}

template <class T>
void finish_batch(const T* w, std::int64_t rows, double alpha, bool want_sq_norm,
                  PassScalars* scalars, cudaStream_t stream) {
  finish_batch_kernel<T><<<1, kThreads, 0, stream>>>(w, rows, alpha, want_sq_norm, scalars);
  FASTMLP_CUDA_CHECK_LAUNCH("finish_batch");
}

template <class T>
void update_parameters(const OptimizerConfig& config, double adam_rate, T* p, const T* g_sums, T* m,
                       T* s, std::int64_t n, std::int64_t n_coefs, T alpha,
                       const PassScalars* scalars, double* sq_norm, int sm_count,
                       cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = grid_for(n, std::max(1, sm_count) * 8);
  update_kernel<T><<<blocks, kThreads, 0, stream>>>(config, adam_rate, p, g_sums, m, s, n, n_coefs,
                                                    alpha, scalars, sq_norm);
  FASTMLP_CUDA_CHECK_LAUNCH("update_parameters");
}

template <class T>
void finish_gradients(T* g, const T* p, std::int64_t n, std::int64_t n_coefs, T alpha,
                      const PassScalars* scalars, int sm_count, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = grid_for(n, std::max(1, sm_count) * 8);
  finish_gradients_kernel<T><<<blocks, kThreads, 0, stream>>>(g, p, n, n_coefs, alpha, scalars);
  FASTMLP_CUDA_CHECK_LAUNCH("finish_gradients");
}

#define FASTMLP_INSTANTIATE_KERNELS(T)                                                             \
  template void gather_rows<T>(const T*, std::int64_t, const std::int64_t*, std::int64_t, T*,      \
                               cudaStream_t);                                                      \
  template void softmax_rows<T>(T*, std::int64_t, std::int64_t, cudaStream_t);                     \
  template void loss_and_output_delta<T>(Loss, Activation, const T*, const T*, const T*,           \
                                         std::int64_t, std::int64_t, T*, double*, cudaStream_t);   \
  template void add_sum<T>(const T*, std::int64_t, bool, double*, cudaStream_t);                   \
  template void finish_batch<T>(const T*, std::int64_t, double, bool, PassScalars*, cudaStream_t); \
  template void update_parameters<T>(const OptimizerConfig&, double, T*, const T*, T*, T*,         \
                                     std::int64_t, std::int64_t, T, const PassScalars*, double*,   \
                                     int, cudaStream_t);                                           \
  template void finish_gradients<T>(T*, const T*, std::int64_t, std::int64_t, T,                   \
                                    const PassScalars*, int, cudaStream_t);

FASTMLP_INSTANTIATE_KERNELS(float)
FASTMLP_INSTANTIATE_KERNELS(double)

}  // namespace fastmlp::cuda
