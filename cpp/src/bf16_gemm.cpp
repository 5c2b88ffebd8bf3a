// The bf16 GEMM driver: checks, splits C into tasks (blocks of rows, each cut into parts of
// columns) that each thread takes from its own share first and then from the others', packs
// the rows of A it works on into a buffer of its own and hands blocks to the chosen kernel. K is
// never split: every element of C is summed in the order its kernel fixes, whoever computes it
// and whatever the thread count.
#include "fastmlp/bf16_gemm.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include "fastmlp/parallel.hpp"

namespace fastmlp {

namespace {

using namespace bf16_detail;

// Rows of A packed at a time: 256 rows x k 2048 in bf16 is 1 MiB, in L2 (2 MiB) beside B's
// panels; each B panel pair read from memory then serves 8 AMX row pairs. 256 measured a few
// percent faster than 128 on the wide workload's shapes, 64 clearly slower.
constexpr Index kMaxBlockRows = 256;
// Fewer rows than this per thread: split the columns instead.
constexpr Index kMinRowsToSplit = 64;
// Tasks per thread, at least (where C has enough pairs of panels): a thread that finishes its
// own share early takes the others' remaining tasks. With one block of rows per thread and no
// stealing, the calling thread waited for the other at the end of 9.5% of a bf16 training
// step on the wide network (2 threads, a shared machine: the other core is often slower).
constexpr Index kMinTasksPerThread = 4;
// Threads at most, so that the shares' counters live on the stack (no allocation per call).
constexpr int kMaxThreads = 256;

// A buffer of bf16 that only grows, one per thread: packing allocates nothing once warm.
class ThreadBuffer {
 public:
  std::uint16_t* get(Index elems) {
    if (elems > capacity_) {
      const std::size_t bytes = std::size_t(round_up(elems * 2, 64));
      auto* p = static_cast<std::uint16_t*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      std::free(data_);
      data_ = p;
      capacity_ = elems;
    }
    return data_;
  }
  ~ThreadBuffer() { std::free(data_); }

 private:
  std::uint16_t* data_ = nullptr;
  Index capacity_ = 0;
};

std::uint16_t* a_buffer(Index elems) {
  thread_local ThreadBuffer buffer;
  return buffer.get(elems);
}

void check_runnable(Bf16Kernel kernel) {
  if (!bf16_kernel_available(kernel)) {
    throw std::invalid_argument(std::string("bf16 kernel '") + bf16_kernel_name(kernel) +
                                "' cannot run here: " + bf16_kernel_unavailable_reason(kernel));
  }
}

bool in_parallel() {
#ifdef FASTMLP_WITH_OPENMP
  return omp_in_parallel();
#else
  return false;
#endif
}

}  // namespace

void bf16_gemm(Bf16Kernel kernel, Index m, Index n, Index k, StridedOperand<float> A,
               const Bf16PackedB& B, float* C, Index ldc, bool accumulate, BlockEpilogue epilogue,
               int threads) {
  check_runnable(kernel);
  if (B.k() != k || B.n() != n) {
    throw std::invalid_argument("bf16_gemm: B was packed as (" + std::to_string(B.k()) + ", " +
                                std::to_string(B.n()) + "), the product needs (" +
                                std::to_string(k) + ", " + std::to_string(n) + ")");
  }
  if (m < 0 || n < 0 || k < 0 || (n > 0 && ldc < n)) {
    throw std::invalid_argument("bf16_gemm: negative size or ldc < n");
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      for (Index i = 0; i < m; ++i) std::fill(C + i * ldc, C + i * ldc + n, 0.0f);
    }
    if (epilogue) epilogue(0, 0, m, n);
    return;
  }

  if (threads <= 0) threads = max_threads();
  threads = std::min(threads, kMaxThreads);
  if (in_parallel() || double(m) * double(n) * double(k) < kMinParallelGemmWork) threads = 1;
  const Index panels = (n + kPanelRows - 1) / kPanelRows;
  const Index panel_pairs = (panels + 1) / 2;  // threads split columns by pairs (AMX blocks)

  // Row blocks: a multiple of the thread count when the rows allow, each <= kMaxBlockRows.
  Index row_blocks = 1, col_parts = 1;
  if (threads > 1 && m >= threads * kMinRowsToSplit) {
    row_blocks = threads * ((m + threads * kMaxBlockRows - 1) / (threads * kMaxBlockRows));
  } else {
    row_blocks = (m + kMaxBlockRows - 1) / kMaxBlockRows;
    col_parts = std::min<Index>(threads, panel_pairs);
  }
  const Index block_rows = round_up((m + row_blocks - 1) / row_blocks, 32);
  row_blocks = (m + block_rows - 1) / block_rows;
  if (threads > 1) {
    const Index wanted = (kMinTasksPerThread * threads + row_blocks - 1) / row_blocks;
    col_parts = std::min(panel_pairs, std::max(col_parts, wanted));
  }
  const Index tasks = row_blocks * col_parts;
  if (threads > tasks) threads = int(tasks);
  const Index k_padded = B.k_padded();
  const auto block = kernel == Bf16Kernel::amx ? amx_block : avx512_bf16_block;

  // Thread t's share is tasks [share_begin(t), share_begin(t + 1)), in order of rows: taken from
  // the front, by its owner first, so that an owner packs each of its blocks of rows once.
  const auto share_begin = [&](Index t) { return tasks * t / threads; };
  std::array<std::atomic<Index>, kMaxThreads> next_task;
  for (Index t = 0; t < threads; ++t) next_task[std::size_t(t)] = share_begin(t);
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](Index t) {
    try {
      std::uint16_t* a = a_buffer(block_rows * k_padded);
      Index packed = -1;  // the row block now in `a`
      // Its own share, then the others' in turn (all of them: the team may be smaller than
      // asked for, and a share with no thread of its own is taken by the others).
      for (Index i = 0; i < threads && !failed; ++i) {
        const Index owner = (t + i) % threads;
        for (;;) {
          const Index task = next_task[std::size_t(owner)]++;
          if (task >= share_begin(owner + 1) || failed) break;
          const Index rb = task / col_parts, cp = task % col_parts;
          const Index row0 = rb * block_rows, rows = std::min(block_rows, m - row0);
          if (packed != rb) {
            pack_a(k, k_padded, A, row0, rows, a);
            packed = rb;
          }
          BlockArgs args{a,
                         rows,
                         B.data(),
                         2 * (panel_pairs * cp / col_parts),
                         std::min(panels, 2 * (panel_pairs * (cp + 1) / col_parts)),
                         n,
                         k_padded,
                         C + row0 * ldc,
                         ldc,
                         row0,
                         accumulate,
                         epilogue};
          block(args);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  if (threads == 1) {
    run(0);
  } else {
#ifdef FASTMLP_WITH_OPENMP
#pragma omp parallel num_threads(threads)
    run(omp_get_thread_num());
#else
    run(0);
#endif
  }
  if (error) std::rethrow_exception(error);
}

void bf16_gemm(Bf16Kernel kernel, Index m, Index n, Index k, StridedOperand<float> A,
               StridedOperand<float> B, float* C, Index ldc, bool accumulate,
               BlockEpilogue epilogue, int threads) {
  check_runnable(kernel);
  thread_local Bf16PackedB packed;
  pack_bf16_b(kernel, k, n, B, packed, in_parallel() ? 1 : threads);
  bf16_gemm(kernel, m, n, k, A, packed, C, ldc, accumulate, epilogue, threads);
}

}  // namespace fastmlp
