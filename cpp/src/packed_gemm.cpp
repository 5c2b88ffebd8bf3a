#include "fastmlp/packed_gemm.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <vector>

#include "fastmlp/parallel.hpp"
#include "packed_gemm_micro.hpp"

namespace fastmlp {

namespace {

using namespace packed;  // NOLINT(google-build-using-namespace): this file's own pieces

// The micro-kernels for 1..MR rows, at index rows - 1: the last block of rows uses the one
// that fits it rather than computing rows that are thrown away.
template <class T, int... R>
constexpr std::array<MicroKernel<T>, sizeof...(R)> micro_kernels(std::integer_sequence<int, R...>) {
  return {&micro_kernel<T, R + 1>...};
}
// Internal linkage (this file's anonymous namespace): an inline variable would be one
// process-wide "unique" symbol, which the other instruction-set modules would bind to.
template <class T>
constexpr std::array<MicroKernel<T>, kMR> kMicroKernels =
    micro_kernels<T>(std::make_integer_sequence<int, kMR>());

// Each thread's packing buffers, kept between calls (the minibatch loop never allocates once they
// have grown to the largest blocks) and aligned for the micro-kernel's aligned loads.
template <class T>
struct PackBuffers {
  std::vector<T, Eigen::aligned_allocator<T>> a, b;
  static T* at_least(std::vector<T, Eigen::aligned_allocator<T>>& v, Index size) {
    if (Index(v.size()) < size) v.resize(size);
    return v.data();
  }
};
template <class T>
PackBuffers<T>& thread_buffers() {
  thread_local PackBuffers<T> buffers;
  return buffers;
}

Index round_up(Index x, Index to) { return (x + to - 1) / to * to; }
// Blocks of at most `limit` over `length`, as even as the multiple `unit` lets them be: 1100
// rows in blocks of at most 1008 make two blocks of 560 and 540, not 1008 and 92.
Index even_block(Index length, Index limit, Index unit) {
  const Index blocks = (length + limit - 1) / limit;
  return round_up((length + blocks - 1) / blocks, unit);
}

// What one call computes (see packed_gemm): everything but the part of C a thread owns.
template <class T>
struct Problem {
  Index k;
  StridedOperand<T> A, B;
  T* C;
  Index ldc;
  const T* bias;
  bool accumulate;
  BlockEpilogue epilogue;

  StridedOperand<T> a_at(Index i, Index p) const {
    return {A.data + i * A.row_stride + p * A.col_stride, A.row_stride, A.col_stride};
  }
  StridedOperand<T> b_at(Index p, Index j) const {
    return {B.data + p * B.row_stride + j * B.col_stride, B.row_stride, B.col_stride};
  }
};

// One MR x NR block of C at (i, j): the micro-kernel for its rows in place where it has NR
// columns, else (the last columns) into a full-width copy and back. first: the first KC block,
// which starts from zero or C (accumulate) plus the bias, where the later ones add to C.
template <class T>
void compute_tile(const Problem<T>& pr, Index i, Index j, Index rows, Index cols, Index kc,
                  const T* a_panel, const T* b_panel, bool first) {
  constexpr int NR = kNR<T>;
  const bool load_c = !first || pr.accumulate;
  const T* bias = first && pr.bias ? pr.bias + j : nullptr;
  T* c = pr.C + i * pr.ldc + j;
  const MicroKernel<T> kernel = kMicroKernels<T>[rows - 1];
  if (cols == NR) {
    kernel(kc, a_panel, b_panel, c, pr.ldc, bias, load_c);
    return;
  }
  // The last columns: the same kernel, on a full-width copy of C's block and of the bias.
  alignas(64) T tile[kMR * NR] = {};
  alignas(64) T tile_bias[NR] = {};
  if (load_c) {
    for (Index r = 0; r < rows; ++r) std::copy_n(c + r * pr.ldc, cols, tile + r * NR);
  }
  if (bias) std::copy_n(bias, cols, tile_bias);
  kernel(kc, a_panel, b_panel, tile, NR, bias ? tile_bias : nullptr, load_c);
  for (Index r = 0; r < rows; ++r) std::copy_n(tile + r * NR, cols, c + r * pr.ldc);
}

// The zero-depth product (k = 0): C's rows [i_begin, i_end), columns [j_begin, j_end) are the
// bias (or C plus the bias), then the epilogue.
template <class T>
void gemm_without_k(const Problem<T>& pr, Index i_begin, Index i_end, Index j_begin, Index j_end) {
  for (Index i = i_begin; i < i_end; ++i) {
    T* c = pr.C + i * pr.ldc;
    for (Index j = j_begin; j < j_end; ++j) {
      const T bias = pr.bias ? pr.bias[j] : T(0);
      c[j] = pr.accumulate ? c[j] + bias : bias;
    }
  }
  if (pr.epilogue) {
    for (Index i = i_begin; i < i_end; i += kMR) {
      pr.epilogue(i, j_begin, std::min<Index>(kMR, i_end - i), j_end - j_begin);
    }
  }
}

// One KC block [pc, pc + kc) of C's rows [ic, ic + mc) and columns [jc, jc + nc), with A's
// rows already packed at a_packed: packs B's block into b_packed and runs the micro-kernels,
// then, after the last KC block, the epilogue on each finished block of MR rows.
template <class T>
void gemm_block(const Problem<T>& pr, Index ic, Index mc, Index pc, Index kc, Index jc, Index nc,
                const T* a_packed, T* b_packed) {
  constexpr int NR = kNR<T>;
  const bool first = pc == 0, last = pc + kc == pr.k;
  pack_b<T>(kc, nc, pr.b_at(pc, jc), b_packed);
  for (Index ir = 0; ir < mc; ir += kMR) {
    const Index rows = std::min<Index>(kMR, mc - ir);
    const T* a_panel = a_packed + ir * kc;
    for (Index jr = 0; jr < nc; jr += NR) {
      compute_tile(pr, ic + ir, jc + jr, rows, std::min<Index>(NR, nc - jr), kc, a_panel,
                   b_packed + jr * kc, first);
    }
    // These MR rows of the NC block are final: the epilogue finds them in L1 or L2.
    if (last && pr.epilogue) pr.epilogue(ic + ir, jc, rows, nc);
  }
}

// C's rows [i_begin, i_end) and columns [j_begin, j_end) on the calling thread.
template <class T>
void gemm_part(const Problem<T>& pr, Index i_begin, Index i_end, Index j_begin, Index j_end) {
  if (i_begin >= i_end || j_begin >= j_end) return;
  const Index k = pr.k;
  if (k == 0) {
    gemm_without_k(pr, i_begin, i_end, j_begin, j_end);
    return;
  }
  const Index mc_step = even_block(i_end - i_begin, kMC<T>, kMR);
  const Index kc_step = even_block(k, kKC<T>, 1);
  const Index nc_step = even_block(j_end - j_begin, kNC<T>, kNR<T>);
  PackBuffers<T>& buffers = thread_buffers<T>();
  T* a_packed = buffers.at_least(buffers.a, mc_step * kc_step);
  T* b_packed = buffers.at_least(buffers.b, kc_step * nc_step);
  for (Index ic = i_begin; ic < i_end; ic += mc_step) {
    const Index mc = std::min(mc_step, i_end - ic);
    // KC blocks in order, whatever else: each element's sum runs over k in one fixed order.
    for (Index pc = 0; pc < k; pc += kc_step) {
      const Index kc = std::min(kc_step, k - pc);
      pack_a<T>(mc, kc, pr.a_at(ic, pc), a_packed);
      for (Index jc = j_begin; jc < j_end; jc += nc_step) {
        gemm_block(pr, ic, mc, pc, kc, jc, std::min(nc_step, j_end - jc), a_packed, b_packed);
      }
    }
  }
}

#ifdef FASTMLP_WITH_OPENMP
// Packed A shared by the threads of a split along n, about this many bytes per block of rows
// (all of k; rounded up to whole panels): 4 MiB is 512 rows of k = 2048 floats, and sits in L3.
constexpr Index kSharedABytes = Index(4) << 20;
// Blocks of columns the threads take in turn: each is half of an even share of the columns
// left (the first ones at most NC wide), down to 4 panels (4 NR columns: 128 floats with
// AVX-512), so that a thread slowed by its neighbour leaves the others a short last block to
// wait for, not a quarter of the product. Against blocks of a fixed quarter (2 threads, one
// process, 15-21 interleaved rounds): the wide network's forward, weight-gradient and error
// products 1.0-1.12x, its training 1.04-1.09x; minimum blocks of 2 panels, or a whole even
// share of the columns left, ran the same; a quarter of it 2-4% slower.
constexpr Index kBlocksPerShare = 2;
constexpr Index kMinColumnBlockPanels = 4;

// Hands out C's column panels [0, panels) in blocks of shrinking size (above), to any number of
// threads: each block to one thread.
class GuidedColumnBlocks {
 public:
  GuidedColumnBlocks(Index panels, Index largest, int threads)
      : panels_(panels),
        largest_(largest),
        smallest_(std::min(kMinColumnBlockPanels, largest)),
        divisor_(kBlocksPerShare * Index(threads)) {}

  // Starts the handing out again (one thread, while no other takes a block).
  void reset() { next_.store(0, std::memory_order_relaxed); }

  // The next block as panels [first, end); false once every panel is taken.
  bool take(Index& first, Index& end) {
    first = next_.load(std::memory_order_relaxed);
    Index size = 0;
    do {
      if (first >= panels_) return false;
      size = std::clamp((panels_ - first + divisor_ - 1) / divisor_, smallest_, largest_);
    } while (!next_.compare_exchange_weak(first, first + size, std::memory_order_relaxed));
    end = std::min(panels_, first + size);
    return true;
  }

 private:
  const Index panels_, largest_, smallest_, divisor_;
  std::atomic<Index> next_{0};
};

// The product on `threads` threads that split n: for each block of rows, the threads pack A's
// panels together into one buffer (each panel once, where each thread packing all of A for its
// own columns took 5% of a 2-thread product), then take blocks of columns one at a time
// until none is left, so that a thread slowed by its neighbour on a shared machine takes fewer
// of them rather than keeping the others waiting. Every element is still summed by one thread
// in the order gemm_part sums it: the same bits whoever takes which block.
template <class T>
void gemm_shared_a(const Problem<T>& pr, Index m, Index n, int threads) {
  constexpr int NR = kNR<T>;
  const Index k = pr.k;
  const Index kc_step = even_block(k, kKC<T>, 1);
  // Rounded up to whole panels: rounded down, 512 rows of k = 2048 floats made two blocks of
  // 266, and B was packed once for each.
  const Index rows_limit =
      std::clamp<Index>(round_up(kSharedABytes / Index(sizeof(T)) / k, kMR), kMR, kMC<T>);
  const Index mc_step = even_block(m, rows_limit, kMR);
  // Blocks of columns (see GuidedColumnBlocks), whole panels each.
  const Index n_tiles = (n + NR - 1) / NR;
  const Index unit_tiles =
      std::clamp<Index>(n_tiles / (kBlocksPerShare * Index(threads)), 1, kNC<T> / NR);
  GuidedColumnBlocks column_blocks(n_tiles, unit_tiles, threads);
  const Index a_panels = (mc_step + kMR - 1) / kMR;
  // The shared buffer is the calling thread's, sized here (an allocation failure throws before
  // any thread has started), the B buffers each thread's own, sized before the first barrier.
  PackBuffers<T>& caller = thread_buffers<T>();
  T* a_shared = caller.at_least(caller.a, a_panels * kMR * k);
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto fail = [&] {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = std::current_exception();
    failed = true;
  };
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    T* b_packed = nullptr;
    try {
      PackBuffers<T>& own = thread_buffers<T>();
      b_packed = own.at_least(own.b, kc_step * unit_tiles * NR);
    } catch (...) {
      fail();
    }
    for (Index ic = 0; ic < m; ic += mc_step) {
      const Index mc = std::min(mc_step, m - ic);
      // This block's panels, for every KC block: panel i of KC block pc at pc * rows + i * kc,
      // rows rounded up to whole panels (the last one is MR rows wide, however many it has).
      const Index panels = (mc + kMR - 1) / kMR, padded_rows = panels * kMR;
      for (Index task = t; task < panels; task += nt) {
        const Index i0 = task * kMR, rows = std::min<Index>(kMR, mc - i0);
        for (Index pc = 0; pc < k; pc += kc_step) {
          const Index kc = std::min(kc_step, k - pc);
          pack_a<T>(rows, kc, pr.a_at(ic + i0, pc), a_shared + pc * padded_rows + i0 * kc);
        }
      }
      if (t == 0) column_blocks.reset();
#pragma omp barrier
      Index first = 0, end = 0;
      while (!failed && column_blocks.take(first, end)) {
        const Index jc = first * NR, nc = std::min(end * NR, n) - jc;
        try {
          for (Index pc = 0; pc < k; pc += kc_step) {
            gemm_block(pr, ic, mc, pc, std::min(kc_step, k - pc), jc, nc,
                       a_shared + pc * padded_rows, b_packed);
          }
        } catch (...) {  // an epilogue's: every thread still meets every barrier
          fail();
        }
      }
      // Nobody packs the next block of rows over this one while another still reads it.
#pragma omp barrier
    }
  }
  if (error) std::rethrow_exception(error);
}
#endif

}  // namespace

template <class T>
void packed_gemm(Index m, Index n, Index k, StridedOperand<T> A, StridedOperand<T> B, T* C,
                 Index ldc, const T* bias, bool accumulate, BlockEpilogue epilogue, int threads) {
  if (m <= 0 || n <= 0) return;
  const Problem<T> pr{k, A, B, C, ldc, bias, accumulate, epilogue};
#ifdef FASTMLP_WITH_OPENMP
  if (omp_in_parallel()) threads = 1;  // never oversubscribe: the caller's threads are busy
#else
  threads = 1;
#endif
  // Split the longer side among the threads (fewer copies of the other operand's packing),
  // in whole tiles, unless it has too few tiles for them.
  const Index m_tiles = (m + kMR - 1) / kMR, n_tiles = (n + kNR<T> - 1) / kNR<T>;
  const bool split_n = n >= m ? n_tiles >= threads : m_tiles < threads;
  const Index tiles = split_n ? n_tiles : m_tiles;
  threads = int(std::max<Index>(1, std::min<Index>(threads, tiles)));
  if (threads == 1 || k == 0) {
    gemm_part(pr, 0, m, 0, n);
    return;
  }
#ifdef FASTMLP_WITH_OPENMP
  if (split_n) {
    gemm_shared_a(pr, m, n, threads);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel num_threads(threads)
  {
    const Index t = omp_get_thread_num(), nt = omp_get_num_threads();
    const Index lo = tiles * t / nt, hi = tiles * (t + 1) / nt;
    try {
      gemm_part(pr, lo * kMR, std::min(m, hi * kMR), 0, n);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
#endif
}

template <class T>
void packed_gemm_transposed(Index m, Index n, Index k, StridedOperand<T> A, StridedOperand<T> B,
                            T* C, Index ldc, const T* bias, bool accumulate, int threads) {
  if (m <= 0 || n <= 0) return;
  // Grows to the largest product and stays: the minibatch loop allocates nothing once warm.
  thread_local std::vector<T, Eigen::aligned_allocator<T>> transposed;
  if (Index(transposed.size()) < m * n) transposed.resize(std::size_t(m * n));
  T* ct = transposed.data();
  // Element (j, p) of B^T is B's (p, j): the same data, the strides swapped (A^T likewise).
  packed_gemm<T>(n, m, k, {B.data, B.col_stride, B.row_stride},
                 {A.data, A.col_stride, A.row_stride}, ct, m, nullptr, false, BlockEpilogue(),
                 threads);
  for (Index i = 0; i < m; ++i) {
    T* c = C + i * ldc;
    for (Index j = 0; j < n; ++j) {
      const T value = (bias ? bias[j] : T(0)) + ct[j * m + i];
      c[j] = accumulate ? c[j] + value : value;
    }
  }
}

// Measured here (Sapphire Rapids, 2 cores), best of 5 CPU-time runs, packed against Eigen's
// GEMM over m, n, k in {32, 64, 128, 256, 1024}:
// - AVX-512, float32 and float64, one thread: packed won (1.0-1.6x) wherever n >= 128 and lost
//   (0.73-0.96x) on most shapes with n = 32 or 64, which give it only 1 or 2 column panels
//   (float64: 2-4). On two threads it won almost everywhere (Eigen splits its GEMM less well).
// - AVX2 (16 registers, a 6 x 16 float block): float32 won 1.01-1.25x with m >= 64 and
//   n >= 256, was even at n = 128 (0.97-1.10x), lost with 32 rows. float64 was noisy around
//   parity (0.82-1.4x); the same rule.
// - SSE2 (the baseline build): no better than Eigen on most shapes: Eigen stays.
template <class T>
bool prefers_packed_gemm(Index m, Index n, Index k) {
  if (k < 1) return false;
#if defined(__AVX512F__)
  (void)m;
  return n >= 128;
#elif defined(__AVX2__) && defined(__FMA__)
  return m >= 64 && n >= 256;
#else
  (void)m;
  (void)n;
  return false;
#endif
}

// Against small_gemm (AVX-512, float32, where prefers_small_gemm holds; operands 64-byte
// aligned, one thread alone and two at once on their own products, as the split trainer and
// prediction's chunks run them): packed won from n >= 1024 (1.0-1.3x with k <= 256, 2-3x from
// k = 512: small_gemm streams its strip of B from L2 for every 4 rows, packed reuses a packed
// block) and from n >= 512 with k >= 256 (1.0-2.8x). From n = 256 it won once A has 256 rows
// and 32K elements, a threshold found by measurement (forward 256-3750 rows: 0.97-1.23x,
// weight gradients of 784-1024 rows: 1.1-1.35x, n = 384-1000 with k = 64-192: 0.88-1.34x,
// median 1.08x): small_gemm reads A again for each 64-wide strip of C, packed once per block.
// Below that, and at n = 128 at any m (0.9-1.1x), small_gemm stays: 64-row forward products
// ran at 0.92-1.04x, the weight gradient 256 x 64 -> 256 at 0.84-1.0x. (Float64 and AVX2 never
// reach here with these shapes: prefers_small_gemm refuses them.)
template <class T>
bool packed_beats_small_gemm(Index m, Index n, Index k) {
  const bool wide_output = n >= 1024 || (n >= 512 && k >= 256);
  const bool many_rows = n >= 256 && m >= 256 && m * k >= 32 * 1024;
  return prefers_packed_gemm<T>(m, n, k) && (wide_output || many_rows);
}

// Against Eigen's GEMM on narrow outputs (n = 1-15: a classifier's or regressor's output
// layer), median of 15-21 runs, float32 and float64 alike: AVX-512 won 1.25-3.6x from 128 rows
// (128-2048 rows x k = 64-2048 into n = 1, 3, 4, 10, 15; 2.0-3.1x on two threads, where Eigen
// splits such products badly), 1.2-1.8x at 32-100 rows, and lost at 16 (0.86x). AVX2 won
// 1.3-1.7x from 128 rows and was even (0.98-1.18x) below.
template <class T>
bool prefers_packed_gemm_transposed(Index m, Index n, Index k) {
  if (k < 1 || n >= 16) return false;
#if defined(__AVX512F__)
  return m >= 32;
#elif defined(__AVX2__) && defined(__FMA__)
  return m >= 128;
#else
  (void)m;
  return false;
#endif
}

template <class T>
PackedGemmBlocking packed_gemm_blocking() {
  return {kMR, kNR<T>, int(kKC<T>), int(kMC<T>), int(kNC<T>)};
}

#define FASTMLP_INSTANTIATE(T)                                                                \
  template void packed_gemm<T>(Index, Index, Index, StridedOperand<T>, StridedOperand<T>, T*, \
                               Index, const T*, bool, BlockEpilogue, int);                    \
  template bool prefers_packed_gemm<T>(Index, Index, Index);                                  \
  template bool packed_beats_small_gemm<T>(Index, Index, Index);                              \
  template void packed_gemm_transposed<T>(Index, Index, Index, StridedOperand<T>,             \
                                          StridedOperand<T>, T*, Index, const T*, bool, int); \
  template bool prefers_packed_gemm_transposed<T>(Index, Index, Index);                       \
  template PackedGemmBlocking packed_gemm_blocking<T>();

FASTMLP_INSTANTIATE(float)
FASTMLP_INSTANTIATE(double)

}  // namespace fastmlp
