// fp32 -> bf16 rounding and the packing of A and B into the kernels' layouts (see bf16_gemm.hpp).
// The rounding is done with integer arithmetic, not VCVTNEPS2BF16, because that instruction
// flushes denormals to zero: here every float rounds to its nearest bf16, ties to even, as
// NumPy-side oracles and PyTorch's conversion do. Packing reads only inside the operand: tails
// use masked loads, which never touch the masked-off lanes.
#include <cstdlib>
#include <cstring>
#include <new>

#include "fastmlp/bf16_gemm.hpp"
#include "fastmlp/parallel.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define FASTMLP_BF16_PACK_AVX512 1
#endif

namespace fastmlp {

std::uint16_t float_to_bf16_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

namespace {

float bf16_bits_to_float(std::uint16_t h) {
  const std::uint32_t u = std::uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Element (i, p) of an operand as bf16 bits.
inline std::uint16_t at(StridedOperand<float> X, Index i, Index p) {
  return float_to_bf16_bits(X.data[i * X.row_stride + p * X.col_stride]);
}

#ifdef FASTMLP_BF16_PACK_AVX512
// 16 floats to 16 bf16, each in the low half of a 32-bit lane (the high half zero).
inline __m512i to_bf16_lanes(__m512 v) {
  const __m512i x = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  const __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(x, bias), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
}

// 32 consecutive floats (the first `count` read, the rest zero) to 32 bf16 in order.
inline __m512i load32_bf16(const float* p, Index count) {
  const __mmask16 m0 = count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
  const Index rest = count > 16 ? count - 16 : 0;
  const __mmask16 m1 = rest >= 16 ? __mmask16(0xffff) : __mmask16((1u << rest) - 1);
  const __m512i lo = to_bf16_lanes(_mm512_maskz_loadu_ps(m0, p));
  const __m512i hi = to_bf16_lanes(m1 ? _mm512_maskz_loadu_ps(m1, p + 16) : _mm512_setzero_ps());
  const __m512i even =
      _mm512_set_epi16(62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42, 40, 38, 36, 34, 32, 30, 28, 26,
                       24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_permutex2var_epi16(lo, even, hi);
}

// 16 floats at stride 1 (the first `count`, the rest zero) to bf16 lanes.
inline __m512i load16_lanes(const float* p, Index count) {
  if (count <= 0) return _mm512_setzero_si512();
  const __mmask16 m = count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
  return to_bf16_lanes(_mm512_maskz_loadu_ps(m, p));
}

// r[i] lane j -> r[j] lane i (16 x 16 of 32-bit).
inline void transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // r[4i + j] now holds, in its 128-bit block b, rows 4i..4i+3 of column 4b + j.
  for (int j = 0; j < 4; ++j) {
    const __m512i ab_lo = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x44);
    const __m512i ab_hi = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xee);
    const __m512i cd_lo = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x44);
    const __m512i cd_hi = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xee);
    t[j] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88);
    t[4 + j] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xdd);
    t[8 + j] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88);
    t[12 + j] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xdd);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}
#endif

// One A tile: rows [i0, i0 + rows) (rows <= 16), k [p0, p0 + 32) clipped to k, to dst[16][32].
void pack_a_tile(StridedOperand<float> A, Index k, Index i0, Index rows, Index p0,
                 std::uint16_t* dst) {
  const Index kk = std::min<Index>(32, k - p0);
#ifdef FASTMLP_BF16_PACK_AVX512
  if (A.col_stride == 1) {
    for (Index r = 0; r < 16; ++r) {
      const __m512i v = r < rows ? load32_bf16(A.data + (i0 + r) * A.row_stride + p0, kk)
                                 : _mm512_setzero_si512();
      _mm512_storeu_si512(dst + r * 32, v);
    }
    return;
  }
  if (A.row_stride == 1) {
    __m512i w[16];
    for (Index q = 0; q < 16; ++q) {
      const Index p = p0 + 2 * q;
      const __m512i lo =
          2 * q < kk ? load16_lanes(A.data + i0 + p * A.col_stride, rows) : _mm512_setzero_si512();
      const __m512i hi = 2 * q + 1 < kk ? load16_lanes(A.data + i0 + (p + 1) * A.col_stride, rows)
                                        : _mm512_setzero_si512();
      w[q] = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));  // lane r: the pair of row r
    }
    transpose16x16(w);
    for (Index r = 0; r < 16; ++r) _mm512_storeu_si512(dst + r * 32, w[r]);
    return;
  }
#endif
  for (Index r = 0; r < 16; ++r) {
    for (Index c = 0; c < 32; ++c) {
      dst[r * 32 + c] = r < rows && c < kk ? at(A, i0 + r, p0 + c) : 0;
    }
  }
}

// Pairs [q0, q0 + 16) of columns [j0, j0 + cols) (cols <= 16) of B to dst[16 pairs][16][2].
void pack_b_block(StridedOperand<float> B, Index k, Index j0, Index cols, Index q0,
                  std::uint16_t* dst) {
#ifdef FASTMLP_BF16_PACK_AVX512
  if (B.col_stride == 1) {
    for (Index q = q0; q < q0 + 16; ++q) {
      const Index p = 2 * q;
      const __m512i lo =
          p < k ? load16_lanes(B.data + p * B.row_stride + j0, cols) : _mm512_setzero_si512();
      const __m512i hi = p + 1 < k ? load16_lanes(B.data + (p + 1) * B.row_stride + j0, cols)
                                   : _mm512_setzero_si512();
      _mm512_storeu_si512(dst + (q - q0) * 32, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
    return;
  }
  if (B.row_stride == 1) {
    __m512i w[16];
    const Index p0 = 2 * q0;
    const Index kk = std::max<Index>(0, std::min<Index>(32, k - p0));
    for (Index c = 0; c < 16; ++c) {  // lane q of w[c]: pair q of column j0 + c
      w[c] = c < cols && kk > 0 ? load32_bf16(B.data + p0 + (j0 + c) * B.col_stride, kk)
                                : _mm512_setzero_si512();
    }
    transpose16x16(w);
    for (Index q = 0; q < 16; ++q) _mm512_storeu_si512(dst + q * 32, w[q]);
    return;
  }
#endif
  for (Index q = 0; q < 16; ++q) {
    for (Index c = 0; c < 16; ++c) {
      for (Index h = 0; h < 2; ++h) {
        const Index p = 2 * (q0 + q) + h;
        dst[q * 32 + c * 2 + h] = c < cols && p < k ? at(B, p, j0 + c) : 0;
      }
    }
  }
}

}  // namespace

void round_to_bf16(const float* in, float* out, Index n) {
  for (Index i = 0; i < n; ++i) out[i] = bf16_bits_to_float(float_to_bf16_bits(in[i]));
}

void Bf16PackedB::Free::operator()(std::uint16_t* p) const { std::free(p); }

void Bf16PackedB::resize(Index k, Index n) {
  const Index k_padded = bf16_detail::round_up(k, bf16_detail::kChunk);
  const Index elems = bf16_detail::round_up(n, bf16_detail::kPanelRows) * k_padded;
  if (elems > capacity_) {
    const std::size_t bytes = std::size_t(bf16_detail::round_up(elems * 2, 64));
    auto* p = static_cast<std::uint16_t*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
    data_.reset(p);
    capacity_ = elems;
  }
  k_ = k;
  n_ = n;
  k_padded_ = k_padded;
}

namespace bf16_detail {

void pack_a(Index k, Index k_padded, StridedOperand<float> A, Index row0, Index rows,
            std::uint16_t* out) {
  const Index chunks = k_padded / kChunk;
  const Index panels = round_up(rows, kPanelRows) / kPanelRows;
  // Read A along its rows: row-major A panel by panel (each row's chunks stream), transposed A
  // (k-major) chunk by chunk (each of its rows streams across the panels).
  const bool panels_outer = A.col_stride == 1 || A.row_stride != 1;
  const Index outer = panels_outer ? panels : chunks, inner = panels_outer ? chunks : panels;
  for (Index o = 0; o < outer; ++o) {
    for (Index i = 0; i < inner; ++i) {
      const Index p = panels_outer ? o : i, c = panels_outer ? i : o;
      const Index valid = std::max<Index>(0, std::min(kPanelRows, rows - p * kPanelRows));
      pack_a_tile(A, k, row0 + p * kPanelRows, valid, c * kChunk,
                  out + (p * chunks + c) * kTileElems);
    }
  }
}

}  // namespace bf16_detail

void pack_bf16_b(Bf16Kernel kernel, Index k, Index n, StridedOperand<float> B, Bf16PackedB& out,
                 int threads) {
  (void)kernel;  // one layout serves both kernels
  using bf16_detail::kPanelRows;
  out.resize(k, n);
  const Index panels = bf16_detail::round_up(n, kPanelRows) / kPanelRows;
  const Index blocks = out.k_padded() / bf16_detail::kChunk;  // of 16 pairs
  std::uint16_t* data = out.data();
  const Index k_padded = out.k_padded();
  if (threads <= 0) threads = max_threads();
  if (double(panels) * double(k_padded) * 16 < double(1 << 16)) threads = 1;
  // Read B along its rows: with B row-major (k, n), one block of 32 rows across all panels
  // streams through memory; panel by panel, each 64-byte read would hit another page.
  const bool rows_outer = B.col_stride == 1;
  const Index outer = rows_outer ? blocks : panels, inner = rows_outer ? panels : blocks;
#ifdef FASTMLP_WITH_OPENMP
#pragma omp parallel for schedule(static) \
    num_threads(threads) if (threads > 1 && !omp_in_parallel())
#endif
  for (Index o = 0; o < outer; ++o) {
    for (Index i = 0; i < inner; ++i) {
      const Index j = rows_outer ? i : o, b = rows_outer ? o : i;
      const Index cols = std::min(kPanelRows, n - j * kPanelRows);
      pack_b_block(B, k, j * kPanelRows, cols, b * 16,
                   data + j * k_padded * 16 + b * bf16_detail::kTileElems);
    }
  }
}

}  // namespace fastmlp
