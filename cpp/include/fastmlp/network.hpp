// A dense feed-forward network over parameters that the caller owns (NumPy arrays, in the
// Python package), the workspace a pass needs, and the passes themselves:
//   forward:   a_l = z_{l-1} @ W_l + b_l,  z_l = f(a_l)   (f = the output activation at the top)
//   backward:  delta_L from the loss, delta_l = f'(a_l) * (delta_{l+1} @ W_{l+1}^T)
//              grad W_l = (z_{l-1}^T @ delta_l + alpha W_l) / S,  grad b_l = sum_i delta_l / S
#pragma once

#include <vector>

#include "fastmlp/activation.hpp"
#include "fastmlp/loss.hpp"
#include "fastmlp/matrix.hpp"
#include "fastmlp/shared/definitions.hpp"
#include "fastmlp/sparse.hpp"

namespace fastmlp {

// A network: its spec (sizes, activations, loss) and pointers to its parameters: W_l is
// (sizes[l], sizes[l+1]) row-major, b_l is (sizes[l+1],). Nothing is owned.
class Bf16Weights;

template <class T>
struct Network : NetworkSpec {
  std::vector<T*> coefs;
  std::vector<T*> intercepts;
  // float32 networks only: where set, the layers it holds packed weights for run their products
  // on bf16 operands (bf16_layers.hpp). The caller packs them from coefs before each pass.
  const Bf16Weights* bf16 = nullptr;

  MatrixMap<T> W(Index l) const { return MatrixMap<T>(coefs[l], sizes[l], sizes[l + 1]); }
  VectorMap<T> b(Index l) const { return VectorMap<T>(intercepts[l], sizes[l + 1]); }
};

// The parameter pointers of a flat vector (scikit-learn's packing: W_0..W_{L-1}, b_0..b_{L-1}).
template <class T>
void point_into_flat(const NetworkSpec& spec, T* flat, std::vector<T*>& coefs,
                     std::vector<T*>& intercepts) {
  coefs.clear();
  intercepts.clear();
  for (std::int64_t l = 0; l < spec.n_layers(); ++l) {
    coefs.push_back(flat);
    flat += spec.sizes[l] * spec.sizes[l + 1];
  }
  for (std::int64_t l = 0; l < spec.n_layers(); ++l) {
    intercepts.push_back(flat);
    flat += spec.sizes[l + 1];
  }
}

// Gradient buffers with the layout of Network's parameters; again pointers only.
template <class T>
struct Gradients {
  std::vector<T*> coefs;
  std::vector<T*> intercepts;
};

// Buffers for passes over at most max_rows samples, allocated once (per fit, or per predict
// chunk) so that the minibatch loop never allocates.
template <class T>
class Workspace {
 public:
  // The spec says which layers keep their pre-activations: the hidden ones, where the hidden
  // activation needs_preactivation (gelu, silu); only those pay the memory.
  Workspace(const NetworkSpec& spec, Index max_rows);
  Index max_rows() const { return max_rows_; }
  // z_l for l = 1..L (the output of weight layer l-1), (rows, sizes[l]).
  MatrixMap<T> z(Index l, Index rows) { return {z_[l - 1].data(), rows, sizes_[l]}; }
  // a_l, the pre-activations of z_l, for l = 1..L, same shapes as z: nullptr where layer l does
  // not keep them.
  T* pre(Index l) { return pre_[l - 1].size() ? pre_[l - 1].data() : nullptr; }
  // delta_l for l = 1..L, same shapes as z.
  MatrixMap<T> delta(Index l, Index rows) { return {delta_[l - 1].data(), rows, sizes_[l]}; }
  // Room for W_l^T (sizes[l+1], sizes[l]) for l = 1..L-1, where the layer is narrow enough for
  // the backward pass to multiply by it with small_gemm; else nullptr.
  T* transposed_weights(Index l) { return wt_[l].size() ? wt_[l].data() : nullptr; }

 private:
  std::vector<std::int64_t> sizes_;
  Index max_rows_;
  std::vector<RowMatrix<T>> z_, delta_, wt_, pre_;
};

// Forward pass of X (rows, n_inputs); the output lands in ws.z(L, rows).
template <class T>
void forward(const Network<T>& net, ConstMatrixMap<T> X, Workspace<T>& ws);

// Forward and backward over the rows of X (possibly none), with the network's loss: returns sum_i
// w_i * loss_i and writes the unnormalized sums z_{l-1}^T delta_l and sum_i delta_l into `sums` (no
// L2 term, no 1/S), so that partial sums over row blocks can be added up.
template <class T>
double backprop_sums(const Network<T>& net, ConstMatrixMap<T> X, ConstMatrixMap<T> Y,
                     const T* weights, Workspace<T>& ws, const Gradients<T>& sums);

// The loss of the batch (X, Y, weights) and its gradients, written into grads. weights is
// (rows,) or nullptr; weight_sq_norm is sum_l ||W_l||^2, which the caller may already know
// (pass a negative value to have it computed). Returns the weighted mean loss plus
// 0.5 alpha sum ||W||^2 / S.
template <class T>
double loss_and_gradients(const Network<T>& net, ConstMatrixMap<T> X, ConstMatrixMap<T> Y,
                          const T* weights, T alpha, Workspace<T>& ws, const Gradients<T>& grads,
                          double weight_sq_norm = -1.0);

// Turns the sums of backprop_sums over all rows (loss_sum, and the gradient sums already in
// grads) into the weighted mean loss with its L2 term, and grads into the gradients:
// grad W_l = (sum + alpha W_l) / S, grad b_l = sum / S. Where S = weight_sum is not positive the
// batch carries no information: no loss, zero gradients. Returns the loss.
template <class T>
double finish_gradients(const Network<T>& net, double loss_sum, double weight_sum, T alpha,
                        const Gradients<T>& grads, double weight_sq_norm = -1.0);

// sum_l ||W_l||_F^2, in double.
template <class T>
double weight_sq_norm(const Network<T>& net);

// Threads for Eigen's GEMMs in a pass over `rows` samples: all of them when the largest GEMM
// is big enough to pay for the fork (kMinParallelGemmWork), else one.
template <class T>
int gemm_threads(const Network<T>& net, Index rows);

// out (rows, n_outputs) <- forward(X), in chunks spread over the OpenMP threads.
template <class T>
void predict(const Network<T>& net, ConstMatrixMap<T> X, MatrixMap<T> out);

// The same passes over sparse rows (CSR, sparse.hpp): only the first layer's products differ.
// backprop_sums skips the first layer's weight gradient where sums.coefs[0] is nullptr.
template <class T>
void forward(const Network<T>& net, const SparseRows<T>& X, Workspace<T>& ws);
template <class T>
double backprop_sums(const Network<T>& net, const SparseRows<T>& X, ConstMatrixMap<T> Y,
                     const T* weights, Workspace<T>& ws, const Gradients<T>& sums);
template <class T>
double loss_and_gradients(const Network<T>& net, const SparseRows<T>& X, ConstMatrixMap<T> Y,
                          const T* weights, T alpha, Workspace<T>& ws, const Gradients<T>& grads,
                          double weight_sq_norm = -1.0);
template <class T>
void predict(const Network<T>& net, const SparseRows<T>& X, MatrixMap<T> out);

}  // namespace fastmlp
