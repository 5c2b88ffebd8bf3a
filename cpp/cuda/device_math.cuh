// The elementwise math of the network on the device, mirroring the CPU core exactly
// (cpp/src/activation.cpp, cpp/src/loss.cpp): activations, their derivatives taken from the
// layer's OUTPUT z, the per-element loss (accumulated in double, as the CPU does) and the
// output layer's local error. Plus a block-wide sum used by the reductions.
#pragma once

#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "api.hpp"

namespace fastmlp::cuda {

__device__ __forceinline__ float exp_of(float x) { return expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }
__device__ __forceinline__ float tanh_of(float x) { return tanhf(x); }
__device__ __forceinline__ double tanh_of(double x) { return tanh(x); }

template <class T>
__device__ __forceinline__ T machine_epsilon();
template <>
__device__ __forceinline__ float machine_epsilon<float>() {
  return FLT_EPSILON;
}
template <>
__device__ __forceinline__ double machine_epsilon<double>() {
  return DBL_EPSILON;
}

// f(a). Softmax works on whole rows (softmax_rows): here it passes a through.
template <class T>
__device__ __forceinline__ T activate(Act act, T a) {
  switch (act) {
    case Act::identity: return a;
    case Act::logistic:
      // Written so that exp never overflows: e^-a for a >= 0, e^a below.
      if (a >= T(0)) return T(1) / (T(1) + exp_of(-a));
      {
        const T e = exp_of(a);
        return e / (T(1) + e);
      }
    case Act::tanh: return tanh_of(a);
    // As the CPU's max(a, 0) (std::max, Eigen's pmax): a NaN passes through rather than
    // silently becoming 0.
    case Act::relu: return a < T(0) ? T(0) : a;
    case Act::step: return a >= T(0) ? T(1) : T(0);  // the lecture's threshold unit
    case Act::exp: return exp_of(a);
    case Act::softmax: return a;
  }
  return a;
}

// delta * f'(a), with f'(a) read from the output z = f(a). relu's derivative at 0 is 0, and
// where z <= 0 the result is 0 whatever delta holds (as the CPU's select). step and softmax
// have no elementwise derivative: the binding refuses to train them, so they never get here.
template <class T>
__device__ __forceinline__ T times_derivative(Act act, T z, T delta) {
  switch (act) {
    case Act::logistic: return delta * (z * (T(1) - z));
    case Act::tanh: return delta * (T(1) - z * z);
    case Act::relu: return z > T(0) ? delta : T(0);
    case Act::exp: return delta * z;
    default: return delta;
  }
}

// The output activation whose derivative cancels against the loss's: delta_L = h - y.
__host__ __device__ __forceinline__ bool is_matching_pair(Act output, LossKind loss) {
  switch (loss) {
    case LossKind::squared_error: return output == Act::identity;
    case LossKind::log_loss: return output == Act::logistic || output == Act::softmax;
    case LossKind::poisson: return output == Act::exp;
  }
  return false;
}

// x * log(y), 0 where x == 0 (scipy.special.xlogy), so that zero targets add nothing even
// where the prediction underflows.
template <class T>
__device__ __forceinline__ double xlogy(T x, T y) {
  return x == T(0) ? 0.0 : double(x) * log(double(y));
}

// One output's share of a sample's loss (the CPU's sample_loss, term by term).
template <class T>
__device__ __forceinline__ double loss_element(LossKind loss, Act output, T h, T y) {
  if (loss == LossKind::squared_error) {
    const double r = double(h) - double(y);
    return 0.5 * r * r;
  }
  if (loss == LossKind::poisson) return xlogy(y, T(y / h)) - double(y) + double(h);
  // log_loss: p clipped to [eps, 1 - eps] of the working precision, as scikit-learn. Written
  // as the CPU's std::max/std::min, which also pass a NaN through.
  const T eps = machine_epsilon<T>();
  T p = h < eps ? eps : h;
  p = (T(1) - eps) < p ? T(1) - eps : p;
  double v = -xlogy(y, p);
  if (output == Act::logistic) v -= xlogy(T(T(1) - y), T(T(1) - p));
  return v;
}

// The output layer's local error: (h - y) [* f'(a) unless the pair matches] [* w].
template <class T>
__device__ __forceinline__ T output_delta(LossKind loss, Act output, T h, T y, const T* w,
                                          std::int64_t row) {
  T d = h - y;
  if (!is_matching_pair(output, loss)) d = times_derivative(output, h, d);
  if (w) d *= w[row];
  return d;
}

// Sum of v over the block, returned to thread 0 (others get a partial). Every thread of the
// block must call it (it holds a barrier); blockDim.x a multiple of 32, at most 1024.
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_sums[32];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.0;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

}  // namespace fastmlp::cuda
