#include "fastmlp/activation_segments.hpp"

#include <algorithm>
#include <vector>

#include "fastmlp/activation.hpp"

namespace fastmlp {

namespace {

// Eigen evaluates an activation on a row segment in vectors from the first aligned address on
// and element by element before it and after the last whole vector; its scalar and vector
// forms of tanh, the logistic and exp differ in the last bit. The packed kernel's blocks (and
// so the segments its epilogue sees) depend on the thread count, so for those functions the
// segment goes through an aligned copy padded to whole vectors: every element takes the vector
// path, wherever its block starts. relu, leaky_relu, gelu (a scalar loop) and identity are
// exact either way and work in place.
bool segment_independent(Activation f) {
  return f == Activation::identity || f == Activation::relu || f == Activation::leaky_relu ||
         f == Activation::gelu || f == Activation::step;
}

template <class T>
T* epilogue_scratch(int which, Index size) {
  thread_local std::vector<T, Eigen::aligned_allocator<T>> scratch[3];
  std::vector<T, Eigen::aligned_allocator<T>>& v = scratch[which];
  if (Index(v.size()) < size) v.resize(size);
  return v.data();
}

// Room for a segment of `cols` rounded up to whole cache lines (a whole number of vectors on
// every instruction set).
template <class T>
Index padded(Index cols) {
  constexpr Index line = 64 / Index(sizeof(T));
  return (cols + line - 1) / line * line;
}

}  // namespace

// a (cols,) <- f(a), the same bits wherever a lies (see segment_independent).
template <class T>
void activate_segment(Activation f, T* a, Index cols, T slope) {
  if (segment_independent(f)) {
    apply_activation<T>(f, MatrixMap<T>(a, 1, cols), slope);
    return;
  }
  const Index width = padded<T>(cols);
  T* tmp = epilogue_scratch<T>(0, width);
  std::copy_n(a, cols, tmp);
  std::fill(tmp + cols, tmp + width, T(0));
  apply_activation<T>(f, MatrixMap<T>(tmp, 1, width), slope);
  std::copy_n(tmp, cols, a);
}

// The bf16 kernel hands its epilogues rows of 32: plain loops for the common activations, which
// the compiler vectorizes, spare each row the dispatch and Eigen's setup around 32 elements
// (bias and relu were 10% of a bf16 prediction through them). relu is std::max(v, 0): NaN and
// -0 kept, as Eigen's max with 0, so the bits are the same either way. (The bf16 layers are
// float32 only: no double instance.)
template <class T>
void bias_activate_segment(Activation f, T* a, const T* bias, Index cols, T slope, T* pre) {
  if (f == Activation::relu || f == Activation::identity) {
    const bool relu = f == Activation::relu;
    for (Index j = 0; j < cols; ++j) {
      const T v = a[j] + bias[j];
      if (pre) pre[j] = v;
      a[j] = relu && v < T(0) ? T(0) : v;
    }
    return;
  }
  for (Index j = 0; j < cols; ++j) a[j] += bias[j];
  if (pre) std::copy_n(a, cols, pre);
  activate_segment<T>(f, a, cols, slope);
}

// d (cols,) <- d * f'(a), read from z (or pre), the same bits wherever d lies.
template <class T>
void derivative_segment(Activation f, const T* z, T* d, Index cols, T slope, const T* pre) {
  if (f != Activation::silu) {
    // Products and differences only (gelu: a scalar loop): exact in vectors and scalars alike.
    multiply_by_derivative<T>(f, ConstMatrixMap<T>(z, 1, cols), MatrixMap<T>(d, 1, cols), slope,
                              pre);
    return;
  }
  const Index width = padded<T>(cols);
  T* zt = epilogue_scratch<T>(0, width);
  T* dt = epilogue_scratch<T>(1, width);
  T* pt = epilogue_scratch<T>(2, width);
  std::copy_n(z, cols, zt);
  std::copy_n(d, cols, dt);
  std::copy_n(pre, cols, pt);
  std::fill(zt + cols, zt + width, T(0));
  std::fill(dt + cols, dt + width, T(0));
  std::fill(pt + cols, pt + width, T(0));
  multiply_by_derivative<T>(f, ConstMatrixMap<T>(zt, 1, width), MatrixMap<T>(dt, 1, width), slope,
                            pt);
  std::copy_n(dt, cols, d);
}

template void activate_segment<float>(Activation, float*, Index, float);
template void activate_segment<double>(Activation, double*, Index, double);
template void bias_activate_segment<float>(Activation, float*, const float*, Index, float, float*);
template void derivative_segment<float>(Activation, const float*, float*, Index, float,
                                        const float*);
template void derivative_segment<double>(Activation, const double*, double*, Index, double,
                                         const double*);

}  // namespace fastmlp
