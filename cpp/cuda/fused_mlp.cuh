// The fully fused MLP for narrow networks (fits_fused_kernel in api.hpp: every width <=
// kFusedMaxWidth, at most kFusedMaxLayers weight layers), after the idea of NVIDIA's tiny-cuda-nn
// "fully fused MLP": when every layer is narrow, a block can keep a tile of batch rows in shared
// memory and run all layers on it in one launch, instead of one GEMM launch per layer with the
// activations going through global memory between them. Here one launch does, per tile of rows: the
// gather of the batch rows, every layer's forward pass (bias, activation, softmax), the loss and
// the output error, and every layer's backward delta. What it writes to global memory is only what
// the weight gradients need (the gathered inputs, hidden outputs and deltas), which the
// ordinary GEMM then reduces over the batch, and for gelu and silu the hidden pre-activations
// that their derivatives are taken from. Arithmetic is plain FP32/FP64 FMA (no TF32
// tensor cores), so it agrees with the unfused path to rounding.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "api.hpp"

namespace fastmlp::cuda {

// One weight layer: W (fan_in, fan_out), b (fan_out,), and where training writes its output z
// (hidden layers only), its pre-activations a (hidden layers whose activation
// needs_preactivation, gelu and silu; nullptr otherwise) and its delta, all (rows, fan_out).
template <class T>
struct FusedLayer {
  const T* W;
  const T* b;
  T* z_out;
  T* pre_out;
  T* delta_out;
  int fan_in;
  int fan_out;
};

// Passed by value (well under the 4 KiB kernel-parameter limit).
template <class T>
struct FusedArgs {
  int n_layers;
  FusedLayer<T> layer[kFusedMaxLayers];
  Activation hidden;
  Activation output;
  Loss loss;
  T slope;  // leaky_relu's (the spec's leaky_relu_slope); unused by the other activations
  // Row i of the pass is X[order[i]] (order == nullptr: X[i]), for i < rows.
  const T* X;
  const std::int64_t* order;
  std::int64_t rows;
  // Training: targets and weights indexed like X, the gathered batch written to x_out (rows,
  // n_in) and w_out (rows,) for the weight gradients and S, the loss added to *loss_sum.
  const T* Y;
  const T* w;
  T* x_out;
  T* w_out;
  double* loss_sum;
  // Forward only: the output activations (rows, n_out).
  T* out;
};

// Forward pass only: args.out <- the network's output for the rows.
template <class T>
void fused_forward(const FusedArgs<T>& args, cudaStream_t stream);

// Forward, loss, output error and backward deltas of a training batch.
template <class T>
void fused_train(const FusedArgs<T>& args, cudaStream_t stream);

}  // namespace fastmlp::cuda
