// The GEMM seam: the three matrix products of a dense layer, and the one place that decides
// which kernel computes each. The layers, the epoch loop and the bindings call these and never
// a GEMM directly, so a new kernel (a packed large-product kernel, bf16 operands, a sparse first
// layer) joins here, as one more Kernel and one more rule in choose_kernel, without touching
// them.
//
//   forward:          out   = f(in W + b)                    in (rows, k), W (k, n)
//   weight gradient:  gW    = in^T delta                     gW (k, n), unnormalized
//   error to below:   below = f'(a) * (delta W^T)            below (rows, k), f' read from z
//                                                            (from a for gelu and silu)
#pragma once

#include <optional>

#include "fastmlp/matrix.hpp"
#include "fastmlp/shared/definitions.hpp"

namespace fastmlp {

// The kernels the seam can choose from.
enum class Kernel {
  eigen,       // Eigen's packed, cache-blocked GEMM (may use Eigen's threads)
  small_gemm,  // fastmlp's unpacked register-blocked kernel (cpp/src/small_gemm.cpp)
  packed,      // fastmlp's packed, cache-blocked kernel with fused epilogues (packed_gemm.hpp)
  packed_transposed,  // the packed kernel on the transposed product, for narrow outputs
};

// Which kernel computes C (m, n) = A (m, k) B (k, n) on the calling thread: a function of the
// shape, the caller's own thread setting and the forced kernel only (never of what other
// threads do), so that the same call gives the same bits. The rules are measurements; see
// small_gemm.cpp and layer_products.cpp.
template <class T>
Kernel choose_kernel(Index m, Index n, Index k);

// A process-wide override of choose_kernel, for tests and benchmarks: every dense product
// uses `kernel` (small_gemm then runs on one thread whatever the shape); std::nullopt gives
// the choice back to the rules. The Python module sets it at import from FASTMLP_GEMM_KERNEL.
// Set it only while no product runs.
void set_forced_kernel(std::optional<Kernel> kernel);
std::optional<Kernel> forced_kernel();

// out (rows, n) <- f(in (rows, k) W (k, n) + b (n,)), the bias and f applied while the output
// is in cache where the kernel can fuse them. slope is leaky_relu's; where pre is not nullptr it
// receives the pre-activations in W + b (rows, n) before f is applied (the layers whose
// activation needs_preactivation).
template <class T>
void forward_product(Activation f, ConstMatrixMap<T> in, const T* W, const T* b, MatrixMap<T> out,
                     T slope, T* pre);

// gW (k, n) <- in^T (k, rows) delta (rows, n).
template <class T>
void weight_gradient_product(ConstMatrixMap<T> in, ConstMatrixMap<T> delta, MatrixMap<T> gW);

// below (rows, k) <- f'(a) * (delta (rows, n) W^T), f' read from z = f(a) (rows, k), or from
// the pre-activations pre (rows, k) where f needs_preactivation, for the hidden activation f
// (slope: leaky_relu's). wt_scratch is room for W^T (n, k) or nullptr; the kernel that needs it
// writes it there.
template <class T>
void error_product(Activation f, ConstMatrixMap<T> delta, const T* W, Index k, ConstMatrixMap<T> z,
                   T* wt_scratch, MatrixMap<T> below, T slope, const T* pre);

}  // namespace fastmlp
