#include "fastmlp/activation.hpp"

#include <stdexcept>

#include "fastmlp/shared/scalar_math.hpp"

namespace fastmlp {

template <class T>
void apply_activation(Activation activation, MatrixMap<T> a, T slope) {
  auto x = a.array();
  switch (activation) {
    case Activation::identity: return;
    // Eigen's logistic saturates to 0 and 1 without overflowing exp for large |a|.
    case Activation::logistic: x = x.logistic(); return;
    case Activation::tanh: x = x.tanh(); return;
    case Activation::relu: x = x.max(T(0)); return;
    // Threshold unit: 1 where a >= 0 (the lecture's Th), 0 elsewhere.
    case Activation::step: x = (x >= T(0)).template cast<T>(); return;
    case Activation::exp: x = x.exp(); return;
    case Activation::leaky_relu: {
      // A plain loop that lets a NaN through; the compiler vectorizes it.
      T* p = a.data();
      const Index n = a.size();
      for (Index i = 0; i < n; ++i) p[i] = p[i] < T(0) ? slope * p[i] : p[i];
      return;
    }
    // Eigen 3.4 has no vectorized erf outside its unsupported modules: the shared scalar formula.
    case Activation::gelu: {
      T* p = a.data();
      const Index n = a.size();
      for (Index i = 0; i < n; ++i) p[i] = scalar::activate(Activation::gelu, p[i]);
      return;
    }
    case Activation::silu: x = x * x.logistic(); return;
    case Activation::softmax:
      // Subtracting each row's maximum keeps exp from overflowing; the result is unchanged.
      for (Index i = 0; i < a.rows(); ++i) {
        auto row = a.row(i).array();
        row = (row - row.maxCoeff()).exp();
        row /= row.sum();
      }
      return;
  }
}

template <class T>
void multiply_by_derivative(Activation activation, ConstMatrixMap<T> z, MatrixMap<T> delta, T slope,
                            const T* pre) {
  auto d = delta.array();
  auto out = z.array();
  switch (activation) {
    case Activation::identity: return;
    case Activation::logistic: d *= out * (T(1) - out); return;
    case Activation::tanh: d *= T(1) - out.square(); return;
    case Activation::relu: {
      // A plain loop: the compiler vectorizes it with masks, Eigen 3.4's select() it does not.
      const T* zp = z.data();
      T* dp = delta.data();
      const Index n = z.size();
      for (Index i = 0; i < n; ++i) dp[i] = zp[i] > T(0) ? dp[i] : T(0);
      return;
    }
    case Activation::leaky_relu: {
      const T* zp = z.data();
      T* dp = delta.data();
      const Index n = z.size();
      for (Index i = 0; i < n; ++i) dp[i] = zp[i] > T(0) ? dp[i] : slope * dp[i];
      return;
    }
    case Activation::exp: d *= out; return;
    case Activation::gelu: {
      // Phi(a) + a phi(a): a scalar loop over the shared formula (erf again).
      if (!pre) throw std::invalid_argument("gelu's derivative needs the pre-activations");
      T* dp = delta.data();
      const Index n = delta.size();
      for (Index i = 0; i < n; ++i) {
        dp[i] = scalar::times_derivative_at(Activation::gelu, pre[i], T(0), dp[i], slope);
      }
      return;
    }
    case Activation::silu: {
      // s (1 + a (1 - s)), s = sigmoid(a), in Eigen's vectorized form.
      if (!pre) throw std::invalid_argument("silu's derivative needs the pre-activations");
      const auto a = ConstMatrixMap<T>(pre, z.rows(), z.cols()).array();
      const auto s = a.logistic();
      d *= s * (T(1) + a * (T(1) - s));
      return;
    }
    case Activation::step:
      throw std::invalid_argument(
          "the 'step' activation has no gradient (its derivative is zero almost everywhere): "
          "use it for forward passes only");
    case Activation::softmax:
      throw std::invalid_argument(
          "softmax has no elementwise derivative: use it as the output with log_loss");
  }
}

template void apply_activation<float>(Activation, MatrixMap<float>, float);
template void apply_activation<double>(Activation, MatrixMap<double>, double);
template void multiply_by_derivative<float>(Activation, ConstMatrixMap<float>, MatrixMap<float>,
                                            float, const float*);
template void multiply_by_derivative<double>(Activation, ConstMatrixMap<double>, MatrixMap<double>,
                                             double, const double*);

}  // namespace fastmlp
