#include "fastmlp/small_gemm.hpp"

#include <algorithm>

namespace fastmlp {

namespace {

namespace ei = Eigen::internal;

// Eigen's packets are vector types (__m256, ...) whose alignment attributes GCC says it drops
// when they are template arguments; they are only ever used as values here, so that is harmless.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif

// Accumulator rows per block. With NP packets per row the block holds MR * NP accumulators, plus
// NP packets of B and one broadcast: 21 of AVX-512's 32 vector registers, 11 of the 16 that
// SSE and AVX2 have.
constexpr int kBlockRows = 4;
#if defined(__AVX512F__)
constexpr int kBlockPackets = 4;
#else
constexpr int kBlockPackets = 2;
#endif

// Whether P's half-size packet is narrower than P (the narrowest packet is its own half).
template <class P>
constexpr bool has_narrower_half() {
  return int(ei::unpacket_traits<typename ei::unpacket_traits<P>::half>::size) <
         int(ei::unpacket_traits<P>::size);
}

// One block: rows [0, MR) of C times NP packets of columns, starting at the given pointers
// (a at the block's first row, b, bias and c at its first column).
template <class T, class P, int MR, int NP>
inline void gemm_block(Index k, const T* a, Index a_row, Index a_col, const T* b, Index ldb,
                       const T* bias, T* c, Index ldc, GemmEpilogue epilogue) {
  constexpr int S = ei::unpacket_traits<P>::size;
  P acc[MR][NP];
#pragma GCC unroll 8
  for (int q = 0; q < NP; ++q) {
    const P init = bias ? ei::ploadu<P>(bias + q * S) : ei::pset1<P>(T(0));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][q] = init;
  }
  for (Index p = 0; p < k; ++p) {
    const T* b_row = b + p * ldb;
    P bv[NP];
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) bv[q] = ei::ploadu<P>(b_row + q * S);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const P av = ei::pset1<P>(a[r * a_row + p * a_col]);
#pragma GCC unroll 8
      for (int q = 0; q < NP; ++q) acc[r][q] = ei::pmadd(av, bv[q], acc[r][q]);
    }
  }
  const P zero = ei::pset1<P>(T(0));
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) {
      // Operand order as Eigen's x.max(0) in apply_activation, so both agree on NaN.
      const P out = epilogue == GemmEpilogue::relu ? ei::pmax(acc[r][q], zero) : acc[r][q];
      ei::pstoreu(c + r * ldc + q * S, out);
    }
  }
}

// Every row block of one column strip (NP packets wide); the last, shorter block by a kernel
// of that many rows.
template <class T, class P, int NP>
void gemm_strip(Index m, Index k, StridedOperand<T> A, const T* b, Index ldb, const T* bias, T* c,
                Index ldc, GemmEpilogue epilogue) {
  Index i = 0;
  for (; i + kBlockRows <= m; i += kBlockRows) {
    gemm_block<T, P, kBlockRows, NP>(k, A.data + i * A.row_stride, A.row_stride, A.col_stride, b,
                                     ldb, bias, c + i * ldc, ldc, epilogue);
  }
  const T* a = A.data + i * A.row_stride;
  c += i * ldc;
  static_assert(kBlockRows == 4, "the tail below handles up to 3 rows");
  switch (m - i) {
    case 3:
      gemm_block<T, P, 3, NP>(k, a, A.row_stride, A.col_stride, b, ldb, bias, c, ldc, epilogue);
      break;
    case 2:
      gemm_block<T, P, 2, NP>(k, a, A.row_stride, A.col_stride, b, ldb, bias, c, ldc, epilogue);
      break;
    case 1:
      gemm_block<T, P, 1, NP>(k, a, A.row_stride, A.col_stride, b, ldb, bias, c, ldc, epilogue);
      break;
    default: break;
  }
}

// Columns [j, n) with packets of type P, then what is left with P's half-size packet, and the
// last few columns (fewer than the smallest packet) one by one.
template <class T, class P>
void gemm_columns(Index m, Index n, Index k, Index j, StridedOperand<T> A, const T* B, Index ldb,
                  const T* bias, T* C, Index ldc, GemmEpilogue epilogue) {
  constexpr Index S = ei::unpacket_traits<P>::size;
  constexpr Index wide = S * kBlockPackets;
  auto at = [&](Index col) { return bias ? bias + col : nullptr; };
  for (; j + wide <= n; j += wide) {
    gemm_strip<T, P, kBlockPackets>(m, k, A, B + j, ldb, at(j), C + j, ldc, epilogue);
  }
  for (; j + S <= n; j += S) {
    gemm_strip<T, P, 1>(m, k, A, B + j, ldb, at(j), C + j, ldc, epilogue);
  }
  if constexpr (has_narrower_half<P>()) {
    gemm_columns<T, typename ei::unpacket_traits<P>::half>(m, n, k, j, A, B, ldb, bias, C, ldc,
                                                           epilogue);
  } else {
    for (; j < n; ++j) {
      for (Index i = 0; i < m; ++i) {
        T sum = bias ? bias[j] : T(0);
        for (Index p = 0; p < k; ++p) {
          sum += A.data[i * A.row_stride + p * A.col_stride] * B[p * ldb + j];
        }
        C[i * ldc + j] = epilogue == GemmEpilogue::relu ? std::max(sum, T(0)) : sum;
      }
    }
  }
}

}  // namespace

template <class T>
void small_gemm(Index m, Index n, Index k, StridedOperand<T> A, const T* B, Index ldb,
                const T* bias, T* C, Index ldc, GemmEpilogue epilogue) {
  using Packet = typename ei::packet_traits<T>::type;
  gemm_columns<T, Packet>(m, n, k, 0, A, B, ldb, bias, C, ldc, epilogue);
}

namespace {

// The narrowest packet of T this build has (Eigen's packet halved until it stops shrinking).
template <class P>
constexpr Index narrowest_packet() {
  if constexpr (has_narrower_half<P>()) {
    return narrowest_packet<typename ei::unpacket_traits<P>::half>();
  } else {
    return ei::unpacket_traits<P>::size;
  }
}

}  // namespace

template <class T>
bool prefers_small_gemm(Index m, Index n, Index k) {
  // No scalar columns: on AVX-512, 2 left-over columns of 10 made small_gemm 4x slower than
  // Eigen (m, n, k = 128, 10, 128). And operands that stay in the core's L2 cache: small_gemm
  // reads all of A once per column strip of B and never repacks, so once A, B and C outgrow L2
  // it falls behind Eigen's cache-blocked GEMM (AVX2, float32: 0.4x Eigen's speed at 256^3 and
  // at 512 x 2048 x 1024), while within it it ran 1.1-1.6x Eigen's speed on every instruction
  // set, from 16 x 64 x 64 up. 256 KiB is the L2 of the smallest x86 cores still common.
  using Packet = typename ei::packet_traits<T>::type;
  const double bytes =
      (double(m) * double(k) + double(k) * double(n) + double(m) * double(n)) * double(sizeof(T));
  return n % narrowest_packet<Packet>() == 0 && bytes <= 256.0 * 1024.0;
}

template void small_gemm<float>(Index, Index, Index, StridedOperand<float>, const float*, Index,
                                const float*, float*, Index, GemmEpilogue);
template void small_gemm<double>(Index, Index, Index, StridedOperand<double>, const double*, Index,
                                 const double*, double*, Index, GemmEpilogue);
template bool prefers_small_gemm<float>(Index, Index, Index);
template bool prefers_small_gemm<double>(Index, Index, Index);

}  // namespace fastmlp
