// Tiled GEMM: each block computes a BM x BN tile of C (64 x 64, or 32 x 32 when the big tiles
// would leave most multiprocessors idle, as for a minibatch's forward pass) from kTileK-deep
// slices of the operands staged in shared memory; each of its 16 x 16 threads holds a
// BM/16 x BN/16 register block of the tile, strided by 16 so that its shared-memory reads of B
// are conflict-free and its writes of C are coalesced. Operands are read through an optional
// transpose, so the same kernel computes A.W, D.W^T and A^T.D. Indices are 64-bit wherever they
// address a matrix: rows * width exceeds 2^31 for large data sets.
#include <algorithm>

#include "device_math.cuh"
#include "gemm.cuh"

namespace fastmlp::cuda {

namespace {

constexpr int kBigTile = 64;
constexpr int kSmallTile = 32;
constexpr int kTileK = 16;
constexpr int kThreads = 256;  // 16 x 16
constexpr int kMaxSplits = 32;
constexpr std::int64_t kMinRowsPerSplit = 256;

// op(A)[m][k] for op(A) (M, K): A is (M, K) with leading dimension lda, or with kTransA the
// transpose of a (K, M) matrix. kOnesRow makes row M-1 of op(A) all ones (the bias row of the
// weight gradient); A then has only M-1 rows in op(A).
template <class T, bool kTransA, bool kOnesRow>
__device__ __forceinline__ T load_a(const T* __restrict__ A, std::int64_t lda, std::int64_t m,
                                    std::int64_t k, std::int64_t M) {
  if (kOnesRow && m == M - 1) return T(1);
  return kTransA ? A[k * lda + m] : A[m * lda + k];
}

// The epilogues: what happens to the finished sum acc of C[m][n] (split: which K slice).
template <class T>
struct ForwardEpilogue {
  T* C;
  const T* bias;
  T* pre;  // nullptr: the pre-activations are not kept
  std::int64_t ldc;
  Activation f;
  T slope;
  __device__ void operator()(std::int64_t m, std::int64_t n, T acc, int) const {
    const std::int64_t i = m * ldc + n;
    const T a = acc + bias[n];
    if (pre) pre[i] = a;
    C[i] = scalar::activate(f, a, slope);
  }
};

template <class T>
struct DeltaEpilogue {
  T* C;
  const T* Z;
  const T* pre;  // nullptr: the derivative is taken from Z alone
  std::int64_t ldc;
  Activation f;
  T slope;
  __device__ void operator()(std::int64_t m, std::int64_t n, T acc, int) const {
    const std::int64_t i = m * ldc + n;
    C[i] = pre ? scalar::times_derivative_at(f, pre[i], Z[i], acc, slope)
               : scalar::times_derivative(f, Z[i], acc, slope);
  }
};

// Rows m < n_rows of the (n_rows + 1, N) result go to gW, row n_rows to gb; or, when split,
// everything to the partial buffer of slice `split`.
template <class T>
struct GradEpilogue {
  T* gW;
  T* gb;
  T* partial;  // nullptr: no split
  std::int64_t n_rows;
  std::int64_t N;
  bool accumulate;
  __device__ void operator()(std::int64_t m, std::int64_t n, T acc, int split) const {
    if (partial) {
      partial[(std::int64_t(split) * (n_rows + 1) + m) * N + n] = acc;
      return;
    }
    T* out = m < n_rows ? gW + m * N + n : gb + n;
    *out = accumulate ? T(*out + acc) : acc;
  }
};

// C (M, N) = op(A) (M, K) . op(B) (K, N), handed to the epilogue element by element. Block
// (x, y, z) computes rows [x*BM, ...), columns [y*BN, ...) over the K slice
// [z*k_chunk, (z+1)*k_chunk). Every loop bound below depends on the block only, so the
// barriers sit in uniform control flow.
template <class T, int BM, int BN, bool kTransA, bool kTransB, bool kOnesRow, class Epilogue>
__global__ void __launch_bounds__(kThreads)
    gemm_kernel(const T* __restrict__ A, const T* __restrict__ B, std::int64_t M, std::int64_t N,
                std::int64_t K, std::int64_t lda, std::int64_t ldb, std::int64_t k_chunk,
                Epilogue epilogue) {
  // +1 column: the non-transposed A loads write As down a column, which would otherwise hit
  // one bank 16 times.
  static_assert(BM % 16 == 0 && BN % 16 == 0, "16 x 16 threads, each BM/16 x BN/16 elements");
  constexpr int TM = BM / 16, TN = BN / 16;
  __shared__ T As[kTileK][BM + 1];
  __shared__ T Bs[kTileK][BN];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const std::int64_t m0 = std::int64_t(blockIdx.x) * BM;
  const std::int64_t n0 = std::int64_t(blockIdx.y) * BN;
  const std::int64_t k_begin = std::int64_t(blockIdx.z) * k_chunk;
  const std::int64_t k_end = k_begin + k_chunk < K ? k_begin + k_chunk : K;

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i) {
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
  }

  for (std::int64_t k0 = k_begin; k0 < k_end; k0 += kTileK) {
    // Stage the slices, zero outside the matrices. Consecutive threads read consecutive
    // addresses: along k for a row-major operand, along m (or n) for a transposed one.
#pragma unroll
    for (int e = tid; e < BM * kTileK; e += kThreads) {
      const int mm = kTransA ? e % BM : e / kTileK;
      const int kk = kTransA ? e / BM : e % kTileK;
      const std::int64_t m = m0 + mm, k = k0 + kk;
      As[kk][mm] = (m < M && k < k_end) ? load_a<T, kTransA, kOnesRow>(A, lda, m, k, M) : T(0);
    }
#pragma unroll
    for (int e = tid; e < BN * kTileK; e += kThreads) {
      const int nn = kTransB ? e / kTileK : e % BN;
      const int kk = kTransB ? e % kTileK : e / BN;
      const std::int64_t n = n0 + nn, k = k0 + kk;
      T v = T(0);
      if (n < N && k < k_end) v = kTransB ? B[n * ldb + k] : B[k * ldb + n];
      Bs[kk][nn] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      T a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();  // before the next slice overwrites the tiles
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const std::int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < M && n < N) epilogue(m, n, acc[i][j], int(blockIdx.z));
    }
  }
}

// Adds up the split partial sums of the weight gradient in slice order.
template <class T>
__global__ void reduce_partials_kernel(const T* __restrict__ partial, int splits,
                                       GradEpilogue<T> out) {
  const std::int64_t size = (out.n_rows + 1) * out.N;
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < size;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    T sum = partial[e];
    for (int s = 1; s < splits; ++s) sum += partial[std::int64_t(s) * size + e];
    const std::int64_t m = e / out.N, n = e % out.N;
    T* dst = m < out.n_rows ? out.gW + m * out.N + n : out.gb + n;
    *dst = out.accumulate ? T(*dst + sum) : sum;
  }
}

std::int64_t tiles_of(std::int64_t M, std::int64_t N, int tile) {
  return ((M + tile - 1) / tile) * ((N + tile - 1) / tile);
}

dim3 gemm_grid(std::int64_t M, std::int64_t N, int tile, int splits) {
  const std::int64_t tiles_m = (M + tile - 1) / tile;
  const std::int64_t tiles_n = (N + tile - 1) / tile;
  // x takes the rows (up to 2^31 - 1 blocks); y and z are limited to 65535.
  if (tiles_m > 0x7fffffff || tiles_n > 65535) {
    throw CudaError("fastmlp CUDA: matrix too large for one GEMM launch (" + std::to_string(M) +
                    " x " + std::to_string(N) + ")");
  }
  return dim3(unsigned(tiles_m), unsigned(tiles_n), unsigned(splits));
}

// One launch over the whole of C (no split): small tiles when big ones would not give every
// multiprocessor a block.
template <class T, bool kTransA, bool kTransB, class Epilogue>
void launch_unsplit(const T* A, const T* B, std::int64_t M, std::int64_t N, std::int64_t K,
                    std::int64_t lda, std::int64_t ldb, const Epilogue& epilogue, int sm_count,
                    cudaStream_t stream, const char* name) {
  if (tiles_of(M, N, kBigTile) >= std::int64_t(sm_count)) {
    gemm_kernel<T, kBigTile, kBigTile, kTransA, kTransB, false>
        <<<gemm_grid(M, N, kBigTile, 1), kThreads, 0, stream>>>(A, B, M, N, K, lda, ldb, K,
                                                                epilogue);
  } else {
    gemm_kernel<T, kSmallTile, kSmallTile, kTransA, kTransB, false>
        <<<gemm_grid(M, N, kSmallTile, 1), kThreads, 0, stream>>>(A, B, M, N, K, lda, ldb, K,
                                                                  epilogue);
  }
  check_cuda(cudaGetLastError(), name);
}

}  // namespace

template <class T>
void gemm_forward(const T* A, const T* W, const T* bias, T* C, T* pre, std::int64_t M,
                  std::int64_t K, std::int64_t N, Activation f, T slope, int sm_count,
                  cudaStream_t stream) {
  if (M == 0) return;
  const ForwardEpilogue<T> epilogue{C, bias, pre, N, f, slope};
  launch_unsplit<T, false, false>(A, W, M, N, K, K, N, epilogue, sm_count, stream,
                                  "kernel launch (gemm_forward)");
}

template <class T>
void gemm_backward_delta(const T* D, const T* W, const T* Z, const T* pre, T* C, std::int64_t M,
                         std::int64_t K, std::int64_t N, Activation f, T slope, int sm_count,
                         cudaStream_t stream) {
  if (M == 0) return;
  const DeltaEpilogue<T> epilogue{C, Z, pre, N, f, slope};
  // op(B)[k][n] = W[n][k]: W (N, K) read transposed.
  launch_unsplit<T, false, true>(D, W, M, N, K, K, K, epilogue, sm_count, stream,
                                 "kernel launch (gemm_backward_delta)");
}

template <class T>
void gemm_weight_grad(const T* A, const T* D, T* gW, T* gb, std::int64_t R, std::int64_t M,
                      std::int64_t N, bool accumulate, DeviceBuffer<T>& partial, int sm_count,
                      cudaStream_t stream) {
  const std::int64_t rows_out = M + 1;  // the bias row
  GradEpilogue<T> epilogue{gW, gb, nullptr, M, N, accumulate};
  if (R == 0) {
    // No rows: the sums are zero (or unchanged when accumulating).
    if (!accumulate) {
      FASTMLP_CUDA_CHECK(cudaMemsetAsync(gW, 0, sizeof(T) * std::size_t(M * N), stream));
      FASTMLP_CUDA_CHECK(cudaMemsetAsync(gb, 0, sizeof(T) * std::size_t(N), stream));
    }
    return;
  }
  // Split the reduction over R when the output's tiles alone leave most of the device idle.
  const std::int64_t tiles = tiles_of(rows_out, N, kBigTile);
  const std::int64_t target = 2 * std::int64_t(std::max(sm_count, 1));
  std::int64_t splits = tiles < target ? (target + tiles - 1) / tiles : 1;
  splits = std::min<std::int64_t>(splits, kMaxSplits);
  splits = std::min<std::int64_t>(splits, std::max<std::int64_t>(1, R / kMinRowsPerSplit));
  std::int64_t k_chunk = (R + splits - 1) / splits;
  k_chunk = (k_chunk + kTileK - 1) / kTileK * kTileK;
  splits = (R + k_chunk - 1) / k_chunk;
  if (splits > 1) {
    const std::size_t need = std::size_t(splits * rows_out * N);
    // Growing frees the old buffer, which kernels still queued on this stream (an earlier
    // layer's reduction) may read: let them finish first rather than rely on cudaFree's
    // implicit synchronisation. Happens only while the buffer grows (the first batches).
    if (need > partial.size()) FASTMLP_CUDA_CHECK(cudaStreamSynchronize(stream));
    partial.reserve(need);
    epilogue.partial = partial.get();
  }
  // op(A)[m][k] = A[k][m]: A (R, M) read transposed, plus the ones row; op(B) = D (R, N).
  gemm_kernel<T, kBigTile, kBigTile, true, false, true>
      <<<gemm_grid(rows_out, N, kBigTile, int(splits)), kThreads, 0, stream>>>(
          A, D, rows_out, N, R, M, N, k_chunk, epilogue);
  FASTMLP_CUDA_CHECK_LAUNCH("gemm_weight_grad");
  if (splits > 1) {
    epilogue.partial = nullptr;
    const std::int64_t size = rows_out * N;
    const int blocks = int(std::min<std::int64_t>((size + 255) / 256, 65535));
    reduce_partials_kernel<T><<<blocks, 256, 0, stream>>>(partial.get(), int(splits), epilogue);
    FASTMLP_CUDA_CHECK_LAUNCH("reduce_partials");
  }
}

#define FASTMLP_INSTANTIATE_GEMM(T)                                                               \
  template void gemm_forward<T>(const T*, const T*, const T*, T*, T*, std::int64_t, std::int64_t, \
                                std::int64_t, Activation, T, int, cudaStream_t);                  \
  template void gemm_backward_delta<T>(const T*, const T*, const T*, const T*, T*, std::int64_t,  \
                                       std::int64_t, std::int64_t, Activation, T, int,            \
                                       cudaStream_t);                                             \
  template void gemm_weight_grad<T>(const T*, const T*, T*, T*, std::int64_t, std::int64_t,       \
                                    std::int64_t, bool, DeviceBuffer<T>&, int, cudaStream_t);

FASTMLP_INSTANTIATE_GEMM(float)
FASTMLP_INSTANTIATE_GEMM(double)

}  // namespace fastmlp::cuda
