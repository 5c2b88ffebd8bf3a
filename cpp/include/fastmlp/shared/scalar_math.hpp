// The network's elementwise formulas, one scalar at a time, for host and device code alike: the
// activations, their derivatives taken from the layer's OUTPUT z = f(a), a sample's loss term
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

// f(a). Softmax works on whole rows: here it passes a through.
template <class T>
FASTMLP_HOST_DEVICE inline T activate(Activation f, T a) {
  switch (f) {
    case Activation::identity: return a;
    case Activation::logistic:
      // Written so that exp never overflows: e^-a for a >= 0, e^a below.
      if (a >= T(0)) return T(1) / (T(1) + exp_of(-a));
      {
        const T e = exp_of(a);
        return e / (T(1) + e);
      }
    case Activation::tanh: return tanh_of(a);
    // max(a, 0) that lets a NaN through rather than silently making it 0.
    case Activation::relu: return a < T(0) ? T(0) : a;
    case Activation::step: return a >= T(0) ? T(1) : T(0);  // the lecture's threshold unit
    case Activation::exp: return exp_of(a);
    case Activation::softmax: return a;
  }
  return a;
}

// delta * f'(a), with f'(a) read from z = f(a): logistic z(1-z), tanh 1-z^2, relu [z>0],
// exp z. relu gives 0 where z <= 0 whatever delta holds. step and softmax have no elementwise
// derivative (check_trainable refuses them), so delta passes through.
template <class T>
FASTMLP_HOST_DEVICE inline T times_derivative(Activation f, T z, T delta) {
  switch (f) {
    case Activation::logistic: return delta * (z * (T(1) - z));
    case Activation::tanh: return delta * (T(1) - z * z);
    case Activation::relu: return z > T(0) ? delta : T(0);
    case Activation::exp: return delta * z;
    default: return delta;
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
