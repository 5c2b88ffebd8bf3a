// An activation, or the product with its derivative, on one segment of a row (a block that a
// GEMM kernel's epilogue hands over), with the same bits wherever the segment starts and ends.
// Eigen evaluates tanh, the logistic and silu's exp in vectors from the first aligned address
// and element by element around them, and its two forms differ in the last bit: the kernels'
// blocks, which depend on the thread count, would otherwise change the results with it.
#pragma once

#include "fastmlp/matrix.hpp"
#include "fastmlp/shared/definitions.hpp"

namespace fastmlp {

// a (cols,) <- f(a). slope: leaky_relu's.
template <class T>
void activate_segment(Activation f, T* a, Index cols, T slope);

// a (cols,) <- f(a + bias), and pre (cols,) <- a + bias where pre is not null: a forward
// epilogue that adds the bias itself.
template <class T>
void bias_activate_segment(Activation f, T* a, const T* bias, Index cols, T slope, T* pre);

// d (cols,) <- d * f'(a), f' read from z (cols,), or from pre (cols,) for gelu and silu.
template <class T>
void derivative_segment(Activation f, const T* z, T* d, Index cols, T slope, const T* pre);

}  // namespace fastmlp
