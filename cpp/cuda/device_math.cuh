// Device-side math: the network's scalar formulas are the shared ones
// (cpp/include/fastmlp/shared/scalar_math.hpp: activations, derivatives from the layer's output,
// loss terms, output error), used here as they are; this header adds only what is CUDA's own,
// the weighted output error of one element and a block-wide sum for the reductions.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "fastmlp/shared/scalar_math.hpp"

namespace fastmlp::cuda {

// The output layer's local error of one element, times its row's sample weight (w == nullptr:
// unit weights).
template <class T>
__device__ __forceinline__ T weighted_output_error(Loss loss, Activation output, T h, T y,
                                                   const T* w, std::int64_t row) {
  const T d = scalar::output_error(loss, output, h, y);
  return w ? T(d * w[row]) : d;
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
