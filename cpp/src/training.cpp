#include "fastmlp/training.hpp"

#include <algorithm>
#include <cstring>

#include "fastmlp/parallel.hpp"

namespace fastmlp {

namespace {

// The largest GEMM of a pass over `rows` samples, in multiply-adds.
template <class T>
double largest_gemm_work(const Network<T>& net, Index rows) {
  double work = 0.0;
  for (Index l = 0; l < net.n_layers(); ++l) {
    work = std::max(work, double(rows) * double(net.sizes[l]) * double(net.sizes[l + 1]));
  }
  return work;
}

// Copies the rows order[0..rows) of src (n, cols) into dst (rows, cols): the batch becomes one
// contiguous block whatever the shuffle.
template <class T>
void gather_rows(const T* src, Index cols, const std::int64_t* order, Index rows, T* dst) {
  for (Index i = 0; i < rows; ++i) {
    std::memcpy(dst + i * cols, src + order[i] * cols, sizeof(T) * std::size_t(cols));
  }
}

}  // namespace

template <class T>
double train_epoch(const Network<T>& net, Loss loss, T alpha, const EpochData<T>& data,
                   OptimizerConfig& config, const OptimizerState<T>& state) {
  const Index batch = std::min(data.batch_size, data.n_order);
  const Index n_in = net.n_inputs(), n_out = net.n_outputs(), L = net.n_layers();
  if (batch < 1) return 0.0;

  // Everything the loop needs, allocated once per epoch.
  Workspace<T> ws(net.sizes, batch);
  RowMatrix<T> x_batch(batch, n_in), y_batch(batch, n_out);
  Vector<T> w_batch(data.sample_weight ? batch : 0);
  std::vector<RowMatrix<T>> coef_grads;
  std::vector<Vector<T>> intercept_grads;
  Gradients<T> grads;
  for (Index l = 0; l < L; ++l) {
    coef_grads.emplace_back(net.sizes[l], net.sizes[l + 1]);
    intercept_grads.emplace_back(net.sizes[l + 1]);
    grads.coefs.push_back(coef_grads.back().data());
    grads.intercepts.push_back(intercept_grads.back().data());
  }

  const bool thread_gemms = largest_gemm_work(net, batch) >= kMinParallelGemmWork;
  ScopedEigenThreads eigen_threads(thread_gemms ? max_threads() : 1);

  double sq_norm = alpha != T(0) ? weight_sq_norm(net) : 0.0;
  double accumulated = 0.0;
  for (Index start = 0; start < data.n_order; start += batch) {
    const Index rows = std::min(batch, data.n_order - start);
    const std::int64_t* idx = data.order + start;
    gather_rows(data.X.data(), n_in, idx, rows, x_batch.data());
    gather_rows(data.Y.data(), n_out, idx, rows, y_batch.data());
    const T* w = nullptr;
    if (data.sample_weight) {
      for (Index i = 0; i < rows; ++i) w_batch[i] = data.sample_weight[idx[i]];
      w = w_batch.data();
    }
    ConstMatrixMap<T> xb(x_batch.data(), rows, n_in), yb(y_batch.data(), rows, n_out);
    const double batch_loss = loss_and_gradients<T>(net, loss, xb, yb, w, alpha, ws, grads, sq_norm);
    accumulated += batch_loss * double(rows);
    sq_norm = apply_update<T>(config, net, grads, state);
  }
  return accumulated;
}

template double train_epoch<float>(const Network<float>&, Loss, float, const EpochData<float>&,
                                   OptimizerConfig&, const OptimizerState<float>&);
template double train_epoch<double>(const Network<double>&, Loss, double,
                                    const EpochData<double>&, OptimizerConfig&,
                                    const OptimizerState<double>&);

}  // namespace fastmlp
