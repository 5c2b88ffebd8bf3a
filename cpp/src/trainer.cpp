// The CPU trainer (trainer.hpp). About 560 lines, past the project's 400: the threads' share of a
// minibatch, its reduction and update, and L-BFGS's blocked full-batch pass belong together, as
// they share the thread slots and the parameter layout.
#include "fastmlp/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <type_traits>

#include "fastmlp/parallel.hpp"

namespace fastmlp {

namespace {

// The parts of the update of a batch that one thread runs with threaded products: a multiple
// of the usual thread counts, so that each thread gets an equal share.
constexpr int kUnsplitUpdateParts = 8;

// Dense weights above this many bytes (a server core's L2) train with threaded products rather
// than a split batch, where the products are large enough to thread.
constexpr double kMaxSplitWeightBytes = double(2 << 20);

// Multiply-adds of one forward pass over a block of L-BFGS's rows: a tenth of a second or so
// for the block's forward and backward passes on the project's machines.
constexpr double kBlockWork = 1e9;

// Copies the rows order[0..rows) of src (n, cols) into dst (rows, cols): the batch becomes one
// contiguous block whatever the shuffle.
template <class T>
void gather_rows(const T* src, Index cols, const std::int64_t* order, Index rows, T* dst) {
  for (Index i = 0; i < rows; ++i) {
    std::memcpy(dst + i * cols, src + order[i] * cols, sizeof(T) * std::size_t(cols));
  }
}

}  // namespace

// What one thread owns: its share of the batch, its workspace and its partial gradient sums.
// With sparse X there is no dense copy of the rows (x stays empty) and, in minibatches, no
// per-thread sum of the first layer's weight gradient (first_layer_sums false: the trainer's
// SparseGradient holds it, split by feature).
template <class T>
struct ThreadSlot {
  ThreadSlot(const Network<T>& net, Index max_rows, bool sparse = false,
             bool first_layer_sums = true)
      : ws(net, max_rows),
        x(sparse ? 0 : max_rows, net.n_inputs()),
        y(max_rows, net.n_outputs()),
        w(max_rows),
        row_grad(net.sizes[1]) {
    for (Index l = 0; l < net.n_layers(); ++l) {
      const bool dense_sum = l > 0 || first_layer_sums;
      coef_sums.emplace_back(dense_sum ? net.sizes[l] : 0, net.sizes[l + 1]);
      intercept_sums.emplace_back(net.sizes[l + 1]);
      sums.coefs.push_back(dense_sum ? coef_sums.back().data() : nullptr);
      sums.intercepts.push_back(intercept_sums.back().data());
    }
  }
  Workspace<T> ws;
  RowMatrix<T> x, y;
  Vector<T> w;
  Vector<T> row_grad;  // one row of the sparse first layer's gradient, in the update
  std::vector<RowMatrix<T>> coef_sums;
  std::vector<Vector<T>> intercept_sums;
  Gradients<T> sums;
  double loss_sum = 0.0;
  // This thread's share of sum ||W||^2 after the update of batch b, in sq_norm[b % 2]: thread 0
  // reads batch b-1's shares while the others write batch b's, with no barrier between.
  double sq_norm[2] = {0.0, 0.0};
};

// One parameter array, flattened, for the reduce-and-update step.
template <class T>
struct ParamArray {
  T* param;
  T* first;
  T* second;
  Index size;
  Index layer;                                // index into the slots' sums
  bool is_coef;                               // weights get the L2 term and count in ||W||^2
  const SparseGradient<T>* sparse = nullptr;  // the sparse first layer's sums, by feature
};

namespace {

// ||W||^2 of one piece of a parameter array, in double: every sum of the norm (after an update,
// or afresh in sq_norm_share) adds the same pieces, in the same order, through this one function,
// so that the bits agree.
template <class T>
double piece_sq_norm(const T* param, Index n) {
  return double(ConstVectorMap<T>(param, n).squaredNorm());
}

// The update of elements [begin, end) of every parameter array: grad = (sum over threads of the
// partial sums + alpha W) * scale, then the optimizer's rule.
// The sparse first layer's weights: row j's gradient is (G_j + alpha W_j) * scale where the batch
// touched feature j, alpha W_j * scale elsewhere; every weight gets the optimizer's step (Adam's
// moments and the L2 term move untouched rows too, exactly as with dense input).
template <class T>
double update_sparse_rows(const ParamArray<T>& a, Index lo, Index hi, T alpha, T scale,
                          const OptimizerConfig& config, double adam_rate, bool want_sq_norm,
                          T* row_grad, Index width) {
  double sq = 0.0;
  using Array = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  for (Index j = lo / width; j * width < hi; ++j) {
    const Index s = std::max(lo, j * width), e = std::min(hi, (j + 1) * width), n = e - s;
    Array grad(row_grad, n);
    const T* sum = a.sparse->row(j);
    if (sum) {
      grad = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(sum + (s - j * width), n);
      if (alpha != T(0)) grad += alpha * Array(a.param + s, n);
      grad *= scale;
    } else if (alpha != T(0)) {
      grad = alpha * Array(a.param + s, n) * scale;
    } else {
      grad.setZero();
    }
    update_parameters<T>(config, adam_rate, a.param + s, row_grad, a.first + s,
                         a.second ? a.second + s : nullptr, n);
    if (want_sq_norm) sq += piece_sq_norm(a.param + s, n);
  }
  return sq;
}

// sum ||param[lo, hi)||^2 of the sparse first layer, row piece by row piece (rows `width` long)
// as update_sparse_rows sums it.
template <class T>
double rowwise_sq_norm(const T* param, Index lo, Index hi, Index width) {
  double sq = 0.0;
  for (Index j = lo / width; j * width < hi; ++j) {
    const Index s = std::max(lo, j * width), e = std::min(hi, (j + 1) * width);
    sq += piece_sq_norm(param + s, e - s);
  }
  return sq;
}

// The dense update runs in chunks this long, every step of a chunk (the threads' sums, the L2
// term, the scale, the optimizer's two or three passes, ||W||^2) while it is in L1: passes over
// the whole of millions of weights went to memory each time, 10% of a bf16 batch of `wide`.
constexpr Index kUpdateChunk = 1024;

// sum ||param[lo, hi)||^2, chunk by chunk as reduce_and_update sums it.
template <class T>
double chunked_sq_norm(const T* param, Index lo, Index hi) {
  double sq = 0.0;
  for (Index c = lo; c < hi; c += kUpdateChunk) {
    sq += piece_sq_norm(param + c, std::min(kUpdateChunk, hi - c));
  }
  return sq;
}

template <class T>
double reduce_and_update(const std::vector<std::unique_ptr<ThreadSlot<T>>>& slots,
                         const std::vector<ParamArray<T>>& arrays, Index begin, Index end, T alpha,
                         T scale, const OptimizerConfig& config, double adam_rate,
                         bool want_sq_norm, T* row_grad) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  double sq = 0.0;
  Index offset = 0;
  alignas(64) T chunk_grad[kUpdateChunk];
  for (const ParamArray<T>& a : arrays) {
    const Index lo = std::max(begin, offset) - offset;
    const Index hi = std::min(end, offset + a.size) - offset;
    offset += a.size;
    if (lo >= hi) continue;
    if (a.sparse) {
      sq += update_sparse_rows<T>(a, lo, hi, alpha, scale, config, adam_rate, want_sq_norm,
                                  row_grad, slots[0]->row_grad.size());
      continue;
    }
    for (Index c = lo; c < hi; c += kUpdateChunk) {
      const Index n = std::min(kUpdateChunk, hi - c);
      auto sum_of = [&](std::size_t t) {
        const T* base =
            a.is_coef ? slots[t]->sums.coefs[a.layer] : slots[t]->sums.intercepts[a.layer];
        return Eigen::Map<const Array>(base + c, n);
      };
      Eigen::Map<Array> grad(chunk_grad, n);
      grad = sum_of(0);
      for (std::size_t t = 1; t < slots.size(); ++t) grad += sum_of(t);
      if (a.is_coef && alpha != T(0)) grad += alpha * Eigen::Map<const Array>(a.param + c, n);
      grad *= scale;
      update_parameters<T>(config, adam_rate, a.param + c, chunk_grad, a.first + c,
                           a.second ? a.second + c : nullptr, n);
      if (want_sq_norm && a.is_coef) sq += piece_sq_norm(a.param + c, n);
    }
  }
  return sq;
}

// sum ||W||^2 over elements [begin, end) of the parameter arrays, piece by piece as
// reduce_and_update sums it after an update: the two give the same bits. sparse_width: the
// sparse first layer's row length (its pieces are rows).
template <class T>
double sq_norm_share(const std::vector<ParamArray<T>>& arrays, Index begin, Index end,
                     Index sparse_width) {
  double sq = 0.0;
  Index offset = 0;
  for (const ParamArray<T>& a : arrays) {
    const Index lo = std::max(begin, offset) - offset;
    const Index hi = std::min(end, offset + a.size) - offset;
    offset += a.size;
    if (lo >= hi || !a.is_coef) continue;
    sq += a.sparse ? rowwise_sq_norm(a.param, lo, hi, sparse_width)
                   : chunked_sq_norm(a.param, lo, hi);
  }
  return sq;
}

// Rounds and packs the bf16 layers' weights: part `part` of `parts` (all of them, on every
// thread, for one part). Only float networks have bf16 weights to pack.
template <class T>
void pack_bf16(Bf16Weights& weights, const Network<T>& net, int part, int parts) {
  if constexpr (std::is_same_v<T, float>) {
    if (parts > 1) {
      weights.pack(net, part, parts);
    } else {
      weights.pack_all(net);
    }
  }
}

}  // namespace

std::atomic<Index>& injected_fault_batch() {
  static std::atomic<Index> batch{-1};
  return batch;
}

template <class T>
Trainer<T>::Trainer(const NetworkSpec& spec, const OptimizerConfig& config, T alpha,
                    Index batch_size, std::int64_t t, const TrainingData<T>& data,
                    BatchSplit batch_split, Bf16Kernel bf16)
    : config_(config), alpha_(alpha), t_(t), data_(data) {
  check_spec(spec);
  check_trainable(spec);  // here, not in the minibatch loop: nothing may throw in a parallel region
  static_cast<NetworkSpec&>(net_) = spec;
  if (bf16 != Bf16Kernel::none) {
    if (!std::is_same_v<T, float>) {
      throw std::invalid_argument("bf16 products need a float32 network");
    }
    bf16_ = std::make_unique<Bf16Weights>(bf16, spec, data.sparse_X == nullptr,
                                          /*forward_only=*/false);
    if constexpr (std::is_same_v<T, float>) net_.bf16 = bf16_.get();
  }
  if (batch_size < 1) throw std::invalid_argument("batch_size must be at least 1");
  batch_ = std::max<Index>(1, std::min(batch_size, data.n_samples));
  if (config.solver == Solver::lbfgs) return;  // full batches only: no minibatch workspace

  // Each thread takes a block of every batch's rows and the threads add up their gradients,
  // when the batch has rows enough for every thread and work enough to pay for the barriers.
  // Measured here with 64+ rows per thread, that beat Eigen's threaded GEMMs from 32-64-64-4
  // to 784-256-128-10 and matched them on 1024-2048-2048-10; with 16 or 32 rows per thread it
  // lost even to one thread (every thread's GEMMs repack the whole weight matrices). Batches
  // too short to split but with large GEMMs let Eigen thread those; the rest runs on one thread.
  double largest_product = 0.0;
  for (Index l = 0; l < net_.n_layers(); ++l) {
    largest_product = std::max(largest_product,
                               double(batch_) * double(net_.sizes[l]) * double(net_.sizes[l + 1]));
  }
  const bool large = largest_product >= kMinParallelGemmWork;
  bool split_rows = batch_ >= 2 * kMinRowsPerThread &&
                    double(batch_) * count_weights(net_.sizes) >= kMinSplitWork;
  // (Sparse X: count_weights counts every first-layer weight, which the optimizer's pass does
  // touch every batch: that pass alone pays for the split.)
  // Dense weights past a core's L2 are no longer worth a sum per thread: each thread writes
  // and the update reads a copy of every gradient through memory, where threaded products
  // share out the columns with none. Measured with the packed kernel, 2 threads, float32 (bf16):
  // split/unsplit 1.10x (1.06x) on 784-256-128-10 (0.9 MiB of weights, batch 128); 0.93x
  // (1.05x) on 784-512-512-10 (2.7 MiB, batch 256); 0.91x (0.69x) on 784-1024-1024-10
  // (7.4 MiB, batch 256); 0.95-0.98x (0.88x) on 1024-2048-2048-10 (25 MiB, batch 512).
  const double weight_bytes = count_weights(net_.sizes) * double(sizeof(T));
  if (!data.sparse_X && large && weight_bytes > kMaxSplitWeightBytes) split_rows = false;
  if (batch_split != BatchSplit::automatic) split_rows = batch_split == BatchSplit::always;
  split_ = split_rows ? int(std::clamp<Index>(batch_ / kMinRowsPerThread, 1, max_threads())) : 1;
  gemm_threads_ = split_ > 1 ? 1 : gemm_threads(net_, batch_);
  // The update's share-out: by the threads that share the batch, or, where one thread runs a
  // batch of large products, in kUnsplitUpdateParts parts that the GEMMs' threads share (the
  // update of millions of weights is memory-bound work that one core alone would take 10% of a
  // batch over). That count, unlike the threads', is fixed, so that ||W||^2 (summed part by
  // part, in order) and the losses have the same bits on any number of threads. Sparse X keeps
  // one part: its rows' update uses the slot's one row buffer.
  update_parts_ = split_ > 1 ? split_ : (!data.sparse_X && large ? kUnsplitUpdateParts : 1);
  update_shares_.assign(std::size_t(update_parts_), 0.0);
  const Index rows_per_thread = (batch_ + split_ - 1) / split_;
  const bool sparse = data.sparse_X != nullptr;
  for (int i = 0; i < split_; ++i) {
    slots_.push_back(std::make_unique<ThreadSlot<T>>(net_, rows_per_thread, sparse, !sparse));
  }
  if (sparse) {
    sparse_grad_ =
        std::make_unique<SparseGradient<T>>(*data.sparse_X, batch_, net_.sizes[1], split_);
  }
}

template <class T>
Trainer<T>::~Trainer() = default;

template <class T>
void Trainer<T>::set_state(const std::vector<T*>& coefs, const std::vector<T*>& intercepts,
                           const OptimizerState<T>& moments) {
  net_.coefs = coefs;
  net_.intercepts = intercepts;
  moments_ = moments;
  sq_norm_ = -1.0;
}

template <class T>
double Trainer<T>::loss_and_gradient(T* params, T* grad, const std::function<bool()>& interrupted) {
  const Index rows = data_.n_samples;
  Network<T> at = net_;  // the same spec, pointing into params
  point_into_flat<T>(net_, params, at.coefs, at.intercepts);
  Gradients<T> grads;
  point_into_flat<T>(net_, grad, grads.coefs, grads.intercepts);
  // Blocks of about kBlockWork multiply-adds per layer pass (a tenth of a second or so), so
  // that an interrupt is heard that often; data that fit in one block take one pass, as
  // before, bit for bit.
  const CsrMatrix<T>* sparse = data_.sparse_X;
  const double weights_per_row =
      sparse ? sparse_weights_per_row(net_.sizes, rows ? double(sparse->nnz()) / double(rows) : 0.0)
             : count_weights(net_.sizes);
  const Index block = std::max<Index>(kMinRowsPerThread, Index(kBlockWork / weights_per_row));
  if (sparse) {
    return loss_and_gradient_over(
        [&](Index start, Index n) { return SparseRows<T>{sparse, nullptr, start, n}; }, at, grads,
        block, interrupted);
  }
  return loss_and_gradient_over(
      [&](Index start, Index n) {
        return ConstMatrixMap<T>(data_.X + start * net_.n_inputs(), n, net_.n_inputs());
      },
      at, grads, block, interrupted);
}

// L-BFGS's evaluation over the rows X(start, n) gives (dense or sparse), in blocks of `block`
// rows when there are more and an interrupt can come.
template <class T>
template <class Rows>
double Trainer<T>::loss_and_gradient_over(Rows X, const Network<T>& at, const Gradients<T>& grads,
                                          Index block, const std::function<bool()>& interrupted) {
  const Index rows = data_.n_samples;
  const auto Y = [&](Index start, Index n) {
    return ConstMatrixMap<T>(data_.Y + start * net_.n_outputs(), n, net_.n_outputs());
  };
  // The weights at this point, rounded and packed once for every block's passes.
  if (bf16_) pack_bf16(*bf16_, at, 0, 1);
  if (!interrupted || rows <= block) {
    ScopedEigenThreads threads(gemm_threads(at, rows));
    if (!full_batch_) full_batch_ = std::make_unique<Workspace<T>>(net_, rows);
    return loss_and_gradients<T>(at, X(0, rows), Y(0, rows), data_.sample_weight, alpha_,
                                 *full_batch_, grads);
  }
  ScopedEigenThreads threads(gemm_threads(at, block));
  if (!block_) block_ = std::make_unique<ThreadSlot<T>>(net_, block, data_.sparse_X != nullptr);
  double loss_sum = 0.0;
  for (Index start = 0; start < rows; start += block) {
    if (start > 0 && interrupted()) return std::nan("");
    const Index n = std::min(block, rows - start);
    const T* w = data_.sample_weight ? data_.sample_weight + start : nullptr;
    // The first block's sums go straight into grads; the others are added to them.
    const Gradients<T>& sums = start == 0 ? grads : block_->sums;
    loss_sum += backprop_sums<T>(at, X(start, n), Y(start, n), w, block_->ws, sums);
    if (start == 0) continue;
    for (Index l = 0; l < at.n_layers(); ++l) {
      const Index size = at.sizes[l] * at.sizes[l + 1];
      VectorMap<T>(grads.coefs[l], size) += VectorMap<T>(sums.coefs[l], size);
      VectorMap<T>(grads.intercepts[l], at.sizes[l + 1]) +=
          VectorMap<T>(sums.intercepts[l], at.sizes[l + 1]);
    }
  }
  const double weight_sum =
      data_.sample_weight ? double(ConstVectorMap<T>(data_.sample_weight, rows).sum()) : rows;
  return finish_gradients<T>(at, loss_sum, weight_sum, alpha_, grads);
}

template <class T>
double Trainer<T>::run(const std::int64_t* order, Index n, double learning_rate, double loss_sum) {
  if (n < 1) return loss_sum;
  config_.learning_rate = learning_rate;
  ScopedEigenThreads eigen_threads(gemm_threads_);
  const bool want_sq_norm = alpha_ != T(0);
  // Made here, outside the threads' region.
  const std::vector<ParamArray<T>> arrays = parameter_arrays();
  if (want_sq_norm && sq_norm_ < 0) {
    // Summed as the threads' shares after an update are, so that a run that starts afresh (a
    // new trainer: partial_fit) and one that carries the norm over (the next chunk or epoch of
    // a fit) see the same bits.
    Index n_params = 0;
    for (const ParamArray<T>& a : arrays) n_params += a.size;
    sq_norm_ = 0.0;
    const int parts = update_parts_;
    for (int i = 0; i < parts; ++i) {
      sq_norm_ +=
          sq_norm_share(arrays, n_params * i / parts, n_params * (i + 1) / parts, net_.sizes[1]);
    }
  }
  accumulated_ = loss_sum;
  TeamErrors errors;
  if (split_ > 1) {
#ifdef FASTMLP_WITH_OPENMP
#pragma omp parallel num_threads(split_)
    run_batches(omp_get_thread_num(), order, n, arrays, errors);
#endif
  } else {
    // Not even an inactive parallel region here: inside one, Eigen's own GEMM threads would be
    // a nested team, created afresh for every GEMM.
    run_batches(0, order, n, arrays, errors);
  }
  // A failed run leaves the parameters and moments as its last finished batch left them, t and
  // the norm where they were: the fit raises, and its trainer is not used again.
  errors.rethrow_first();
  const Index n_batches = (n + batch_ - 1) / batch_;
  if (want_sq_norm) {
    // The threads' shares of ||W||^2 after the last update, summed as the next batch would.
    sq_norm_ = 0.0;
    for (auto& s : slots_) sq_norm_ += s->sq_norm[(n_batches - 1) % 2];
  }
  if (config_.solver == Solver::adam) t_ += n_batches;
  return accumulated_;
}

// The batches of one run, as seen by thread tid of split_ (its barriers are no-ops when split_
// is 1). Between two barriers each thread's work runs through errors' run(): an exception (a
// kernel's buffer that cannot grow) stops every thread at the next barrier, and run() raises it.
template <class T>
void Trainer<T>::run_batches(int tid, const std::int64_t* order, Index n,
                             const std::vector<ParamArray<T>>& arrays, TeamErrors& errors) {
  const Network<T>& net = net_;
  const int split = split_;
  ThreadSlot<T>& slot = *slots_[tid];
  const bool adam = config_.solver == Solver::adam;
  const bool want_sq_norm = alpha_ != T(0);
  TeamErrors::Member member(errors);
  const Index fault_batch = injected_fault_batch().load(std::memory_order_relaxed);
  Index n_params = 0;
  for (const ParamArray<T>& a : arrays) n_params += a.size;
  const CsrMatrix<T>* sparse = data_.sparse_X;
  const Index n_batches = (n + batch_ - 1) / batch_;
  for (Index b = 0; b < n_batches; ++b) {
    const Index start = b * batch_;
    const Index rows = std::min(batch_, n - start);
    const std::int64_t* idx = order + start;
    if (bf16_) {
      // The weights as the last update left them, rounded and packed for both passes: each
      // thread packs its share, and all wait for the whole before their forward pass.
      member.run([&] { pack_bf16(*bf16_, net, tid, split); });
      if (member.barrier()) return;
    }
    // This thread's block of the batch's rows.
    const Index lo = rows * tid / split, hi = rows * (tid + 1) / split, mine = hi - lo;
    double weight_sum = double(rows);
    member.run([&] {
      if (b == fault_batch && tid == split - 1) throw std::bad_alloc();
      if (!sparse) gather_rows(data_.X, net.n_inputs(), idx + lo, mine, slot.x.data());
      gather_rows(data_.Y, net.n_outputs(), idx + lo, mine, slot.y.data());
      const T* w = nullptr;
      if (data_.sample_weight) {
        // Every thread sums the whole batch's weights itself: no barrier needed for S.
        weight_sum = 0.0;
        for (Index i = 0; i < rows; ++i) weight_sum += double(data_.sample_weight[idx[i]]);
        for (Index i = 0; i < mine; ++i) slot.w[i] = data_.sample_weight[idx[lo + i]];
        w = slot.w.data();
      }
      const ConstMatrixMap<T> y_mine(slot.y.data(), mine, net.n_outputs());
      if (sparse) {
        const SparseRows<T> x_mine{sparse, idx + lo, 0, mine};
        slot.loss_sum = backprop_sums<T>(net, x_mine, y_mine, w, slot.ws, slot.sums);
      } else {
        const ConstMatrixMap<T> x_mine(slot.x.data(), mine, net.n_inputs());
        slot.loss_sum = backprop_sums<T>(net, x_mine, y_mine, w, slot.ws, slot.sums);
      }
    });
    if (member.barrier()) return;
    if (sparse) {
      // X_b^T delta_1 by feature: this thread's features, over every thread's rows of delta_1.
      member.run([&] {
        const Index width = net.sizes[1];
        sparse_grad_->accumulate(tid, SparseRows<T>{sparse, idx, 0, rows}, [&](Index i) {
          int owner = 0;
          while (rows * (owner + 1) / split <= i) ++owner;
          const Index first = rows * owner / split;
          return slots_[std::size_t(owner)]->ws.delta(1, 1).data() + (i - first) * width;
        });
      });
      if (member.barrier()) return;
    }
    member.run([&] {
      // A batch whose weights are all zero contributes no loss and no gradient (not 0/0).
      const bool empty = !(weight_sum > 0.0);
      if (tid == 0) {
        double batch_loss = 0.0;
        if (!empty) {
          for (auto& s : slots_) batch_loss += s->loss_sum;
          batch_loss /= weight_sum;
          double sq = sq_norm_;
          if (b > 0 && want_sq_norm) {
            sq = 0.0;
            for (auto& s : slots_) sq += s->sq_norm[(b + 1) % 2];
          }
          if (want_sq_norm) batch_loss += 0.5 * double(alpha_) * sq / weight_sum;
        }
        accumulated_ += batch_loss * double(rows);
      }
      const double adam_rate = adam ? adam_step_rate(config_, t_ + b + 1) : 0.0;
      // Each thread reduces and updates its own share of the parameters.
      const T scale = empty ? T(0) : T(1) / T(weight_sum);
      const int parts = update_parts_;
      if (split == 1 && parts > 1) {
        // One thread ran the batch: the update's parts go to a team of their own, and their
        // shares of ||W||^2 are summed in part order (as the split threads' are).
        double* shares = update_shares_.data();
#ifdef FASTMLP_WITH_OPENMP
#pragma omp parallel for num_threads(gemm_threads_) schedule(static) if (gemm_threads_ > 1)
#endif
        for (int p = 0; p < parts; ++p) {
          shares[p] =
              reduce_and_update<T>(slots_, arrays, n_params * p / parts, n_params * (p + 1) / parts,
                                   alpha_, scale, config_, adam_rate, want_sq_norm, nullptr);
        }
        double sq = 0.0;
        for (int p = 0; p < parts; ++p) sq += shares[p];
        slot.sq_norm[b % 2] = sq;
      } else {
        const Index p_lo = n_params * tid / split, p_hi = n_params * (tid + 1) / split;
        slot.sq_norm[b % 2] =
            reduce_and_update<T>(slots_, arrays, p_lo, p_hi, alpha_, scale, config_, adam_rate,
                                 want_sq_norm, slot.row_grad.data());
      }
    });
    // The next batch's forward pass reads every updated parameter.
    if (member.barrier()) return;
  }
}

// The parameter arrays in one flat index space (coefs, then intercepts), for the threads to
// share the update.
template <class T>
std::vector<ParamArray<T>> Trainer<T>::parameter_arrays() const {
  const Index L = net_.n_layers();
  const bool adam = config_.solver == Solver::adam;
  std::vector<ParamArray<T>> arrays;
  for (Index l = 0; l < 2 * L; ++l) {
    const bool is_coef = l < L;
    const Index layer = is_coef ? l : l - L;
    const Index size = is_coef ? net_.sizes[layer] * net_.sizes[layer + 1] : net_.sizes[layer + 1];
    T* param = is_coef ? net_.coefs[layer] : net_.intercepts[layer];
    const SparseGradient<T>* sparse = is_coef && layer == 0 ? sparse_grad_.get() : nullptr;
    arrays.push_back({param, moments_.first[l], adam ? moments_.second[l] : nullptr, size, layer,
                      is_coef, sparse});
  }
  return arrays;
}

template class Trainer<float>;
template class Trainer<double>;

}  // namespace fastmlp
