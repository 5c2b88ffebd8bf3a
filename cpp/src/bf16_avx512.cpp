// The AVX512-BF16 kernel: VDPBF16PS, register-blocked 8 rows x 48 columns (24 accumulators).
// For each k pair it loads one zmm of 16 column pairs from each of three B panels and
// broadcasts the pair of each of the 8 A rows (a 32-bit broadcast, folded into the
// instruction's memory operand): 24 dot products for 11 loads. It reads the same packed layouts
// as the AMX kernel: rows of A in an A tile are 32 bf16 (16 pairs) apart.
#include <cstring>

#include "fastmlp/bf16_gemm.hpp"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define FASTMLP_HAVE_BF16_KERNELS 1
#endif

namespace fastmlp::bf16_detail {

#ifdef FASTMLP_HAVE_BF16_KERNELS

namespace {

constexpr int kRows = 8;
// Chunks of 32 k per pass over C: the three B panels of a pass are 24 KiB (L1).
constexpr Index kAvxChunksPerPass = 8;

inline __mmask16 column_mask(Index cols) {
  return cols >= 16 ? __mmask16(0xffff) : cols <= 0 ? __mmask16(0) : __mmask16((1u << cols) - 1);
}

// C[rows (<= 8), cols (<= 16 NT)] (+)= A rows (8 rows of a packed A panel, starting at a) times
// NT B panels (starting at b, panel_elems apart), over `chunks` chunks of 32 k.
template <int NT>
__attribute__((target("avx512bf16"))) void micro(const std::uint16_t* a, const std::uint16_t* b,
                                                 Index panel_elems, Index chunks, float* c,
                                                 Index ldc, Index rows, Index cols, bool load_c) {
  __m512 acc[kRows][NT];
  __mmask16 mask[NT];
#pragma GCC unroll 4
  for (int j = 0; j < NT; ++j) mask[j] = column_mask(cols - 16 * j);
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < NT; ++j) {
      acc[r][j] = load_c && r < rows ? _mm512_maskz_loadu_ps(mask[j], c + r * ldc + 16 * j)
                                     : _mm512_setzero_ps();
    }
  }
  for (Index ch = 0; ch < chunks; ++ch) {
    const std::uint16_t* at = a + ch * kTileElems;
    const std::uint16_t* bt = b + ch * kTileElems;
#pragma GCC unroll 2
    for (int q = 0; q < 16; ++q) {
      __m512bh bv[NT];
#pragma GCC unroll 4
      for (int j = 0; j < NT; ++j) {
        bv[j] = (__m512bh)_mm512_loadu_si512(bt + j * panel_elems + q * 32);
      }
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        std::int32_t pair;
        std::memcpy(&pair, at + r * 32 + q * 2, sizeof pair);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
        for (int j = 0; j < NT; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
#pragma GCC unroll 4
    for (int j = 0; j < NT; ++j) _mm512_mask_storeu_ps(c + r * ldc + 16 * j, mask[j], acc[r][j]);
  }
}

}  // namespace

void avx512_bf16_block(const BlockArgs& g) {
  const Index chunks = g.k_padded / kChunk;
  const Index panel_elems = g.k_padded * kPanelRows;
  const Index panel_end = std::min(g.panel1, (g.n + kPanelRows - 1) / kPanelRows);
  for (Index c0 = 0; c0 < chunks; c0 += kAvxChunksPerPass) {
    const Index pass = std::min(kAvxChunksPerPass, chunks - c0);
    const bool last = c0 + pass >= chunks;
    const bool load_c = g.accumulate || c0 > 0;
    for (Index p = g.panel0; p < panel_end; p += 3) {
      const int nt = int(std::min<Index>(3, panel_end - p));
      const Index col = p * kPanelRows;
      const Index cols = std::min<Index>(16 * nt, g.n - col);
      const std::uint16_t* b = g.b + p * panel_elems + c0 * kTileElems;
      for (Index row = 0; row < g.rows; row += kRows) {
        // Rows of A: panel row / 16, half (row % 16) / 8 of its tiles.
        const std::uint16_t* a = g.a + (row / 16) * panel_elems + (row % 16) * 32 + c0 * kTileElems;
        const Index rows = std::min<Index>(kRows, g.rows - row);
        float* c = g.c + row * g.ldc + col;
        switch (nt) {
          case 3: micro<3>(a, b, panel_elems, pass, c, g.ldc, rows, cols, load_c); break;
          case 2: micro<2>(a, b, panel_elems, pass, c, g.ldc, rows, cols, load_c); break;
          default: micro<1>(a, b, panel_elems, pass, c, g.ldc, rows, cols, load_c); break;
        }
        if (last && g.epilogue) g.epilogue(g.row0 + row, col, rows, cols);
      }
    }
  }
}

#else

void avx512_bf16_block(const BlockArgs&) {}

#endif

}  // namespace fastmlp::bf16_detail
