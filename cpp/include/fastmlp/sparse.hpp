// Sparse input (CSR) for the first layer: the matrix as SciPy stores it, views of its rows in an
// epoch's order, and the three things the first layer does with them, each without ever forming
// a dense (rows, n_features) block:
//
//   forward:          out = f(X W + b)           X (rows, k) CSR, W (k, n), out (rows, n)
//   weight gradient:  gW  = X^T delta             gW (k, n) dense (stateless passes, L-BFGS)
//   minibatch:        SparseGradient              X^T delta kept only for the features that the
//                                                 batch touches, split among threads by feature
//
// Duplicate indices add up (as SciPy sums them), explicit zeros add nothing and rows need not be
// sorted: every product is linear in the stored entries, so the user's matrix is used as it is.
// The bindings check indptr and every index before the core reads them.
#pragma once

#include <cstdint>
#include <vector>

#include "fastmlp/matrix.hpp"
#include "fastmlp/shared/definitions.hpp"

namespace fastmlp {

// A CSR matrix (rows, cols): row i's entries are data[p], column indices[p], for p in
// [indptr[i], indptr[i+1]). indices and indptr are both int32 or both int64 (int64_indices).
// Nothing is owned.
template <class T>
struct CsrMatrix {
  const T* data = nullptr;
  const void* indices = nullptr;
  const void* indptr = nullptr;
  bool int64_indices = false;
  Index rows = 0;
  Index cols = 0;

  Index row_begin(Index i) const {
    return int64_indices ? Index(static_cast<const std::int64_t*>(indptr)[i])
                         : Index(static_cast<const std::int32_t*>(indptr)[i]);
  }
  Index nnz() const { return row_begin(rows); }
};

// n rows of a CSR matrix: row i of the view is row order[i] of the matrix, or first + i where
// order is nullptr (a block of consecutive rows).
template <class T>
struct SparseRows {
  const CsrMatrix<T>* matrix = nullptr;
  const std::int64_t* order = nullptr;
  Index first = 0;
  Index n = 0;

  Index rows() const { return n; }
  Index cols() const { return matrix->cols; }
  Index row(Index i) const { return order ? Index(order[i]) : first + i; }
  SparseRows middle(Index start, Index count) const {
    return order ? SparseRows{matrix, order + start, 0, count}
                 : SparseRows{matrix, nullptr, first + start, count};
  }
};

// out (rows, n) <- f(in (rows, k) W (k, n) + b (n,)): each output row starts from b and adds
// v W[j, :] for each stored (j, v) of its input row. slope and pre as the dense overload's.
template <class T>
void forward_product(Activation f, const SparseRows<T>& in, const T* W, const T* b,
                     MatrixMap<T> out, T slope, T* pre);

// gW (k, n) <- in^T (k, rows) delta (rows, n), dense: zeroed, then v delta[i, :] added to row j
// for each stored (i, j, v), rows in order.
template <class T>
void weight_gradient_product(const SparseRows<T>& in, ConstMatrixMap<T> delta, MatrixMap<T> gW);

// Multiply-adds of one forward pass per row, for deciding block sizes and threads: the first
// layer costs (stored entries per row) * sizes[1], not sizes[0] * sizes[1].
double sparse_weights_per_row(const std::vector<std::int64_t>& sizes, double nnz_per_row);

// The first layer's weight gradient of one minibatch, X_b^T delta, kept for the features that
// the batch touches only: a shared map feature -> row of a compact buffer G, and G itself, which
// holds at most (the batch's stored entries) rows. The features are split among `parts` threads
// in contiguous ranges; thread t alone writes the map entries and G rows of its range, so no
// thread holds a dense (n_features, n_hidden) copy and nothing is summed across threads. Each
// feature's sum runs over the batch's rows in order: the bits do not depend on the split.
template <class T>
class SparseGradient {
 public:
  // For X (n_features columns), batches of at most max_batch rows, n_hidden = sizes[1].
  SparseGradient(const CsrMatrix<T>& X, Index max_batch, Index n_hidden, int parts);

  // Thread `part`'s share of X_b^T delta for the batch's rows `rows`; delta_row(i) points at
  // row i of delta (n_hidden values). Forgets the previous batch's features of this part first.
  template <class DeltaRow>
  void accumulate(int part, const SparseRows<T>& rows, DeltaRow delta_row);

  // Row j of the gradient sum, or nullptr where the batch did not touch feature j.
  const T* row(Index j) const {
    const std::int32_t s = slot_[std::size_t(j)];
    return s < 0 ? nullptr : G_.data() + Index(s) * n_hidden_;
  }

 private:
  template <class I>
  void accumulate_typed(int part, const SparseRows<T>& rows, const std::vector<const T*>& deltas);
  void accumulate_rows(int part, const SparseRows<T>& rows, const std::vector<const T*>& deltas);

  Index n_features_, n_hidden_;
  int parts_;
  const CsrMatrix<T>* X_;
  std::vector<std::int32_t> slot_;                  // feature -> row of G, -1: untouched
  std::vector<std::vector<std::int32_t>> touched_;  // each part's features of the last batch
  std::vector<Index> first_slot_;                   // each part's first row of G
  std::vector<std::vector<const T*>> deltas_;       // each part's delta row pointers (scratch)
  RowMatrix<T> G_;
};

template <class T>
template <class DeltaRow>
void SparseGradient<T>::accumulate(int part, const SparseRows<T>& rows, DeltaRow delta_row) {
  std::vector<const T*>& deltas = deltas_[std::size_t(part)];
  deltas.resize(std::size_t(rows.rows()));
  for (Index i = 0; i < rows.rows(); ++i) deltas[std::size_t(i)] = delta_row(i);
  accumulate_rows(part, rows, deltas);
}

}  // namespace fastmlp
