// The three matrix products of training, as tiled register-blocked kernels with the work that
// follows each product fused into its epilogue (plain FP32/FP64 FMA, no tensor cores, so results
// match the CPU core to rounding). All matrices are row-major and contiguous.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "api.hpp"
#include "check.cuh"

namespace fastmlp::cuda {

// Forward: C (M, N) = f(A (M, K) . W (K, N) + bias (N,)); f is applied elementwise (pass
// identity for softmax and apply softmax_rows after); slope is leaky_relu's (the spec's
// leaky_relu_slope), ignored by the other activations. pre (M, N) or nullptr: where given, the
// pre-activations A . W + bias are also written there (for gelu and silu, whose derivative
// needs them: needs_preactivation).
// sm_count: the device's multiprocessors, to choose the tile size.
template <class T>
void gemm_forward(const T* A, const T* W, const T* bias, T* C, T* pre, std::int64_t M,
                  std::int64_t K, std::int64_t N, Activation f, T slope, int sm_count,
                  cudaStream_t stream);

// Backward delta: C (M, N) = (D (M, K) . W^T) * f'(a), where W is (N, K) (the weights of the
// layer above, (fan_in, fan_out)), Z (M, N) the output of the layer below, from which the
// derivative is taken, and pre (M, N) its pre-activations a where f needs them (gelu, silu;
// nullptr otherwise). slope: leaky_relu's.
template <class T>
void gemm_backward_delta(const T* D, const T* W, const T* Z, const T* pre, T* C, std::int64_t M,
                         std::int64_t K, std::int64_t N, Activation f, T slope, int sm_count,
                         cudaStream_t stream);

// Weight gradient sums: gW (M, N) = A^T . D and gb (N,) = the column sums of D, where A is
// (R, M) and D (R, N); with `accumulate` the sums are added to gW and gb. The bias sums ride in
// the same kernel as a row of ones appended to A^T. The reduction over R (a whole batch, or
// a whole data set for L-BFGS) is split over blocks when the output has too few tiles to fill
// the device; the partial sums go to `partial` (grown as needed) and are added up in a fixed
// order, so results are deterministic.
template <class T>
void gemm_weight_grad(const T* A, const T* D, T* gW, T* gb, std::int64_t R, std::int64_t M,
                      std::int64_t N, bool accumulate, DeviceBuffer<T>& partial, int sm_count,
                      cudaStream_t stream);

}  // namespace fastmlp::cuda
