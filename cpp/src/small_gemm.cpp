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

// Where a block's results go: C (rows ldc apart) and what happens to them on the way (see
// GemmEpilogue); gate, for relu_gate, has C's layout.
template <class T>
struct Output {
  T* c;
  Index ldc;
  GemmEpilogue epilogue;
  const T* gate;

  Output at(Index row, Index col) const {
    return {c + row * ldc + col, ldc, epilogue, gate ? gate + row * ldc + col : nullptr};
  }
  // Stores one result (a packet of P, or a scalar T) at row r, column q of this block.
  template <class P>
  void store(Index r, Index q, P value) const {
    // Operand order as Eigen's x.max(0) in apply_activation, so both agree on NaN.
    if (epilogue == GemmEpilogue::relu) value = ei::pmax(value, ei::pset1<P>(T(0)));
    if (epilogue == GemmEpilogue::relu_gate) {
      // Where gate > 0, as multiply_by_derivative does for relu.
      const P open = ei::pcmp_lt(ei::pset1<P>(T(0)), ei::ploadu<P>(gate + r * ldc + q));
      value = ei::pand(value, open);
    }
    ei::pstoreu(c + r * ldc + q, value);
  }
  void store_scalar(Index r, Index q, T value) const {
    if (epilogue == GemmEpilogue::relu) value = std::max(value, T(0));
    if (epilogue == GemmEpilogue::relu_gate && !(gate[r * ldc + q] > T(0))) value = T(0);
    c[r * ldc + q] = value;
  }
};

// One block: rows [0, MR) of C times NP packets of columns, starting at the given pointers
// (a at the block's first row; b, bias and out at its first column).
template <class T, class P, int MR, int NP>
inline void gemm_block(Index k, const T* a, Index a_row, Index a_col, const T* b, Index ldb,
                       const T* bias, const Output<T>& out) {
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
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) out.store(r, q * S, acc[r][q]);
  }
}

// Every row block of one column strip (NP packets wide); the last, shorter block by a kernel
// of that many rows.
template <class T, class P, int NP>
void gemm_strip(Index m, Index k, StridedOperand<T> A, const T* b, Index ldb, const T* bias,
                const Output<T>& out) {
  auto a_at = [&](Index i) { return A.data + i * A.row_stride; };
  Index i = 0;
  if constexpr (NP == 1) {
    // A strip one packet wide gives a block of 4 rows only 4 independent chains of FMAs, too
    // few to cover their latency: blocks of 8 rows ran the narrow products of a 32-64-64-4
    // network (n = 4, and 12 of 128 x 12 x 128) 1.3 to 1.5 times as fast.
    for (; i + 2 * kBlockRows <= m; i += 2 * kBlockRows) {
      gemm_block<T, P, 2 * kBlockRows, 1>(k, a_at(i), A.row_stride, A.col_stride, b, ldb, bias,
                                          out.at(i, 0));
    }
  }
  for (; i + kBlockRows <= m; i += kBlockRows) {
    gemm_block<T, P, kBlockRows, NP>(k, a_at(i), A.row_stride, A.col_stride, b, ldb, bias,
                                     out.at(i, 0));
  }
  static_assert(kBlockRows == 4, "the tail below handles up to 3 rows");
  const Output<T> tail = out.at(i, 0);
  switch (m - i) {
    case 3:
      gemm_block<T, P, 3, NP>(k, a_at(i), A.row_stride, A.col_stride, b, ldb, bias, tail);
      break;
    case 2:
      gemm_block<T, P, 2, NP>(k, a_at(i), A.row_stride, A.col_stride, b, ldb, bias, tail);
      break;
    case 1:
      gemm_block<T, P, 1, NP>(k, a_at(i), A.row_stride, A.col_stride, b, ldb, bias, tail);
      break;
    default: break;
  }
}

// Columns [j, n) with packets of type P, then what is left with P's half-size packet, and the
// last few columns (fewer than the smallest packet) one by one.
template <class T, class P>
void gemm_columns(Index m, Index n, Index k, Index j, StridedOperand<T> A, const T* B, Index ldb,
                  const T* bias, const Output<T>& out) {
  constexpr Index S = ei::unpacket_traits<P>::size;
  constexpr Index wide = S * kBlockPackets;
  auto bias_at = [&](Index col) { return bias ? bias + col : nullptr; };
  for (; j + wide <= n; j += wide) {
    gemm_strip<T, P, kBlockPackets>(m, k, A, B + j, ldb, bias_at(j), out.at(0, j));
  }
  for (; j + S <= n; j += S) {
    gemm_strip<T, P, 1>(m, k, A, B + j, ldb, bias_at(j), out.at(0, j));
  }
  if constexpr (has_narrower_half<P>()) {
    gemm_columns<T, typename ei::unpacket_traits<P>::half>(m, n, k, j, A, B, ldb, bias, out);
  } else {
    for (; j < n; ++j) {
      for (Index i = 0; i < m; ++i) {
        T sum = bias ? bias[j] : T(0);
        for (Index p = 0; p < k; ++p) {
          sum += A.data[i * A.row_stride + p * A.col_stride] * B[p * ldb + j];
        }
        out.store_scalar(i, j, sum);
      }
    }
  }
}

}  // namespace

template <class T>
void small_gemm(Index m, Index n, Index k, StridedOperand<T> A, const T* B, Index ldb,
                const T* bias, T* C, Index ldc, GemmEpilogue epilogue, const T* gate) {
  using Packet = typename ei::packet_traits<T>::type;
  gemm_columns<T, Packet>(m, n, k, 0, A, B, ldb, bias, Output<T>{C, ldc, epilogue, gate});
}

template <class T>
void transpose(const T* a, Index rows, Index cols, T* out) {
  using Packet = typename ei::packet_traits<T>::type;
  constexpr int S = ei::unpacket_traits<Packet>::size;
  Index i = 0;
  for (; i + S <= rows; i += S) {
    Index j = 0;
    for (; j + S <= cols; j += S) {
      ei::PacketBlock<Packet, S> block;
      for (int q = 0; q < S; ++q) block.packet[q] = ei::ploadu<Packet>(a + (i + q) * cols + j);
      ei::ptranspose(block);
      for (int q = 0; q < S; ++q) ei::pstoreu(out + (j + q) * rows + i, block.packet[q]);
    }
    for (; j < cols; ++j) {
      for (int q = 0; q < S; ++q) out[j * rows + i + q] = a[(i + q) * cols + j];
    }
  }
  for (; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) out[j * rows + i] = a[i * cols + j];
  }
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
  using Packet = typename ei::packet_traits<T>::type;
  // No scalar columns: on AVX-512, 2 left-over columns of 10 made small_gemm 4x slower than
  // Eigen (m, n, k = 128, 10, 128).
  if (n % narrowest_packet<Packet>() != 0) return false;
  // Operands that stay in the core's L2 together: there small_gemm ran 1.1-1.6x Eigen's speed
  // on every instruction set, from 16 x 64 x 64 up. 256 KiB is the L2 of the smallest x86 cores
  // still common.
  constexpr double kCache = 256.0 * 1024.0;
  const double bytes =
      (double(m) * double(k) + double(k) * double(n) + double(m) * double(n)) * double(sizeof(T));
  if (bytes <= kCache) return true;
  // Larger operands: small_gemm never repacks, so every row block streams its strip of B (k rows
  // of the strip's width) from L2 again. That keeps up with the FMAs only where each row of the
  // strip feeds enough of them: 256 multiply-adds per row with AVX-512 and float32 (64-wide
  // strips), where it ran 1.05-1.1x Eigen's speed on 256 x 2048 x 1024 (forward and weight
  // gradient); with 128 (AVX-512, float64) or 64 (AVX2, float32) it fell to 0.35-0.65x. And the
  // strip itself must fit in L2.
  constexpr int kStripWidth = kBlockPackets * ei::unpacket_traits<Packet>::size;
  constexpr int kMultiplyAddsPerStripRow = kBlockRows * kStripWidth;
  const double strip_bytes = double(k) * kStripWidth * double(sizeof(T));
  return kMultiplyAddsPerStripRow >= 256 && strip_bytes <= kCache;
}

template void small_gemm<float>(Index, Index, Index, StridedOperand<float>, const float*, Index,
                                const float*, float*, Index, GemmEpilogue, const float*);
template void small_gemm<double>(Index, Index, Index, StridedOperand<double>, const double*, Index,
                                 const double*, double*, Index, GemmEpilogue, const double*);
template void transpose<float>(const float*, Index, Index, float*);
template void transpose<double>(const double*, Index, Index, double*);
template bool prefers_small_gemm<float>(Index, Index, Index);
template bool prefers_small_gemm<double>(Index, Index, Index);

}  // namespace fastmlp
