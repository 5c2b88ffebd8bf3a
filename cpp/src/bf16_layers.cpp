#include "fastmlp/bf16_layers.hpp"

#include <stdexcept>
#include <string>

#include "fastmlp/activation.hpp"
#include "fastmlp/activation_segments.hpp"
#include "fastmlp/network.hpp"
#include "fastmlp/parallel.hpp"

namespace fastmlp {

bool bf16_pays(Index k, Index n) {
  // Products with fewer than 16 outputs or inputs fill less than one tile row of the AMX kernel
  // and less than one vector of the AVX512-BF16 one: such layers (a classifier's output layer)
  // take a few microseconds in float32, and float32 keeps them exact. Below 128 x 128 weights
  // the float32 small-GEMM kernel, which reads the weights in place, beats rounding and
  // packing them: training two hidden layers of 64 with batch 32 ran at 0.89x float32's speed
  // in bf16 (CPU time, one thread, AMX), of 128 at 1.14x and 1.46x (batch 32, 128), of 256 at
  // 1.25x and 1.97x.
  return k >= 16 && n >= 16 && k * n >= 128 * 128;
}

Bf16Weights::Bf16Weights(Bf16Kernel kernel, const NetworkSpec& spec, bool dense_input,
                         bool forward_only)
    : kernel_(kernel) {
  for (Index l = 0; l < spec.n_layers(); ++l) {
    const Index k = spec.sizes[l], n = spec.sizes[l + 1];
    // A sparse first layer keeps its own float products: nothing to pack for it.
    const bool bf16 = bf16_pays(k, n) && (l > 0 || dense_input);
    forward_.push_back(bf16 ? std::make_unique<Bf16PackedB>() : nullptr);
    error_.push_back(bf16 && l > 0 && !forward_only ? std::make_unique<Bf16PackedB>() : nullptr);
    // Allocated here, not at the first pack: that runs inside the trainer's parallel region,
    // where an exception (bad_alloc) could not be passed on.
    if (forward_.back()) forward_.back()->resize(k, n);
    if (error_.back()) error_.back()->resize(n, k);
    // The packing tasks, listed once: pack() runs every minibatch and allocates nothing.
    if (forward_.back()) tasks_.push_back({l, false});
    if (error_.back()) tasks_.push_back({l, true});
  }
}

const Bf16PackedB& Bf16Weights::error(Index layer) const {
  if (layer >= Index(error_.size()) || !error_[layer]) {
    throw std::logic_error("Bf16Weights: layer " + std::to_string(layer) +
                           " has no bf16 copy of W^T for the error product");
  }
  return *error_[layer];
}

void Bf16Weights::pack(const Network<float>& net, int part, int parts) {
  for (std::size_t i = std::size_t(part); i < tasks_.size(); i += std::size_t(parts)) {
    const Index l = tasks_[i].layer, k = net.sizes[l], n = net.sizes[l + 1];
    const float* W = net.coefs[l];
    if (tasks_[i].transposed) {
      pack_bf16_b(kernel_, n, k, StridedOperand<float>{W, 1, n}, *error_[l]);
    } else {
      pack_bf16_b(kernel_, k, n, StridedOperand<float>{W, n, 1}, *forward_[l]);
    }
  }
}

void Bf16Weights::pack_all(const Network<float>& net) {
  // One task after the other: pack_bf16_b shares each among the threads itself (outside a
  // parallel region), which balances better than giving whole tasks of unequal size to each.
  pack(net, 0, 1);
}

void forward_product_bf16(const Bf16Weights& weights, Index layer, Activation f,
                          ConstMatrixMap<float> in, const float* b, MatrixMap<float> out,
                          float slope, float* pre) {
  const Index rows = in.rows(), k = in.cols(), n = out.cols();
  // Softmax needs whole rows: the kernel's blocks get the bias, and softmax runs after.
  const bool rowwise = f == Activation::softmax;
  float* c = out.data();
  // The blocks depend on the kernel and the thread count: bias_activate_segment gives the same
  // bits wherever a block starts.
  const Activation in_epilogue = rowwise ? Activation::identity : f;
  auto epilogue = [&](Index row, Index col, Index block_rows, Index cols) {
    for (Index r = row; r < row + block_rows; ++r) {
      bias_activate_segment<float>(in_epilogue, c + r * n + col, b + col, cols, slope,
                                   pre ? pre + r * n + col : nullptr);
    }
  };
  bf16_gemm(weights.kernel(), rows, n, k, StridedOperand<float>{in.data(), k, 1},
            weights.forward(layer), c, n, false, epilogue, scoped_gemm_threads());
  if (rowwise) apply_activation<float>(f, out, slope);
}

void weight_gradient_product_bf16(Bf16Kernel kernel, ConstMatrixMap<float> in,
                                  ConstMatrixMap<float> delta, MatrixMap<float> gW) {
  const Index rows = in.rows(), k = in.cols(), n = delta.cols();
  bf16_gemm(kernel, k, n, rows, StridedOperand<float>{in.data(), 1, k},
            StridedOperand<float>{delta.data(), n, 1}, gW.data(), n, false, BlockEpilogue(),
            scoped_gemm_threads());
}

void error_product_bf16(const Bf16Weights& weights, Index layer, Activation f,
                        ConstMatrixMap<float> delta, ConstMatrixMap<float> z,
                        MatrixMap<float> below, float slope, const float* pre) {
  const Index rows = delta.rows(), n = delta.cols(), k = below.cols();
  float* c = below.data();
  auto epilogue = [&](Index row, Index col, Index block_rows, Index cols) {
    for (Index r = 0; r < block_rows; ++r) {
      const Index at = (row + r) * k + col;
      derivative_segment<float>(f, z.data() + at, c + at, cols, slope, pre ? pre + at : nullptr);
    }
  };
  bf16_gemm(weights.kernel(), rows, k, n, StridedOperand<float>{delta.data(), n, 1},
            weights.error(layer), c, k, false, epilogue, scoped_gemm_threads());
}

}  // namespace fastmlp
