// The layers' products on bfloat16 operands (compute_dtype="bfloat16"), float32 networks only:
// each product's operands are rounded to bf16 on their way into the kernel (bf16_gemm.hpp) and
// accumulate in float32; everything else (bias, activation, loss, softmax, the reductions, the
// master weights and the optimizer) stays float32. Same contracts as the seam's float products
// (layer_products.hpp), which the layers call instead where Network::bf16 is set.
//
// The weights are rounded and packed once per minibatch (or per prediction, or per L-BFGS
// evaluation), in the two layouts the passes read them in: W for the forward product and W^T
// for the error product. Every thread and every row block of the batch reads those copies.
#pragma once

#include <memory>
#include <vector>

#include "fastmlp/bf16_gemm.hpp"
#include "fastmlp/matrix.hpp"
#include "fastmlp/shared/definitions.hpp"

namespace fastmlp {

template <class T>
struct Network;

// Whether a layer of k inputs and n outputs runs its products in bf16: with at least 16 of
// each and 128 x 128 weights. A narrower layer gains nothing: its products take microseconds
// either way, and rounding its operands costs more than the faster multiply saves (measured:
// see bf16_layers.cpp). fastmlp.reference states the same rule.
bool bf16_pays(Index k, Index n);

// The bf16 copies of a network's weights, packed for the kernel: for each layer that runs in
// bf16, W (k, n) for the forward product and, above the first layer and where the network
// backpropagates, W^T (n, k) for the error product. Packed in place, each time into the same
// memory.
class Bf16Weights {
 public:
  // dense_input: the first layer takes dense rows (a sparse one keeps float products).
  // forward_only: prediction's copies, without the W^T layouts only backpropagation reads
  // (40% of the elements a 1024-2048-2048-10 network packs).
  Bf16Weights(Bf16Kernel kernel, const NetworkSpec& spec, bool dense_input, bool forward_only);
  Bf16Kernel kernel() const { return kernel_; }

  // Rounds and packs every bf16 layer's weights. The tasks (one per layer and layout) are
  // shared among `parts` callers: part p of parts packs its own; the caller synchronizes after
  // (the trainer's threads call it each with their own part, then meet at a barrier).
  void pack(const Network<float>& net, int part, int parts);
  // All of them, on every thread (on the calling one where called inside a parallel region).
  void pack_all(const Network<float>& net);

  bool has(Index layer) const { return layer < Index(forward_.size()) && forward_[layer]; }
  const Bf16PackedB& forward(Index layer) const { return *forward_[layer]; }
  // Throws std::logic_error for a layer that has no W^T copy (forward_only, or the first).
  const Bf16PackedB& error(Index layer) const;

 private:
  // One task of pack(): a layer's weights in one of the two layouts.
  struct PackTask {
    Index layer;
    bool transposed;
  };
  Bf16Kernel kernel_;
  std::vector<std::unique_ptr<Bf16PackedB>> forward_, error_;
  std::vector<PackTask> tasks_;
};

// out (rows, n) <- f(in (rows, k) W + b), W given packed; pre receives in W + b where not null.
void forward_product_bf16(const Bf16Weights& weights, Index layer, Activation f,
                          ConstMatrixMap<float> in, const float* b, MatrixMap<float> out,
                          float slope, float* pre);

// gW (k, n) <- in^T (k, rows) delta (rows, n).
void weight_gradient_product_bf16(Bf16Kernel kernel, ConstMatrixMap<float> in,
                                  ConstMatrixMap<float> delta, MatrixMap<float> gW);

// below (rows, k) <- f'(a) * (delta (rows, n) W^T), W^T given packed; f' read from z (rows, k),
// or from pre where f needs_preactivation.
void error_product_bf16(const Bf16Weights& weights, Index layer, Activation f,
                        ConstMatrixMap<float> delta, ConstMatrixMap<float> z,
                        MatrixMap<float> below, float slope, const float* pre);

}  // namespace fastmlp
