#include "fastmlp/finite_check.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fastmlp/parallel.hpp"

namespace fastmlp {

namespace {

// Values per block: a block's loop vectorizes, and the threads share the blocks.
constexpr Index kBlock = Index(1) << 16;

// A value is NaN or infinite exactly when its exponent bits are all ones. Testing the bits
// (integer ands and ors, which the compiler vectorizes in any order) rather than summing the
// values as scikit-learn does (a float sum, which it may not reorder) reads memory at full speed.
template <class T>
bool block_finite(const T* x, Index n) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr Bits exponent = sizeof(T) == 4 ? Bits(0x7F800000u) : Bits(0x7FF0000000000000ull);
  Bits bad = 0;
  for (Index i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, x + i, sizeof(T));
    bad |= Bits((bits & exponent) == exponent);
  }
  return bad == 0;
}

}  // namespace

template <class T>
bool all_finite(const T* x, Index n) {
  const Index blocks = (n + kBlock - 1) / kBlock;
  bool finite = true;
#ifdef FASTMLP_WITH_OPENMP
#pragma omp parallel for schedule(static) reduction(&& : finite) if (blocks > 1)
#endif
  for (Index b = 0; b < blocks; ++b) {
    finite = finite && block_finite(x + b * kBlock, std::min(kBlock, n - b * kBlock));
  }
  return finite;
}

template bool all_finite<float>(const float*, Index);
template bool all_finite<double>(const double*, Index);

}  // namespace fastmlp
