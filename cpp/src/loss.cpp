#include "fastmlp/loss.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace fastmlp {

Loss parse_loss(const std::string& name) {
  if (name == "squared_error") return Loss::squared_error;
  if (name == "log_loss") return Loss::log_loss;
  if (name == "poisson") return Loss::poisson;
  throw std::invalid_argument("unknown loss '" + name +
                              "': expected squared_error, log_loss or poisson");
}

const char* loss_name(Loss loss) {
  switch (loss) {
    case Loss::squared_error: return "squared_error";
    case Loss::log_loss: return "log_loss";
    case Loss::poisson: return "poisson";
  }
  return "?";
}

bool is_matching_pair(Activation output, Loss loss) {
  switch (loss) {
    case Loss::squared_error: return output == Activation::identity;
    case Loss::log_loss: return output == Activation::logistic || output == Activation::softmax;
    case Loss::poisson: return output == Activation::exp;
  }
  return false;
}

namespace {

// x * log(y), defined as 0 where x == 0 (as scipy.special.xlogy), so that targets of exactly 0
// contribute nothing even where the prediction underflows.
template <class T>
double xlogy(T x, T y) {
  return x == T(0) ? 0.0 : double(x) * std::log(double(y));
}

template <class T>
double sample_loss(Loss loss, Activation output, const T* h, const T* y, Index n_outputs) {
  double sum = 0.0;
  if (loss == Loss::squared_error) {
    for (Index k = 0; k < n_outputs; ++k) {
      const double r = double(h[k]) - double(y[k]);
      sum += r * r;
    }
    return 0.5 * sum;
  }
  if (loss == Loss::poisson) {
    for (Index k = 0; k < n_outputs; ++k) {
      sum += xlogy(y[k], T(y[k] / h[k])) - double(y[k]) + double(h[k]);
    }
    return sum;
  }
  // log_loss: probabilities clipped to [eps, 1 - eps] of the working precision, as scikit-learn.
  const T eps = std::numeric_limits<T>::epsilon();
  for (Index k = 0; k < n_outputs; ++k) {
    const T p = std::min(std::max(h[k], eps), T(1) - eps);
    sum -= xlogy(y[k], p);
    if (output == Activation::logistic) sum -= xlogy(T(1) - y[k], T(1) - p);
  }
  return sum;
}

}  // namespace

void check_output_loss_pair(Activation output, Loss loss) {
  if (output == Activation::step) {
    return;  // forward only; asking for a gradient raises in multiply_by_derivative
  }
  const bool ok = (loss == Loss::squared_error && output != Activation::softmax) ||
                  is_matching_pair(output, loss);
  if (!ok) {
    throw std::invalid_argument(std::string("loss '") + loss_name(loss) +
                                "' cannot be used with the output activation '" +
                                activation_name(output) +
                                "': log_loss needs logistic or softmax outputs, poisson needs "
                                "exp outputs, squared_error any output but softmax");
  }
}

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
