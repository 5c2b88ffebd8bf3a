#include "fastmlp/layer_products.hpp"

#include <algorithm>
#include <atomic>
#include <vector>

#include "fastmlp/activation.hpp"
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
  return Kernel::eigen;
}

namespace {

// Eigen evaluates an activation on a row segment in vectors from the first aligned address on
// and element by element before it and after the last whole vector; its scalar and vector
// forms of tanh, the logistic and exp differ in the last bit. The packed kernel's blocks (and
// so the segments its epilogue sees) depend on the thread count, so for those functions the
// segment goes through an aligned copy padded to whole vectors: every element takes the vector
// path, wherever its block starts. relu, leaky_relu, gelu (a scalar loop) and identity are
// exact either way and work in place.
bool segment_independent(Activation f) {
  return f == Activation::identity || f == Activation::relu || f == Activation::leaky_relu ||
         f == Activation::gelu || f == Activation::step;
}

template <class T>
T* epilogue_scratch(int which, Index size) {
  thread_local std::vector<T, Eigen::aligned_allocator<T>> scratch[3];
  std::vector<T, Eigen::aligned_allocator<T>>& v = scratch[which];
  if (Index(v.size()) < size) v.resize(size);
  return v.data();
}

// Room for a segment of `cols` rounded up to whole cache lines (a whole number of vectors on
// every instruction set).
template <class T>
Index padded(Index cols) {
  constexpr Index line = 64 / Index(sizeof(T));
  return (cols + line - 1) / line * line;
}

// a (cols,) <- f(a), the same bits wherever a lies (see segment_independent).
template <class T>
void activate_segment(Activation f, T* a, Index cols, T slope) {
  if (segment_independent(f)) {
    apply_activation<T>(f, MatrixMap<T>(a, 1, cols), slope);
    return;
  }
  const Index width = padded<T>(cols);
  T* tmp = epilogue_scratch<T>(0, width);
  std::copy_n(a, cols, tmp);
  std::fill(tmp + cols, tmp + width, T(0));
  apply_activation<T>(f, MatrixMap<T>(tmp, 1, width), slope);
  std::copy_n(tmp, cols, a);
}

// d (cols,) <- d * f'(a), read from z (or pre), the same bits wherever d lies.
template <class T>
void derivative_segment(Activation f, const T* z, T* d, Index cols, T slope, const T* pre) {
  if (f != Activation::silu) {
    // Products and differences only (gelu: a scalar loop): exact in vectors and scalars alike.
    multiply_by_derivative<T>(f, ConstMatrixMap<T>(z, 1, cols), MatrixMap<T>(d, 1, cols), slope,
                              pre);
    return;
  }
  const Index width = padded<T>(cols);
  T* zt = epilogue_scratch<T>(0, width);
  T* dt = epilogue_scratch<T>(1, width);
  T* pt = epilogue_scratch<T>(2, width);
  std::copy_n(z, cols, zt);
  std::copy_n(d, cols, dt);
  std::copy_n(pre, cols, pt);
  std::fill(zt + cols, zt + width, T(0));
  std::fill(dt + cols, dt + width, T(0));
  std::fill(pt + cols, pt + width, T(0));
  multiply_by_derivative<T>(f, ConstMatrixMap<T>(zt, 1, width), MatrixMap<T>(dt, 1, width), slope,
                            pt);
  std::copy_n(dt, cols, d);
}

}  // namespace

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
  below.noalias() = delta * ConstMatrixMap<T>(W, k, n).transpose();
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
