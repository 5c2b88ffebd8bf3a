#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>

#include "fastmlp/activation.hpp"
#include "fastmlp/sparse.hpp"

namespace fastmlp {

namespace {

// Calls body(indices, indptr) with the matrix's index arrays at their own type.
template <class T, class Body>
void with_indices(const CsrMatrix<T>& X, Body body) {
  if (X.int64_indices) {
    body(static_cast<const std::int64_t*>(X.indices), static_cast<const std::int64_t*>(X.indptr));
  } else {
    body(static_cast<const std::int32_t*>(X.indices), static_cast<const std::int32_t*>(X.indptr));
  }
}

}  // namespace

template <class T>
void forward_product(Activation f, const SparseRows<T>& in, const T* W, const T* b,
                     MatrixMap<T> out, T slope, T* pre) {
  const Index n = out.cols();
  const ConstMatrixMap<T> Wm(W, in.cols(), n);
  const CsrMatrix<T>& X = *in.matrix;
  with_indices(X, [&](const auto* indices, const auto* indptr) {
    for (Index i = 0; i < in.rows(); ++i) {
      const Index r = in.row(i);
      auto o = out.row(i);
      o = ConstVectorMap<T>(b, n).transpose();
      for (Index p = Index(indptr[r]); p < Index(indptr[r + 1]); ++p) {
        o.noalias() += X.data[p] * Wm.row(Index(indices[p]));
      }
    }
  });
  if (pre) MatrixMap<T>(pre, out.rows(), n) = out;
  apply_activation<T>(f, out, slope);
}

template <class T>
void weight_gradient_product(const SparseRows<T>& in, ConstMatrixMap<T> delta, MatrixMap<T> gW) {
  gW.setZero();
  const CsrMatrix<T>& X = *in.matrix;
  with_indices(X, [&](const auto* indices, const auto* indptr) {
    for (Index i = 0; i < in.rows(); ++i) {
      const Index r = in.row(i);
      for (Index p = Index(indptr[r]); p < Index(indptr[r + 1]); ++p) {
        gW.row(Index(indices[p])).noalias() += X.data[p] * delta.row(i);
      }
    }
  });
}

double sparse_weights_per_row(const std::vector<std::int64_t>& sizes, double nnz_per_row) {
  double weights = std::max(nnz_per_row, 1.0) * double(sizes[1]);
  for (std::size_t l = 1; l + 1 < sizes.size(); ++l) weights += double(sizes[l] * sizes[l + 1]);
  return weights;
}

template <class T>
SparseGradient<T>::SparseGradient(const CsrMatrix<T>& X, Index max_batch, Index n_hidden, int parts)
    : n_features_(X.cols),
      n_hidden_(n_hidden),
      parts_(std::max(parts, 1)),
      X_(&X),
      slot_(std::size_t(X.cols), -1),
      touched_(std::size_t(parts_)),
      first_slot_(std::size_t(parts_) + 1, 0),
      deltas_(std::size_t(parts_)) {
  if (X.cols >= Index(INT32_MAX)) {
    throw std::invalid_argument("sparse X has " + std::to_string(X.cols) +
                                " columns: at most 2^31 - 2 are supported");
  }
  // A batch touches at most as many features as its rows hold entries: the sum of the
  // max_batch longest rows bounds every batch.
  std::vector<Index> lengths(std::size_t(X.rows));
  for (Index i = 0; i < X.rows; ++i) lengths[std::size_t(i)] = X.row_begin(i + 1) - X.row_begin(i);
  const Index k = std::min<Index>(max_batch, X.rows);
  std::nth_element(lengths.begin(), lengths.begin() + k, lengths.end(), std::greater<Index>());
  Index max_entries = 0;
  for (Index i = 0; i < k; ++i) max_entries += lengths[std::size_t(i)];
  for (int t = 0; t < parts_; ++t) {
    const Index lo = n_features_ * t / parts_, hi = n_features_ * (t + 1) / parts_;
    first_slot_[std::size_t(t) + 1] = first_slot_[std::size_t(t)] + std::min(hi - lo, max_entries);
  }
  G_.resize(first_slot_.back(), n_hidden_);
}

template <class T>
void SparseGradient<T>::accumulate_rows(int part, const SparseRows<T>& rows,
                                        const std::vector<const T*>& deltas) {
  if (X_->int64_indices) {
    accumulate_typed<std::int64_t>(part, rows, deltas);
  } else {
    accumulate_typed<std::int32_t>(part, rows, deltas);
  }
}

template <class T>
template <class I>
void SparseGradient<T>::accumulate_typed(int part, const SparseRows<T>& rows,
                                         const std::vector<const T*>& deltas) {
  const I* indices = static_cast<const I*>(X_->indices);
  const I* indptr = static_cast<const I*>(X_->indptr);
  const Index lo = n_features_ * part / parts_, hi = n_features_ * (part + 1) / parts_;
  std::vector<std::int32_t>& touched = touched_[std::size_t(part)];
  for (std::int32_t j : touched) slot_[std::size_t(j)] = -1;
  touched.clear();
  std::int32_t next = std::int32_t(first_slot_[std::size_t(part)]);
  using Row = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
  using ConstRow = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
  for (Index i = 0; i < rows.rows(); ++i) {
    const Index r = rows.row(i);
    const ConstRow delta(deltas[std::size_t(i)], n_hidden_);
    for (Index p = Index(indptr[r]); p < Index(indptr[r + 1]); ++p) {
      const Index j = Index(indices[p]);
      if (j < lo || j >= hi) continue;
      std::int32_t& s = slot_[std::size_t(j)];
      if (s < 0) {
        // A feature's first entry in the batch: its row of G starts here, unzeroed before.
        s = next++;
        touched.push_back(std::int32_t(j));
        Row(G_.data() + Index(s) * n_hidden_, n_hidden_).noalias() = X_->data[p] * delta;
      } else {
        Row(G_.data() + Index(s) * n_hidden_, n_hidden_).noalias() += X_->data[p] * delta;
      }
    }
  }
}

#define FASTMLP_INSTANTIATE(T)                                                                     \
  template void forward_product<T>(Activation, const SparseRows<T>&, const T*, const T*,           \
                                   MatrixMap<T>, T, T*);                                           \
  template void weight_gradient_product<T>(const SparseRows<T>&, ConstMatrixMap<T>, MatrixMap<T>); \
  template class SparseGradient<T>;

FASTMLP_INSTANTIATE(float)
FASTMLP_INSTANTIATE(double)

}  // namespace fastmlp
