// Activation functions, applied in place on a layer's pre-activations, and their derivatives,
// taken from the layer's OUTPUT z (logistic: z(1-z), tanh: 1-z^2, relu: [z>0], exp: z) so that
// backpropagation needs no copy of the pre-activations.
#pragma once

#include <string>

#include "fastmlp/matrix.hpp"

namespace fastmlp {

enum class Activation { identity, logistic, tanh, relu, step, softmax, exp };

// Parses "identity", "logistic", "tanh", "relu", "step", "softmax", "exp"; throws
// std::invalid_argument naming the bad value otherwise.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation activation);

// True where the derivative is elementwise and defined: step has none (zero almost everywhere,
// undefined at 0) and softmax's is a Jacobian, used only through its matching loss.
bool has_elementwise_derivative(Activation activation);

// a is (n_samples, n_units): a <- f(a).
template <class T>
void apply_activation(Activation activation, MatrixMap<T> a);

// z is the layer's output f(a), delta (n_samples, n_units): delta <- delta * f'(a), with f'(a)
// written through z. Throws std::invalid_argument for step and softmax.
template <class T>
void multiply_by_derivative(Activation activation, ConstMatrixMap<T> z, MatrixMap<T> delta);

}  // namespace fastmlp
