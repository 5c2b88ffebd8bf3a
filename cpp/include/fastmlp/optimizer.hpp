// The stochastic optimizers' update rules, as scikit-learn states them, applied in one pass over
// every parameter (coefs then intercepts):
//   sgd:  v <- momentum v - lr g;  p <- p + v, or with Nesterov p <- p + momentum v - lr g
//   adam: t <- t + 1;  m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) g^2;
//         p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(s) + eps)
// Learning-rate schedules and stopping live in Python: they act between epochs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastmlp/network.hpp"

namespace fastmlp {

enum class Solver { sgd, adam };

Solver parse_solver(const std::string& name);

struct OptimizerConfig {
  Solver solver = Solver::sgd;
  double learning_rate = 0.001;  // sgd: the current rate; adam: learning_rate_init
  double momentum = 0.9;
  bool nesterov = true;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-8;
  std::int64_t t = 0;  // adam's step count; incremented by every update
};

// Optimizer moments with the layout of the parameters: `first` holds sgd's velocities or adam's
// first moments, `second` adam's second moments (unused by sgd). Index l < n_layers is W_l,
// n_layers + l is b_l. Pointers only: the memory is the caller's.
template <class T>
struct OptimizerState {
  std::vector<T*> first;
  std::vector<T*> second;
};

// Adam's step size at step t (counted from 1): lr sqrt(1 - b2^t) / (1 - b1^t).
double adam_step_rate(const OptimizerConfig& config, std::int64_t t);

// Updates n parameters p from their gradients g and moments m (and s, adam's second moments;
// nullptr for sgd) by the rule of config.solver. adam_rate is adam_step_rate of this step.
// Elementwise, so any split of the arrays among threads gives the same result.
template <class T>
void update_parameters(const OptimizerConfig& config, double adam_rate, T* p, const T* g, T* m,
                       T* s, Index n);

}  // namespace fastmlp
