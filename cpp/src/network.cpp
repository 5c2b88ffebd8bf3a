#include "fastmlp/network.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "fastmlp/parallel.hpp"
#include "fastmlp/small_gemm.hpp"

namespace fastmlp {

template <class T>
Workspace<T>::Workspace(const std::vector<Index>& sizes, Index max_rows)
    : sizes_(sizes), max_rows_(max_rows) {
  for (std::size_t l = 1; l < sizes.size(); ++l) {
    z_.emplace_back(max_rows, sizes[l]);
    delta_.emplace_back(max_rows, sizes[l]);
  }
  wt_.resize(sizes.size() - 1);
  for (std::size_t l = 1; l + 1 < sizes.size(); ++l) {
    // Only where one row would already take small_gemm: never for wide layers, whose copy of
    // the weights would cost as much memory as the weights themselves.
    if (prefers_small_gemm<T>(1, sizes[l], sizes[l + 1])) wt_[l].resize(sizes[l + 1], sizes[l]);
  }
}

template <class T>
void check_network(const Network<T>& net, Loss loss) {
  if (net.sizes.size() < 2) {
    throw std::invalid_argument("a network needs at least two layer sizes (input and output)");
  }
  for (std::size_t l = 0; l < net.sizes.size(); ++l) {
    if (net.sizes[l] < 1) {
      throw std::invalid_argument("layer size " + std::to_string(l) + " is " +
                                  std::to_string(net.sizes[l]) + ": sizes must be at least 1");
    }
  }
  if (net.hidden == Activation::softmax || net.hidden == Activation::exp) {
    throw std::invalid_argument(std::string("'") + activation_name(net.hidden) +
                                "' is an output activation: hidden layers take identity, "
                                "logistic, tanh, relu or step");
  }
  check_output_loss_pair(net.output, loss);
}

template <class T>
void check_trainable(const Network<T>& net, Loss loss) {
  const char* problem = nullptr;
  if (net.n_layers() > 1 && !has_elementwise_derivative(net.hidden)) problem = "hidden";
  if (!is_matching_pair(net.output, loss) && !has_elementwise_derivative(net.output)) {
    problem = "output";
  }
  if (problem) {
    const Activation a = std::string(problem) == "hidden" ? net.hidden : net.output;
    throw std::invalid_argument(std::string("the ") + problem + " activation '" +
                                activation_name(a) +
                                "' has no gradient to train with (step units run forward only)");
  }
}

namespace {

// Whether to run C (m, n) = A (m, k) B (k, n) with small_gemm rather than Eigen:
// where small_gemm is faster, and only where the caller runs GEMMs on one thread (small_gemm
// never threads). A function of the shape and the caller's own setting only, so that the same
// call gives the same bits whatever other threads do.
template <class T>
bool use_small_gemm(Index m, Index n, Index k) {
  return prefers_small_gemm<T>(m, n, k) && scoped_gemm_threads() == 1;
}

// out (rows, n) <- f(in (rows, k) W_l + b_l) for the layer's activation f.
template <class T>
void dense_layer(const Network<T>& net, Index l, ConstMatrixMap<T> in, MatrixMap<T> out) {
  const Index k = in.cols(), n = out.cols();
  const Activation f = net.activation_of(l);
  if (use_small_gemm<T>(in.rows(), n, k)) {
    // Bias (and relu) applied in registers, before the output is first stored.
    const bool relu = f == Activation::relu;
    small_gemm<T>(in.rows(), n, k, {in.data(), k, 1}, net.coefs[l], n, net.intercepts[l],
                  out.data(), n, relu ? GemmEpilogue::relu : GemmEpilogue::none);
    if (!relu) apply_activation<T>(f, out);
    return;
  }
  // Starting from the bias, rather than from zero, spares the GEMM's zeroing and a bias pass.
  out.rowwise() = net.b(l).transpose();
  out.noalias() += in * net.W(l);
  apply_activation<T>(f, out);
}

// gW (k, n) <- in^T (k, rows) delta (rows, n): the unnormalized weight gradient of a layer.
template <class T>
void weight_gradient_sum(ConstMatrixMap<T> in, ConstMatrixMap<T> delta, MatrixMap<T> gW) {
  const Index k = in.cols(), n = delta.cols();
  if (use_small_gemm<T>(k, n, in.rows())) {
    small_gemm<T>(k, n, in.rows(), {in.data(), 1, k}, delta.data(), n, nullptr, gW.data(), n);
    return;
  }
  gW.noalias() = in.transpose() * delta;
}

// below (rows, sizes[l]) <- f'(a_l) * (delta (rows, sizes[l+1]) W_l^T): the error passed down
// through W_l and the hidden activation f, whose derivative is read from z = z_l = f(a_l).
template <class T>
void error_to_below(const Network<T>& net, Index l, ConstMatrixMap<T> delta, ConstMatrixMap<T> z,
                    Workspace<T>& ws, MatrixMap<T> below) {
  const Index k = net.sizes[l], n = net.sizes[l + 1];
  T* wt = ws.transposed_weights(l);
  if (wt && use_small_gemm<T>(delta.rows(), k, n)) {
    transpose<T>(net.coefs[l], k, n, wt);
    const bool relu = net.hidden == Activation::relu;
    small_gemm<T>(delta.rows(), k, n, {delta.data(), n, 1}, wt, k, nullptr, below.data(), k,
                  relu ? GemmEpilogue::relu_gate : GemmEpilogue::none, z.data());
    if (!relu) multiply_by_derivative<T>(net.hidden, z, below);
    return;
  }
  below.noalias() = delta * net.W(l).transpose();
  multiply_by_derivative<T>(net.hidden, z, below);
}

}  // namespace

template <class T>
void forward(const Network<T>& net, ConstMatrixMap<T> X, Workspace<T>& ws) {
  const Index rows = X.rows();
  for (Index l = 0; l < net.n_layers(); ++l) {
    MatrixMap<T> z = ws.z(l + 1, rows);
    if (l == 0) {
      dense_layer<T>(net, l, X, z);
    } else {
      dense_layer<T>(net, l, ConstMatrixMap<T>(ws.z(l, rows).data(), rows, net.sizes[l]), z);
    }
  }
}

template <class T>
double weight_sq_norm(const Network<T>& net) {
  double sum = 0.0;
  for (Index l = 0; l < net.n_layers(); ++l) {
    sum += double(net.W(l).squaredNorm());
  }
  return sum;
}

template <class T>
double backprop_sums(const Network<T>& net, Loss loss, ConstMatrixMap<T> X, ConstMatrixMap<T> Y,
                     const T* weights, Workspace<T>& ws, const Gradients<T>& sums) {
  const Index rows = X.rows();
  const Index L = net.n_layers();
  if (rows == 0) {
    for (Index l = 0; l < L; ++l) {
      MatrixMap<T>(sums.coefs[l], net.sizes[l], net.sizes[l + 1]).setZero();
      VectorMap<T>(sums.intercepts[l], net.sizes[l + 1]).setZero();
    }
    return 0.0;
  }
  forward(net, X, ws);
  ConstMatrixMap<T> h(ws.z(L, rows).data(), rows, net.n_outputs());
  const double loss_sum = weighted_loss_sum<T>(loss, net.output, h, Y, weights);
  output_delta<T>(loss, net.output, h, Y, weights, ws.delta(L, rows));
  for (Index l = L - 1; l >= 0; --l) {
    MatrixMap<T> delta = ws.delta(l + 1, rows);
    MatrixMap<T> gW(sums.coefs[l], net.sizes[l], net.sizes[l + 1]);
    // z_{l-1}^T delta_l, with z_0 = X.
    const ConstMatrixMap<T> below_out =
        l == 0 ? X : ConstMatrixMap<T>(ws.z(l, rows).data(), rows, net.sizes[l]);
    weight_gradient_sum<T>(below_out, ConstMatrixMap<T>(delta.data(), rows, delta.cols()), gW);
    VectorMap<T>(sums.intercepts[l], net.sizes[l + 1]).noalias() =
        delta.colwise().sum().transpose();
    if (l > 0) {
      // delta_{l-1} = f'(a_{l-1}) * (delta_l W_l^T), the derivative read from z_{l-1}.
      error_to_below<T>(net, l, ConstMatrixMap<T>(delta.data(), rows, delta.cols()),
                        ConstMatrixMap<T>(ws.z(l, rows).data(), rows, net.sizes[l]), ws,
                        ws.delta(l, rows));
    }
  }
  return loss_sum;
}

template <class T>
double loss_and_gradients(const Network<T>& net, Loss loss, ConstMatrixMap<T> X,
                          ConstMatrixMap<T> Y, const T* weights, T alpha, Workspace<T>& ws,
                          const Gradients<T>& grads, double sq_norm) {
  const Index rows = X.rows();
  double weight_sum = double(rows);
  if (weights) weight_sum = double(ConstVectorMap<T>(weights, rows).sum());
  if (!(weight_sum > 0.0)) {
    // A batch whose sample weights are all zero carries no information: it contributes no
    // loss and no gradient (rather than 0/0).
    backprop_sums<T>(net, loss, ConstMatrixMap<T>(X.data(), 0, X.cols()),
                     ConstMatrixMap<T>(Y.data(), 0, Y.cols()), nullptr, ws, grads);
    return 0.0;
  }
  double value = backprop_sums<T>(net, loss, X, Y, weights, ws, grads) / weight_sum;
  if (alpha != T(0)) {
    if (sq_norm < 0) sq_norm = weight_sq_norm(net);
    value += 0.5 * double(alpha) * sq_norm / weight_sum;
  }
  // grad W_l = (z_{l-1}^T delta_l + alpha W_l) / S,  grad b_l = sum_i delta_l / S
  const T scale = T(1) / T(weight_sum);
  for (Index l = 0; l < net.n_layers(); ++l) {
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

template <class T>
void predict(const Network<T>& net, ConstMatrixMap<T> X, MatrixMap<T> out) {
  const Index rows = X.rows();
  const int threads = std::max(max_threads(), 1);
  const double weights = count_weights(net.sizes);
  // Enough rows per chunk to keep GEMMs efficient and to pay for a thread (kMinSplitWork),
  // few enough to share the rows out evenly; chunks inside the parallel loop run their GEMMs
  // on one thread, and a single chunk lets Eigen thread its GEMMs if they are large.
  const Index min_rows = std::max<Index>(64, Index(std::ceil(kMinSplitWork / weights)));
  const Index chunk =
      std::max<Index>(min_rows, std::min<Index>(4096, (rows + threads - 1) / threads));
  ScopedEigenThreads eigen_threads(chunk >= rows ? gemm_threads(net, rows) : 1);
  parallel_chunks(rows, chunk, [&](Index begin, Index end) {
    Workspace<T> ws(net.sizes, end - begin);
    ConstMatrixMap<T> part(X.data() + begin * X.cols(), end - begin, X.cols());
    forward(net, part, ws);
    out.middleRows(begin, end - begin) = ws.z(net.n_layers(), end - begin);
  });
}

#define FASTMLP_INSTANTIATE(T)                                                                    \
  template class Workspace<T>;                                                                    \
  template void check_network<T>(const Network<T>&, Loss);                                        \
  template void check_trainable<T>(const Network<T>&, Loss);                                      \
  template void forward<T>(const Network<T>&, ConstMatrixMap<T>, Workspace<T>&);                  \
  template double weight_sq_norm<T>(const Network<T>&);                                           \
  template double backprop_sums<T>(const Network<T>&, Loss, ConstMatrixMap<T>, ConstMatrixMap<T>, \
                                   const T*, Workspace<T>&, const Gradients<T>&);                 \
  template double loss_and_gradients<T>(const Network<T>&, Loss, ConstMatrixMap<T>,               \
                                        ConstMatrixMap<T>, const T*, T, Workspace<T>&,            \
                                        const Gradients<T>&, double);                             \
  template void predict<T>(const Network<T>&, ConstMatrixMap<T>, MatrixMap<T>);                   \
  template int gemm_threads<T>(const Network<T>&, Index);

FASTMLP_INSTANTIATE(float)
FASTMLP_INSTANTIATE(double)

}  // namespace fastmlp
