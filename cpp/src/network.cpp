#include "fastmlp/network.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "fastmlp/bf16_layers.hpp"
#include "fastmlp/layer_products.hpp"
#include "fastmlp/parallel.hpp"
#include "fastmlp/small_gemm.hpp"
#include "fastmlp/sparse.hpp"

namespace fastmlp {

template <class T>
Workspace<T>::Workspace(const NetworkSpec& spec, Index max_rows)
    : sizes_(spec.sizes), max_rows_(max_rows) {
  const std::vector<std::int64_t>& sizes = sizes_;
  const bool keep_pre = needs_preactivation(spec.hidden);
  for (std::size_t l = 1; l < sizes.size(); ++l) {
    z_.emplace_back(max_rows, sizes[l]);
    delta_.emplace_back(max_rows, sizes[l]);
    // Hidden layers only: the output layer's derivative never needs a.
    pre_.emplace_back(keep_pre && l + 1 < sizes.size() ? max_rows : 0,
                      keep_pre && l + 1 < sizes.size() ? sizes[l] : 0);
  }
  wt_.resize(sizes.size() - 1);
  for (std::size_t l = 1; l + 1 < sizes.size(); ++l) {
    // Only where one row would already take small_gemm: never for wide layers, whose copy of
    // the weights would cost as much memory as the weights themselves.
    if (prefers_small_gemm<T>(1, sizes[l], sizes[l + 1])) wt_[l].resize(sizes[l + 1], sizes[l]);
  }
}

namespace {

// Rows per chunk of a prediction at most: a chunk's activations (1,024 rows of 256 floats are
// 1 MiB) stay in the core's L2 for the next layer, and 8 chunks per thread of 15,000 MNIST
// rows leave a thread that was slowed little to wait for. Against 4,096 rows (784-256-128-10,
// 21 interleaved runs): 1.11-1.13x float32 and 1.36x bf16 with 1,024 or 512; 2,048 1.04x;
// 20,000 rows of 32-64-64-4 even.
constexpr Index kMaxPredictChunk = 1024;

// The input of a pass: dense rows (ConstMatrixMap) or sparse ones (SparseRows). Only the first
// layer's two products see which; the seam picks their kernels by overload.
template <class T>
ConstMatrixMap<T> no_rows(ConstMatrixMap<T> X) {
  return ConstMatrixMap<T>(X.data(), 0, X.cols());
}
template <class T>
SparseRows<T> no_rows(const SparseRows<T>& X) {
  return X.middle(0, 0);
}
template <class T>
ConstMatrixMap<T> some_rows(ConstMatrixMap<T> X, Index begin, Index n) {
  return ConstMatrixMap<T>(X.data() + begin * X.cols(), n, X.cols());
}
template <class T>
SparseRows<T> some_rows(const SparseRows<T>& X, Index begin, Index n) {
  return X.middle(begin, n);
}
template <class T>
double weights_per_row(const Network<T>& net, ConstMatrixMap<T>) {
  return count_weights(net.sizes);
}
template <class T>
double weights_per_row(const Network<T>& net, const SparseRows<T>& X) {
  const CsrMatrix<T>& m = *X.matrix;
  return sparse_weights_per_row(net.sizes, m.rows ? double(m.nnz()) / double(m.rows) : 0.0);
}

}  // namespace

// The packed bf16 weights of layer l where its products run in bf16, else nullptr.
template <class T>
const Bf16Weights* bf16_layer(const Network<T>& net, Index l) {
  if constexpr (std::is_same_v<T, float>) {
    if (net.bf16 && net.bf16->has(l)) return net.bf16;
  }
  (void)net;
  (void)l;
  return nullptr;
}

// Layer l's three products, each in bf16 where the layer runs in bf16 (dense input only: a
// sparse first layer keeps its own float products).
template <class T, class In>
void layer_forward(const Network<T>& net, Index l, const In& in, MatrixMap<T> out, T* pre) {
  const T slope = T(net.leaky_relu_slope);
  if constexpr (std::is_same_v<T, float> && std::is_same_v<In, ConstMatrixMap<T>>) {
    if (const Bf16Weights* bf16 = bf16_layer(net, l)) {
      forward_product_bf16(*bf16, l, net.activation_of(l), in, net.intercepts[l], out, slope, pre);
      return;
    }
  }
  forward_product<T>(net.activation_of(l), in, net.coefs[l], net.intercepts[l], out, slope, pre);
}

template <class T, class In>
void layer_weight_gradient(const Network<T>& net, Index l, const In& in, ConstMatrixMap<T> delta,
                           MatrixMap<T> gW) {
  if constexpr (std::is_same_v<T, float> && std::is_same_v<In, ConstMatrixMap<T>>) {
    if (const Bf16Weights* bf16 = bf16_layer(net, l)) {
      weight_gradient_product_bf16(bf16->kernel(), in, delta, gW);
      return;
    }
  }
  weight_gradient_product<T>(in, delta, gW);
}

template <class T>
void layer_error(const Network<T>& net, Index l, ConstMatrixMap<T> delta, Workspace<T>& ws) {
  const Index rows = delta.rows();
  const ConstMatrixMap<T> z(ws.z(l, rows).data(), rows, net.sizes[l]);
  const T slope = T(net.leaky_relu_slope);
  if constexpr (std::is_same_v<T, float>) {
    if (const Bf16Weights* bf16 = bf16_layer(net, l)) {
      error_product_bf16(*bf16, l, net.hidden, delta, z, ws.delta(l, rows), slope, ws.pre(l));
      return;
    }
  }
  error_product<T>(net.hidden, delta, net.coefs[l], net.sizes[l], z, ws.transposed_weights(l),
                   ws.delta(l, rows), slope, ws.pre(l));
}

template <class T, class In>
void forward_from(const Network<T>& net, const In& X, Workspace<T>& ws) {
  const Index rows = X.rows();
  layer_forward(net, 0, X, ws.z(1, rows), ws.pre(1));
  for (Index l = 1; l < net.n_layers(); ++l) {
    const ConstMatrixMap<T> in(ws.z(l, rows).data(), rows, net.sizes[l]);
    layer_forward(net, l, in, ws.z(l + 1, rows), ws.pre(l + 1));
  }
}

template <class T>
void forward(const Network<T>& net, ConstMatrixMap<T> X, Workspace<T>& ws) {
  forward_from(net, X, ws);
}

template <class T>
void forward(const Network<T>& net, const SparseRows<T>& X, Workspace<T>& ws) {
  forward_from(net, X, ws);
}

template <class T>
double weight_sq_norm(const Network<T>& net) {
  double sum = 0.0;
  for (Index l = 0; l < net.n_layers(); ++l) {
    sum += double(net.W(l).squaredNorm());
  }
  return sum;
}

template <class T, class In>
double backprop_from(const Network<T>& net, const In& X, ConstMatrixMap<T> Y, const T* weights,
                     Workspace<T>& ws, const Gradients<T>& sums) {
  const Index rows = X.rows();
  const Index L = net.n_layers();
  if (rows == 0) {
    for (Index l = 0; l < L; ++l) {
      if (sums.coefs[l]) MatrixMap<T>(sums.coefs[l], net.sizes[l], net.sizes[l + 1]).setZero();
      VectorMap<T>(sums.intercepts[l], net.sizes[l + 1]).setZero();
    }
    return 0.0;
  }
  forward(net, X, ws);
  ConstMatrixMap<T> h(ws.z(L, rows).data(), rows, net.n_outputs());
  const double loss_sum = weighted_loss_sum<T>(net.loss, net.output, h, Y, weights);
  output_delta<T>(net.loss, net.output, h, Y, weights, ws.delta(L, rows));
  for (Index l = L - 1; l >= 0; --l) {
    MatrixMap<T> delta = ws.delta(l + 1, rows);
    MatrixMap<T> gW(sums.coefs[l], net.sizes[l], net.sizes[l + 1]);
    // z_{l-1}^T delta_l, with z_0 = X (not wanted where sums.coefs[0] is nullptr: the
    // trainer's sparse first layer sums it by feature itself).
    const ConstMatrixMap<T> delta_in(delta.data(), rows, delta.cols());
    if (l > 0) {
      const ConstMatrixMap<T> below_out(ws.z(l, rows).data(), rows, net.sizes[l]);
      layer_weight_gradient(net, l, below_out, delta_in, gW);
    } else if (sums.coefs[0]) {
      layer_weight_gradient(net, 0, X, delta_in, gW);
    }
    VectorMap<T>(sums.intercepts[l], net.sizes[l + 1]).noalias() =
        delta.colwise().sum().transpose();
    // delta_{l-1} = f'(a_{l-1}) * (delta_l W_l^T), the derivative read from z_{l-1} (from
    // a_{l-1} for gelu and silu).
    if (l > 0) layer_error(net, l, delta_in, ws);
  }
  return loss_sum;
}

template <class T>
double backprop_sums(const Network<T>& net, ConstMatrixMap<T> X, ConstMatrixMap<T> Y,
                     const T* weights, Workspace<T>& ws, const Gradients<T>& sums) {
  return backprop_from(net, X, Y, weights, ws, sums);
}

template <class T>
double backprop_sums(const Network<T>& net, const SparseRows<T>& X, ConstMatrixMap<T> Y,
                     const T* weights, Workspace<T>& ws, const Gradients<T>& sums) {
  return backprop_from(net, X, Y, weights, ws, sums);
}

template <class T, class In>
double loss_and_gradients_from(const Network<T>& net, const In& X, ConstMatrixMap<T> Y,
                               const T* weights, T alpha, Workspace<T>& ws,
                               const Gradients<T>& grads, double sq_norm) {
  const Index rows = X.rows();
  double weight_sum = double(rows);
  if (weights) weight_sum = double(ConstVectorMap<T>(weights, rows).sum());
  if (!(weight_sum > 0.0)) {
    // A batch whose sample weights are all zero carries no information: it contributes no
    // loss and no gradient (rather than 0/0).
    backprop_sums<T>(net, no_rows<T>(X), ConstMatrixMap<T>(Y.data(), 0, Y.cols()), nullptr, ws,
                     grads);
    return 0.0;
  }
  const double loss_sum = backprop_sums<T>(net, X, Y, weights, ws, grads);
  return finish_gradients<T>(net, loss_sum, weight_sum, alpha, grads, sq_norm);
}

template <class T>
double loss_and_gradients(const Network<T>& net, ConstMatrixMap<T> X, ConstMatrixMap<T> Y,
                          const T* weights, T alpha, Workspace<T>& ws, const Gradients<T>& grads,
                          double sq_norm) {
  return loss_and_gradients_from(net, X, Y, weights, alpha, ws, grads, sq_norm);
}

template <class T>
double loss_and_gradients(const Network<T>& net, const SparseRows<T>& X, ConstMatrixMap<T> Y,
                          const T* weights, T alpha, Workspace<T>& ws, const Gradients<T>& grads,
                          double sq_norm) {
  return loss_and_gradients_from(net, X, Y, weights, alpha, ws, grads, sq_norm);
}

template <class T>
double finish_gradients(const Network<T>& net, double loss_sum, double weight_sum, T alpha,
                        const Gradients<T>& grads, double sq_norm) {
  const Index L = net.n_layers();
  if (!(weight_sum > 0.0)) {
    for (Index l = 0; l < L; ++l) {
      MatrixMap<T>(grads.coefs[l], net.sizes[l], net.sizes[l + 1]).setZero();
      VectorMap<T>(grads.intercepts[l], net.sizes[l + 1]).setZero();
    }
    return 0.0;
  }
  double value = loss_sum / weight_sum;
  if (alpha != T(0)) {
    if (sq_norm < 0) sq_norm = weight_sq_norm(net);
    value += 0.5 * double(alpha) * sq_norm / weight_sum;
  }
  // grad W_l = (z_{l-1}^T delta_l + alpha W_l) / S,  grad b_l = sum_i delta_l / S
  const T scale = T(1) / T(weight_sum);
  for (Index l = 0; l < L; ++l) {
    MatrixMap<T> gW(grads.coefs[l], net.sizes[l], net.sizes[l + 1]);
    if (alpha != T(0)) gW += alpha * net.W(l);
    gW *= scale;
    VectorMap<T>(grads.intercepts[l], net.sizes[l + 1]) *= scale;
  }
  return value;
}

template <class T>
int gemm_threads(const Network<T>& net, Index rows) {
  double work = 0.0;
  for (Index l = 0; l < net.n_layers(); ++l) {
    work = std::max(work, double(rows) * double(net.sizes[l]) * double(net.sizes[l + 1]));
  }
  return work >= kMinParallelGemmWork ? max_threads() : 1;
}

template <class T, class In>
void predict_from(const Network<T>& net, const In& X, MatrixMap<T> out) {
  const Index rows = X.rows();
  if (rows == 0) return;
  const int threads = std::max(max_threads(), 1);
  const double weights = weights_per_row(net, X);
  // Enough rows per chunk to keep GEMMs efficient and to pay for a thread (kMinSplitWork),
  // few enough to share the rows out evenly; chunks inside the parallel loop run their GEMMs
  // on one thread, and a single chunk lets Eigen thread its GEMMs if they are large.
  // The chunks are as even as a multiple of the thread count makes them: 15,000 rows in 16 of
  // 938, not 14 of 1,024 and one of 664 (a thread that got the short one may wait for the other).
  const Index min_rows = std::max<Index>(64, Index(std::ceil(kMinSplitWork / weights)));
  const Index per_thread = (rows + threads - 1) / threads;
  const Index rounds = (per_thread + kMaxPredictChunk - 1) / kMaxPredictChunk;
  const Index chunk = std::max<Index>(min_rows, (per_thread + rounds - 1) / rounds);
  ScopedEigenThreads eigen_threads(chunk >= rows ? gemm_threads(net, rows) : 1);
  parallel_chunks(
      rows, chunk, [&] { return Workspace<T>(net, std::min(chunk, rows)); },
      [&](Workspace<T>& ws, Index begin, Index end) {
        forward(net, some_rows<T>(X, begin, end - begin), ws);
        out.middleRows(begin, end - begin) = ws.z(net.n_layers(), end - begin);
      });
}

template <class T>
void predict(const Network<T>& net, ConstMatrixMap<T> X, MatrixMap<T> out) {
  predict_from(net, X, out);
}

template <class T>
void predict(const Network<T>& net, const SparseRows<T>& X, MatrixMap<T> out) {
  predict_from(net, X, out);
}

#define FASTMLP_INSTANTIATE(T)                                                                    \
  template class Workspace<T>;                                                                    \
  template void forward<T>(const Network<T>&, ConstMatrixMap<T>, Workspace<T>&);                  \
  template double weight_sq_norm<T>(const Network<T>&);                                           \
  template double backprop_sums<T>(const Network<T>&, ConstMatrixMap<T>, ConstMatrixMap<T>,       \
                                   const T*, Workspace<T>&, const Gradients<T>&);                 \
  template double loss_and_gradients<T>(const Network<T>&, ConstMatrixMap<T>, ConstMatrixMap<T>,  \
                                        const T*, T, Workspace<T>&, const Gradients<T>&, double); \
  template double finish_gradients<T>(const Network<T>&, double, double, T, const Gradients<T>&,  \
                                      double);                                                    \
  template void predict<T>(const Network<T>&, ConstMatrixMap<T>, MatrixMap<T>);                   \
  template void forward<T>(const Network<T>&, const SparseRows<T>&, Workspace<T>&);               \
  template double backprop_sums<T>(const Network<T>&, const SparseRows<T>&, ConstMatrixMap<T>,    \
                                   const T*, Workspace<T>&, const Gradients<T>&);                 \
  template double loss_and_gradients<T>(const Network<T>&, const SparseRows<T>&,                  \
                                        ConstMatrixMap<T>, const T*, T, Workspace<T>&,            \
                                        const Gradients<T>&, double);                             \
  template void predict<T>(const Network<T>&, const SparseRows<T>&, MatrixMap<T>);                \
  template int gemm_threads<T>(const Network<T>&, Index);

FASTMLP_INSTANTIATE(float)
FASTMLP_INSTANTIATE(double)

}  // namespace fastmlp
