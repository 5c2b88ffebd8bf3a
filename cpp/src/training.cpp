#include "fastmlp/training.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "fastmlp/parallel.hpp"

namespace fastmlp {

namespace {

// Copies the rows order[0..rows) of src (n, cols) into dst (rows, cols): the batch becomes one
// contiguous block whatever the shuffle.
template <class T>
void gather_rows(const T* src, Index cols, const std::int64_t* order, Index rows, T* dst) {
  for (Index i = 0; i < rows; ++i) {
    std::memcpy(dst + i * cols, src + order[i] * cols, sizeof(T) * std::size_t(cols));
  }
}

// What one thread owns: its share of the batch, its workspace and its partial gradient sums.
template <class T>
struct ThreadSlot {
  ThreadSlot(const Network<T>& net, Index max_rows)
      : ws(net.sizes, max_rows),
        x(max_rows, net.n_inputs()),
        y(max_rows, net.n_outputs()),
        w(max_rows) {
    for (Index l = 0; l < net.n_layers(); ++l) {
      coef_sums.emplace_back(net.sizes[l], net.sizes[l + 1]);
      intercept_sums.emplace_back(net.sizes[l + 1]);
      sums.coefs.push_back(coef_sums.back().data());
      sums.intercepts.push_back(intercept_sums.back().data());
    }
  }
  Workspace<T> ws;
  RowMatrix<T> x, y;
  Vector<T> w;
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
  Index layer;   // index into the slots' sums
  bool is_coef;  // weights get the L2 term and count in ||W||^2
};

// The update of elements [begin, end) of every parameter array: grad = (sum over threads of the
// partial sums + alpha W) * scale, then the optimizer's rule. Slot 0's sums become the grads.
template <class T>
double reduce_and_update(std::vector<std::unique_ptr<ThreadSlot<T>>>& slots,
                         const std::vector<ParamArray<T>>& arrays, Index begin, Index end, T alpha,
                         T scale, const OptimizerConfig& config, double adam_rate,
                         bool want_sq_norm) {
  double sq = 0.0;
  Index offset = 0;
  for (const ParamArray<T>& a : arrays) {
    const Index lo = std::max(begin, offset) - offset;
    const Index hi = std::min(end, offset + a.size) - offset;
    offset += a.size;
    if (lo >= hi) continue;
    const Index n = hi - lo;
    auto sum_of = [&](std::size_t t) {
      T* base = a.is_coef ? slots[t]->sums.coefs[a.layer] : slots[t]->sums.intercepts[a.layer];
      return Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(base + lo, n);
    };
    auto grad = sum_of(0);
    for (std::size_t t = 1; t < slots.size(); ++t) grad += sum_of(t);
    if (a.is_coef && alpha != T(0)) {
      grad += alpha * Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(a.param + lo, n);
    }
    grad *= scale;
    update_parameters<T>(config, adam_rate, a.param + lo, grad.data(), a.first + lo,
                         a.second ? a.second + lo : nullptr, n);
    if (want_sq_norm && a.is_coef) {
      sq += double(VectorMap<T>(a.param + lo, n).squaredNorm());
    }
  }
  return sq;
}

}  // namespace

template <class T>
double train_epoch(const Network<T>& net, Loss loss, T alpha, const EpochData<T>& data,
                   OptimizerConfig& config, const OptimizerState<T>& state,
                   BatchSplit batch_split) {
  const Index batch = std::min(data.batch_size, data.n_order);
  const Index L = net.n_layers();
  if (batch < 1) return 0.0;
  check_trainable(net, loss);  // nothing below may throw inside the parallel region

  // Each thread takes a block of every batch's rows and the threads add up their gradients,
  // when the batch has rows enough for every thread and work enough to pay for the barriers.
  // Measured here with 64+ rows per thread, that beat Eigen's threaded GEMMs from 32-64-64-4
  // to 784-256-128-10 and matched them on 1024-2048-2048-10; with 16 or 32 rows per thread it
  // lost even to one thread (every thread's GEMMs repack the whole weight matrices). Batches
  // too short to split but with large GEMMs let Eigen thread those; the rest runs on one thread.
  const int available = max_threads();
  bool split_rows =
      batch >= 2 * kMinRowsPerThread && double(batch) * count_weights(net.sizes) >= kMinSplitWork;
  if (batch_split != BatchSplit::automatic) split_rows = batch_split == BatchSplit::always;
  const int split =
      split_rows ? int(std::clamp<Index>(batch / kMinRowsPerThread, 1, available)) : 1;
  ScopedEigenThreads eigen_threads(split > 1 ? 1 : gemm_threads(net, batch));

  // Everything the loop needs, allocated once per epoch.
  const Index rows_per_thread = (batch + split - 1) / split;
  std::vector<std::unique_ptr<ThreadSlot<T>>> slots;
  for (int t = 0; t < split; ++t) {
    slots.push_back(std::make_unique<ThreadSlot<T>>(net, rows_per_thread));
  }
  std::vector<ParamArray<T>> arrays;
  Index n_params = 0;
  const bool adam = config.solver == Solver::adam;
  for (Index l = 0; l < L; ++l) {
    const Index n = net.sizes[l] * net.sizes[l + 1];
    arrays.push_back({net.coefs[l], state.first[l], adam ? state.second[l] : nullptr, n, l, true});
    n_params += n;
  }
  for (Index l = 0; l < L; ++l) {
    arrays.push_back({net.intercepts[l], state.first[L + l], adam ? state.second[L + l] : nullptr,
                      net.sizes[l + 1], l, false});
    n_params += net.sizes[l + 1];
  }

  const bool want_sq_norm = alpha != T(0);
  double sq_norm = want_sq_norm ? weight_sq_norm(net) : 0.0;
  double accumulated = 0.0;
  const std::int64_t t0 = config.t;
  const Index n_batches = (data.n_order + batch - 1) / batch;

  // The batches, as seen by thread tid of split (its barriers are no-ops when split is 1).
  auto run_batches = [&](int tid) {
    ThreadSlot<T>& slot = *slots[tid];
    for (Index b = 0; b < n_batches; ++b) {
      const Index start = b * batch;
      const Index rows = std::min(batch, data.n_order - start);
      const std::int64_t* idx = data.order + start;
      // This thread's block of the batch's rows.
      const Index lo = rows * tid / split, hi = rows * (tid + 1) / split, mine = hi - lo;
      gather_rows(data.X.data(), net.n_inputs(), idx + lo, mine, slot.x.data());
      gather_rows(data.Y.data(), net.n_outputs(), idx + lo, mine, slot.y.data());
      const T* w = nullptr;
      double weight_sum = double(rows);
      if (data.sample_weight) {
        // Every thread sums the whole batch's weights itself: no barrier needed for S.
        weight_sum = 0.0;
        for (Index i = 0; i < rows; ++i) weight_sum += double(data.sample_weight[idx[i]]);
        for (Index i = 0; i < mine; ++i) slot.w[i] = data.sample_weight[idx[lo + i]];
        w = slot.w.data();
      }
      slot.loss_sum = backprop_sums<T>(
          net, loss, ConstMatrixMap<T>(slot.x.data(), mine, net.n_inputs()),
          ConstMatrixMap<T>(slot.y.data(), mine, net.n_outputs()), w, slot.ws, slot.sums);
#ifdef FASTMLP_WITH_OPENMP
#pragma omp barrier
#endif
      // A batch whose weights are all zero contributes no loss and no gradient (not 0/0).
      const bool empty = !(weight_sum > 0.0);
      if (tid == 0) {
        double batch_loss = 0.0;
        if (!empty) {
          for (auto& s : slots) batch_loss += s->loss_sum;
          batch_loss /= weight_sum;
          double sq = sq_norm;
          if (b > 0 && want_sq_norm) {
            sq = 0.0;
            for (auto& s : slots) sq += s->sq_norm[(b + 1) % 2];
          }
          if (want_sq_norm) batch_loss += 0.5 * double(alpha) * sq / weight_sum;
        }
        accumulated += batch_loss * double(rows);
      }
      const double adam_rate = adam ? adam_step_rate(config, t0 + b + 1) : 0.0;
      // Each thread reduces and updates its own share of the parameters.
      const Index p_lo = n_params * tid / split, p_hi = n_params * (tid + 1) / split;
      const T scale = empty ? T(0) : T(1) / T(weight_sum);
      slot.sq_norm[b % 2] = reduce_and_update<T>(slots, arrays, p_lo, p_hi, alpha, scale, config,
                                                 adam_rate, want_sq_norm);
#ifdef FASTMLP_WITH_OPENMP
      // The next batch's forward pass reads every updated parameter.
#pragma omp barrier
#endif
    }
  };
  if (split > 1) {
#ifdef FASTMLP_WITH_OPENMP
#pragma omp parallel num_threads(split)
    run_batches(omp_get_thread_num());
#endif
  } else {
    // Not even an inactive parallel region here: inside one, Eigen's own GEMM threads would be
    // a nested team, created afresh for every GEMM.
    run_batches(0);
  }
  config.t = t0 + (adam ? n_batches : 0);
  return accumulated;
}

template double train_epoch<float>(const Network<float>&, Loss, float, const EpochData<float>&,
                                   OptimizerConfig&, const OptimizerState<float>&, BatchSplit);
template double train_epoch<double>(const Network<double>&, Loss, double, const EpochData<double>&,
                                    OptimizerConfig&, const OptimizerState<double>&, BatchSplit);

}  // namespace fastmlp
