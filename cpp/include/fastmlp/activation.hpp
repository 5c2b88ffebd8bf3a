// Activation functions, applied in place on a layer's pre-activations, and their derivatives,
// taken from the layer's OUTPUT z (logistic: z(1-z), tanh: 1-z^2, relu: [z>0], leaky_relu:
// [z>0] + slope [z<=0], exp: z) so that backpropagation needs no copy of the pre-activations,
// except for gelu and silu (needs_preactivation), whose derivatives are taken from a.
#pragma once

// The enum, its names and has_elementwise_derivative are the shared definitions (shared/); the
// scalar formulas are shared/scalar_math.hpp, of which these are Eigen's vectorized forms.
#include "fastmlp/matrix.hpp"
#include "fastmlp/shared/definitions.hpp"

namespace fastmlp {

// a is (n_samples, n_units): a <- f(a). slope is leaky_relu's, ignored by the others.
template <class T>
void apply_activation(Activation activation, MatrixMap<T> a, T slope = T(0.01));

// z is the layer's output f(a), delta (n_samples, n_units): delta <- delta * f'(a), with f'(a)
// written through z, or for gelu and silu through pre (the pre-activations a, same shape; may be
// nullptr for the others). Throws std::invalid_argument for step and softmax, and for gelu and
// silu without pre.
template <class T>
void multiply_by_derivative(Activation activation, ConstMatrixMap<T> z, MatrixMap<T> delta,
                            T slope = T(0.01), const T* pre = nullptr);

}  // namespace fastmlp
