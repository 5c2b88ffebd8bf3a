#include "fastmlp/optimizer.hpp"

#include <cmath>
#include <stdexcept>

namespace fastmlp {

Solver parse_solver(const std::string& name) {
  if (name == "sgd") return Solver::sgd;
  if (name == "adam") return Solver::adam;
  throw std::invalid_argument("unknown stochastic solver '" + name + "': expected sgd or adam");
}

namespace {

// One parameter array p of n values with its gradient g and moments m (and s for adam).
template <class T>
double update_array(const OptimizerConfig& c, double adam_rate, T* p, const T* g, T* m, T* s,
                    Index n) {
  double sq = 0.0;
  if (c.solver == Solver::sgd) {
    const T mu = T(c.momentum), lr = T(c.learning_rate);
    for (Index i = 0; i < n; ++i) {
      const T v = mu * m[i] - lr * g[i];
      m[i] = v;
      p[i] += c.nesterov ? mu * v - lr * g[i] : v;
      sq += double(p[i]) * double(p[i]);
    }
  } else {
    const T b1 = T(c.beta_1), b2 = T(c.beta_2), eps = T(c.epsilon), lr = T(adam_rate);
    for (Index i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (T(1) - b1) * g[i];
      s[i] = b2 * s[i] + (T(1) - b2) * g[i] * g[i];
      p[i] -= lr * m[i] / (std::sqrt(s[i]) + eps);
      sq += double(p[i]) * double(p[i]);
    }
  }
  return sq;
}

}  // namespace

template <class T>
double apply_update(OptimizerConfig& config, const Network<T>& net, const Gradients<T>& grads,
                    const OptimizerState<T>& state) {
  double adam_rate = 0.0;
  if (config.solver == Solver::adam) {
    config.t += 1;
    const double t = double(config.t);
    adam_rate = config.learning_rate * std::sqrt(1.0 - std::pow(config.beta_2, t)) /
                (1.0 - std::pow(config.beta_1, t));
  }
  const Index L = net.n_layers();
  T* no_second = nullptr;
  double sq = 0.0;
  for (Index l = 0; l < L; ++l) {
    const bool adam = config.solver == Solver::adam;
    sq += update_array<T>(config, adam_rate, net.coefs[l], grads.coefs[l], state.first[l],
                          adam ? state.second[l] : no_second, net.sizes[l] * net.sizes[l + 1]);
    update_array<T>(config, adam_rate, net.intercepts[l], grads.intercepts[l],
                    state.first[L + l], adam ? state.second[L + l] : no_second,
                    net.sizes[l + 1]);
  }
  return sq;
}

template double apply_update<float>(OptimizerConfig&, const Network<float>&,
                                    const Gradients<float>&, const OptimizerState<float>&);
template double apply_update<double>(OptimizerConfig&, const Network<double>&,
                                     const Gradients<double>&, const OptimizerState<double>&);

}  // namespace fastmlp
