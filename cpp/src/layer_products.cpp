#include "fastmlp/layer_products.hpp"

#include <algorithm>
#include <atomic>
#include <vector>

#include "fastmlp/activation.hpp"
#include "fastmlp/activation_segments.hpp"
#include "fastmlp/packed_gemm.hpp"
#include "fastmlp/parallel.hpp"
#include "fastmlp/small_gemm.hpp"

namespace fastmlp {

namespace {

// -1: no forced kernel; else a Kernel's value.
std::atomic<int> forced_kernel_value{-1};

}  // namespace

void set_forced_kernel(std::optional<Kernel> kernel) {
  forced_kernel_value.store(kernel ? int(*kernel) : -1, std::memory_order_relaxed);
}

std::optional<Kernel> forced_kernel() {
  const int value = forced_kernel_value.load(std::memory_order_relaxed);
  if (value < 0) return std::nullopt;
  return Kernel(value);
}

template <class T>
Kernel choose_kernel(Index m, Index n, Index k) {
  if (const std::optional<Kernel> forced = forced_kernel()) return *forced;
  // small_gemm never threads: it runs only where the caller runs its GEMMs on one thread.
  if (scoped_gemm_threads() == 1 && prefers_small_gemm<T>(m, n, k) &&
      !packed_beats_small_gemm<T>(m, n, k)) {
    return Kernel::small_gemm;
  }
  if (prefers_packed_gemm<T>(m, n, k)) return Kernel::packed;
  if (prefers_packed_gemm_transposed<T>(m, n, k)) return Kernel::packed_transposed;
  return Kernel::eigen;
}

template <class T>
void forward_product(Activation f, ConstMatrixMap<T> in, const T* W, const T* b, MatrixMap<T> out,
                     T slope, T* pre) {
  const Index rows = in.rows(), k = in.cols(), n = out.cols();
  switch (choose_kernel<T>(rows, n, k)) {
    case Kernel::small_gemm: {
      // Bias (and relu) applied in registers, before the output is first stored.
      const bool relu = f == Activation::relu;
      small_gemm<T>(rows, n, k, {in.data(), k, 1}, W, n, b, out.data(), n,
                    relu ? GemmEpilogue::relu : GemmEpilogue::none);
      if (!relu) {
        if (pre) MatrixMap<T>(pre, rows, n) = out;
        apply_activation<T>(f, out, slope);
      }
      return;
    }
    case Kernel::packed: {
      // Bias added as the first block of k starts; pre-activations saved and f applied by the
      // epilogue on each finished block of rows, still in cache. softmax needs whole rows: it
      // runs after.
      const bool fuse = f != Activation::softmax && (f != Activation::identity || pre);
      auto epilogue = [&](Index row, Index col, Index block_rows, Index cols) {
        for (Index r = row; r < row + block_rows; ++r) {
          T* a = out.data() + r * n + col;
          if (pre) std::copy_n(a, cols, pre + r * n + col);
          activate_segment<T>(f, a, cols, slope);
        }
      };
      packed_gemm<T>(rows, n, k, {in.data(), k, 1}, {W, n, 1}, out.data(), n, b, false,
                     fuse ? BlockEpilogue(epilogue) : BlockEpilogue(), scoped_gemm_threads());
      if (f == Activation::softmax) {
        if (pre) MatrixMap<T>(pre, rows, n) = out;
        apply_activation<T>(f, out, slope);
      }
      return;
    }
    case Kernel::packed_transposed:
      packed_gemm_transposed<T>(rows, n, k, {in.data(), k, 1}, {W, n, 1}, out.data(), n, b, false,
                                scoped_gemm_threads());
      if (pre) MatrixMap<T>(pre, rows, n) = out;
      apply_activation<T>(f, out, slope);
      return;
    case Kernel::eigen:
      // Starting from the bias, rather than from zero, spares the GEMM's zeroing and a pass.
      out.rowwise() = ConstVectorMap<T>(b, n).transpose();
      out.noalias() += in * ConstMatrixMap<T>(W, k, n);
      if (pre) MatrixMap<T>(pre, rows, n) = out;
      apply_activation<T>(f, out, slope);
      return;
  }
}

template <class T>
void weight_gradient_product(ConstMatrixMap<T> in, ConstMatrixMap<T> delta, MatrixMap<T> gW) {
  const Index k = in.cols(), n = delta.cols();
  switch (choose_kernel<T>(k, n, in.rows())) {
    case Kernel::small_gemm:
      small_gemm<T>(k, n, in.rows(), {in.data(), 1, k}, delta.data(), n, nullptr, gW.data(), n);
      return;
    case Kernel::packed:
      // A = in^T: element (i, p) at in[p, i].
      packed_gemm<T>(k, n, in.rows(), {in.data(), 1, k}, {delta.data(), n, 1}, gW.data(), n,
                     nullptr, false, BlockEpilogue(), scoped_gemm_threads());
      return;
    case Kernel::packed_transposed:
      packed_gemm_transposed<T>(k, n, in.rows(), {in.data(), 1, k}, {delta.data(), n, 1}, gW.data(),
                                n, nullptr, false, scoped_gemm_threads());
      return;
    case Kernel::eigen: gW.noalias() = in.transpose() * delta; return;
  }
}

template <class T>
void error_product(Activation f, ConstMatrixMap<T> delta, const T* W, Index k, ConstMatrixMap<T> z,
                   T* wt_scratch, MatrixMap<T> below, T slope, const T* pre) {
  const Index rows = delta.rows(), n = delta.cols();
  const Kernel kernel = choose_kernel<T>(rows, k, n);
  if (kernel == Kernel::packed) {
    // B = W^T: element (p, j) at W[j, p]. f' applied by the epilogue on each finished block.
    auto epilogue = [&](Index row, Index col, Index block_rows, Index cols) {
      for (Index r = row; r < row + block_rows; ++r) {
        const Index at = r * k + col;
        derivative_segment<T>(f, z.data() + at, below.data() + at, cols, slope,
                              pre ? pre + at : nullptr);
      }
    };
    packed_gemm<T>(rows, k, n, {delta.data(), n, 1}, {W, 1, n}, below.data(), k, nullptr, false,
                   f == Activation::identity ? BlockEpilogue() : BlockEpilogue(epilogue),
                   scoped_gemm_threads());
    return;
  }
  // small_gemm reads its right operand row by row: it multiplies by a transposed copy of W
  // (a temporary one where the workspace has no room for it: only when the kernel is forced).
  std::vector<T> forced_scratch;
  if (!wt_scratch && kernel == Kernel::small_gemm && forced_kernel()) {
    forced_scratch.resize(std::size_t(n * k));
    wt_scratch = forced_scratch.data();
  }
  if (wt_scratch && kernel == Kernel::small_gemm) {
    transpose<T>(W, k, n, wt_scratch);
    const bool relu = f == Activation::relu;
    small_gemm<T>(rows, k, n, {delta.data(), n, 1}, wt_scratch, k, nullptr, below.data(), k,
                  relu ? GemmEpilogue::relu_gate : GemmEpilogue::none, z.data());
    if (!relu) multiply_by_derivative<T>(f, z, below, slope, pre);
    return;
  }
  if (kernel == Kernel::packed_transposed) {  // a narrow layer below (an input layer's is skipped)
    packed_gemm_transposed<T>(rows, k, n, {delta.data(), n, 1}, {W, 1, n}, below.data(), k, nullptr,
                              false, scoped_gemm_threads());
  } else {
    below.noalias() = delta * ConstMatrixMap<T>(W, k, n).transpose();
  }
  multiply_by_derivative<T>(f, z, below, slope, pre);
}

#define FASTMLP_INSTANTIATE(T)                                                                  \
  template Kernel choose_kernel<T>(Index, Index, Index);                                        \
  template void forward_product<T>(Activation, ConstMatrixMap<T>, const T*, const T*,           \
                                   MatrixMap<T>, T, T*);                                        \
  template void weight_gradient_product<T>(ConstMatrixMap<T>, ConstMatrixMap<T>, MatrixMap<T>); \
  template void error_product<T>(Activation, ConstMatrixMap<T>, const T*, Index,                \
                                 ConstMatrixMap<T>, T*, MatrixMap<T>, T, const T*);

FASTMLP_INSTANTIATE(float)
FASTMLP_INSTANTIATE(double)

}  // namespace fastmlp
