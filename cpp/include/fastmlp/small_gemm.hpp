// Register-blocked GEMM for the small products of narrow networks, without packing.
//
// Eigen's GEMM copies ("packs") both operands into its own layout on every call. For a batch of
// 32 rows through a 64-wide layer that copy costs about as much as the multiply itself, and the
// minibatch loop makes thousands of such calls. Here the right operand B is read in place, row
// by row: each output row block keeps its accumulators in registers, broadcasts one element of
// A at a time and multiplies it into a contiguous strip of B's row (a strip that stays in L1 for
// the whole block loop). The same kernel serves all three products of training, by the strides
// with which A is read:
//   forward:          C = Z W + b      a(i, p) = Z[i, p]    B = W    (bias and relu fused)
//   weight gradient:  C = Z^T Delta    a(i, p) = Z[p, i]    B = Delta
//   error to below:   C = Delta W^T    a(i, p) = Delta[i, p]  B = W^T (see transpose below;
//                                                               relu's derivative fused)
// Vector widths come from Eigen's packet types, so each instruction-set build of the core
// (baseline, AVX2, AVX-512) gets its own.
#pragma once

#include "fastmlp/gemm_operands.hpp"
#include "fastmlp/matrix.hpp"

namespace fastmlp {

// What the kernel does to each output before storing it: nothing, relu, or keep it only where
// the gate (an array of C's layout, e.g. a relu layer's output) is positive: relu's derivative.
enum class GemmEpilogue { none, relu, relu_gate };

// C (m, n), rows ldc apart, <- epilogue(A (m, k) B (k, n) + bias), where B's rows are ldb apart,
// bias is (n,) or nullptr and gate (m, n) (rows ldc apart) is read by relu_gate only. C must
// not overlap A, B, bias or gate.
template <class T>
void small_gemm(Index m, Index n, Index k, StridedOperand<T> A, const T* B, Index ldb,
                const T* bias, T* C, Index ldc, GemmEpilogue epilogue = GemmEpilogue::none,
                const T* gate = nullptr);

// out (cols, rows) <- a (rows, cols) transposed, by square blocks of vector registers: the
// right operand of Delta W^T, ten times faster than Eigen's element-wise transposing copy.
template <class T>
void transpose(const T* a, Index rows, Index cols, T* out);

// Whether small_gemm beats Eigen's one-threaded GEMM on C (m, n) = A (m, k) B (k, n): when no
// column is left for its scalar loop, and either A, B and C fit in a small L2 cache together
// or (AVX-512, float32) a strip of B does (see small_gemm.cpp for the measurements).
template <class T>
bool prefers_small_gemm(Index m, Index n, Index k);

}  // namespace fastmlp
