// fastmlp's packed, cache-blocked GEMM for the large products (the seam's Kernel::packed).
//
// BLIS's scheme, written for row-major C whose vectors run along n: A is copied ("packed") into
// panels of MR rows and B into panels of NR columns, each in the order the micro-kernel reads
// them, so that the micro-kernel streams both from contiguous, aligned memory whatever the
// strides of the operands. The packing reads through strides, which is how one kernel serves
// all three products of a layer (forward Z W, weight gradient Z^T Delta, error Delta W^T). The
// micro-kernel keeps an MR x NR block of C in vector registers (14 x 32 floats with AVX-512),
// and the loops around it keep an A panel in L1, a block of packed B in L2, packed A in L3
// (cpp/src/packed_gemm_micro.hpp has the sizes and the measurements behind them).
//
// Reproducible: each element of C is summed in the same order, KC-long blocks of k in order,
// an FMA chain within each, whatever the thread count, the split among threads and the operands'
// alignment. Threads split m or n, never k.
#pragma once

#include "fastmlp/gemm_operands.hpp"
#include "fastmlp/matrix.hpp"

namespace fastmlp {

// C (m, n), rows ldc apart <- (accumulate ? C : 0) + bias (n,) + A (m, k) B (k, n), with bias
// nullptr for none; then epilogue on each finished block of C while it is in cache (blocks of at
// most MR rows). Runs on up to `threads` OpenMP threads (on the calling thread only inside a
// parallel region). C must not overlap A, B or bias.
template <class T>
void packed_gemm(Index m, Index n, Index k, StridedOperand<T> A, StridedOperand<T> B, T* C,
                 Index ldc, const T* bias, bool accumulate, BlockEpilogue epilogue, int threads);

// The same product for a narrow C (n of a few columns, a classifier's output layer): packed_gemm
// on C^T (n, m) = B^T A^T, into a buffer of the calling thread, then C from it (bias added in
// that pass). Packed, narrow n fills a fraction of the NR-wide register block; transposed, it
// is the rows of the micro-kernels (up to MR rows each: 14 with AVX-512, so n = 15 runs as 14 +
// 1; 6 with AVX2). No epilogue: the caller's runs after. The buffer grows to the largest m x n
// the thread has computed and is kept (a classifier's output: rows x classes).
template <class T>
void packed_gemm_transposed(Index m, Index n, Index k, StridedOperand<T> A, StridedOperand<T> B,
                            T* C, Index ldc, const T* bias, bool accumulate, int threads);

// Whether packed_gemm beats Eigen's GEMM on C (m, n) = A (m, k) B (k, n) in this build (the
// seam asks small_gemm first). The measurements are in packed_gemm.cpp.
template <class T>
bool prefers_packed_gemm(Index m, Index n, Index k);
// Whether it also beats small_gemm on one thread, on the shapes where small_gemm beats Eigen.
template <class T>
bool packed_beats_small_gemm(Index m, Index n, Index k);
// Whether packed_gemm_transposed beats Eigen's GEMM on a narrow C, where neither of the above
// holds.
template <class T>
bool prefers_packed_gemm_transposed(Index m, Index n, Index k);

// The register block and cache blocks of this build, for tests that pick shapes around them.
struct PackedGemmBlocking {
  int mr, nr, kc, mc, nc;
};
template <class T>
PackedGemmBlocking packed_gemm_blocking();

}  // namespace fastmlp
