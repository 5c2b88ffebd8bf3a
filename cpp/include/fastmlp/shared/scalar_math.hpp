// The network's elementwise formulas, one scalar at a time, for host and device code alike: the
// activations, their derivatives taken from the layer's OUTPUT z = f(a) (or, for gelu and silu,
// whose derivative z cannot give, from the pre-activation a), a sample's loss term
// per output and the output layer's local error. The CUDA kernels use them as they are; the CPU
// core uses them where it loops over scalars and keeps Eigen's vectorized forms of the same
// formulas where those are faster (cpp/src/activation.cpp).
#pragma once

#include <cfloat>
#include <cmath>

#include "fastmlp/shared/definitions.hpp"

namespace fastmlp::scalar {

// std:: math on the host, CUDA's overloads on the device.
FASTMLP_HOST_DEVICE inline float exp_of(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  return std::exp(x);
#endif
}
FASTMLP_HOST_DEVICE inline double exp_of(double x) {
#ifdef __CUDA_ARCH__
  return ::exp(x);
#else
  return std::exp(x);
#endif
}
FASTMLP_HOST_DEVICE inline float tanh_of(float x) {
#ifdef __CUDA_ARCH__
  return tanhf(x);
#else
  return std::tanh(x);
#endif
}
FASTMLP_HOST_DEVICE inline double tanh_of(double x) {
#ifdef __CUDA_ARCH__
  return ::tanh(x);
#else
  return std::tanh(x);
#endif
}
FASTMLP_HOST_DEVICE inline float erf_of(float x) {
#ifdef __CUDA_ARCH__
  return erff(x);
#else
  return std::erf(x);
#endif
}
FASTMLP_HOST_DEVICE inline double erf_of(double x) {
#ifdef __CUDA_ARCH__
  return ::erf(x);
#else
  return std::erf(x);
#endif
}
FASTMLP_HOST_DEVICE inline double log_of(double x) {
#ifdef __CUDA_ARCH__
  return ::log(x);
#else
  return std::log(x);
#endif
}

template <class T>
FASTMLP_HOST_DEVICE inline T machine_epsilon();
template <>
FASTMLP_HOST_DEVICE inline float machine_epsilon<float>() {
  return FLT_EPSILON;
}
template <>
FASTMLP_HOST_DEVICE inline double machine_epsilon<double>() {
  return DBL_EPSILON;
}

// The logistic sigmoid 1 / (1 + e^-a), written so that exp never overflows: e^-a for a >= 0,
// e^a below.
template <class T>
FASTMLP_HOST_DEVICE inline T sigmoid(T a) {
  if (a >= T(0)) return T(1) / (T(1) + exp_of(-a));
  const T e = exp_of(a);
  return e / (T(1) + e);
}

// f(a). Softmax works on whole rows: here it passes a through. slope is leaky_relu's (the
// NetworkSpec's leaky_relu_slope); the other activations ignore it.
//   leaky_relu  a for a > 0, slope a below
//   gelu        a Phi(a) = 0.5 a (1 + erf(a / sqrt 2))   (the exact form, not the tanh one)
//   silu        a sigmoid(a)
template <class T>
FASTMLP_HOST_DEVICE inline T activate(Activation f, T a, T slope = T(0.01)) {
  switch (f) {
    case Activation::identity: return a;
    case Activation::logistic: return sigmoid(a);
    case Activation::tanh: return tanh_of(a);
    // max(a, 0) that lets a NaN through rather than silently making it 0.
    case Activation::relu: return a < T(0) ? T(0) : a;
    case Activation::step: return a >= T(0) ? T(1) : T(0);  // the lecture's threshold unit
    case Activation::exp: return exp_of(a);
    case Activation::softmax: return a;
    case Activation::leaky_relu: return a < T(0) ? slope * a : a;
    case Activation::gelu: return T(0.5) * a * (T(1) + erf_of(a * T(0.70710678118654752440)));
    case Activation::silu: return a * sigmoid(a);
  }
  return a;
}

// delta * f'(a), with f'(a) read from z = f(a): logistic z(1-z), tanh 1-z^2, relu [z>0],
// leaky_relu [z>0] + slope [z<=0] (slope > 0, so z > 0 exactly where a > 0), exp z. relu gives
// 0 where z <= 0 whatever delta holds. step and softmax have no elementwise derivative
// (check_trainable refuses them), so delta passes through; gelu and silu need a:
// times_derivative_at.
template <class T>
FASTMLP_HOST_DEVICE inline T times_derivative(Activation f, T z, T delta, T slope = T(0.01)) {
  switch (f) {
    case Activation::logistic: return delta * (z * (T(1) - z));
    case Activation::tanh: return delta * (T(1) - z * z);
    case Activation::relu: return z > T(0) ? delta : T(0);
    case Activation::leaky_relu: return z > T(0) ? delta : slope * delta;
    case Activation::exp: return delta * z;
    default: return delta;
  }
}

// delta * f'(a) for every activation, from the pre-activation a and the output z = f(a):
//   gelu  Phi(a) + a phi(a),  phi(a) = e^(-a^2/2) / sqrt(2 pi)
//   silu  s (1 + a (1 - s)),  s = sigmoid(a)
// and times_derivative's formulas (through z) for the others.
template <class T>
FASTMLP_HOST_DEVICE inline T times_derivative_at(Activation f, T a, T z, T delta, T slope) {
  switch (f) {
    case Activation::gelu: {
      const T cdf = T(0.5) * (T(1) + erf_of(a * T(0.70710678118654752440)));
      const T pdf = T(0.39894228040143267794) * exp_of(T(-0.5) * a * a);
      return delta * (cdf + a * pdf);
    }
    case Activation::silu: {
      const T s = sigmoid(a);
      return delta * (s * (T(1) + a * (T(1) - s)));
    }
    default: return times_derivative(f, z, delta, slope);
  }
}

// x log(y), 0 where x == 0 (scipy.special.xlogy), so that zero targets add nothing even where
// the prediction underflows.
template <class T>
FASTMLP_HOST_DEVICE inline double xlogy(T x, T y) {
  return x == T(0) ? 0.0 : double(x) * log_of(double(y));
}

// One output's term of a sample's loss, in double:
//   squared_error  1/2 (h - y)^2
//   log_loss       -y log p [- (1-y) log(1-p) for logistic outputs], p = h clipped to
//                  [eps, 1 - eps] of the working precision, as scikit-learn
//   poisson        y log(y/h) - y + h
// The clipping is written as comparisons that let a NaN through.
template <class T>
FASTMLP_HOST_DEVICE inline double loss_term(Loss loss, Activation output, T h, T y) {
  if (loss == Loss::squared_error) {
    const double r = double(h) - double(y);
    return 0.5 * r * r;
  }
  if (loss == Loss::poisson) return xlogy(y, T(y / h)) - double(y) + double(h);
  const T eps = machine_epsilon<T>();
  T p = h < eps ? eps : h;
  p = (T(1) - eps) < p ? T(1) - eps : p;
  double v = -xlogy(y, p);
  if (output == Activation::logistic) v -= xlogy(T(T(1) - y), T(T(1) - p));
  return v;
}

// The output layer's local error for one output, before the sample weight:
// h - y for the matching pairs, (h - y) f'(a) otherwise.
template <class T>
FASTMLP_HOST_DEVICE inline T output_error(Loss loss, Activation output, T h, T y) {
  const T d = h - y;
  return is_matching_pair(output, loss) ? d : times_derivative(output, h, d);
}

}  // namespace fastmlp::scalar
