// Threads: OpenMP when built with it, one thread otherwise. Two rules keep the two cores busy
// without oversubscribing them: Eigen never threads a GEMM from inside our parallel regions (it
// checks omp_in_parallel itself), and Eigen threads a GEMM outside them only when the GEMM is
// large enough to pay for the fork (small ones ran 3x slower threaded on this machine).
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>

#include "fastmlp/matrix.hpp"

#ifdef FASTMLP_WITH_OPENMP
#include <omp.h>
#endif

namespace fastmlp {

// The thread count OpenMP would use now: follows OMP_NUM_THREADS and threadpoolctl.
inline int max_threads() {
#ifdef FASTMLP_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Multiply-adds below which a GEMM runs on one thread.
constexpr double kMinParallelGemmWork = double(1 << 21);
// Splitting a minibatch among threads: at least this many rows per thread (with fewer, the
// per-thread GEMMs lose more efficiency than the second core brings: measured here, 16 and 32
// rows per thread ran slower than one thread) and at least this many forward multiply-adds
// per batch, so that the two barriers stay a small share of the batch's time. Barriers are
// also what suffers when another process holds a core: a thread descheduled at one stalls the
// others, so small batches never split.
constexpr Index kMinRowsPerThread = 64;
constexpr double kMinSplitWork = double(1 << 17);

// The GEMM thread count that the calling thread's innermost ScopedEigenThreads asked for; 1
// outside any (as in the workers of a parallel region). Kernel choices read this rather than
// Eigen::nbThreads(), which is one global that concurrent calls from several Python threads
// overwrite: a choice made from it would make results depend on what other threads are doing.
inline int& scoped_gemm_threads() {
  thread_local int threads = 1;
  return threads;
}

// Sets Eigen's thread count (and scoped_gemm_threads) for the lifetime of the object,
// restoring the previous ones after.
class ScopedEigenThreads {
 public:
  explicit ScopedEigenThreads(int threads)
      : previous_(Eigen::nbThreads()), previous_scoped_(scoped_gemm_threads()) {
    Eigen::setNbThreads(threads);
    scoped_gemm_threads() = threads;
  }
  ~ScopedEigenThreads() {
    Eigen::setNbThreads(previous_);
    scoped_gemm_threads() = previous_scoped_;
  }
  ScopedEigenThreads(const ScopedEigenThreads&) = delete;
  ScopedEigenThreads& operator=(const ScopedEigenThreads&) = delete;

 private:
  int previous_;
  int previous_scoped_;
};

// Exceptions inside a parallel region whose threads meet at barriers (the trainer's threads,
// which share each minibatch). An exception may not leave a parallel region (std::terminate),
// and a thread that left its loop alone would leave the others waiting at the next barrier
// for ever. So each thread runs its work between two barriers through its Member's run(),
// which keeps the team's first exception, and meets the others through barrier(), which tells
// every thread alike whether any failed before it: then they all leave together, and the
// caller rethrows after the region (rethrow_first()).
//
// Each barrier reads the flag of its own parity: a failure after barrier N sets flag (N + 1) % 2,
// which no thread reads before barrier N + 1, while a slower thread may still be reading flag
// N % 2 of barrier N. A flag once set stays set: every thread leaves at the barrier that reads it.
class TeamErrors {
 public:
  class Member {
   public:
    explicit Member(TeamErrors& team) : team_(team) {}

    template <class Work>
    void run(Work&& work) noexcept {
      try {
        work();
      } catch (...) {
        team_.keep(std::current_exception(), barriers_ % 2);
      }
    }

    // Meets the other threads (on one thread, outside a parallel region, it only reads the
    // flag); true when any thread failed before this barrier.
    bool barrier() {
#ifdef FASTMLP_WITH_OPENMP
#pragma omp barrier
#endif
      return team_.failed_[barriers_++ % 2].load(std::memory_order_acquire);
    }

   private:
    TeamErrors& team_;
    unsigned barriers_ = 0;
  };

  void rethrow_first() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  void keep(std::exception_ptr error, unsigned parity) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::move(error);
    }
    failed_[parity].store(true, std::memory_order_release);
  }

  std::mutex mutex_;
  std::exception_ptr first_;
  std::atomic<bool> failed_[2] = {false, false};
};

// Runs body(state, begin, end) over [0, n) split into chunks of at most chunk rows, on the
// OpenMP threads, each thread making its state (a workspace) with make_state() once, at its
// first chunk, and keeping it for the others: a state per chunk paid its memory's page faults
// once per chunk, 5% of a prediction. The threads take the chunks one at a time, so that one
// slowed by another process on its core takes fewer. The first exception thrown by any chunk
// is rethrown once, after the loop.
template <class MakeState, class Body>
void parallel_chunks(Index n, Index chunk, MakeState make_state, Body body) {
  const Index n_chunks = (n + chunk - 1) / chunk;
  std::exception_ptr error;
  std::mutex error_mutex;
#ifdef FASTMLP_WITH_OPENMP
#pragma omp parallel if (n_chunks > 1)
#endif
  {
    std::optional<decltype(make_state())> state;
#ifdef FASTMLP_WITH_OPENMP
#pragma omp for schedule(dynamic)
#endif
    for (Index c = 0; c < n_chunks; ++c) {
      try {
        if (!state) state.emplace(make_state());
        body(*state, c * chunk, std::min(n, (c + 1) * chunk));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace fastmlp
