// What every GEMM kernel of the seam (layer_products.hpp) takes and gives: strided operand views,
// so that one kernel serves all three products of a layer (Z W, Z^T Delta, Delta W^T) by strides
// alone, and the block epilogue, through which the seam fuses the bias, the activation or its
// derivative into the kernel while each finished block of C is still in cache.
#pragma once

#include <type_traits>
#include <utility>

#include "fastmlp/matrix.hpp"

namespace fastmlp {

// A strided view of an operand: element (i, p) is data[i * row_stride + p * col_stride].
template <class T>
struct StridedOperand {
  const T* data;
  Index row_stride;
  Index col_stride;
};

// A non-owning reference to a callable, cheaper than std::function (no allocation, one indirect
// call): the kernels call the epilogue once per finished block, from their own threads.
template <class Signature>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  FunctionRef() = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f)  // NOLINT(google-explicit-constructor): passed like a lambda
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* object, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
        }) {}
  explicit operator bool() const { return call_ != nullptr; }
  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_ = nullptr;
  R (*call_)(void*, Args...) = nullptr;
};

// Called by a kernel on each block of C once its last product term is in: rows
// [row, row + rows) and columns [col, col + cols) of C are final (before the epilogue) and may
// be rewritten in place. Blocks never overlap, and the kernel's threads may call it
// concurrently on different blocks. Empty: nothing to do.
using BlockEpilogue = FunctionRef<void(Index row, Index col, Index rows, Index cols)>;

}  // namespace fastmlp
