// The fully fused MLP kernel (see fused_mlp.cuh). A block of kFusedMaxWidth threads owns a tile
// of kRows batch rows held in two shared-memory buffers (kRows x 128 each, 32 KiB in all for
// float and for double): a layer reads one buffer and writes the other. Thread t computes one
// output column n = t % N for the rows t / N, t / N + 128 / N, ..., reading W's column n from
// global memory (L1-cached: it is the same for every block) and the tile's rows from shared
// memory (broadcast). Rows past the end of the pass are zeros that are never written out.
#include <algorithm>

#include "check.cuh"
#include "device_math.cuh"
#include "fused_mlp.cuh"

namespace fastmlp::cuda {

namespace {

constexpr int kThreads = kFusedMaxWidth;
// Rows per block: 32 floats or 16 doubles per thread column keeps both buffers at 32 KiB,
// under the 48 KiB of static shared memory.
template <class T>
constexpr int kRows = sizeof(T) == 4 ? 32 : 16;
// Row stride of the tiles: +1 so that threads reading different rows of one column (narrow
// layers, several rows per warp) fall in different banks.
constexpr int kStride = kFusedMaxWidth + 1;

template <class T>
using Tile = T[kRows<T>][kStride];

// out[r][n] = f(sum_k in[r][k] W[k][n] + b[n]) for the tile's rows; in is (kRows, K). pre
// (rows of the pass, N) or nullptr: where given, the pre-activations of the rows r < valid
// also go there, row r of the tile to row row0 + r.
template <class T>
__device__ __forceinline__ void dense_forward(const Tile<T>& in, Tile<T>& out,
                                              const T* __restrict__ W, const T* __restrict__ b,
                                              int K, int N, Activation f, T slope, T* pre,
                                              std::int64_t row0, int valid) {
  constexpr int R = kRows<T>;
  const int groups = kThreads / N;  // row groups sharing the columns; N <= kThreads
  const int n = threadIdx.x % N, g = threadIdx.x / N;
  if (g >= groups) return;
  T acc[R];
#pragma unroll
  for (int i = 0; i < R; ++i) acc[i] = T(0);
  for (int k = 0; k < K; ++k) {
    const T wk = __ldg(W + std::int64_t(k) * N + n);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int r = g + i * groups;
      if (r < R) acc[i] = fma(in[r][k], wk, acc[i]);
    }
  }
  const T bias = __ldg(b + n);
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int r = g + i * groups;
    if (r < R) {
      const T a = acc[i] + bias;
      if (pre && r < valid) pre[(row0 + r) * N + n] = a;
      out[r][n] = scalar::activate(f, a, slope);
    }
  }
}

// Backward through one layer: out[r][n] = f'(a[r][n]) * sum_k in[r][k] W[n][k] for rows r <
// valid (zero beyond), with in the delta (kRows, K) of the layer above, W (N, K) its weights, z
// (rows of the pass, N) the output of this layer and pre (the same shape) its pre-activations
// where f needs them (nullptr otherwise), both read from global memory where the forward part
// of this block wrote them (plain loads, not __ldg: written by this kernel). The delta also goes
// to delta_out.
template <class T>
__device__ __forceinline__ void dense_backward(const Tile<T>& in, Tile<T>& out,
                                               const T* __restrict__ W, const T* z, const T* pre,
                                               T* delta_out, std::int64_t row0, int valid, int K,
                                               int N, Activation f, T slope) {
  constexpr int R = kRows<T>;
  const int groups = kThreads / N;
  const int n = threadIdx.x % N, g = threadIdx.x / N;
  if (g >= groups) return;
  T acc[R];
#pragma unroll
  for (int i = 0; i < R; ++i) acc[i] = T(0);
  const T* w_row = W + std::int64_t(n) * K;
  for (int k = 0; k < K; ++k) {
    const T wk = __ldg(w_row + k);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int r = g + i * groups;
      if (r < R) acc[i] = fma(in[r][k], wk, acc[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int r = g + i * groups;
    if (r < R) {
      T d = T(0);
      if (r < valid) {
        const std::int64_t at = (row0 + r) * N + n;
        d = pre ? scalar::times_derivative_at(f, pre[at], z[at], acc[i], slope)
                : scalar::times_derivative(f, z[at], acc[i], slope);
        delta_out[at] = d;
      }
      out[r][n] = d;
    }
  }
}

// Softmax of each of the tile's rows over its first N entries, one thread per row.
template <class T>
__device__ __forceinline__ void softmax_tile(Tile<T>& t, int N) {
  const int r = threadIdx.x;
  if (r >= kRows<T>) return;
  T top = t[r][0];
  for (int n = 1; n < N; ++n) top = t[r][n] > top ? t[r][n] : top;
  T sum = T(0);
  for (int n = 0; n < N; ++n) {
    const T e = scalar::exp_of(T(t[r][n] - top));
    t[r][n] = e;
    sum += e;
  }
  for (int n = 0; n < N; ++n) t[r][n] /= sum;
}

template <class T, bool kTrain>
__global__ void __launch_bounds__(kThreads)
    fused_mlp_kernel(const __grid_constant__ FusedArgs<T> args) {
  // __grid_constant__: the layers are indexed at run time; this reads them in place from the
  // parameter space instead of copying the whole struct to local memory.
  constexpr int R = kRows<T>;
  __shared__ Tile<T> tiles[2];
  const int tid = threadIdx.x;
  const std::int64_t row0 = std::int64_t(blockIdx.x) * R;
  const std::int64_t left = args.rows - row0;
  const int valid = left < R ? int(left) : R;  // the same for the whole block
  const int L = args.n_layers;
  auto source_row = [&](int r) { return args.order ? args.order[row0 + r] : row0 + r; };

  // The input tile (the batch gather, for training also written out for the gradients).
  const int n_in = args.layer[0].fan_in;
  for (int e = tid; e < R * n_in; e += kThreads) {
    const int r = e / n_in, c = e % n_in;
    T v = T(0);
    if (r < valid) {
      v = args.X[source_row(r) * n_in + c];
      if (kTrain) args.x_out[(row0 + r) * n_in + c] = v;
    }
    tiles[0][r][c] = v;
  }
  if (kTrain && args.w && tid < valid) args.w_out[row0 + tid] = args.w[source_row(tid)];
  __syncthreads();

  // Forward through every layer.
  int cur = 0;
  for (int l = 0; l < L; ++l) {
    const FusedLayer<T>& layer = args.layer[l];
    const Activation f = l + 1 == L ? args.output : args.hidden;
    dense_forward<T>(tiles[cur], tiles[cur ^ 1], layer.W, layer.b, layer.fan_in, layer.fan_out,
                     f == Activation::softmax ? Activation::identity : f, args.slope,
                     kTrain ? layer.pre_out : nullptr, row0, valid);
    __syncthreads();
    if (f == Activation::softmax) {
      softmax_tile<T>(tiles[cur ^ 1], layer.fan_out);
      __syncthreads();
    }
    cur ^= 1;
    if (kTrain && l + 1 < L) {
      // The hidden output, for this layer's derivative below and the next layer's gradient.
      const int N = layer.fan_out;
      for (int e = tid; e < valid * N; e += kThreads) {
        const int r = e / N, n = e % N;
        layer.z_out[(row0 + r) * N + n] = tiles[cur][r][n];
      }
    }
  }

  const int n_out = args.layer[L - 1].fan_out;
  if (!kTrain) {
    for (int e = tid; e < valid * n_out; e += kThreads) {
      const int r = e / n_out, n = e % n_out;
      args.out[(row0 + r) * n_out + n] = tiles[cur][r][n];
    }
    return;
  }

  // Loss and output error, in place of the output tile.
  double local = 0.0;
  T* delta_L = args.layer[L - 1].delta_out;
  for (int e = tid; e < R * n_out; e += kThreads) {
    const int r = e / n_out, n = e % n_out;
    T d = T(0);
    if (r < valid) {
      const std::int64_t src = source_row(r);
      const T h = tiles[cur][r][n], y = args.Y[src * n_out + n];
      const double l = scalar::loss_term(args.loss, args.output, h, y);
      local += args.w ? double(args.w[src]) * l : l;
      d = weighted_output_error(args.loss, args.output, h, y, args.w, src);
      delta_L[(row0 + r) * n_out + n] = d;
    }
    tiles[cur][r][n] = d;
  }
  local = block_sum(local);  // holds a barrier, so the delta tile is complete after it
  if (tid == 0) atomicAdd(args.loss_sum, local);
  __syncthreads();

  // Backward deltas, layer L-1 down to 1: delta of layer l-1's output.
  for (int l = L - 1; l >= 1; --l) {
    const FusedLayer<T>& above = args.layer[l];
    const FusedLayer<T>& below = args.layer[l - 1];
    dense_backward<T>(tiles[cur], tiles[cur ^ 1], above.W, below.z_out, below.pre_out,
                      below.delta_out, row0, valid, above.fan_out, above.fan_in, args.hidden,
                      args.slope);
    __syncthreads();
    cur ^= 1;
  }
}

template <class T, bool kTrain>
void launch(const FusedArgs<T>& args, cudaStream_t stream, const char* name) {
  if (args.rows == 0) return;
  if (args.n_layers < 1 || args.n_layers > kFusedMaxLayers) {
    throw CudaError("fastmlp CUDA: the fused kernel takes 1 to " + std::to_string(kFusedMaxLayers) +
                    " layers");
  }
  const std::int64_t blocks = (args.rows + kRows<T> - 1) / kRows<T>;
  if (blocks > 0x7fffffff) throw CudaError("fastmlp CUDA: too many rows for one fused launch");
  fused_mlp_kernel<T, kTrain><<<unsigned(blocks), kThreads, 0, stream>>>(args);
  check_cuda(cudaGetLastError(), name);
}

}  // namespace

template <class T>
void fused_forward(const FusedArgs<T>& args, cudaStream_t stream) {
  launch<T, false>(args, stream, "kernel launch (fused_forward)");
}

template <class T>
void fused_train(const FusedArgs<T>& args, cudaStream_t stream) {
  launch<T, true>(args, stream, "kernel launch (fused_train)");
}

template void fused_forward<float>(const FusedArgs<float>&, cudaStream_t);
template void fused_forward<double>(const FusedArgs<double>&, cudaStream_t);
template void fused_train<float>(const FusedArgs<float>&, cudaStream_t);
template void fused_train<double>(const FusedArgs<double>&, cudaStream_t);

}  // namespace fastmlp::cuda
