// The CPU trainer: everything one fit (or partial_fit) call needs, checked and allocated once,
// then minibatches run entirely in C++, in as many calls as the caller likes (Python runs an
// epoch in chunks of about 0.1 s so that it can answer Ctrl-C and draw progress between them).
// The parameters and optimizer moments are the caller's memory (NumPy arrays), updated in
// place: nothing of the model's state lives here.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "fastmlp/bf16_layers.hpp"
#include "fastmlp/network.hpp"
#include "fastmlp/optimizer.hpp"

namespace fastmlp {

// The data of a fit: X (n_samples, n_inputs), Y (n_samples, n_outputs), row-major, and the
// sample weights (n_samples,) or nullptr. Sparse X comes as sparse_X (CSR, X nullptr): the
// first layer then reads its rows where they are, and sums its weight gradient by feature.
template <class T>
struct TrainingData {
  const T* X = nullptr;
  const T* Y = nullptr;
  const T* sample_weight = nullptr;
  Index n_samples = 0;
  const CsrMatrix<T>* sparse_X = nullptr;
};

// How the threads share a minibatch whose GEMMs are too small to thread inside: `automatic`
// splits its rows among the threads when the batch carries enough work to pay for the barriers
// per batch; `always` and `never` force the choice (for tests and experiments).
enum class BatchSplit { automatic, always, never };

// For tests: where not negative, every trainer's last thread throws std::bad_alloc as it starts
// the forward and backward pass of that minibatch of each run, as a kernel's buffer that fails
// to grow would.
std::atomic<Index>& injected_fault_batch();

class TeamErrors;
template <class T>
struct ThreadSlot;
template <class T>
struct ParamArray;

template <class T>
class Trainer {
 public:
  // Checks the spec (check_spec, and check_trainable) and sizes the workspace for batches of
  // batch_size rows (at most n_samples). t is Adam's step count so far. bf16 (float32 only):
  // the kernel that runs the products on bf16 operands (bf16_layers.hpp), or none.
  Trainer(const NetworkSpec& spec, const OptimizerConfig& config, T alpha, Index batch_size,
          std::int64_t t, const TrainingData<T>& data, BatchSplit batch_split,
          Bf16Kernel bf16 = Bf16Kernel::none);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Takes these as the parameters and moments (moments.first/second: 2L arrays each, or none
  // where the solver keeps none): pointers only, the memory stays the caller's.
  void set_state(const std::vector<T*>& coefs, const std::vector<T*>& intercepts,
                 const OptimizerState<T>& moments);

  // Minibatches of batch_size over the rows order[0..n) (each in [0, n_samples)); the last may
  // be short. Updates the parameters and moments in place. Returns loss_sum plus the sum over
  // batches of (batch loss * batch length), scikit-learn's accumulated_loss: an epoch run in
  // several calls, each given the previous call's result, adds up exactly as one call would.
  double run(const std::int64_t* order, Index n, double learning_rate, double loss_sum = 0.0);

  // The full-batch loss (mean, with the L2 term) at the flat parameter vector params
  // (scikit-learn's packing), its gradient written into grad (the same layout). The trained
  // parameters set by set_state are not touched. Large data run in blocks of rows, and
  // `interrupted` (if given) is asked between blocks: when it says true the evaluation stops
  // and returns NaN, leaving grad unspecified.
  double loss_and_gradient(T* params, T* grad, const std::function<bool()>& interrupted = {});

  std::int64_t t() const { return t_; }
  const NetworkSpec& spec() const { return net_; }

 private:
  void run_batches(int tid, const std::int64_t* order, Index n,
                   const std::vector<ParamArray<T>>& arrays, TeamErrors& errors);
  template <class Rows>
  double loss_and_gradient_over(Rows X, const Network<T>& at, const Gradients<T>& grads,
                                Index block, const std::function<bool()>& interrupted);
  std::vector<ParamArray<T>> parameter_arrays() const;

  Network<T> net_;
  OptimizerConfig config_;
  T alpha_;
  Index batch_;
  std::int64_t t_;
  TrainingData<T> data_;
  int split_ = 1;         // threads that share each batch's rows
  int gemm_threads_ = 1;  // Eigen's threads inside each GEMM when the batch is not split
  int update_parts_ = 1;  // the parts of the update, each on its own thread (see the constructor)
  std::vector<double> update_shares_;  // their shares of ||W||^2, one per part
  std::vector<std::unique_ptr<ThreadSlot<T>>> slots_;
  OptimizerState<T> moments_;
  std::unique_ptr<Workspace<T>> full_batch_;        // L-BFGS's, made at its first call
  std::unique_ptr<ThreadSlot<T>> block_;            // or, for data in blocks, the block's
  std::unique_ptr<SparseGradient<T>> sparse_grad_;  // sparse X: the batch's first-layer sums
  std::unique_ptr<Bf16Weights> bf16_;               // bf16 products: the packed weights
  double accumulated_ = 0.0;
  // sum ||W||^2 of the current weights, as the last update summed it; negative: unknown (no run
  // yet, or the parameters were replaced), computed afresh. Carried from one run to the next so
  // that the batch losses do not depend on where an epoch was cut into runs.
  double sq_norm_ = -1.0;
};

}  // namespace fastmlp
