#include "fastmlp/loss.hpp"

#include "fastmlp/shared/scalar_math.hpp"

namespace fastmlp {

namespace {

// A sample's loss summed over its outputs.
template <class T>
double sample_loss(Loss loss, Activation output, const T* h, const T* y, Index n_outputs) {
  double sum = 0.0;
  for (Index k = 0; k < n_outputs; ++k) sum += scalar::loss_term<T>(loss, output, h[k], y[k]);
  return sum;
}

}  // namespace

template <class T>
double weighted_loss_sum(Loss loss, Activation output, ConstMatrixMap<T> h, ConstMatrixMap<T> y,
                         const T* weights) {
  double total = 0.0;
  for (Index i = 0; i < h.rows(); ++i) {
    const double l = sample_loss(loss, output, h.row(i).data(), y.row(i).data(), h.cols());
    total += weights ? double(weights[i]) * l : l;
  }
  return total;
}

template <class T>
void output_delta(Loss loss, Activation output, ConstMatrixMap<T> h, ConstMatrixMap<T> y,
                  const T* weights, MatrixMap<T> delta) {
  delta = h - y;
  if (!is_matching_pair(output, loss)) {
    multiply_by_derivative<T>(output, h, delta);
  }
  if (weights) {
    delta.array().colwise() *= ConstVectorMap<T>(weights, h.rows()).array();
  }
}

template double weighted_loss_sum<float>(Loss, Activation, ConstMatrixMap<float>,
                                         ConstMatrixMap<float>, const float*);
template double weighted_loss_sum<double>(Loss, Activation, ConstMatrixMap<double>,
                                          ConstMatrixMap<double>, const double*);
template void output_delta<float>(Loss, Activation, ConstMatrixMap<float>, ConstMatrixMap<float>,
                                  const float*, MatrixMap<float>);
template void output_delta<double>(Loss, Activation, ConstMatrixMap<double>, ConstMatrixMap<double>,
                                   const double*, MatrixMap<double>);

}  // namespace fastmlp
