#include "fastmlp/optimizer.hpp"

namespace fastmlp {

// Whole-array expressions, which Eigen vectorizes.
template <class T>
void update_parameters(const OptimizerConfig& c, double adam_rate, T* p_data, const T* g_data,
                       T* m_data, T* s_data, Index n) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<Array> p(p_data, n), m(m_data, n);
  Eigen::Map<const Array> g(g_data, n);
  if (c.solver == Solver::sgd) {
    const T mu = T(c.momentum), lr = T(c.learning_rate);
    m = mu * m - lr * g;
    if (c.nesterov) {
      p += mu * m - lr * g;
    } else {
      p += m;
    }
  } else {
    Eigen::Map<Array> s(s_data, n);
    const T b1 = T(c.beta_1), b2 = T(c.beta_2), eps = T(c.epsilon), lr = T(adam_rate);
    m = b1 * m + (T(1) - b1) * g;
    s = b2 * s + (T(1) - b2) * g.square();
    p -= lr * m / (s.sqrt() + eps);
  }
}

template void update_parameters<float>(const OptimizerConfig&, double, float*, const float*, float*,
                                       float*, Index);
template void update_parameters<double>(const OptimizerConfig&, double, double*, const double*,
                                        double*, double*, Index);

}  // namespace fastmlp
