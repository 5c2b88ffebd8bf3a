// The AMX kernel: TDPBF16PS on 2 x 2 blocks of 16 x 16 fp32 C tiles (tmm0..3), two A tiles
// (tmm4, 5: 16 rows x 32 bf16) and two B tiles (tmm6, 7: 16 pairs x 16 columns, VNNI pairs),
// so each loaded tile feeds two products. Packing pads A rows and B columns to multiples of 16
// (and k to 32) with zeros; an odd last A or B panel runs a 2 x 1, 1 x 2 or 1 x 1 block, and C
// tiles that reach past m or n go through a scratch tile.
//
// The tile instructions are written as inline assembly with "memory" clobbers rather than
// GCC 12's _tile_* macros: those give tileloadd no memory operand (the compiler may then sink
// the stores into a scratch tile past the load that reads them) and describe ldtilecfg as
// reading 8 bytes of the 64-byte configuration.
#include <cstring>

#include "fastmlp/bf16_gemm.hpp"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__)
#define FASTMLP_HAVE_BF16_KERNELS 1
#endif

#define FASTMLP_TILE_LOAD(t, base, stride)                                               \
  __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t::"r"(static_cast<const void*>(base)), \
                   "r"(static_cast<long>(stride))                                        \
                   : "memory")
#define FASTMLP_TILE_STORE(t, base, stride)                                             \
  __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(static_cast<void*>(base)), \
                   "r"(static_cast<long>(stride))                                       \
                   : "memory")
#define FASTMLP_TILE_DP(d, a, b) __asm__ volatile("tdpbf16ps %%tmm" #b ", %%tmm" #a ", %%tmm" #d::)
#define FASTMLP_TILE_ZERO(t) __asm__ volatile("tilezero %%tmm" #t::)

namespace fastmlp::bf16_detail {

#ifdef FASTMLP_HAVE_BF16_KERNELS

namespace {

// Chunks of 32 k per pass over C: each pass stores C's tiles and the next loads them back.
// Measured here (one core, 512 x 2048 x 1024 to 2048^3): passes of 16 chunks ran some 20%
// slower than 32, and 64 as fast as the whole of k; beyond, k is split to bound A's and B's
// share of L2.
// (Those passes were measured before the next block's C was prefetched; with it, 8, 16 and 32
// still ran 40%, 25% and 10% slower than 64.)
constexpr Index kAmxChunksPerPass = 64;

struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// Releases the tiles however the block ends (an epilogue may throw).
struct TileRelease {
  TileRelease() = default;
  TileRelease(const TileRelease&) = delete;
  TileRelease& operator=(const TileRelease&) = delete;
  ~TileRelease() { __asm__ volatile("tilerelease" ::); }
};

struct alignas(64) Scratch {
  float tile[4][16 * 16];
};

// The C rows that the next block stores to, requested for writing while this block computes
// (32 columns each: 2 lines where the rows are 64-byte aligned, else the third is left to the
// hardware): a tile store or load that misses the caches holds the tile unit up until its lines
// arrive. Without it, the weight gradient (k = 512: 16 chunks per block, so a store every 64
// products) ran 20-35% slower, one thread or two, larger k some 5-10%.
struct NextC {
  const float* c = nullptr;
  Index rows = 0;
  Index ldc = 0;
  // Lines [first, last) of the 2 * rows, row by row.
  void prefetch(Index first, Index last) const {
    for (Index line = first; line < std::min(last, 2 * rows); ++line) {
      __builtin_prefetch(c + (line >> 1) * ldc + (line & 1) * 16, /*write*/ 1, /*keep*/ 3);
    }
  }
};

// Where C tile t of the block is: its origin, valid rows and columns.
struct CTile {
  float* c;
  Index rows, cols;
  bool full() const { return rows == 16 && cols == 16; }
};

void to_scratch(const CTile& t, float* s, Index ldc) {
  std::memset(s, 0, sizeof(float) * 256);
  for (Index r = 0; r < t.rows; ++r) std::memcpy(s + r * 16, t.c + r * ldc, sizeof(float) * t.cols);
}

void from_scratch(const CTile& t, const float* s, Index ldc) {
  for (Index r = 0; r < t.rows; ++r) std::memcpy(t.c + r * ldc, s + r * 16, sizeof(float) * t.cols);
}

// Loads C tile t into tmm<t> (directly when it is whole, else through the scratch tile).
#define FASTMLP_LOAD_C(t)                         \
  {                                               \
    if (tiles[t].full()) {                        \
      FASTMLP_TILE_LOAD(t, tiles[t].c, ldc * 4);  \
    } else {                                      \
      to_scratch(tiles[t], scratch.tile[t], ldc); \
      FASTMLP_TILE_LOAD(t, scratch.tile[t], 64);  \
    }                                             \
  }
#define FASTMLP_STORE_C(t)                          \
  {                                                 \
    if (tiles[t].full()) {                          \
      FASTMLP_TILE_STORE(t, tiles[t].c, ldc * 4);   \
    } else {                                        \
      FASTMLP_TILE_STORE(t, scratch.tile[t], 64);   \
      from_scratch(tiles[t], scratch.tile[t], ldc); \
    }                                               \
  }

// One block of MT x NT C tiles (16 x 16 each) over chunks [0, chunks) of the A panels a0, a1
// and B panels b0, b1 (a1 and b1 unread when MT or NT is 1). Tiles: C (i, j) in tmm<2i + j>.
template <int MT, int NT>
void micro(const std::uint16_t* a0, const std::uint16_t* a1, const std::uint16_t* b0,
           const std::uint16_t* b1, Index chunks, const CTile (&tiles)[4], Index ldc, bool load_c,
           Scratch& scratch, const NextC& next) {
  constexpr bool two_rows = MT == 2, two_cols = NT == 2;
  if (load_c) {
    FASTMLP_LOAD_C(0)
    if constexpr (two_cols) FASTMLP_LOAD_C(1)
    if constexpr (two_rows) FASTMLP_LOAD_C(2)
    if constexpr (two_rows && two_cols) FASTMLP_LOAD_C(3)
  } else {
    FASTMLP_TILE_ZERO(0);
    if constexpr (two_cols) FASTMLP_TILE_ZERO(1);
    if constexpr (two_rows) FASTMLP_TILE_ZERO(2);
    if constexpr (two_rows && two_cols) FASTMLP_TILE_ZERO(3);
  }
  // The next block's lines, spread over the chunks: a few requests at a time.
  const Index lines_per_chunk = (2 * next.rows + chunks - 1) / chunks;
  for (Index c = 0; c < chunks; ++c) {
    const Index off = c * kTileElems;
    next.prefetch(c * lines_per_chunk, (c + 1) * lines_per_chunk);
    FASTMLP_TILE_LOAD(4, a0 + off, 64);
    FASTMLP_TILE_LOAD(6, b0 + off, 64);
    FASTMLP_TILE_DP(0, 4, 6);
    if constexpr (two_rows) {
      FASTMLP_TILE_LOAD(5, a1 + off, 64);
      FASTMLP_TILE_DP(2, 5, 6);
    }
    if constexpr (two_cols) {
      FASTMLP_TILE_LOAD(7, b1 + off, 64);
      FASTMLP_TILE_DP(1, 4, 7);
    }
    if constexpr (two_rows && two_cols) FASTMLP_TILE_DP(3, 5, 7);
  }
  FASTMLP_STORE_C(0)
  if constexpr (two_cols) FASTMLP_STORE_C(1)
  if constexpr (two_rows) FASTMLP_STORE_C(2)
  if constexpr (two_rows && two_cols) FASTMLP_STORE_C(3)
}

#undef FASTMLP_LOAD_C
#undef FASTMLP_STORE_C

}  // namespace

void amx_block(const BlockArgs& g) {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.colsb[t] = 64;
    config.rows[t] = 16;
  }
  __asm__ volatile("ldtilecfg %0" ::"m"(config));
  const TileRelease release;
  Scratch scratch;
  const Index chunks = g.k_padded / kChunk;
  const Index panel_elems = g.k_padded * kPanelRows;  // one A or B panel
  const Index row_pairs = (g.rows + 31) / 32;
  const Index panel_end = std::min(g.panel1, (g.n + kPanelRows - 1) / kPanelRows);
  for (Index c0 = 0; c0 < chunks; c0 += kAmxChunksPerPass) {
    const Index pass = std::min(kAmxChunksPerPass, chunks - c0);
    const bool last = c0 + pass >= chunks;
    const bool load_c = g.accumulate || c0 > 0;
    for (Index p = g.panel0; p < panel_end; p += 2) {
      const bool two_cols = p + 1 < panel_end;
      const Index col = p * kPanelRows;
      const std::uint16_t* b0 = g.b + p * panel_elems + c0 * kTileElems;
      const std::uint16_t* b1 = b0 + panel_elems;
      const Index cols = std::min<Index>(32, g.n - col);
      for (Index rp = 0; rp < row_pairs; ++rp) {
        const Index row = rp * 32;
        const std::uint16_t* a0 = g.a + 2 * rp * panel_elems + c0 * kTileElems;
        const Index rows = std::min<Index>(32, g.rows - row);
        const bool two_rows = rows > 16;
        float* c = g.c + row * g.ldc + col;
        const CTile tiles[4] = {
            {c, std::min<Index>(16, rows), std::min<Index>(16, cols)},
            {c + 16, std::min<Index>(16, rows), std::max<Index>(0, cols - 16)},
            {c + 16 * g.ldc, std::max<Index>(0, rows - 16), std::min<Index>(16, cols)},
            {c + 16 * g.ldc + 16, std::max<Index>(0, rows - 16), std::max<Index>(0, cols - 16)}};
        const std::uint16_t* a1 = a0 + panel_elems;
        // The next block of this pass: the next row pair, else the next pair of panels' first.
        NextC next;
        if (rp + 1 < row_pairs) {
          next = {c + 32 * g.ldc, std::min<Index>(32, g.rows - row - 32), g.ldc};
        } else if (p + 2 < panel_end) {
          next = {g.c + col + 32, std::min<Index>(32, g.rows), g.ldc};
        }
        if (two_rows && two_cols) {
          micro<2, 2>(a0, a1, b0, b1, pass, tiles, g.ldc, load_c, scratch, next);
        } else if (two_rows) {
          micro<2, 1>(a0, a1, b0, b1, pass, tiles, g.ldc, load_c, scratch, next);
        } else if (two_cols) {
          micro<1, 2>(a0, a1, b0, b1, pass, tiles, g.ldc, load_c, scratch, next);
        } else {
          micro<1, 1>(a0, a1, b0, b1, pass, tiles, g.ldc, load_c, scratch, next);
        }
        if (last && g.epilogue) g.epilogue(g.row0 + row, col, rows, cols);
      }
    }
  }
}

#else

void amx_block(const BlockArgs&) {}

#endif

}  // namespace fastmlp::bf16_detail
