// The pieces of the packed GEMM (packed_gemm.cpp): its register and cache blocks, the
// micro-kernel and the two packing routines. Private to cpp/src.
//
// Layouts (row-major C, vectors along n):
//   packed A: panels of MR rows, each kc x MR, element (i, p) at panel[p * MR + i]: one
//             broadcast per row and k step, read from L1.
//   packed B: panels of NR columns, each kc x NR, element (p, j) at panel[p * NR + j]: NP
//             aligned vector loads per k step, streamed from L2.
#pragma once

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "fastmlp/gemm_operands.hpp"
#include "fastmlp/matrix.hpp"

namespace fastmlp::packed {

namespace ei = Eigen::internal;

// Eigen's packets are vector types whose alignment attributes GCC says it drops when they are
// template arguments; they are only ever used as values here, so that is harmless.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif

// The widest vector of T in this build (16 floats with AVX-512, 8 with AVX2, 4 with SSE2).
template <class T>
using Packet = typename ei::packet_traits<T>::type;
template <class T>
constexpr int kLanes = ei::unpacket_traits<Packet<T>>::size;

// Register block: MR rows x NP vectors of C stay in registers for a whole kc-long product.
// AVX-512 has 32 vector registers: 14 x 2 accumulators, 2 vectors of B and the broadcast of A
// make 31. Per k step that is 28 FMAs for 2 loads of B and 14 broadcasts (which the FMAs take
// from memory), well inside the two load ports' budget. (BLIS's Skylake-X sgemm kernel is the
// same 32 x 12 block, transposed.) AVX2 and SSE2 have 16: 6 x 2 accumulators + 2 + 1 = 15.
#if defined(__AVX512F__)
constexpr int kMR = 14;
#else
constexpr int kMR = 6;
#endif
constexpr int kNP = 2;
template <class T>
constexpr int kNR = kNP * kLanes<T>;

// Cache blocks, sized in bytes so that float and double block alike. Measured on Sapphire Rapids
// (48 KiB L1d, 2 MiB L2 per core), one thread, against MKL (torch.mm) in the same process, on
// the wide network's products (512 x 2048 x 2048 and x 1024 forward, 2048 x 2048 x 512 weight
// gradient, the error product) and 2048^3:
// - KC: an A panel (MR x KC) stays in L1 while the B panels stream past it: 14 x 384 floats
//   is 21 KiB. KC 384 ran 0.93-0.97x MKL; 256 and 512 ran 2-8% slower (256 loads and stores
//   the C block more often; 512 leaves L1 too little room for the B panel passing through).
// - NC: a block of packed B (KC x NC) stays in L2 while every A panel of the block of rows
//   passes over it: 384 x 512 floats is 768 KiB. NC 1024 (1.5 MiB, most of L2) ran 10-15%
//   slower, 2048 25% slower; 256 2-4% slower (more A panel reloads).
// - MC: packed A (MC x KC) only needs L3: each A panel is read once per NC block and then
//   serves NC / NR micro-kernels from L1. MC large means B is packed few times (once per MC
//   rows); 2016 x 384 floats is 3 MiB per thread.
template <class T>
constexpr Index kKC = 384 * 4 / Index(sizeof(T));
template <class T>
constexpr Index kNC = 512;
template <class T>
constexpr Index kMC = 144 * kMR;

// How many k steps before the end of the micro-kernel C's rows are fetched: about 450 cycles.
constexpr Index kPrefetchCSteps = 32;

// C (Rows, NR), rows ldc apart <- (load_c ? C : 0) + (bias (NR,) or 0) + a_panel (Rows, kc)
// b_panel (kc, NR), summed as (C + (bias + sum_p a b)): the k sum an FMA chain from the bias
// (or zero), C added at the end, so that C's loads (prefetched near the end) never stall the
// chain.
template <class T, int Rows>
void micro_kernel(Index kc, const T* __restrict a, const T* __restrict b, T* c, Index ldc,
                  const T* bias, bool load_c) {
  using P = Packet<T>;
  constexpr int S = kLanes<T>;
  constexpr int NR = kNR<T>;
  P acc[Rows][kNP];
#pragma GCC unroll 4
  for (int q = 0; q < kNP; ++q) {
    const P init = bias ? ei::ploadu<P>(bias + q * S) : ei::pset1<P>(T(0));
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) acc[r][q] = init;
  }
  const auto steps = [&](Index from, Index to) {
#pragma GCC unroll 2
    for (Index p = from; p < to; ++p) {
      P bv[kNP];
#pragma GCC unroll 4
      for (int q = 0; q < kNP; ++q) bv[q] = ei::pload<P>(b + p * NR + q * S);
#pragma GCC unroll 16
      for (int r = 0; r < Rows; ++r) {
        const P av = ei::pset1<P>(a[p * kMR + r]);
#pragma GCC unroll 4
        for (int q = 0; q < kNP; ++q) acc[r][q] = ei::pmadd(av, bv[q], acc[r][q]);
      }
    }
  };
  // C's rows (likely in L2 or L3 by now: one MC x NC block of C is passed once per KC block)
  // are fetched, for reading or for writing, a few hundred cycles before the end. Fetched at
  // the start, they were evicted by the A and B panels streaming through L1 before they were
  // used: a kernel that kept C out of the way ran 5-8% faster, and this recovers 1-2% of it.
  const Index tail = std::min<Index>(kc, kPrefetchCSteps);
  steps(0, kc - tail);
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (Index q = 0; q < NR * Index(sizeof(T)); q += 64) {
      __builtin_prefetch(reinterpret_cast<const char*>(c + r * ldc) + q, 1, 3);
    }
  }
  steps(kc - tail, kc);
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < kNP; ++q) {
      T* at = c + r * ldc + q * S;
      ei::pstoreu(at, load_c ? ei::padd(ei::ploadu<P>(at), acc[r][q]) : acc[r][q]);
    }
  }
}

template <class T>
using MicroKernel = void (*)(Index, const T*, const T*, T*, Index, const T*, bool);

// The first n lanes of v from `from` (unaligned), zeros in the others, which are not read.
template <class T>
inline Packet<T> load_first(const T* from, int n) {
#if defined(__AVX512F__)
  const __mmask16 mask = __mmask16((1u << n) - 1u);
  if constexpr (std::is_same_v<T, float>) {
    return _mm512_maskz_loadu_ps(mask, from);
  } else {
    return _mm512_maskz_loadu_pd(__mmask8(mask), from);
  }
#else
  alignas(64) T lanes[kLanes<T>] = {};
  std::copy_n(from, n, lanes);
  return ei::pload<Packet<T>>(lanes);
#endif
}

// Stores the first n lanes of v at to (unaligned), leaving the memory past them untouched.
template <class T>
inline void store_first(T* to, const Packet<T>& v, int n) {
#if defined(__AVX512F__)
  const __mmask16 mask = __mmask16((1u << n) - 1u);
  if constexpr (std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(to, mask, v);
  } else {
    _mm512_mask_storeu_pd(to, __mmask8(mask), v);
  }
#else
  alignas(64) T lanes[kLanes<T>];
  ei::pstore(lanes, v);
  std::copy_n(lanes, n, to);
#endif
}

// Packs rows [0, mc) and k steps [0, kc) of A (already offset to the block's origin) into
// ceil(mc / MR) panels at out. Rows past mc in the last panel are left as they are: the
// micro-kernel for fewer rows never reads them.
template <class T>
void pack_a(Index mc, Index kc, StridedOperand<T> A, T* out) {
  using P = Packet<T>;
  constexpr int S = kLanes<T>;
  for (Index i0 = 0; i0 < mc; i0 += kMR) {
    const int rows = int(std::min<Index>(kMR, mc - i0));
    T* panel = out + i0 * kc;
    const T* src = A.data + i0 * A.row_stride;
    if (A.row_stride == 1) {
      // A = Z^T (the weight gradient): the MR elements of one k step lie side by side.
      if (rows <= S) {
        for (Index p = 0; p < kc; ++p) {
          store_first<T>(panel + p * kMR, load_first<T>(src + p * A.col_stride, rows), rows);
        }
      } else {
        for (Index p = 0; p < kc; ++p) std::copy_n(src + p * A.col_stride, rows, panel + p * kMR);
      }
      continue;
    }
    Index p = 0;
    if (A.col_stride == 1 && rows <= S) {
      // A = Z or Delta, row-major (the forward and error products): S k steps of up to S rows
      // at a time, transposed in registers (rows past `rows` are zeros, not stored). A scalar
      // loop here wrote each element alone, MR floats apart: a tenth of the product's time.
      for (; p + S <= kc; p += S) {
        ei::PacketBlock<P, S> block;
        for (int r = 0; r < S; ++r) {
          block.packet[r] = r < rows ? ei::ploadu<P>(src + r * A.row_stride + p) : ei::pzero(P());
        }
        ei::ptranspose(block);
        for (int q = 0; q < S; ++q) store_first<T>(panel + (p + q) * kMR, block.packet[q], rows);
      }
    }
    for (int r = 0; r < rows; ++r) {
      const T* row = src + r * A.row_stride;
      for (Index q = p; q < kc; ++q) panel[q * kMR + r] = row[q * A.col_stride];
    }
  }
}

// Packs k steps [0, kc) and columns [0, nc) of B (already offset to the block's origin) into
// ceil(nc / NR) panels at out, the last one padded with zeros.
template <class T>
void pack_b(Index kc, Index nc, StridedOperand<T> B, T* out) {
  using P = Packet<T>;
  constexpr int S = kLanes<T>;
  constexpr int NR = kNR<T>;
  for (Index j0 = 0; j0 < nc; j0 += NR) {
    const Index cols = std::min<Index>(NR, nc - j0);
    T* panel = out + j0 * kc;
    if (B.col_stride == 1) {
      // B = W or Delta: each k step's NR elements lie side by side.
      const T* src = B.data + j0;
      if (cols == NR) {
        // Whole panels in vectors (a memcpy call per 128 bytes cost more than the copy).
        for (Index p = 0; p < kc; ++p) {
          for (int q = 0; q < kNP; ++q) {
            ei::pstore(panel + p * NR + q * S, ei::ploadu<P>(src + p * B.row_stride + q * S));
          }
        }
        continue;
      }
      for (Index p = 0; p < kc; ++p) {
        std::copy_n(src + p * B.row_stride, cols, panel + p * NR);
        std::fill(panel + p * NR + cols, panel + (p + 1) * NR, T(0));
      }
      continue;
    }
    Index p = 0;
    if (B.row_stride == 1 && cols == NR) {
      // B = W^T (the error product): square blocks of S x S transposed in registers, as
      // small_gemm's transpose does.
      const T* src = B.data + j0 * B.col_stride;
      for (; p + S <= kc; p += S) {
        for (int j = 0; j < NR; j += S) {
          ei::PacketBlock<P, S> block;
          for (int q = 0; q < S; ++q) {
            block.packet[q] = ei::ploadu<P>(src + (j + q) * B.col_stride + p);
          }
          ei::ptranspose(block);
          for (int q = 0; q < S; ++q) ei::pstore(panel + (p + q) * NR + j, block.packet[q]);
        }
      }
    }
    const T* src = B.data + j0 * B.col_stride;
    for (; p < kc; ++p) {
      for (Index j = 0; j < cols; ++j) panel[p * NR + j] = src[p * B.row_stride + j * B.col_stride];
      std::fill(panel + p * NR + cols, panel + (p + 1) * NR, T(0));
    }
  }
}

}  // namespace fastmlp::packed
