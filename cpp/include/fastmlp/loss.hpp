// Error functions, as weighted means over samples (weights w_i, S = sum_i w_i; w_i = 1 when no
// sample weights are given), summed over outputs:
//   squared_error  1/2 sum_k sum_i w_i (h_ik - y_ik)^2 / S
//   log_loss       logistic output: -sum_k sum_i w_i [y log p + (1-y) log(1-p)] / S
//                  softmax output:  -sum_k sum_i w_i y log p / S   (p clipped to [eps, 1-eps])
//   poisson        sum_k sum_i w_i [y log(y/h) - y + h] / S        (exp output)
// and the output layer's local error delta_L = (h - y) * w_i for the matching output/loss pairs
// (identity/squared_error, logistic or softmax/log_loss, exp/poisson), times f'(a) otherwise.
#pragma once

// The enum, its names, the pair checks and each output's loss term are the shared definitions
// (shared/definitions.hpp, shared/scalar_math.hpp).
#include "fastmlp/activation.hpp"
#include "fastmlp/matrix.hpp"
#include "fastmlp/shared/definitions.hpp"

namespace fastmlp {

// Sum over samples of w_i * (the sample's loss summed over outputs); the caller divides by S.
// h, y are (n_samples, n_outputs); weights is (n_samples,) or nullptr for unit weights.
template <class T>
double weighted_loss_sum(Loss loss, Activation output, ConstMatrixMap<T> h, ConstMatrixMap<T> y,
                         const T* weights);

// delta (n_samples, n_outputs) <- the output layer's local error, see above.
template <class T>
void output_delta(Loss loss, Activation output, ConstMatrixMap<T> h, ConstMatrixMap<T> y,
                  const T* weights, MatrixMap<T> delta);

}  // namespace fastmlp
