// The stochastic optimizers' update rules (stated with OptimizerConfig in
// shared/definitions.hpp), applied elementwise to runs of parameters so that the trainer can
// update every parameter in one pass, split among threads any way.
#pragma once

#include <vector>

#include "fastmlp/matrix.hpp"
#include "fastmlp/shared/definitions.hpp"

namespace fastmlp {

// Optimizer moments with the layout of the parameters: `first` holds sgd's velocities or adam's
// first moments, `second` adam's second moments (empty otherwise). Index l < n_layers is W_l,
// n_layers + l is b_l. Pointers only: the memory is the caller's.
template <class T>
struct OptimizerState {
  std::vector<T*> first;
  std::vector<T*> second;
};

// Updates n parameters p from their gradients g and moments m (and s, adam's second moments;
// nullptr for sgd) by the rule of config.solver. adam_rate is adam_step_rate of this step.
template <class T>
void update_parameters(const OptimizerConfig& config, double adam_rate, T* p, const T* g, T* m,
                       T* s, Index n);

}  // namespace fastmlp
