#include "fastmlp/layer_products.hpp"

#include "fastmlp/activation.hpp"
#include "fastmlp/parallel.hpp"
#include "fastmlp/small_gemm.hpp"

namespace fastmlp {

template <class T>
Kernel choose_kernel(Index m, Index n, Index k) {
  // small_gemm never threads: it runs only where the caller runs its GEMMs on one thread.
  if (prefers_small_gemm<T>(m, n, k) && scoped_gemm_threads() == 1) return Kernel::small_gemm;
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
    case Kernel::eigen: gW.noalias() = in.transpose() * delta; return;
  }
}

template <class T>
void error_product(Activation f, ConstMatrixMap<T> delta, const T* W, Index k, ConstMatrixMap<T> z,
                   T* wt_scratch, MatrixMap<T> below, T slope, const T* pre) {
  const Index rows = delta.rows(), n = delta.cols();
  // small_gemm reads its right operand row by row: it multiplies by a transposed copy of W.
  if (wt_scratch && choose_kernel<T>(rows, k, n) == Kernel::small_gemm) {
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
